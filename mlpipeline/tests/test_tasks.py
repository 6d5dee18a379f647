"""Scheduling of the event-wide tasks: once per transaction, and never lost to a rollback."""

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
