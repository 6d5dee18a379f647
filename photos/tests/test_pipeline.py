import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import OperationalError, connection
from django.utils import translation
from PIL import Image

from events.tests.factories import EventFactory
from photos import derivatives, pipeline
from photos.models import Photo, PhotoStep
from photos.pipeline import StepOutcome
from photos.tasks import process_photo as process_photo_task
from photos.tests.factories import derivative_files, make_photo
from racephoto.celery import app as celery_app
from racephoto.observability import worker_key
from racephoto.redis import get_redis

ROOT = Path(__file__).resolve().parents[2]


# --- Helpers -------------------------------------------------------------------------------





def jpeg(seed=0, size=(1024, 768)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()



def step_of(photo, name="derivatives") -> PhotoStep:
    return PhotoStep.objects.get(photo=photo, step=name)


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: like a dead process, no ``except Exception`` sees it."""


# --- The happy path and idempotency -----------------------------------------------------


@pytest.mark.django_db
def test_it_takes_a_photo_from_uploaded_to_ready():
    photo = make_photo(EventFactory())

    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    photo.refresh_from_db()
    assert photo.state == Photo.State.READY
    assert photo.web and photo.preview and photo.thumbnail
    assert photo.sharpness > 0
    step = step_of(photo)
    assert (step.status, step.attempts) == (PhotoStep.Status.DONE, 1)
    assert step.started_at <= step.finished_at


@pytest.mark.django_db
def test_it_does_the_work_once_when_run_twice(settings, monkeypatch):
    photo = make_photo(EventFactory())
    calls = []
    real = derivatives.make_derivatives
    monkeypatch.setattr(derivatives, "make_derivatives",
                        lambda photo: (calls.append(photo.pk), real(photo)))

    pipeline.process_photo(photo.pk)
    files = derivative_files(settings)
    assert pipeline.run_step(photo.pk, "derivatives") == StepOutcome.SKIPPED
    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    assert calls == [photo.pk]
    assert step_of(photo).attempts == 1
    assert derivative_files(settings) == files
    assert len(files) == 3


@pytest.mark.django_db
def test_it_reports_a_deleted_photo_as_missing():
    photo_id = make_photo(EventFactory()).pk + 1000  # deleted, or never there

    assert pipeline.run_step(photo_id, "derivatives") == StepOutcome.MISSING
    assert pipeline.process_photo(photo_id) is None


# --- Failures ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_marks_a_corrupt_photo_failed_and_leaves_the_others_alone():
    event = EventFactory()
    good = [make_photo(event) for _ in range(2)]
    corrupt = make_photo(event, b"\xff\xd8\xff\xe0 definitely not a JPEG", name="broken.jpg")

    for photo in [good[0], corrupt, good[1]]:
        pipeline.process_photo(photo.pk)

    corrupt.refresh_from_db()
    assert corrupt.state == Photo.State.FAILED
    assert corrupt.failure_reason
    step = step_of(corrupt)
    assert step.status == PhotoStep.Status.FAILED
    assert "InvalidImage" in step.error
    assert not corrupt.preview
    for photo in good:
        photo.refresh_from_db()
        assert photo.state == Photo.State.READY


def png(size) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def pillow_limit(settings, monkeypatch):
    """Pillow's bomb threshold at 1 MP (it warns above, refuses above 2 MP) under a higher
    PHOTO_MAX_PIXELS: as a worker whose operator raised PHOTO_MAX_PIXELS past Pillow's."""
    settings.PHOTO_MAX_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)


@pytest.fixture
def unreadable_header(monkeypatch):
    """As for a TIFF or an unusual JPEG, whose size only Pillow reads: its guard goes first."""
    monkeypatch.setattr("photos.imaging.declared_size", lambda stream: None)


