"""A killed worker's tasks go back to the queue when it restarts, not an hour later.

With Valkey as the broker, kombu moves each message a worker takes into its ``unacked``
hash and deletes it there once the task has run (``acks_late``). A worker that stops
warm puts back what it holds. One killed outright (SIGKILL, the OOM killer, a machine
lost) cannot, and kombu puts such a message back only once it has been unacknowledged
for ``BROKER_VISIBILITY_TIMEOUT``: an hour, because a task still running then, or a
retry waiting out its countdown (up to 300 s), would be delivered a second time. The
photos that worker held would stay "processing" for that hour, though the worker was
back in seconds.

So each worker notes which of its runs holds each message it takes (a hash of delivery
tag to worker, run and kombu's delivery time), and puts back, to be taken next:

- when it starts, what an earlier run under its own name still holds: that run is dead
  (two live workers must not share a name; Celery warns when they do);
- every heartbeat, what a worker whose heartbeat key has expired still holds (a machine
  lost for good), for any live worker to take.

A message is put back only while it is the same delivery (its delivery time unchanged),
so one that was put back and taken by another worker meanwhile is left to that worker.
Should a message be put back while its worker in fact lives (its heartbeat stalled for
three beats), the step records make the second delivery wait, then skip what the first
did (photos.pipeline.run_step): time, never double work. A message its worker died
holding before it was noted (a worker notes one within milliseconds) is put back once it
has been held unnoted for LOST_PHOTO_GRACE_SECONDS; the visibility timeout stays the
backstop.
"""

import json
import logging
import threading
import time
import uuid

import redis
from celery.signals import task_received, worker_ready, worker_shutdown
from django.conf import settings

from racephoto.observability import worker_key
from racephoto.redis import get_redis

logger = logging.getLogger(__name__)

HOLDERS_KEY = "racephoto:unacked-holders"

_state = {"channel": None, "worker": None, "run": None}
_stop = threading.Event()


def redis_channel(channel):
    """``channel`` if it is kombu's Redis/Valkey one (the only transport whose queues and
    unacknowledged messages live in keys these modules read), else None."""
    return channel if channel is not None and hasattr(channel, "unacked_index_key") else None


def broker_channel():
    """This process's kombu channel on the broker, if it is Redis/Valkey."""
    return redis_channel(_state["channel"])


def plain_client(channel):
    """A client on the broker's own connections that names keys as given: kombu's client
    adds the channel's ``global_keyprefix`` to some commands and not others (not to
    ZSCORE or HGETALL), so this module adds it itself, to all of them."""
    return redis.Redis(connection_pool=channel.pool)


def _keys(channel) -> tuple[str, str]:
    """The names of kombu's index of unacknowledged messages and of this module's notes."""
    prefix = channel.global_keyprefix
    return prefix + channel.unacked_index_key, prefix + HOLDERS_KEY


@worker_ready.connect(dispatch_uid="racephoto.redelivery.start")
def start(sender=None, **kwargs):
    connection = sender.app.connection_for_write()
    _state.update(channel=connection.default_channel, worker=sender.hostname,
                  run=uuid.uuid4().hex)
    if broker_channel() is None:
        return
    try:
        put_back_orphans()  # before this run takes a message: a restart after a crash
    except Exception:
        logger.warning("could not put back the tasks of a dead worker", exc_info=True)
    _stop.clear()
    threading.Thread(target=_sweep, name="racephoto-redelivery", daemon=True).start()


@worker_shutdown.connect(dispatch_uid="racephoto.redelivery.stop")
def stop(**kwargs):
    _stop.set()


@task_received.connect(dispatch_uid="racephoto.redelivery.note_holder")
def note_holder(request=None, **kwargs):
    channel = broker_channel()
    tag = getattr(request.message, "delivery_tag", None) if request is not None else None
    if channel is None or tag is None:
        return
    index_key, holders_key = _keys(channel)
    try:
        client = plain_client(channel)
        delivered = client.zscore(index_key, tag)
        if delivered is not None:  # None: acknowledged on receipt, nothing to recover
            client.hset(holders_key, tag, json.dumps(
                {"worker": _state["worker"], "run": _state["run"], "delivered": delivered}))
    except Exception:  # the visibility timeout still covers this message
        logger.warning("could not note the holder of task %s", request.id, exc_info=True)


def put_back_orphans() -> int:
    """Put back every message noted as held by a dead worker, forget the notes of
    messages acknowledged since; how many were put back."""
    channel = broker_channel()
    if channel is None:
        return 0
    index_key, holders_key = _keys(channel)
    client, heartbeats = plain_client(channel), get_redis()
    put_back = {}
    for tag, raw in client.hgetall(holders_key).items():
        note = json.loads(raw)
        delivered = client.zscore(index_key, tag)
        if delivered != note["delivered"]:  # acknowledged, or another delivery now
            client.hdel(holders_key, tag)
            continue
        own_earlier_run = note["worker"] == _state["worker"] and note["run"] != _state["run"]
        if own_earlier_run or not heartbeats.exists(worker_key(note["worker"])):
            # To the end of its queue that workers take from next, as kombu's own restore.
            channel.qos.restore_by_tag(tag)
            client.hdel(holders_key, tag)
            put_back[note["worker"]] = put_back.get(note["worker"], 0) + 1
    for worker, count in put_back.items():
        logger.warning("put back %d task(s) that worker %s held when it stopped without "
                       "acknowledging them", count, worker)
    return sum(put_back.values()) + _put_back_unnoted(channel, client, index_key, holders_key)


def _put_back_unnoted(channel, client, index_key, holders_key) -> int:
    """Put back the messages taken and never noted: a worker notes a message within
    milliseconds of taking it, so one still without a note after LOST_PHOTO_GRACE_SECONDS
    was taken by a worker that died in between, and only the visibility timeout (an hour)
    would give it back."""
    noted = set(client.hkeys(holders_key))
    before = time.time() - settings.LOST_PHOTO_GRACE_SECONDS
    count = 0
    for tag in client.zrangebyscore(index_key, "-inf", before):
        if tag not in noted:
            channel.qos.restore_by_tag(tag)
            count += 1
    if count:
        logger.warning("put back %d task(s) that a worker took and died before noting", count)
    return count


def _sweep() -> None:
    while not _stop.wait(settings.CELERY_WORKER_HEARTBEAT_SECONDS):
        try:
            put_back_orphans()
        except Exception:  # broker down: the next beat tries again
            logger.warning("could not put back the tasks of a dead worker", exc_info=True)
