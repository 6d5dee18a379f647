"""Two Celery workers as two machines would run them: each its own process group and var
dir, sharing one PostgreSQL, one broker and one S3 bucket. Photos queued to both are
each processed exactly once; one worker killed outright (SIGKILL to its whole process
group, as when its machine is lost) while photos are queued loses nothing: the other
worker finishes the queue and puts the dead worker's unacknowledged photo back once the
dead one's heartbeat has expired (racephoto.redelivery), not an hour later when the
broker's visibility timeout would."""

import io
import time
import uuid
from collections import Counter

import pytest

from events.tests.factories import EventFactory
from photos import services
from photos.models import Photo, PhotoStep
from photos.tasks import process_photo
from photos.tests.images import encoded, picture
from tests.scale.stack import Worker, held_by_workers

PHOTOS = 16


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_queue_and_a_killed_one_loses_nothing(
        settings, tmp_path, monkeypatch, s3_endpoint, bucket, s3_storage, s3_client):
    queue = f"scale-{uuid.uuid4().hex[:8]}"  # this test's messages only
    monkeypatch.setattr(services, "enqueue_processing",
                        lambda photo_id: process_photo.apply_async((photo_id,), queue=queue))
    # BROKER_VISIBILITY_TIMEOUT as deployed (an hour): what comes back, comes back early.
    workers = [Worker(name, queue, tmp_path, s3_endpoint, bucket, settings)
               for name in ("alpha", "beta")]
    try:
        deadline = time.monotonic() + 180
        for worker in workers:
            worker.wait_until_up(deadline)
        event = EventFactory()
        started = time.monotonic()
        ids = []
        for number in range(PHOTOS):
            data = encoded(picture((320, 240), seed=number))
            result = services.ingest_file(event, io.BytesIO(data), name=f"IMG_{number:04d}.JPG")
            assert result.status == services.IngestStatus.ACCEPTED
            ids.append(result.photo.pk)
        alpha, beta = workers

        # Both take photos; then alpha's machine is lost with photos still queued.
        while not (alpha.finished() >= 2 and beta.finished() >= 1):
            assert time.monotonic() < deadline, alpha.log.read_text()[-3000:]
            time.sleep(0.05)
        alpha.kill()
        held_at_kill = held_by_workers(queue)  # alpha's photo in flight, and beta's
        ready_at_kill = Photo.objects.filter(pk__in=ids, state=Photo.State.READY).count()
        assert ready_at_kill < PHOTOS, "the queue was empty before the kill: raise PHOTOS"

        while Photo.objects.filter(pk__in=ids, state=Photo.State.READY).count() < PHOTOS:
            assert time.monotonic() < deadline, beta.log.read_text()[-3000:]
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        while held_by_workers(queue):  # the last photo's message gets acknowledged
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert beta.process.poll() is None
    finally:
        for worker in workers:
            worker.stop()

    steps = PhotoStep.objects.filter(photo_id__in=ids)
    assert sorted(steps.values_list("photo_id", flat=True)) == sorted(ids)  # one step each
    assert set(steps.values_list("status", flat=True)) == {PhotoStep.Status.DONE}
    # Each photo's step ran once; at most the one photo alpha was in the middle of when it
    # died ran twice (its first attempt never committed anything).
    attempts = Counter(steps.values_list("attempts", flat=True))
    assert attempts[1] >= PHOTOS - 1 and set(attempts) <= {1, 2}, attempts
    # Each photo's files exist once: no copy left by the killed attempt.
    listing = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listing) == 4 * PHOTOS
    print(f"\n{PHOTOS} photos by two workers, one killed after {ready_at_kill} were ready: "
          f"{held_at_kill} message(s) held by the workers then; all ready in {elapsed:.1f} s; "
          f"attempts {dict(attempts)}; "
          f"alpha finished {alpha.finished()}, beta {beta.finished()}")