def assert_failed_for_good(photo, reason):
    photo.refresh_from_db()
    assert (photo.state, photo.failure_reason) == (Photo.State.FAILED, reason)
    step = step_of(photo)
    assert (step.status, step.attempts) == (PhotoStep.Status.FAILED, 1)
    assert step.error.startswith("InvalidImage: ")  # permanent: marked failed, never retried
    assert not photo.preview
    assert pipeline.process_photo(photo.pk) == Photo.State.FAILED and step_of(photo).attempts == 1


@pytest.mark.django_db
def test_a_photo_over_pillows_limit_fails_with_the_too_large_reason_and_no_warning(pillow_limit,
                                                                                   recwarn):
    photo = make_photo(EventFactory(), png((1300, 1000)), name="big.png")  # Pillow would warn

    with translation.override("en"):
        pipeline.process_photo(photo.pk)

    assert_failed_for_good(photo, "The photo is too large (1.3 megapixels, at most 1.0).")
    assert not [warning for warning in recwarn if warning.category is Image.DecompressionBombWarning]


@pytest.mark.django_db
def test_pillows_own_bomb_error_fails_the_photo_with_the_too_large_reason(pillow_limit,
                                                                           unreadable_header):
    photo = make_photo(EventFactory(), png((2100, 1000)), name="bomb.png")  # Pillow refuses

    with translation.override("en"):
        pipeline.process_photo(photo.pk)

    assert_failed_for_good(photo, "The photo is too large (more than 1.0 megapixels).")


@pytest.mark.django_db
def test_pillows_bomb_warning_raised_as_an_error_fails_the_photo_the_same_way(pillow_limit,
                                                                              unreadable_header):
    photo = make_photo(EventFactory(), png((1300, 1000)), name="big.png")

    with warnings.catch_warnings(), translation.override("en"):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        pipeline.process_photo(photo.pk)

    assert_failed_for_good(photo, "The photo is too large (more than 1.0 megapixels).")


@pytest.mark.django_db
def test_it_leaves_a_failed_photo_alone_until_it_is_reset():
    photo = make_photo(EventFactory(), b"garbage", name="broken.jpg")
    pipeline.process_photo(photo.pk)

    assert pipeline.process_photo(photo.pk) == Photo.State.FAILED
    assert step_of(photo).attempts == 1


@pytest.mark.django_db
def test_it_processes_a_failed_photo_again_after_reset_failed():
    photo = make_photo(EventFactory(), b"garbage", name="broken.jpg")
    pipeline.process_photo(photo.pk)
    # The photographer's file is fixed in storage (re-uploaded by staff, say).
    storage = photo.original.storage
    storage.delete(photo.original.name)
    storage.save(photo.original.name, ContentFile(jpeg()))

    assert pipeline.reset_failed(photo.pk) is True

    photo.refresh_from_db()
    assert (photo.state, photo.failure_reason) == (Photo.State.UPLOADED, "")
    assert not PhotoStep.objects.filter(photo=photo).exists()
    assert pipeline.process_photo(photo.pk) == Photo.State.READY
    assert step_of(photo).attempts == 1


@pytest.mark.django_db
def test_it_only_resets_failed_photos():
    photo = make_photo(EventFactory())
    pipeline.process_photo(photo.pk)

    assert pipeline.reset_failed(photo.pk) is False
    photo.refresh_from_db()
    assert photo.state == Photo.State.READY


@pytest.mark.django_db
def test_it_marks_an_unexpected_error_failed_with_its_traceback(monkeypatch):
    def broken(photo):
        raise RuntimeError("a bug nobody saw coming")

    monkeypatch.setattr(derivatives, "make_derivatives", broken)
    photo = make_photo(EventFactory())

    assert pipeline.process_photo(photo.pk) == Photo.State.FAILED

    photo.refresh_from_db()
    assert "a bug nobody saw coming" in photo.failure_reason
    assert "Traceback" in step_of(photo).error


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OSError("storage unreachable"),
                                   OperationalError("server closed the connection")])
