"""Photos whose processing message is gone are queued again.

kombu's Redis transport takes a message with BRPOP, which removes it from the queue at
once, and only then, from the worker, writes it to its ``unacked`` hash. A worker killed
in between (its machine lost while the reply was on the wire, or while it was busy and
had not read it yet) takes the message with it: neither the visibility timeout nor
racephoto.redelivery can give it back, since neither ever saw it. A broker restarted
without its data loses every queued message the same way, and an upload accepted while
the broker was down was never queued. Each such photo would say "processing" for good.

So every ``LOST_PHOTO_GRACE_SECONDS`` one worker (the others wait on a lock) lists the
photos that are not finished and were not touched for that long, and looks for a message
of each: waiting in a queue, or held by a worker, its retries included. A photo without
one in two looks in a row is queued again: the second look, a grace later, is what tells
a lost message from one that was between the queue and the unacked hash for an instant.
A second message for a photo whose first was not lost after all costs a run that skips
what is done (photos.pipeline.run_step), never double work.

Event-wide work (an index sync, linking, suggestions) is lost the same way, and would keep
its pending key (mlpipeline.tasks.schedule) for ten minutes with no run, or for good when
no photo came after it: the same look finds pending keys a grace old with no message of
their task and arguments, at two looks in a row, and schedules their run again.
"""

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.utils import timezone

from mlpipeline import tasks
from photos.models import Photo
from racephoto.redelivery import plain_client, redis_channel

logger = logging.getLogger(__name__)

TASK_NAME = "photos.process_photo"
LOCK_KEY = "racephoto:lost-photos:lock"
# Photo id -> when a look first found it without a message.
CANDIDATES_KEY = "racephoto:lost-photos:candidates"
# Pending key of event-wide work -> when a look first found it without a message.
EVENT_CANDIDATES_KEY = "racephoto:lost-event-work:candidates"
FINISHED = (Photo.State.READY, Photo.State.FAILED)
BATCH = 1000  # messages read from a queue at a time

_state = {"app": None, "channel": None, "queues": (), "photo_queue": None}
_stop = threading.Event()


def photo_queue(consumed: list[str]) -> str | None:
    """Where this worker puts a lost photo back: a queue it takes photos from (the
    default one, unless it was started on others); None if it takes only event-wide work."""
    if settings.CELERY_TASK_DEFAULT_QUEUE in consumed:
        return settings.CELERY_TASK_DEFAULT_QUEUE
    return next((name for name in consumed if name != settings.EVENTS_QUEUE), None)


@worker_ready.connect(dispatch_uid="photos.recovery.start")
def start(sender=None, **kwargs):
    consumed = list(sender.app.amqp.queues.consume_from)
    _state.update(app=sender.app, channel=sender.app.connection_for_write().default_channel,
                  photo_queue=photo_queue(consumed),
                  queues=tuple(dict.fromkeys([*consumed, *settings.CELERY_TASK_QUEUES])))
    if not _broker():
        return
    _stop.clear()
    threading.Thread(target=_sweep, name="racephoto-lost-photos", daemon=True).start()


@worker_shutdown.connect(dispatch_uid="photos.recovery.stop")
def stop(**kwargs):
    _stop.set()


def _broker():
    """This worker's kombu channel and a plain client on the broker, if it is Redis/Valkey
    (the one transport whose queues this module can read); None otherwise."""
    channel = redis_channel(_state["channel"])
    return (channel, plain_client(channel)) if channel is not None else None


def _sweep() -> None:
    while not _stop.wait(settings.LOST_PHOTO_GRACE_SECONDS):
        try:
            requeue_lost_work()
        except Exception:  # broker or database down: the next look tries again
            logger.warning("could not look for work whose message was lost", exc_info=True)


def _messages(raw_messages):
    """(task name, arguments as strings) of raw kombu messages (JSON, as Redis holds them)."""
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if isinstance(message, list):  # the unacked hash: [message, exchange, routing key]
                message = message[0]
            task = message["headers"]["task"]
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]  # protocol 2: [args, kwargs, embed]
            yield str(task), tuple(map(str, args))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue  # not one of ours, or another protocol: it names no work we can see


