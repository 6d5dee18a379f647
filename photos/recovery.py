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
"""

import base64
import json
import logging
import threading
import time
from datetime import timedelta

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.utils import timezone

from photos.models import Photo
from racephoto.redelivery import plain_client, redis_channel

logger = logging.getLogger(__name__)

TASK_NAME = "photos.process_photo"
LOCK_KEY = "racephoto:lost-photos:lock"
# Photo id -> when a look first found it without a message.
CANDIDATES_KEY = "racephoto:lost-photos:candidates"
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
    if _state["photo_queue"] is None or not _broker():
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
            requeue_lost_photos()
        except Exception:  # broker or database down: the next look tries again
            logger.warning("could not look for photos whose message was lost", exc_info=True)


def _photo_ids(raw_messages) -> set[int]:
    """The photos that these raw kombu messages (JSON, as Redis holds them) would process."""
    ids = set()
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if isinstance(message, list):  # the unacked hash: [message, exchange, routing key]
                message = message[0]
            if message.get("headers", {}).get("task") != TASK_NAME:
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]  # protocol 2: [args, kwargs, embed]
            ids.add(int(args[0]))
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not one of ours, or another protocol: it names no photo we can see
    return ids


def photos_with_a_message(channel, client, queues) -> set[int]:
    """Every photo that a message waiting in ``queues`` or held by any worker would process.

    The queues are read before the held messages: one taken meanwhile is then seen held.
    One put back meanwhile can be missed in both, which the second look makes up for."""
    prefix = channel.global_keyprefix
    ids = set()
    for queue in queues:
        for priority in channel.priority_steps:
            key = prefix + channel._q_for_pri(queue, priority)
            # Pushed on the left, taken on the right: a batch read while workers take can
            # only read a message twice, never miss one still waiting.
            start = 0
            while batch := client.lrange(key, start, start + BATCH - 1):
                ids |= _photo_ids(batch)
                start += BATCH
    ids |= _photo_ids(client.hvals(prefix + channel.unacked_key))
    return ids


def requeue_lost_photos(now=None) -> list[int]:
    """Look once; queue again the photos found without a message at this look and the one
    before; their ids. Without effect where another worker looked within the grace."""
    broker = _broker()
    if broker is None or _state["photo_queue"] is None:
        return []
    channel, client = broker
    grace = settings.LOST_PHOTO_GRACE_SECONDS
    now = time.time() if now is None else now
    prefix = channel.global_keyprefix
    if not client.set(prefix + LOCK_KEY, "1", nx=True, ex=max(1, grace - 1)):
        return []
    candidates_key = prefix + CANDIDATES_KEY
    untouched = set(Photo.objects.exclude(state__in=FINISHED)
                    .filter(updated_at__lt=timezone.now() - timedelta(seconds=grace))
                    .values_list("pk", flat=True))
    missing = untouched - photos_with_a_message(channel, client, _state["queues"]) if untouched else set()
    seen_before = {int(pk) for pk in client.hkeys(candidates_key)}
    lost = sorted(missing & seen_before)
    for pk in lost:
        # send_task, not apply_async: it always goes through the broker.
        _state["app"].send_task(TASK_NAME, args=(pk,), queue=_state["photo_queue"])
    pipe = client.pipeline()
    pipe.delete(candidates_key)
    if waiting := missing - seen_before:
        pipe.hset(candidates_key, mapping={pk: now for pk in waiting})
    pipe.execute()
    if lost:
        logger.warning("queued %d photo(s) again whose processing message was lost: %s",
                       len(lost), lost[:20])
    return lost
