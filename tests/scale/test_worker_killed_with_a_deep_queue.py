"""A worker killed while 500 photos are queued: every photo is processed, none is lost,
none is processed twice.

500 small photos are queued, then one worker as deployed (two processes, the broker's
visibility timeout of an hour) takes them; once it is under way its machine is lost
(SIGKILL to its whole process group) with the queue still deep and photos in its hands,
and it is started again under the same name. The photos it held come back at once,
because the restarted worker puts back what its dead run held (racephoto.redelivery);
the broker by itself would hold them for the visibility timeout. The product's own
records then say each photo ran once: one step record each, done, one attempt (two for
a photo whose first attempt was killed before it committed), its four files in the
bucket and no more, one task result.

Derivatives only (ML_PIPELINE=0): what is under test is the queue, not the models, and
it keeps the test to about a minute."""

import io
import os
import re
import time
import uuid
from collections import Counter

import pytest
from django_celery_results.models import TaskResult

from events.tests.factories import EventFactory
from photos import services
from photos.models import Photo, PhotoStep
from photos.tasks import process_photo
from photos.tests.images import encoded, picture
from tests.scale.stack import Worker, held_tasks, queued

PHOTOS = 500
DONE_BEFORE_THE_KILL = 40
# Without a new photo ready for this long once the queue is empty, the rest are lost.
STALLED_SECONDS = 30


def ready(ids) -> int:
    return Photo.objects.filter(pk__in=ids, state=Photo.State.READY).count()


def bucket_keys(s3_client, bucket) -> list[str]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_with_500_photos_queued_loses_none_and_runs_none_twice(
        settings, tmp_path, monkeypatch, s3_endpoint, bucket, s3_storage, s3_client, capsys):
    queue = f"scale-{uuid.uuid4().hex[:8]}"  # this test's messages only
    monkeypatch.setattr(services, "enqueue_processing",
                        lambda photo_id: process_photo.apply_async((photo_id,), queue=queue))
    event = EventFactory()
    ids = []
    for number in range(PHOTOS):
        # A comment of its own: a distinct file (there are only 256 seeds' pixels).
        data = encoded(picture((160, 120), seed=number), comment=f"frame {number}".encode())
        result = services.ingest_file(event, io.BytesIO(data), name=f"IMG_{number:04d}.JPG")
        assert result.status == services.IngestStatus.ACCEPTED, result.reason
        ids.append(result.photo.pk)
    assert queued(queue) == PHOTOS

    # As deployed: WORKER_CONCURRENCY's two processes, the hour-long visibility timeout,
    # a heartbeat every 10 s (so its key outlives the restart: the restart is what counts).
    worker = Worker("gamma", queue, tmp_path, s3_endpoint, bucket, settings, concurrency=2,
                    environment={"CELERY_WORKER_HEARTBEAT_SECONDS": "10"})
    assert "BROKER_VISIBILITY_TIMEOUT" not in worker.env
    try:
        deadline = time.monotonic() + 300
        worker.wait_until_up(deadline)
        started = time.monotonic()
        while worker.finished() < DONE_BEFORE_THE_KILL:
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.05)
        worker.kill()
        depth_at_kill = queued(queue)
        orphans = held_tasks(queue)  # what the dead worker had taken: nobody will ack them
        orphan_ids = sorted(args[0] for args in orphans.values())
        begun = set(PhotoStep.objects.filter(photo_id__in=ids, status=PhotoStep.Status.RUNNING)
                    .values_list("photo_id", flat=True))
        in_hands = sorted(begun | set(orphan_ids))
        ready_at_kill = ready(ids)
        assert depth_at_kill >= PHOTOS // 2, "the queue was not deep at the kill"
        assert in_hands, "the worker held no photo when it was killed: nothing was at risk"

        # The broker alone gives nothing back: the photos stay taken, not queued.
        time.sleep(2)
        assert held_tasks(queue) == orphans and queued(queue) == depth_at_kill

        worker.start()
        restarted = time.monotonic()
        worker.wait_until_up(deadline)
        last_progress, done, orphans_back = time.monotonic(), ready(ids), None
        while done < PHOTOS:
            now = time.monotonic()
            if orphans_back is None and ready(orphan_ids) == len(orphan_ids):
                orphans_back = now - restarted
            assert now < deadline, f"only {done} of {PHOTOS} ready in time"
            if queued(queue) == 0 and now - last_progress > STALLED_SECONDS:
                lost = sorted(set(ids) - set(Photo.objects.filter(
                    pk__in=ids, state=Photo.State.READY).values_list("pk", flat=True)))
                pytest.fail(f"{len(lost)} photo(s) never came back after the restart: "
                            f"{lost[:20]}; the killed worker had begun {sorted(begun)} and "
                            f"held the messages of {orphan_ids}; "
                            f"unacknowledged now: {held_tasks(queue)}\n"
                            + worker.log.read_text()[-3000:])
            time.sleep(0.2)
            if (now_done := ready(ids)) != done:
                last_progress, done = time.monotonic(), now_done
        elapsed = time.monotonic() - started
        if orphans_back is None:
            orphans_back = time.monotonic() - restarted
        while held_tasks(queue):  # the last photos' messages get acknowledged
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        worker.stop()

    # What was begun was still the broker's to give back (acknowledged only once done).
    assert orphans and begun <= set(orphan_ids), (begun, orphan_ids)
    log = worker.log.read_text()
    # Each held message put back at the restart, or, one taken and killed before it was
    # noted as held, once LOST_PHOTO_GRACE_SECONDS went by.
    put_back = [int(count) for count in re.findall(
        rf"put back (\d+) task\(s\) that (?:worker {re.escape(worker.hostname)} held|"
        r"a worker took and died before noting)", log)]
    assert sum(put_back) == len(orphans), log[-3000:]
    steps = PhotoStep.objects.filter(photo_id__in=ids)
    assert sorted(steps.values_list("photo_id", flat=True)) == sorted(ids)  # one step each
    assert set(steps.values_list("status", flat=True)) == {PhotoStep.Status.DONE}
    attempts = dict(steps.values_list("photo_id", "attempts"))
    # One attempt each; two at most for a photo the killed worker had begun (that first
    # attempt committed its start, never its work).
    assert {pk for pk, count in attempts.items() if count != 1} <= set(orphan_ids), attempts
    assert {attempts[pk] for pk in orphan_ids} <= {1, 2}
    keys = bucket_keys(s3_client, bucket)
    assert len(keys) == len(set(keys)) == 4 * PHOTOS  # original, web, preview, thumbnail
    results = TaskResult.objects.filter(task_name="photos.process_photo", status="SUCCESS")
    assert results.count() == PHOTOS
    assert Counter(results.values_list("task_args", flat=True)).most_common(1)[0][1] == 1
    with capsys.disabled():
        print(f"\n{PHOTOS} photos, worker killed after {ready_at_kill} were ready with "
              f"{depth_at_kill} still queued and {len(orphan_ids)} in its hands {orphan_ids} "
              f"(their attempts {[attempts[pk] for pk in orphan_ids]}); restarted, those were "
              f"ready {orphans_back:.1f} s later; all {PHOTOS} ready in {elapsed:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})")


