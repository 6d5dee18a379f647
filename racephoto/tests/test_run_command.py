"""`manage.py run` (what `make run` calls) on a fresh data dir: serve, survive kill -9, stop cleanly."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_page(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"run exited early ({process.returncode}): {log_path.read_text()[-3000:]}")
        # Only this run's server counts, not one still winding down from the last run.
        if not log_path.exists() or "RacePhoto is starting" not in log_path.read_text():
            time.sleep(0.5)
            continue
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"{url} was not served within {timeout}s")


@pytest.fixture
def run_env(service_root):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(DEBUG="1", RACEPHOTO_VAR_DIR=str(service_root), PYTHONUNBUFFERED="1")
    yield env
    EmbeddedPostgres(service_root).stop()
    EmbeddedValkey(service_root).stop()


def start_run(env, port, log_path, *, through_shell: bool):
    """Start `run` as `make` would. With ``through_shell`` a parent shell stays in between,
    so killing that shell with -9 leaves `run` and its children orphaned."""
    command = f"{sys.executable} manage.py run --port {port} --web-workers 1 >> {log_path} 2>&1"
    # "; true" stops the shell from exec-ing the command in its place.
    return subprocess.Popen(["sh", "-c", f"{command}; true" if through_shell else f"exec {command}"],
                            cwd=ROOT, env=env)


def test_it_serves_the_demo_event_survives_kill_9_and_stops_everything(run_env, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/fr/events/demo-10k-lyon/"
    first_log = tmp_path / "first.log"

    first = start_run(run_env, port, first_log, through_shell=True)
    assert "10 km de Lyon" in wait_for_page(url, first, first_log)
    first_output = first_log.read_text()
    assert "user: admin" in first_output and url in first_output

    # kill -9 the parent (as when `make` is killed): `run` and its children live on.
    os.kill(first.pid, signal.SIGKILL)
    first.wait()

    second_log = tmp_path / "second.log"
    second = start_run(run_env, port, second_log, through_shell=False)
    assert "10 km de Lyon" in wait_for_page(url, second, second_log)
    second_output = second_log.read_text()
    assert "left by an earlier run" in second_output
    password_line = [line for line in first_output.splitlines() if "password:" in line]
    assert password_line and password_line[0] in second_output  # same admin credentials

    os.kill(second.pid, signal.SIGINT)  # no shell in between: this is Ctrl-C
    assert second.wait(timeout=60) == 0
    assert "Stopped." in second_log.read_text()
    var = Path(run_env["RACEPHOTO_VAR_DIR"])
    assert not EmbeddedPostgres(var).is_running()
    assert not EmbeddedValkey(var).is_running()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_it_refuses_a_port_that_another_program_holds_before_starting_anything(settings, tmp_path):
    from django.core.management import CommandError, call_command

    settings.VAR_DIR = tmp_path  # no stack.json from a developer's real run is touched
    (tmp_path / "run").mkdir()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} on 127.0.0.1 is used by another program"):
            call_command("run", "--port", str(port), "--no-demo")

    assert not (tmp_path / "admin-password.txt").exists()
    assert not (tmp_path / "run" / "stack.json").exists()


# --- Stopping: Ctrl-C and SIGTERM are a normal end, a crash is not ----------------------------

# Stands in for gunicorn and the Celery worker: stops with exit 0 on SIGINT or SIGTERM,
# as they do, or (its argument) stops or crashes on its own after a moment.
FAKE_SERVER = """
import pathlib, signal, sys, time
signal.signal(signal.SIGINT, lambda *args: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
pathlib.Path(sys.argv[0] + ".ready").touch()
time.sleep({"stops": 1, "crashes": 1}.get(sys.argv[1], 120))
sys.exit(3 if sys.argv[1] == "crashes" else 0)
"""


@pytest.fixture
def fake_stack(settings, tmp_path, monkeypatch):
    """`run` with its steps before the watch stubbed out and fake servers as children."""
    from racephoto.management.commands import run

    settings.VAR_DIR = tmp_path
    settings.STRIPE_LOCAL = False  # no localstripe (port 8420 may be a running `make run`'s)
    (tmp_path / "run").mkdir()
    children = []

    def start(modes):
        def start_children(self, host, port, web_workers):
            for name, mode in zip(("gunicorn", "celery"), modes):
                program = tmp_path / name
                program.write_text(f"#!{sys.executable}\n{FAKE_SERVER}")
                program.chmod(0o755)
                children.append(subprocess.Popen([str(program), mode]))
            # Up, with their handlers set, before anyone presses Ctrl-C.
            deadline = time.monotonic() + 60
            while not all(Path(f"{child.args[0]}.ready").exists() for child in children):
                assert time.monotonic() < deadline, "the fake servers did not start"
                time.sleep(0.05)
            return children
        monkeypatch.setattr(run.Command, "_start_children", start_children)

    monkeypatch.setattr(run, "call_command", lambda *args, **kwargs: None)  # migrate, demo
    monkeypatch.setattr(run.Command, "_ensure_admin", lambda self: ("admin", "secret"))
    # The embedded servers are this test run's own: they stay up.
    monkeypatch.setattr(run.Command, "_stop_embedded_services", lambda self: None)
    yield start, children
    for child in children:
        child.kill()
        child.wait()


def run_command():
    import io

    from django.core.management import call_command

    output = io.StringIO()
    call_command("run", "--port", str(free_port()), "--no-demo", stdout=output)
    return output.getvalue()


def once_watching(action):
    """Run ``action`` in a thread once `run` watches its children (its handlers are set)."""
    import threading

    def wait_then_act():
        before = signal.getsignal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while signal.getsignal(signal.SIGTERM) is before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        action()

    thread = threading.Thread(target=wait_then_act)
    thread.start()
    return thread


def ctrl_c(children):
    """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
    for child in children:
        child.send_signal(signal.SIGINT)
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_that_reaches_the_web_server_first_is_a_normal_stop(fake_stack):
    start, children = fake_stack
    start(["stops", "runs"])  # gunicorn gone (exit 0) before `run` has seen its SIGINT

    output = run_command()

    assert "gunicorn has stopped." in output and "Stopped." in output
    assert [child.returncode for child in children] == [0, 0]  # the worker was stopped too


def test_ctrl_c_stops_everything_even_when_started_as_a_background_job(fake_stack):
    # A shell starts a background job with SIGINT ignored: Python then never raises
    # KeyboardInterrupt, and only the children (which set their own handlers) stopped.
    start, children = fake_stack
    start(["runs", "runs"])
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        timer = once_watching(lambda: ctrl_c(children))
        output = run_command()
        timer.join()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # handlers given back
    finally:
        signal.signal(signal.SIGINT, previous)

    assert "Stopped." in output
    assert [child.returncode for child in children] == [0, 0]


def test_sigterm_stops_everything_quietly(fake_stack):
    start, children = fake_stack
    start(["runs", "runs"])

    timer = once_watching(lambda: os.kill(os.getpid(), signal.SIGTERM))
    output = run_command()
    timer.join()

    assert "Stopped." in output
    assert [child.returncode for child in children] == [0, 0]


def test_a_crash_of_the_web_server_still_fails_loudly(fake_stack):
    from django.core.management import CommandError

    start, children = fake_stack
    start(["crashes", "runs"])

    with pytest.raises(CommandError, match="gunicorn exited with code 3; stopping"):
        run_command()
    assert children[1].returncode == 0  # the worker was stopped all the same
