"""Worker side of the models: load them when a worker process starts, and say so.

The worker's main process loads every model before it forks its pool of
processes, so the processes share the weights' memory pages instead of each
holding a copy: inference never writes a weight, so copy-on-write never copies
them (bench/ingest.py prints the worker's memory). A process that starts without
a model, because its weights were missing then, tries again in a background
thread (Celery kills a child whose start-up takes more than a few seconds).

Each process then publishes which models it holds — loaded or not, pretrained
or not, the error if one failed — under a short-lived Redis key that it keeps
refreshing. ``/healthz`` and the admin's model-status page read those keys: the
web process never loads a model to report on them.
"""

import json
import logging
import os
import socket
import threading

from celery.signals import task_postrun, worker_init, worker_process_init, worker_process_shutdown
from django.conf import settings

from mlpipeline import allocator, loaded
from mlpipeline.inference.base import ModelUnavailable
from photos import imaging
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


def load_models() -> None:
    """Every model this process can load; one whose weights are missing is reported."""
    if not settings.ML_PIPELINE:
        return  # an ingestion-only worker runs no model step: holding 1.5 GB of weights is waste
    for model in loaded.all_models():
        try:
            model.ensure_loaded()
        except ModelUnavailable as exc:
            logger.warning("model unavailable in this worker: %s", exc)


def preload() -> None:
    """Ready the calling thread to run the models, and load them (a process that runs
    its tasks in this thread: a worker process, a bench, a browser test)."""
    loaded.configure_threads()
    load_models()


@worker_init.connect(dispatch_uid="mlpipeline.load_before_fork")
def load_before_fork(**kwargs):
    # GNU OpenMP cannot serve a child forked after its parent ran a parallel region
    # with several threads: the child hangs in its first one. This process loads on
    # one thread and runs no model while it forks; its children set their own count.
    loaded.configure_threads(1)
    load_models()
    # Loading CLIP holds a second copy of its weights for a moment (the checkpoint read
    # before it is copied into the model): hand that back before the children share it.
    allocator.release_free_memory()
    loaded.configure_threads()  # a solo pool runs the tasks in this very process


def _run() -> None:
    load_models()  # loaded before the fork: nothing to do unless weights were missing
    while not _stop.is_set():
        try:
            publish()
        except Exception:
            logger.warning("could not publish the worker's models", exc_info=True)
        _stop.wait(settings.CELERY_WORKER_HEARTBEAT_SECONDS)


@worker_process_init.connect(dispatch_uid="mlpipeline.preload")
def start(**kwargs):
    loaded.configure_threads()  # here, in the thread that will run the tasks
    _stop.clear()
    threading.Thread(target=_run, name="racephoto-models", daemon=True).start()


@task_postrun.connect(dispatch_uid="mlpipeline.release_memory")
def release_memory(**kwargs):
    # The task's photo is done with: its decoded pixels, kept for its steps (40 MB of a
    # 24 MP photo), go; then the heap's free pages go back to the system (see allocator).
    imaging.forget_decoded()
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
    return sorted(json_values(MODELS_KEY_PREFIX),
                  key=lambda report: (report.get("hostname", ""), report.get("pid", 0)))
