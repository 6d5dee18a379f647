"""Two Celery workers as two machines would run them: each its own process group and var
dir, sharing one PostgreSQL, one broker and one S3 bucket. Photos queued to both are
each processed exactly once; one worker killed outright (SIGKILL to its whole process
group, as when its machine is lost) while photos are queued loses nothing: the other
worker finishes the queue and gets the dead worker's unacknowledged photo back from the
broker once BROKER_VISIBILITY_TIMEOUT has passed."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django_celery_results.models import TaskResult

from events.tests.factories import EventFactory
from photos import services
from photos.models import Photo, PhotoStep
from photos.tasks import process_photo
from photos.tests.images import encoded, picture
from racephoto.observability import worker_key
from racephoto.redis import get_redis
from tests.scale.stack import ACCESS_KEY, REGION, SECRET_KEY, database_url

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 16
VISIBILITY_TIMEOUT = 4


class Worker:
    """``celery -A racephoto worker`` as `manage.py run` starts it, on a machine of its own."""

    def __init__(self, name, queue, root: Path, s3_endpoint, bucket, settings):
        self.hostname = f"{name}-{queue}@localhost"
        var = root / name / "var"
        var.mkdir(parents=True)
        self.log = root / f"{name}.log"
        env = {key: value for key, value in os.environ.items()
               # its own var dir decides these, as on another machine
               if key not in ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR")}
        env.update({
            "RACEPHOTO_VAR_DIR": str(var), "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL, "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": REGION, "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "ML_PIPELINE": "0",  # derivatives only: sharing the work is under test, not models
            "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
        })
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "celery"), "-A", "racephoto", "worker",
                 "--loglevel=info", "--concurrency=1", "--without-mingle", "--without-gossip",
                 "-n", self.hostname, "-Q", queue],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own process group: the pool dies with it

    def wait_until_up(self, deadline):
        while not get_redis().exists(worker_key(self.hostname)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker {self.hostname} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def held_by_workers(queue) -> int:
    """Messages of ``queue`` a worker has taken and not acknowledged (kombu's "unacked")."""
    return sum(json.loads(value)[2] == queue for value in get_redis().hvals("unacked"))


def finished_by(worker) -> int:
    """Photos this worker finished (the results of this test's own queue only: a
    transactional test starts with no row)."""
    return TaskResult.objects.filter(task_name="photos.process_photo", worker=worker.hostname,
                                     status="SUCCESS").count()


@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_queue_and_a_killed_one_loses_nothing(
        settings, tmp_path, monkeypatch, s3_endpoint, bucket, s3_storage, s3_client):
    queue = f"scale-{uuid.uuid4().hex[:8]}"  # this test's messages only
    monkeypatch.setattr(services, "enqueue_processing",
                        lambda photo_id: process_photo.apply_async((photo_id,), queue=queue))
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
        while not (finished_by(alpha) >= 2 and finished_by(beta) >= 1):
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
          f"alpha finished {finished_by(alpha)}, beta {finished_by(beta)}")
