"""Loaded by pytest (``-p racephoto.testing`` in pytest.ini) before Django is set up.

Tests load the settings with DEBUG on so no production secret is needed;
Django's test runner still runs the views with DEBUG off.

Tests never touch a developer's data in ``var/``:

- the embedded PostgreSQL is shared, but pytest-django works in its own
  ``test_racephoto`` database;
- the embedded Valkey is shared, but tests use their own database number
  (cache, broker queue, pending keys), so the worker of a running `make run`
  never takes a task a test queued;
- files go to a temp dir: per test (conftest.py), and at the settings' level
  for whatever runs outside a test's settings override (a thread still running
  after its test, a subprocess started with the test process's environment);
- a guard (an audit hook) records any write this process makes under ``var/``
  other than the embedded servers' own files, and fails the run with the
  test that made it.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

# Database 0 is the one `make run` and its worker use.
TEST_VALKEY_DB = 15
os.environ["EMBEDDED_VALKEY_DB"] = str(TEST_VALKEY_DB)

_session_files = Path(tempfile.mkdtemp(prefix="racephoto-tests-"))
atexit.register(shutil.rmtree, _session_files, ignore_errors=True)
for _name, _folder in (("MEDIA_ROOT", "media"), ("PRIVATE_MEDIA_ROOT", "private"),
                       ("INDEX_DIR", "indexes")):
    os.environ[_name] = str(_session_files / _folder)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("RACEPHOTO_VAR_DIR", BASE_DIR / "var")).resolve()


# --- The var/ guard -------------------------------------------------------------------------

# What the embedded servers keep under var/: their data, logs, sockets, pid and lock files.
_SERVER_DIRS = ("postgres", "valkey", "log")
_SERVER_RUN_FILES = ("postgres.lock", "valkey.lock", "valkey.pid", "valkey.sock",
                     ".s.PGSQL.5432", ".s.PGSQL.5432.lock")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Audit events that change the file system, and which of their arguments are paths.
_PATH_ARGUMENTS = {
    "os.mkdir": (0,), "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1),
    "os.truncate": (0,), "os.symlink": (1,), "os.link": (1,), "os.chmod": (0,),
    "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
    "shutil.move": (0, 1),
}
_var_writes: list[tuple[str, str, str]] = []  # (path, event, test)
_current_test = {"nodeid": "(outside any test)"}


def var_write(path) -> str | None:
    """``path`` relative to var/ if writing it would touch a developer's data, else None."""
    if isinstance(path, int):  # a file descriptor: its opening was checked
        return None
    try:
        absolute = os.path.abspath(os.fsdecode(path))
    except (TypeError, ValueError):
        return None
    var = str(VAR_DIR)
    if absolute != var and not absolute.startswith(var + os.sep):
        return None
    relative = Path(absolute).relative_to(VAR_DIR)
    parts = relative.parts
    if not parts or parts[0] in _SERVER_DIRS:
        return None
    if parts[0] == "run" and (len(parts) == 1 or parts[1:] in [(name,) for name in _SERVER_RUN_FILES]):
        return None
    return str(relative)


def _writes(event: str, args: tuple) -> list:
    if event == "open":
        path, mode, flags = args
        if mode is not None:
            return [path] if any(letter in mode for letter in "wax+") else []
        return [path] if flags & _WRITE_FLAGS else []
    return [args[index] for index in _PATH_ARGUMENTS.get(event, ()) if index < len(args)]


def _audit(event: str, args: tuple) -> None:
    if event != "open" and event not in _PATH_ARGUMENTS:
        return
    for path in _writes(event, args):
        relative = var_write(path)
        if relative is not None:
            _var_writes.append((relative, event, _current_test["nodeid"]))


def pytest_configure(config):
    sys.addaudithook(_audit)


def pytest_sessionstart(session):
    # The tests' own Valkey database starts empty: a task or a "pending" key left by an
    # interrupted run must not be taken for one of this run's.
    from django.conf import settings

    if not os.environ.get("REDIS_URL") and settings.EMBEDDED_VALKEY_DB == TEST_VALKEY_DB:
        from racephoto.redis import get_redis

        get_redis().flushdb()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current_test["nodeid"] = item.nodeid
    yield
    _current_test["nodeid"] = "(between tests)"


def pytest_sessionfinish(session, exitstatus):
    if _var_writes:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if not _var_writes:
        return
    terminalreporter.write_sep("!", f"TESTS WROTE INTO {VAR_DIR}", red=True, bold=True)
    terminalreporter.write_line("var/ holds the developer's data; tests write to temp dirs only.",
                                red=True)
    seen = set()
    for relative, event, test in _var_writes:
        if (relative, test) not in seen:
            seen.add((relative, test))
            terminalreporter.write_line(f"  {relative}  ({event}, {test})", red=True)
