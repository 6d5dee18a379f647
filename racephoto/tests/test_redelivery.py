"""A dead worker's messages back in the queue (racephoto.redelivery), on the real broker:
a message taken and not acknowledged, as a worker holds one, noted as its holder's, then
put back or left according to who holds it. tests/scale runs it with real workers."""

import time
import uuid
from types import SimpleNamespace

import pytest
from kombu import Exchange, Queue

from racephoto import redelivery
from racephoto.celery import app
from racephoto.observability import worker_key
from racephoto.redis import get_redis
from racephoto.tests.broker_keys import forget


@pytest.fixture
def broker(monkeypatch):
    """A queue of this test's own on the broker, and a way to take a message from it as
    a worker does (into kombu's unacked hash), noted as held by a given worker run."""
    name = f"test-redelivery-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(redelivery, "HOLDERS_KEY", f"{name}:holders")
    queue = Queue(name, Exchange(name), routing_key=name)
    connection = app.connection_for_write()
    channel = connection.default_channel
    taken = []

    def take(worker, run):
        connection.Producer().publish({"photo": len(taken)}, exchange=queue.exchange,
                                      routing_key=name, declare=[queue])
        message = queue(channel).get(no_ack=False)
        monkeypatch.setitem(redelivery._state, "channel", channel)
        monkeypatch.setitem(redelivery._state, "worker", worker)
        monkeypatch.setitem(redelivery._state, "run", run)
        redelivery.note_holder(request=SimpleNamespace(message=message, id=str(len(taken))))
        taken.append(message)
        return message

    def now_running(worker, run):
        monkeypatch.setitem(redelivery._state, "worker", worker)
        monkeypatch.setitem(redelivery._state, "run", run)

    yield SimpleNamespace(take=take, now_running=now_running, name=name)
    forget(taken, name)
    connection.release()


def queued(name) -> int:
    return get_redis().llen(name)


def unacknowledged(message) -> bool:
    return get_redis().hexists("unacked", message.delivery_tag)


def test_a_restarted_worker_puts_back_what_its_dead_run_held(broker):
    message = broker.take("gamma@host", "first-run")
    get_redis().set(worker_key("gamma@host"), "{}", ex=30)  # its heartbeat has not expired
    assert (queued(broker.name), unacknowledged(message)) == (0, True)

    broker.now_running("gamma@host", "second-run")  # the same name, started again
    assert redelivery.put_back_orphans() == 1
    assert (queued(broker.name), unacknowledged(message)) == (1, False)
    assert get_redis().hlen(redelivery.HOLDERS_KEY) == 0
    get_redis().delete(worker_key("gamma@host"))


def test_a_live_worker_puts_back_what_a_worker_without_heartbeat_held(broker):
    lost = broker.take("lost@host", "its-run")
    busy = broker.take("busy@host", "its-run")
    get_redis().set(worker_key("busy@host"), "{}", ex=30)

    broker.now_running("other@host", "its-run")
    assert redelivery.put_back_orphans() == 1
    assert (unacknowledged(lost), unacknowledged(busy), queued(broker.name)) == (False, True, 1)
    assert redelivery.put_back_orphans() == 0  # the live worker's message stays its own
    get_redis().delete(worker_key("busy@host"))


def test_an_acknowledged_or_redelivered_message_is_left_alone(broker):
    acknowledged = broker.take("lost@host", "its-run")
    acknowledged.ack()
    redelivered = broker.take("lost@host", "its-run")
    # Put back by the broker meanwhile and taken by another worker a moment ago (its note
    # is not written yet): a new delivery time.
    get_redis().zadd("unacked_index", {redelivered.delivery_tag: time.time()})

    broker.now_running("other@host", "its-run")
    assert redelivery.put_back_orphans() == 0
    assert unacknowledged(redelivered) and queued(broker.name) == 0
    assert get_redis().hlen(redelivery.HOLDERS_KEY) == 0  # the stale notes are forgotten


def test_a_message_taken_and_never_noted_is_put_back_after_the_grace(broker, settings):
    """Its worker died between taking it and noting it (task_received never ran)."""
    settings.LOST_PHOTO_GRACE_SECONDS = 30
    message = broker.take("gamma@host", "its-run")
    get_redis().hdel(redelivery.HOLDERS_KEY, message.delivery_tag)  # as if never noted
    broker.now_running("other@host", "its-run")

    assert redelivery.put_back_orphans() == 0  # taken a moment ago: its note may be coming
    assert (queued(broker.name), unacknowledged(message)) == (0, True)

    get_redis().zadd("unacked_index", {message.delivery_tag: time.time() - 31})
    assert redelivery.put_back_orphans() == 1
    assert (queued(broker.name), unacknowledged(message)) == (1, False)
