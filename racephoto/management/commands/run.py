"""`manage.py run`: the whole product on one machine, for `make run`.

Migrates, loads the demo event, makes sure an admin account exists, then
starts the web server (gunicorn) and a Celery worker and watches them. Ctrl-C
(or SIGTERM) stops both and then the embedded PostgreSQL and Valkey.

A previous run killed with kill -9 leaves its web server and worker behind
(holding the port). Each run records its processes in ``var/run/stack.json``
and the next run stops whatever is left from there before starting.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError, call_command

from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey, _pid_runs, start_localstripe
from racephoto.hugepages import with_huge_pages

ADMIN_USERNAME = "admin"
# A child's exit status after Ctrl-C or SIGTERM: gunicorn and Celery exit 0; a
# process without a handler dies of the signal (Popen reports it negative).
STOPPED_AS_ASKED = {0, -signal.SIGINT, -signal.SIGTERM}


class StopRequest:
    requested = False


@contextmanager
def stop_signals():
    """A flag raised by SIGINT (Ctrl-C) or SIGTERM while the block runs, instead of an exception.

    SIGINT gets a handler of its own too: a shell starts a background job with SIGINT
    ignored, and Python then never raises KeyboardInterrupt. A second Ctrl-C while
    everything stops does not cut the stop short. The previous handlers come back after.
    """
    # A plain flag: a threading.Event's lock is not safe to take in a signal handler.
    stop = StopRequest()

    def request_stop(signum, frame):
        stop.requested = True

    previous = {signum: signal.signal(signum, request_stop)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _set_parent_death_signal():
    """Children die with this process even if it is killed with SIGKILL (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


class Command(BaseCommand):
    help = "Run RacePhoto locally: web server, Celery worker, embedded services, demo data."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo event.")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args, **options):
        state_file = settings.VAR_DIR / "run" / "stack.json"
        self._stop_leftovers(state_file)
        host, port = options["host"], options["port"]
        if not self._port_free(host, port):
            raise CommandError(
                f"Port {port} on {host} is used by another program. Stop it or run with PORT=8001."
            )

        self.stdout.write("Migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        if not options["no_demo"]:
            call_command("load_demo", stdout=self.stdout)
            call_command("load_demo_shop", stdout=self.stdout)
        username, password = self._ensure_admin()

        children = [self._start_localstripe(host, port)] if settings.STRIPE_LOCAL else []
        children += self._start_children(host, port, options["web_workers"])
        state_file.write_text(json.dumps({"run": os.getpid(),
                                          "children": [child.pid for child in children]}))
        base = f"http://{host}:{port}"
        self.stdout.write(self.style.SUCCESS(
            "\nRacePhoto is starting.\n"
            f"  Site:        {base}/fr/\n"
            f"  Demo event:  {base}/fr/events/demo-10k-lyon/\n"
            f"  Admin:       {base}/admin/  (user: {username}  password: {password})\n"
            f"  Health:      {base}/healthz\n"
            + (f"  Payments:    local test payments (localstripe on port {settings.LOCALSTRIPE_PORT}), "
               "card 4242 4242 4242 4242\n" if settings.STRIPE_LOCAL else "") +
            "Press Ctrl-C to stop everything.\n"
        ))
        with stop_signals() as stop:
            try:
                self._watch(children, stop)
            finally:
                self._shutdown(children)
                state_file.unlink(missing_ok=True)

    # --- steps -----------------------------------------------------------------

    def _port_free(self, host: str, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
        return True

    def _ensure_admin(self) -> tuple[str, str]:
        """Create the local admin once; its password is kept in var/ so every run can print it."""
        credentials = settings.VAR_DIR / "admin-password.txt"
        User = get_user_model()
        user = User.objects.filter(username=ADMIN_USERNAME).first()
        if user is not None and credentials.exists():
            _verify_admin_email(user)
            return ADMIN_USERNAME, credentials.read_text().strip()
        password = secrets.token_urlsafe(12)
        if user is None:
            user = User(username=ADMIN_USERNAME, email="admin@localhost",
                        is_staff=True, is_superuser=True)
        user.set_password(password)
        user.save()
        _verify_admin_email(user)
        credentials.write_text(password + "\n")
        credentials.chmod(0o600)
        return ADMIN_USERNAME, password

    def _start_children(self, host, port, web_workers) -> list[subprocess.Popen]:
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        web = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "racephoto.wsgi:application", "--bind", f"{host}:{port}",
             "--workers", str(web_workers), "--access-logfile", "-", "--graceful-timeout", "5"],
            env=with_huge_pages(env), preexec_fn=_set_parent_death_signal,
        )
        worker = subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "racephoto", "worker", "--loglevel=info",
             "--without-mingle", "--without-gossip"],
            env=env, preexec_fn=_set_parent_death_signal,
        )
        return [web, worker]

    def _start_localstripe(self, host, port) -> subprocess.Popen:
        """No Stripe keys: a fake Stripe on loopback, its webhooks sent to this site."""
        process = start_localstripe(settings.LOCALSTRIPE_PORT, settings.VAR_DIR / "localstripe.pickle",
                                    preexec_fn=_set_parent_death_signal)
        site_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        call_command("setup_local_stripe", site=f"http://{site_host}:{port}", stdout=self.stdout)
        return process

    def _watch(self, children, stop: StopRequest):
        """Return on Ctrl-C or SIGTERM, or when a child has stopped as asked; raise if one crashed."""
        while not stop.requested:
            time.sleep(0.5)
            for child in children:
                code = child.poll()
                if code is None:
                    continue
                name = Path(child.args[0]).name
                if code in STOPPED_AS_ASKED:
                    # Ctrl-C reaches the terminal's whole process group: the web server
                    # may be gone before this process has seen its own SIGINT.
                    self.stdout.write(f"\n{name} has stopped.")
                    return
                raise CommandError(f"{name} exited with code {code}; stopping.")

    def _shutdown(self, children):
        self.stdout.write("\nStopping web server and worker…")
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._stop_embedded_services()
        self.stdout.write("Stopped.")

    def _stop_embedded_services(self):
        if not settings.DATABASE_URL:
            from django.db import connections

            connections.close_all()
            self.stdout.write("Stopping embedded PostgreSQL…")
            EmbeddedPostgres(settings.VAR_DIR).stop()
        if not os.environ.get("REDIS_URL"):
            self.stdout.write("Stopping embedded Valkey…")
            EmbeddedValkey(settings.VAR_DIR).stop()

    def _stop_leftovers(self, state_file: Path):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return
        run_pid = state.get("run")
        children = [pid for pid in state.get("children", [])
                    if isinstance(pid, int) and any(_pid_runs(pid, name) for name in
                                                   ("gunicorn", "celery", "localstripe_server"))]
        stale_run = isinstance(run_pid, int) and run_pid != os.getpid() and _pid_runs(run_pid, "manage.py")
        if stale_run or children:
            self.stdout.write("Stopping processes left by an earlier run…")
        if stale_run:
            # SIGKILL, not SIGTERM: a graceful stop would shut down the embedded
            # database this run is already using.
            os.kill(run_pid, signal.SIGKILL)
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while any(_pid_runs(pid, "") for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in children:
            if _pid_runs(pid, ""):
                os.kill(pid, signal.SIGKILL)
        state_file.unlink(missing_ok=True)


def _verify_admin_email(user) -> None:
    # Signing in needs a verified address, and this local account has no mailbox to verify.
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True})
