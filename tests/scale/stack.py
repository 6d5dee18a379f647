"""What the scale tests' processes share: the S3 server's credentials (moto accepts any;
both sides must agree), the test database's URL for a subprocess, a free loopback port,
and a Celery worker started as on a machine of its own, with what the broker says of it."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from racephoto.observability import worker_key
from racephoto.redis import get_redis

ROOT = Path(__file__).resolve().parents[2]

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


def database_url() -> str:
    """DATABASE_URL of this test's database, for a server or worker started by the test."""
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):  # the embedded server: a Unix socket directory
        return f"postgres://{credentials}@/{db['NAME']}?host={quote(db['HOST'], safe='')}"
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """``celery -A racephoto worker`` as `manage.py run` starts it, on a machine of its own:
    its own var dir and process group, this test's database, broker and S3 bucket."""

    def __init__(self, name, queue, root: Path, s3_endpoint, bucket, settings, *,
                 concurrency=1, environment=None):
        self.hostname = f"{name}-{queue}@localhost"
        var = root / name / "var"
        var.mkdir(parents=True)
        self.log = root / f"{name}.log"
        self.env = {key: value for key, value in os.environ.items()
                    # its own var dir decides these, as on another machine
                    if key not in ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR")}
        self.env.update({
            "RACEPHOTO_VAR_DIR": str(var), "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL, "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": REGION, "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "ML_PIPELINE": "0",  # derivatives only: sharing the work is under test, not models
            "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
            "LOST_PHOTO_GRACE_SECONDS": "3",  # photos.recovery looks every 3 s, not every minute
            **(environment or {}),
        })
        self.command = [str(Path(sys.executable).parent / "celery"), "-A", "racephoto", "worker",
                        "--loglevel=info", f"--concurrency={concurrency}", "--without-mingle",
                        "--without-gossip", "-n", self.hostname, "-Q", queue]
        self.start()

    def start(self):
        """Start it (again, after a kill: the same name, var dir and log, appended to)."""
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group: the pool dies with it

    def wait_until_up(self, deadline):
        while not get_redis().exists(worker_key(self.hostname)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker {self.hostname} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def pause(self):
        """SIGSTOP to its main process, the one that takes messages from the broker: a
        message it has asked for is taken off the queue and left unread on the wire."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self):
        """SIGKILL to its whole process group, as when its machine is lost: nothing of it
        runs on to acknowledge, put back or clean up (its heartbeat key expires)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def finished(self) -> int:
        """Photos this worker finished (the results of this test's own queue only: a
        transactional test starts with no row)."""
        return TaskResult.objects.filter(task_name="photos.process_photo", worker=self.hostname,
                                         status="SUCCESS").count()


def held_tasks(queue) -> dict[str, list]:
    """The tasks of ``queue`` a worker has taken and not acknowledged (kombu's "unacked"
    hash): delivery tag to the task's positional arguments."""
    held = {}
    for tag, value in get_redis().hgetall("unacked").items():
        message, _exchange, routing_key = json.loads(value)
        if routing_key == queue:
            body = message["body"]
            if message["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            held[tag] = json.loads(body)[0]  # protocol 2: [args, kwargs, embed]
    return held


def held_by_workers(queue) -> int:
    """How many messages of ``queue`` workers have taken and not acknowledged."""
    return len(held_tasks(queue))


def queued(queue) -> int:
    """Messages waiting in ``queue`` (a Redis list; no task of ours has a priority)."""
    return get_redis().llen(queue)
