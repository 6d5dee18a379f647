"""Celery tasks of the ML pipeline, and their scheduling: thin, debounced, safe to run twice.

Index updates and event linking are event-wide work that many photos ask for at once: a
step or a signal says what changed (:func:`indexes_changed`, :func:`links_changed`), and
the task is scheduled once the transaction commits. :func:`schedule` keeps at most one
pending run per event (and kind) with a short key in Redis: a burst of a thousand photos
costs one run a couple of seconds later, and a change that lands while a run is going
sets the key again, so it gets a run of its own. Nothing is lost if a run dies: the work
is a comparison with the database, done in full by the next run. A message lost on its
way to a worker would leave its key for PENDING_TTL_SECONDS, with no run: photos.recovery
finds such keys (:func:`pending_runs`) and queues the run again (:func:`schedule_again`).
"""

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from mlpipeline import event_linking, indexes
from racephoto.redis import get_redis

logger = logging.getLogger(__name__)

PENDING_PREFIX = "racephoto:pending:"
PENDING_KEY = PENDING_PREFIX + "{name}:{args}"
# A pending key outlives a worker that died holding it by no more than this.
PENDING_TTL_SECONDS = 600
LAST_RUN_KEY = "racephoto:last-run:{name}:{args}"
LAST_RUN_TTL_SECONDS = 86400


def _pending_key(task, args) -> str:
    return PENDING_KEY.format(name=task.name, args=":".join(map(str, args)))


def _last_run_key(task, args) -> str:
    return LAST_RUN_KEY.format(name=task.name, args=":".join(map(str, args)))


def schedule(task, *args) -> bool:
    """Queue ``task(*args)`` unless a run of it is already waiting; whether it was queued.

    It runs after INDEX_UPDATE_DELAY, and no sooner than EVENT_WORK_SPACING times its
    previous run's duration after that run ended: while photos pour in, a run that reads
    a whole big event runs less often, so event-wide work keeps to a share of the workers
    however big the event, and a small event stays up to date within seconds."""
    client = get_redis()
    if not client.set(_pending_key(task, args), 1, nx=True, ex=PENDING_TTL_SECONDS):
        return False
    task.apply_async(args, countdown=_countdown(client.get(_last_run_key(task, args))))
    return True


def _countdown(last_run) -> float:
    countdown = float(settings.INDEX_UPDATE_DELAY)
    if last_run:
        ended, took = map(float, last_run.split(":"))
        countdown = max(countdown, ended + settings.EVENT_WORK_SPACING * took - time.time())
    return countdown


@contextmanager
def _timed(task, args):
    """Records when the run ended and how long it took, for :func:`schedule`."""
    started = time.monotonic()
    yield
    get_redis().set(_last_run_key(task, args), f"{time.time():.3f}:{time.monotonic() - started:.3f}",
                    ex=LAST_RUN_TTL_SECONDS)


@shared_task(bind=True, name="mlpipeline.sync_index", max_retries=5, retry_backoff=5,
             autoretry_for=(OSError,), acks_late=True)
def sync_index(self, event_id: int, kind: str) -> dict:
    # Cleared before reading the database: a change committed from now on queues a new run.
    get_redis().delete(_pending_key(sync_index, (event_id, kind)))
    with _timed(sync_index, (event_id, kind)):
        result = indexes.sync(event_id, kind)
    return {"added": result.added, "removed": result.removed, "rebuilt": result.rebuilt}


# Linking rewrites an event's face-link tags while other worker processes write the
# tags and faces of new photos: PostgreSQL may break a deadlock by failing either side.
# Linking recomputes everything from the database, so running it again is always right.
@shared_task(bind=True, name="mlpipeline.link_event", max_retries=5, retry_backoff=5,
             retry_jitter=True, autoretry_for=(OperationalError, InterfaceError), acks_late=True)
def link_event(self, event_id: int) -> dict:
    get_redis().delete(_pending_key(link_event, (event_id,)))
    with _timed(link_event, (event_id,)):
        result = link_and_suggest(event_id)
    return {"faces": result.faces, "clusters": result.clusters,
            "face_link_tags": result.face_link_tags}


def link_and_suggest(event_id: int, full: bool = False) -> "event_linking.LinkResult":
    """Link the event's faces (every one of them again if ``full``), then recompute its
    burst and timing suggestions, which read the tags linking just wrote."""
    result = event_linking.link_event(event_id, full=full)
    sequences, timing = _suggesters()
    sequences.recompute(event_id)
    timing.recompute(event_id)
    return result