def test_it_reraises_transient_errors_for_the_task_to_retry(monkeypatch, error):
    def flaky(photo):
        raise error

    real = derivatives.make_derivatives
    monkeypatch.setattr(derivatives, "make_derivatives", flaky)
    photo = make_photo(EventFactory())

    with pytest.raises(type(error)):
        pipeline.process_photo(photo.pk)

    photo.refresh_from_db()
    assert photo.state == Photo.State.UPLOADED
    step = step_of(photo)
    assert (step.status, step.attempts) == (PhotoStep.Status.RUNNING, 1)

    monkeypatch.setattr(derivatives, "make_derivatives", real)  # storage is back
    assert pipeline.process_photo(photo.pk) == Photo.State.READY
    assert step_of(photo).attempts == 2


@pytest.mark.django_db
def test_it_fails_a_photo_that_keeps_killing_its_worker():
    photo = make_photo(EventFactory())
    PhotoStep.objects.create(photo=photo, step="derivatives", status=PhotoStep.Status.RUNNING,
                             attempts=pipeline.MAX_ATTEMPTS)

    assert pipeline.process_photo(photo.pk) == Photo.State.FAILED

    photo.refresh_from_db()
    assert str(pipeline.MAX_ATTEMPTS) in photo.failure_reason
    assert step_of(photo).status == PhotoStep.Status.FAILED


# --- Crash and resume --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_resumes_after_a_crash_midway_through_an_event(settings, monkeypatch):
    event = EventFactory()
    photos = [make_photo(event) for _ in range(5)]
    real = derivatives.make_derivatives

    def dies_on_the_third(photo):
        real(photo)  # its files are written...
        if photo.pk == photos[2].pk:
            raise WorkerKilled  # ...and the process dies before the step is recorded

    monkeypatch.setattr(derivatives, "make_derivatives", dies_on_the_third)
    with pytest.raises(WorkerKilled):
        for photo in photos:
            pipeline.process_photo(photo.pk)
    assert [p.state for p in Photo.objects.filter(event=event).order_by("pk")] == [
        Photo.State.READY, Photo.State.READY, Photo.State.UPLOADED,
        Photo.State.UPLOADED, Photo.State.UPLOADED]

    monkeypatch.setattr(derivatives, "make_derivatives", real)
    for photo in photos:  # what a redelivery or `process_event` does
        pipeline.process_photo(photo.pk)

    assert set(Photo.objects.filter(event=event).values_list("state", flat=True)) == {
        Photo.State.READY}
    attempts = {photo.pk: step_of(photo).attempts for photo in photos}
    assert attempts == {photo.pk: 2 if photo == photos[2] else 1 for photo in photos}
    assert len(derivative_files(settings)) == 3 * len(photos)


# --- The step registry ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_runs_registered_steps_in_state_order(steps):
    seen = []

    def recorder(name):
        def run(photo):
            seen.append((name, photo.state))
        return run

    # Registered out of order, as apps may load in any order.
    pipeline.register_step("clip", Photo.State.CLIP, recorder("clip"))
    pipeline.register_step("ocr", Photo.State.OCR, recorder("ocr"))
    pipeline.register_step("faces", Photo.State.FACES, recorder("faces"))
    photo = make_photo(EventFactory())

    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    assert [step.name for step in pipeline.STEPS] == ["derivatives", "faces", "ocr", "clip"]
    assert seen == [("faces", Photo.State.DERIVATIVES), ("ocr", Photo.State.FACES),
                    ("clip", Photo.State.OCR)]
    assert set(PhotoStep.objects.filter(photo=photo).values_list("status", flat=True)) == {
        PhotoStep.Status.DONE}


@pytest.mark.django_db
def test_it_goes_straight_to_ready_when_derivatives_is_the_only_step(steps, monkeypatch):
    states = []
    real = derivatives.make_derivatives
    monkeypatch.setattr(derivatives, "make_derivatives",
                        lambda photo: (states.append(photo.state), real(photo)))
    photo = make_photo(EventFactory())

    pipeline.process_photo(photo.pk)

    photo.refresh_from_db()
    assert states == [Photo.State.UPLOADED]
    assert photo.state == Photo.State.READY


