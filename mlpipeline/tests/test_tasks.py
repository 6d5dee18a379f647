"""Scheduling of the event-wide tasks: once per transaction, and never lost to a rollback."""

import time

import pytest
from django.db import transaction

from mlpipeline import indexes, tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scheduled(monkeypatch, settings):
    settings.SEARCH_BACKEND = "hnswlib"
    calls = []
    monkeypatch.setattr(tasks, "schedule", lambda task, *args: calls.append((task.name, args)))
    return calls


def test_a_burst_of_changes_in_one_transaction_schedules_one_sync(scheduled):
    with transaction.atomic():
        for _ in range(50):
            tasks.indexes_changed(7, indexes.FACES)
        tasks.links_changed(7)

    assert scheduled == [("mlpipeline.sync_index", (7, indexes.FACES)),
                         ("mlpipeline.link_event", (7,))]


def test_a_change_after_a_rolled_back_transaction_is_still_scheduled(scheduled):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.indexes_changed(8, indexes.FACES)
        raise RuntimeError("the step failed: nothing it wrote is kept")
    assert scheduled == []

    with transaction.atomic():
        tasks.indexes_changed(8, indexes.FACES)

    assert scheduled == [("mlpipeline.sync_index", (8, indexes.FACES))]


def test_a_change_after_a_rolled_back_savepoint_is_still_scheduled(scheduled):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            tasks.links_changed(9)
            raise RuntimeError
        tasks.links_changed(9)

    assert scheduled == [("mlpipeline.link_event", (9,))]


def test_event_wide_tasks_have_a_queue_of_their_own_that_every_worker_takes_from(settings):
    from racephoto.celery import app

    for task in (tasks.sync_index, tasks.link_event, tasks.suggest_event):
        assert app.amqp.router.route({}, task.name)["queue"].name == settings.EVENTS_QUEUE
    assert (app.amqp.router.route({}, "photos.process_photo")["queue"].name
            == settings.CELERY_TASK_DEFAULT_QUEUE)
    # A worker started without -Q consumes every declared queue.
    assert set(app.amqp.queues.consume_from) == {settings.CELERY_TASK_DEFAULT_QUEUE,
                                                 settings.EVENTS_QUEUE}


def test_a_run_is_spaced_after_the_last_by_a_multiple_of_its_duration(monkeypatch, settings):
    from racephoto.redis import get_redis

    settings.INDEX_UPDATE_DELAY, settings.EVENT_WORK_SPACING = 2, 9
    queued = []
    monkeypatch.setattr(tasks.link_event, "apply_async",
                        lambda args, countdown: queued.append((args, countdown)))
    event_id = 987_654
    client = get_redis()
    keys = (tasks._pending_key(tasks.link_event, (event_id,)),
            tasks._last_run_key(tasks.link_event, (event_id,)))
    client.delete(*keys)
    try:
        assert tasks.schedule(tasks.link_event, event_id)  # never run: the short delay
        assert not tasks.schedule(tasks.link_event, event_id)  # one run pending at a time
        client.delete(keys[0])
        # It ran for 10 s and ended 30 s ago: the next one 9 x 10 - 30 = 60 s from now.
        monkeypatch.setattr(tasks.time, "time", lambda: 1_000_000.0)
        client.set(keys[1], f"{1_000_000.0 - 30}:10.0")
        assert tasks.schedule(tasks.link_event, event_id)
        client.delete(keys[0])
        # A quick run long ago: the short delay again.
        client.set(keys[1], f"{1_000_000.0 - 3600}:0.5")
        assert tasks.schedule(tasks.link_event, event_id)
    finally:
        client.delete(*keys)
    assert [args for args, _countdown in queued] == [(event_id,)] * 3
    assert [round(countdown, 3) for _args, countdown in queued] == [2.0, 60.0, 2.0]


def test_a_run_records_when_it_ended_and_how_long_it_took(monkeypatch):
    from racephoto.redis import get_redis

    monkeypatch.setattr(tasks.indexes, "sync", lambda event_id, kind: type(
        "Result", (), {"added": 1, "removed": 0, "rebuilt": False})())
    key = tasks._last_run_key(tasks.sync_index, (424_242, indexes.FACES))
    get_redis().delete(key)
    try:
        before = time.time()
        assert tasks.sync_index.run(424_242, indexes.FACES) == {"added": 1, "removed": 0,
                                                                 "rebuilt": False}
        ended, took = map(float, get_redis().get(key).split(":"))
    finally:
        get_redis().delete(key)
    # Kept to the millisecond: the end may read up to 0.5 ms before ``before``.
    assert before - 0.001 <= ended <= before + 5 and 0 <= took < 5
