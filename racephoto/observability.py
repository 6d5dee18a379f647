"""Celery-side signals that feed /healthz and /metrics, and carry the request id.

Web and worker are separate processes (often separate machines), so what the
web process reports about workers and task durations is read from Redis:

- each worker writes a heartbeat key with a short expiry from a background
  thread; /healthz counts the keys that are still alive;
- each finished task adds its duration to a per-task histogram hash.
"""

import json
import logging
import os
import socket
import threading
import time

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings

from racephoto.logging import request_id_var
from racephoto.redis import get_redis

logger = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "racephoto:worker:"
TASK_DURATION_KEY_PREFIX = "racephoto:task-duration:"
# Seconds; chosen for photo tasks: derivatives take ~0.1 s, OCR up to tens of seconds.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

_task_started: dict[str, float] = {}
_heartbeat_stop = threading.Event()


def worker_key(hostname: str) -> str:
    return f"{WORKER_KEY_PREFIX}{hostname}"


def write_heartbeat(hostname: str, interval: int) -> None:
    payload = json.dumps({"hostname": hostname, "pid": os.getpid(), "seen": time.time()})
    # Three missed beats and the worker counts as gone.
    get_redis().set(worker_key(hostname), payload, ex=interval * 3)


def _heartbeat_loop(hostname: str, interval: int) -> None:
    while not _heartbeat_stop.is_set():
        try:
            write_heartbeat(hostname, interval)
        except Exception:  # broker down: keep trying, /healthz will say the worker is gone
            logger.warning("worker heartbeat failed", exc_info=True)
        _heartbeat_stop.wait(interval)


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs):
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    interval = settings.CELERY_WORKER_HEARTBEAT_SECONDS
    _heartbeat_stop.clear()
    threading.Thread(
        target=_heartbeat_loop, args=(hostname, interval), name="racephoto-heartbeat", daemon=True
    ).start()


@worker_shutdown.connect
def stop_heartbeat(sender=None, **kwargs):
    _heartbeat_stop.set()
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    try:
        get_redis().delete(worker_key(hostname))
    except Exception:
        logger.warning("could not remove worker heartbeat", exc_info=True)


@before_task_publish.connect
def attach_request_id(headers=None, **kwargs):
    if headers is not None and "request_id" not in headers:
        headers["request_id"] = request_id_var.get()


@task_prerun.connect
def task_started(task_id=None, task=None, **kwargs):
    _task_started[task_id] = time.monotonic()
    request_id = getattr(task.request, "request_id", None) if task else None
    request_id_var.set(request_id or f"task-{task_id}")


@task_postrun.connect
def task_finished(task_id=None, task=None, state=None, **kwargs):
    started = _task_started.pop(task_id, None)
    if started is None or task is None:
        return
    try:
        record_task_duration(task.name, time.monotonic() - started, state or "UNKNOWN")
    except Exception:  # metrics must never fail a task
        logger.warning("could not record task duration", exc_info=True)


def record_task_duration(task_name: str, seconds: float, state: str) -> None:
    key = TASK_DURATION_KEY_PREFIX + task_name
    pipe = get_redis().pipeline()
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", seconds)
    pipe.hincrby(key, f"state:{state}", 1)
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(key, f"le:{bound}", 1)
    pipe.execute()