@pytest.mark.django_db
def test_it_resets_a_photo_to_its_last_done_step(steps):
    def unreadable(photo):
        raise pipeline.PermanentStepError("no bib in sight")

    pipeline.register_step("ocr", Photo.State.OCR, unreadable)
    photo = make_photo(EventFactory())
    assert pipeline.process_photo(photo.pk) == Photo.State.FAILED
    photo.refresh_from_db()
    assert photo.failure_reason == "no bib in sight"

    pipeline.reset_failed(photo.pk)

    photo.refresh_from_db()
    assert photo.state == Photo.State.DERIVATIVES
    assert step_of(photo, "derivatives").status == PhotoStep.Status.DONE
    assert not PhotoStep.objects.filter(photo=photo, step="ocr").exists()


def test_it_replaces_a_step_registered_twice(steps):
    pipeline.register_step("ocr", Photo.State.OCR, lambda photo: None)
    pipeline.register_step("ocr", Photo.State.OCR, lambda photo: None)

    assert [step.name for step in pipeline.STEPS] == ["derivatives", "ocr"]


@pytest.mark.parametrize("state", [Photo.State.UPLOADED, Photo.State.READY, Photo.State.FAILED,
                                   "nonsense"])
def test_it_refuses_a_step_that_does_not_lead_to_a_processing_state(steps, state):
    with pytest.raises(ValueError):
        pipeline.register_step("odd", state, lambda photo: None)


# --- Counts for the staff UI ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_counts_an_events_photos_per_state():
    event, other = EventFactory(), EventFactory()
    for state in [Photo.State.READY, Photo.State.READY, Photo.State.FAILED, Photo.State.UPLOADED]:
        Photo.objects.filter(pk=make_photo(event).pk).update(state=state)
    make_photo(other)

    counts = Photo.objects.filter(event=event).state_counts()

    assert counts == {**dict.fromkeys(Photo.State.values, 0), Photo.State.READY: 2,
                      Photo.State.FAILED: 1, Photo.State.UPLOADED: 1}


# --- The Celery task -----------------------------------------------------------------------


def test_it_keeps_the_task_name_stable():
    assert process_photo_task.name == "photos.process_photo"
    assert "photos.process_photo" in celery_app.tasks
    assert process_photo_task.acks_late is True


@pytest.mark.django_db
def test_it_processes_a_photo_through_the_task():
    photo = make_photo(EventFactory())

    result = process_photo_task.apply(args=(photo.pk,))

    assert result.get() == Photo.State.READY


@pytest.mark.django_db
def test_it_retries_transient_errors_then_marks_the_photo_failed(monkeypatch):
    calls = []

    def storage_down(photo):
        calls.append(photo.pk)
        raise OSError("storage unreachable")

    monkeypatch.setattr(derivatives, "make_derivatives", storage_down)
    photo = make_photo(EventFactory())

    # Like a worker: record the failure (and the retries') instead of raising it here.
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    try:
        result = process_photo_task.apply(args=(photo.pk,))
    finally:
        celery_app.conf.task_eager_propagates = propagates

    assert result.failed()
    assert len(calls) == 1 + process_photo_task.max_retries
    photo.refresh_from_db()
    assert photo.state == Photo.State.FAILED
    assert "storage unreachable" in photo.failure_reason
    step = step_of(photo)
    assert (step.status, step.attempts) == (PhotoStep.Status.FAILED, len(calls))


# --- A real worker, killed mid-photo -------------------------------------------------------

# Runs in the worker subprocess: the real worker, with each photo held open for
# a moment after its files are written, so the test can kill it at the worst time.
WORKER = """
import json, os, sys, time
import django
django.setup()
from photos import derivatives
from racephoto.celery import app

make_derivatives = derivatives.make_derivatives

def make_derivatives_then_pause(photo):
    make_derivatives(photo)
    time.sleep(float(os.environ["STEP_PAUSE"]))

derivatives.make_derivatives = make_derivatives_then_pause
app.conf.broker_transport_options = json.loads(os.environ["TRANSPORT_OPTIONS"])
app.worker_main(sys.argv[1:])
"""


