"""Worker side of the models: load them when a worker process starts, and say so.

Each worker process loads every model once, in a background thread started
when the process is forked (Celery kills a child whose start-up takes more
than a few seconds, and EasyOCR alone needs that), then publishes which models
it holds — loaded or not, pretrained or not, the error if one failed — under a
short-lived Redis key that it keeps refreshing. ``/healthz`` and the admin's
model-status page read those keys: the web process never loads a model to
report on them.
"""

import json
import logging
import os
import socket
import threading

from celery.signals import task_postrun, worker_process_init, worker_process_shutdown
from django.conf import settings

from mlpipeline import allocator, loaded
from mlpipeline.base import ModelUnavailable
from racephoto.redis import get_redis, json_values

logger = logging.getLogger(__name__)

MODELS_KEY_PREFIX = "racephoto:worker-models:"
_stop = threading.Event()


def models_key() -> str:
    return f"{MODELS_KEY_PREFIX}{socket.gethostname()}:{os.getpid()}"


def publish() -> None:
    interval = settings.CELERY_WORKER_HEARTBEAT_SECONDS
    payload = {"hostname": socket.gethostname(), "pid": os.getpid(),
               "models": [model.describe() for model in loaded.all_models()]}
    get_redis().set(models_key(), json.dumps(payload), ex=interval * 3)


def preload() -> None:
    loaded.configure_threads()
    for model in loaded.all_models():
        try:
            model.ensure_loaded()
        except ModelUnavailable as exc:
            logger.warning("model unavailable in this worker: %s", exc)


def _run() -> None:
    preload()
    while not _stop.is_set():
        try:
            publish()
        except Exception:
            logger.warning("could not publish the worker's models", exc_info=True)
        _stop.wait(settings.CELERY_WORKER_HEARTBEAT_SECONDS)


@worker_process_init.connect(dispatch_uid="mlpipeline.preload")
def start(**kwargs):
    _stop.clear()
    threading.Thread(target=_run, name="racephoto-models", daemon=True).start()


@task_postrun.connect(dispatch_uid="mlpipeline.release_memory")
def release_memory(**kwargs):
    # A photo's buffers are freed by now: hand their pages back (see allocator).
    allocator.release_free_memory()


@worker_process_shutdown.connect(dispatch_uid="mlpipeline.unpublish")
def stop(**kwargs):
    _stop.set()
    try:
        get_redis().delete(models_key())
    except Exception:
        logger.warning("could not remove the worker's model status", exc_info=True)


def worker_models() -> list[dict]:
    """What each live worker process reported about its models."""
    return sorted(json_values(MODELS_KEY_PREFIX), key=lambda report: (report.get("hostname", ""), report.get("pid", 0)))
