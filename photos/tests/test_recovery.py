"""Photos whose processing message is gone, queued again (photos.recovery), on the real
broker: messages waiting in a queue or held by a worker, and one lost, as kombu loses it.
tests/scale/test_worker_killed_with_a_deep_queue.py makes a worker lose one for real."""

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from kombu import Queue

from mlpipeline import tasks
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
    monkeypatch.setattr(recovery, "EVENT_CANDIDATES_KEY", f"{name}:event-candidates")
    # Pending keys of this test's own: other tests' leftovers are not this test's runs.
    monkeypatch.setattr(tasks, "PENDING_PREFIX", f"{name}:pending:")
    monkeypatch.setattr(tasks, "PENDING_KEY", f"{name}:pending:" + "{name}:{args}")
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
        return look_for_work().photos

    def look_for_work():
        get_redis().delete(recovery.LOCK_KEY)
        return recovery.requeue_lost_work()

    def send(task, *args, held_too=False):
        app.send_task(task, args=args, queue=name)
        if held_too:
            held.append(Queue(name)(channel).get(no_ack=False))

    yield SimpleNamespace(name=name, queue=queue, hold=hold, look=look,
                          look_for_work=look_for_work, send=send)
    forget(held, name)
    client = get_redis()
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    connection.release()


def untouched(*photos, seconds=GRACE + 1):
    Photo.objects.filter(pk__in=[photo.pk for photo in photos]).update(
        updated_at=timezone.now() - timedelta(seconds=seconds))


def queued_photos(name) -> list[int]:
    return sorted(recovery._photo_ids(recovery._messages(get_redis().lrange(name, 0, -1))))


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
    assert recovery.requeue_lost_work().photos == []  # another worker just looked
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


def pending(task, *args, age):
    """A pending key of ``task(*args)`` set ``age`` seconds ago, as tasks.schedule sets it."""
    key = tasks._pending_key(task, args)
    get_redis().set(key, 1, ex=tasks.PENDING_TTL_SECONDS - age)
    return key


@pytest.fixture
def runs_queued(monkeypatch):
    queued = []
    for task in tasks.EVENT_TASKS.values():
        monkeypatch.setattr(task, "apply_async", lambda args, countdown, task=task:
                            queued.append((task.name, tuple(args))))
    return queued


@pytest.mark.django_db
def test_event_work_whose_message_was_lost_is_scheduled_again_once(broker, runs_queued):
    lost = pending(tasks.sync_index, 901, "faces", age=GRACE + 5)
    pending(tasks.link_event, 902, age=GRACE + 5)
    broker.send("mlpipeline.link_event", 902)  # waiting on its queue
    pending(tasks.suggest_event, 903, age=GRACE + 5)
    broker.send("mlpipeline.suggest_event", 903, held_too=True)  # a worker holds it
    pending(tasks.sync_index, 904, "clip", age=GRACE - 5)  # its message may be on its way

    assert broker.look_for_work().event_work == []
    assert broker.look_for_work().event_work == [lost]
    assert runs_queued == [("mlpipeline.sync_index", (901, "faces"))]
    assert tasks.PENDING_TTL_SECONDS - get_redis().ttl(lost) <= 2  # set again, just now
    assert broker.look_for_work().event_work == []  # its new run has a message
    assert runs_queued == [("mlpipeline.sync_index", (901, "faces"))]


@pytest.mark.django_db
def test_event_work_that_started_or_was_queued_again_between_looks_is_left_alone(
        broker, runs_queued):
    started = pending(tasks.link_event, 911, age=GRACE + 5)
    queued_again = pending(tasks.sync_index, 912, "faces", age=GRACE + 5)

    assert broker.look_for_work().event_work == []
    get_redis().delete(started)  # the run began: its key is let go first
    get_redis().delete(queued_again)
    pending(tasks.sync_index, 912, "faces", age=1)  # a new change scheduled a new run
    assert broker.look_for_work().event_work == []
    assert runs_queued == []
    assert get_redis().exists(queued_again)


def test_a_run_scheduled_again_is_not_queued_twice_if_its_key_was_set_again_meanwhile(
        broker, runs_queued):
    key = pending(tasks.link_event, 921, age=GRACE + 5)
    run, = tasks.pending_runs()
    pending(tasks.link_event, 921, age=0)  # a new change: its own message is on its way

    assert not tasks.schedule_again(run)
    assert runs_queued == [] and get_redis().exists(key)