def _test_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):  # the embedded server: a Unix socket directory
        return f"postgres://{credentials}@/{db['NAME']}?host={quote(db['HOST'], safe='')}"
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    def __init__(self, settings, tmp_path):
        self.queue = f"test-photos-{uuid.uuid4().hex[:8]}"
        # Own key prefix: this broker's other workers never see these messages, and
        # the short visibility timeout (redelivery of a dead worker's message) stays ours.
        self.transport_options = {
            **celery_app.conf.broker_transport_options,
            "global_keyprefix": f"{self.queue}:",
            "visibility_timeout": 3,
            "unacked_restore_interval": 0.5,
            "unacked_restore_throttle": 1,
        }
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "racephoto.settings",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT),
            "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
            "ML_PIPELINE": "0",  # the crash mechanics, not the models, are under test
            "STEP_PAUSE": "0.6",
            "TRANSPORT_OPTIONS": json.dumps(self.transport_options),
        }
        self.log = tmp_path / "worker.log"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        hostname = f"{self.queue}-{len(self.processes)}@localhost"
        with self.log.open("a") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER, "worker", "--pool=solo", "--without-mingle",
                 "--without-gossip", "--loglevel=warning", "-n", hostname, "-Q", self.queue],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while not get_redis().exists(worker_key(hostname)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        return process

    def send(self, photo_ids):
        with celery_app.connection_for_write(transport_options=self.transport_options) as conn:
            for photo_id in photo_ids:
                process_photo_task.apply_async((photo_id,), queue=self.queue, connection=conn)

    def unacked(self) -> int:
        return get_redis().hlen(f"{self.queue}:unacked")

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis = get_redis()
        for key in redis.scan_iter(match=f"{self.queue}:*"):
            redis.delete(key)


@pytest.mark.django_db(transaction=True)
def test_it_finishes_every_photo_once_when_a_real_worker_is_killed_midway(settings, tmp_path):
    event = EventFactory()
    photos = [make_photo(event) for _ in range(6)]
    ids = [photo.pk for photo in photos]
    workers = Workers(settings, tmp_path)
    try:
        first = workers.start()
        workers.send(ids)

        # Kill it (SIGKILL: no clean-up at all) once two photos are done and a
        # third is between "files written" and "step recorded".
        steps = PhotoStep.objects.filter(photo_id__in=ids)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, workers.log.read_text()[-3000:]
            done = steps.filter(status=PhotoStep.Status.DONE).count()
            if done >= 2 and steps.filter(status=PhotoStep.Status.RUNNING).exists():
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        first.wait(timeout=10)
        interrupted = list(steps.filter(status=PhotoStep.Status.RUNNING)
                           .values_list("photo_id", flat=True))
        assert len(interrupted) == 1
        assert steps.filter(status=PhotoStep.Status.DONE).count() < len(ids)

        # A fresh worker picks up the queue, and the broker hands it the dead
        # worker's unacknowledged message once the visibility timeout passes.
        workers.start()
        deadline = time.monotonic() + 90
        while Photo.objects.filter(pk__in=ids, state=Photo.State.READY).count() < len(ids):
            assert time.monotonic() < deadline, workers.log.read_text()[-3000:]
            time.sleep(0.2)
        while workers.unacked():  # the redelivered message gets acknowledged
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        workers.stop()

    assert steps.count() == len(ids)
    assert set(steps.values_list("status", flat=True)) == {PhotoStep.Status.DONE}
    attempts = dict(steps.values_list("photo_id", "attempts"))
    assert attempts == {pk: 2 if pk in interrupted else 1 for pk in ids}
    # one file per derivative, the one its photo names: no copy left by an interrupted run
    expected = sorted(getattr(photo, kind).name for photo in Photo.objects.filter(pk__in=ids)
                      for kind in derivatives.DERIVATIVE_FIELDS)
    assert derivative_files(settings) == expected
