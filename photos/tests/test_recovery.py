"""Photos whose processing message is gone, queued again (photos.recovery), on the real
broker: messages waiting in a queue or held by a worker, and one lost, as kombu loses it.
tests/scale/test_worker_killed_with_a_deep_queue.py makes a worker lose one for real."""

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from kombu import Queue

from photos import recovery
from photos.models import Photo
from photos.tests.factories import PhotoFactory
from racephoto.celery import app
from racephoto.redis import get_redis
from racephoto.tests.broker_keys import forget

GRACE = 30


@pytest.fixture
def broker(monkeypatch, settings):
    """A queue of this test's own, this module's keys of its own, and a way to hold a
    message as a worker does (in kombu's unacked hash)."""
    name = f"test-recovery-{uuid.uuid4().hex[:8]}"
    settings.LOST_PHOTO_GRACE_SECONDS = GRACE
    monkeypatch.setattr(recovery, "LOCK_KEY", f"{name}:lock")
    monkeypatch.setattr(recovery, "CANDIDATES_KEY", f"{name}:candidates")
    connection = app.connection_for_write()
    channel = connection.default_channel
    monkeypatch.setattr(recovery, "_state", {"app": app, "channel": channel, "queues": (name,),
                                             "photo_queue": name})
    held = []

    def queue(photo):
        app.send_task(recovery.TASK_NAME, args=(photo.pk,), queue=name)

    def hold(photo):
        queue(photo)
        held.append(Queue(name)(channel).get(no_ack=False))

    def look():
        """One look, as if the grace had passed since the last (the lock let go)."""
        get_redis().delete(recovery.LOCK_KEY)
        return recovery.requeue_lost_photos()

    yield SimpleNamespace(name=name, queue=queue, hold=hold, look=look)
    forget(held, name)
    connection.release()


def untouched(*photos, seconds=GRACE + 1):
    Photo.objects.filter(pk__in=[photo.pk for photo in photos]).update(
        updated_at=timezone.now() - timedelta(seconds=seconds))


def queued_photos(name) -> list[int]:
    return sorted(recovery._photo_ids(get_redis().lrange(name, 0, -1)))


@pytest.mark.django_db
def test_a_photo_without_a_message_at_two_looks_is_queued_again_once(broker):
    waiting, held, lost = PhotoFactory.create_batch(3, state=Photo.State.FACES)
    broker.hold(held)  # taken first: a worker takes the oldest message
    broker.queue(waiting)
    untouched(waiting, held, lost)

    assert broker.look() == []  # a message can be between queue and worker for an instant
    assert queued_photos(broker.name) == [waiting.pk]
    assert broker.look() == [lost.pk]
    assert queued_photos(broker.name) == sorted([waiting.pk, lost.pk])
    assert broker.look() == []  # it has a message now
    assert queued_photos(broker.name) == sorted([waiting.pk, lost.pk])


@pytest.mark.django_db
def test_finished_recent_or_found_again_photos_are_left_alone(broker):
    ready = PhotoFactory(state=Photo.State.READY)
    failed = PhotoFactory(state=Photo.State.FAILED)
    recent = PhotoFactory(state=Photo.State.UPLOADED)  # its message may not be sent yet
    put_back = PhotoFactory(state=Photo.State.DERIVATIVES)
    finished_meanwhile = PhotoFactory(state=Photo.State.OCR)
    untouched(ready, failed, put_back, finished_meanwhile)
    untouched(recent, seconds=GRACE - 5)

    assert broker.look() == []
    broker.queue(put_back)  # back from a worker between the two looks
    Photo.objects.filter(pk=finished_meanwhile.pk).update(state=Photo.State.READY)
    assert broker.look() == []
    assert queued_photos(broker.name) == [put_back.pk]


@pytest.mark.django_db
def test_one_worker_looks_per_grace(broker):
    lost = PhotoFactory(state=Photo.State.UPLOADED)
    untouched(lost)
    assert broker.look() == []
    assert recovery.requeue_lost_photos() == []  # another worker just looked
    assert broker.look() == [lost.pk]


@pytest.mark.django_db
def test_only_photo_tasks_of_the_current_protocol_name_a_photo(broker):
    photo = PhotoFactory(state=Photo.State.UPLOADED)
    other = PhotoFactory(state=Photo.State.UPLOADED)
    untouched(photo, other)
    app.send_task("mlpipeline.sync_index", args=(other.pk,), queue=broker.name)
    get_redis().lpush(broker.name, b"not json", b'{"headers": {"task": "photos.process_photo"}}')
    broker.queue(photo)
    assert queued_photos(broker.name) == [photo.pk]
    assert broker.look() == []
    assert broker.look() == [other.pk]


def test_a_worker_puts_lost_photos_back_on_a_queue_it_takes_photos_from(settings):
    assert recovery.photo_queue(["celery", "events"]) == "celery"
    assert recovery.photo_queue(["events", "big-photos"]) == "big-photos"
    assert recovery.photo_queue(["events"]) is None