def _suggesters():
    # Imported when a task runs: photos' modules import parts of mlpipeline (bib rules, the
    # model registry) and mlpipeline imports photos', so neither app's import order has to
    # wait for the other's modules to be finished.
    from photos import sequences, timing

    return sequences, timing


# A photo read without a bib may still be found by its burst or by the timing: the
# event's suggestions are looked at again (a linking run does it too).
@shared_task(bind=True, name="mlpipeline.suggest_event", max_retries=5, retry_backoff=5,
             retry_jitter=True, autoretry_for=(OperationalError, InterfaceError), acks_late=True)
def suggest_event(self, event_id: int) -> dict:
    get_redis().delete(_pending_key(suggest_event, (event_id,)))
    with _timed(suggest_event, (event_id,)):
        sequences, timing = _suggesters()
        bursts = sequences.recompute(event_id)
        outcome = timing.recompute(event_id)
    return {"sequence": bursts, "timing_tags": outcome.tags, "timing": outcome.suggestions}


EVENT_TASKS = {task.name: task for task in (sync_index, link_event, suggest_event)}


@dataclass(frozen=True)
class PendingRun:
    """A run :func:`schedule` queued that has not started: its key in Redis."""

    key: str
    task: str  #: the task's name
    args: tuple[str, ...]  #: as the key spells them
    age: float  #: seconds since the key was set


def pending_runs() -> list[PendingRun]:
    """Every run queued by :func:`schedule` that has not started yet."""
    client = get_redis()
    runs = []
    for key in client.scan_iter(match=PENDING_PREFIX + "*", count=1000):
        ttl = client.ttl(key)
        name, *args = key.removeprefix(PENDING_PREFIX).split(":")
        if ttl > 0 and name in EVENT_TASKS:  # else gone meanwhile, or not a key of ours
            runs.append(PendingRun(key, name, tuple(args), PENDING_TTL_SECONDS - ttl))
    return runs


def schedule_again(run: PendingRun) -> bool:
    """Queue anew a run whose message was lost; whether it was queued (not if a run of it
    started meanwhile and another was queued since)."""
    client = get_redis()
    if client.ttl(run.key) > PENDING_TTL_SECONDS - run.age or client.get(run.key) is None:
        return False  # its key was set again, or the run started: there is a message
    client.delete(run.key)
    return schedule(EVENT_TASKS[run.task], *(int(arg) if arg.isdigit() else arg
                                             for arg in run.args))


# --- Scheduled after the commit ------------------------------------------------------

_pending = threading.local()


def _once_on_commit(key: tuple, callback) -> None:
    """Run ``callback`` after the commit, once per key however often it is asked for."""
    pending = getattr(_pending, "keys", None)
    if pending is None:
        pending = _pending.keys = {}
    if key in pending and _still_queued(pending[key]):
        return

    def run():
        pending.pop(key, None)
        try:
            callback()
        except Exception:
            # The broker may be down: the next change, or rebuild_indexes, catches up.
            logger.exception("could not schedule %s", key)

    # A rolled-back transaction (or savepoint) drops its callbacks without running them:
    # the key is then asked for again in the next transaction, never lost for the thread.
    pending[key] = run
    transaction.on_commit(run)


def _still_queued(run) -> bool:
    # Django keeps the callbacks of the open transaction as (savepoints, callable, robust).
    return any(entry[1] is run for entry in connection.run_on_commit)


def indexes_changed(event_id: int, kind: str) -> None:
    """The event's ``kind`` embeddings changed: update its index soon after the commit."""
    if settings.SEARCH_BACKEND == "pgvector":
        return  # PostgreSQL keeps its own indexes in step
    _once_on_commit(("index", event_id, kind), lambda: schedule(sync_index, event_id, kind))


def links_changed(event_id: int) -> None:
    """The event's faces or bibs changed: link them again soon after the commit."""
    _once_on_commit(("links", event_id), lambda: schedule(link_event, event_id))


def suggestions_changed(event_id: int) -> None:
    """A photo was read: its event's burst and timing suggestions are redone after the commit."""
    _once_on_commit(("suggestions", event_id), lambda: schedule(suggest_event, event_id))