@pytest.mark.django_db(transaction=True)
def test_a_message_taken_off_the_queue_as_the_worker_dies_is_not_lost(
        settings, tmp_path, monkeypatch, s3_endpoint, bucket, s3_storage):
    """kombu takes a message off the queue (BRPOP) before it notes it as held: a worker
    killed in between leaves it nowhere, neither queued nor held (the one loss that
    racephoto.redelivery and the visibility timeout cannot see). Here the worker's main
    process is stopped while it waits for a message, so the broker hands the photo's
    message to it and it never reads it; then it is killed. Restarted, it finds the photo
    without a message anywhere (photos.recovery) and processes it, once."""
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(services, "enqueue_processing", lambda photo_id: None)
    event = EventFactory()
    worker = Worker("delta", queue, tmp_path, s3_endpoint, bucket, settings)
    deadline = time.monotonic() + 240
    try:
        worker.wait_until_up(deadline)
        for attempt in range(5):
            data = encoded(picture((160, 120), seed=attempt), comment=f"lost {attempt}".encode())
            photo = services.ingest_file(event, io.BytesIO(data), name=f"IMG_{attempt}.JPG").photo
            time.sleep(1.5)  # its main process waiting on BRPOP (re-sent every second)
            worker.pause()
            process_photo.apply_async((photo.pk,), queue=queue)
            time.sleep(0.5)
            if queued(queue) == 0:
                break
            # The wait had timed out just then, and the message stayed queued: again.
            worker.resume()
            while ready([photo.pk]) == 0:
                assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
                time.sleep(0.1)
        else:
            pytest.fail("the worker never took a message while stopped")
        assert photo.pk not in [args[0] for args in held_tasks(queue).values()]
        worker.kill()
        assert (queued(queue), held_tasks(queue)) == (0, {})  # the message is gone

        worker.start()
        worker.wait_until_up(deadline)
        while ready([photo.pk]) == 0:
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.2)
        # READY is committed before the task's result is stored and its message
        # acknowledged (late acks); the SIGTERM of stop() reaches the pool's children too
        # and would kill one in between, losing the result row asserted on below.
        while held_tasks(queue):
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert f"queued 1 photo(s) again whose processing message was lost: [{photo.pk}]" in log
    step = PhotoStep.objects.get(photo=photo)
    assert (step.status, step.attempts) == (PhotoStep.Status.DONE, 1)
    results = TaskResult.objects.filter(task_name="photos.process_photo", status="SUCCESS")
    assert results.count() == attempt + 1  # one per photo: the lost one's and any before it
    assert Counter(results.values_list("task_args", flat=True)).most_common(1)[0][1] == 1