def _photo_ids(messages) -> set[int]:
    """The photos that these (task name, arguments) would process."""
    return {int(args[0]) for task, args in messages
            if task == TASK_NAME and args and args[0].isdigit()}


def messages_waiting_or_held(channel, client, queues) -> set[tuple[str, tuple[str, ...]]]:
    """(task name, arguments) of every message waiting in ``queues`` or held by any worker.

    The queues are read before the held messages: one taken meanwhile is then seen held.
    One put back meanwhile can be missed in both, which the second look makes up for."""
    prefix = channel.global_keyprefix
    found = set()
    for queue in queues:
        for priority in channel.priority_steps:
            key = prefix + channel._q_for_pri(queue, priority)
            # Pushed on the left, taken on the right: a batch read while workers take can
            # only read a message twice, never miss one still waiting.
            start = 0
            while batch := client.lrange(key, start, start + BATCH - 1):
                found.update(_messages(batch))
                start += BATCH
    found.update(_messages(client.hvals(prefix + channel.unacked_key)))
    return found


@dataclass(frozen=True)
class Requeued:
    """What one look queued again."""

    photos: list[int] = field(default_factory=list)
    #: pending keys of event-wide work whose run was scheduled again
    event_work: list[str] = field(default_factory=list)


def requeue_lost_work(now=None) -> Requeued:
    """Look once; queue again the photos, and schedule again the event-wide work, found
    without a message at this look and the one before. Without effect where another
    worker looked within the grace."""
    broker = _broker()
    if broker is None:
        return Requeued()
    channel, client = broker
    grace = settings.LOST_PHOTO_GRACE_SECONDS
    now = time.time() if now is None else now
    prefix = channel.global_keyprefix
    if not client.set(prefix + LOCK_KEY, "1", nx=True, ex=max(1, grace - 1)):
        return Requeued()
    untouched = set()
    if _state["photo_queue"] is not None:  # a worker of event-wide work only: not photos
        untouched = set(Photo.objects.exclude(state__in=FINISHED)
                        .filter(updated_at__lt=timezone.now() - timedelta(seconds=grace))
                        .values_list("pk", flat=True))
    # A run is scheduled a grace or more after its key is set only when the event's last
    # run was long (EVENT_WORK_SPACING): its message is then waiting or held all along.
    stale_runs = [run for run in tasks.pending_runs() if run.age >= grace]
    messages = (messages_waiting_or_held(channel, client, _state["queues"])
                if untouched or stale_runs else set())
    lost_photos = _lost(client, prefix + CANDIDATES_KEY,
                        untouched - _photo_ids(messages), now)
    for pk in lost_photos:
        # send_task, not apply_async: it always goes through the broker.
        _state["app"].send_task(TASK_NAME, args=(pk,), queue=_state["photo_queue"])
    runs = {run.key: run for run in stale_runs if (run.task, run.args) not in messages}
    lost_runs = [key for key in _lost(client, prefix + EVENT_CANDIDATES_KEY, set(runs), now)
                 if tasks.schedule_again(runs[key])]
    if lost_photos:
        logger.warning("queued %d photo(s) again whose processing message was lost: %s",
                       len(lost_photos), lost_photos[:20])
    if lost_runs:
        logger.warning("scheduled again %d event-wide run(s) whose message was lost: %s",
                       len(lost_runs), lost_runs[:20])
    return Requeued(lost_photos, lost_runs)


def _lost(client, candidates_key: str, missing: set, now: float) -> list:
    """Of ``missing`` (without a message at this look), those also missing at the look
    before (noted in the hash ``candidates_key``), sorted; the others are noted for the next."""
    seen_before = {key.decode() if isinstance(key, bytes) else key
                   for key in client.hkeys(candidates_key)}
    as_keys = {str(item): item for item in missing}
    lost = sorted(item for key, item in as_keys.items() if key in seen_before)
    pipe = client.pipeline()
    pipe.delete(candidates_key)
    if waiting := [key for key in as_keys if key not in seen_before]:
        pipe.hset(candidates_key, mapping=dict.fromkeys(waiting, now))
    pipe.execute()
    return lost
