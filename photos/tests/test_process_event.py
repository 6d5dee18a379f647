import hashlib
import io
import threading
from io import StringIO

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.utils import translation
from PIL import Image

from events.tests.factories import EventFactory
from photos import pipeline
from photos.models import Photo, PhotoStep
from photos.tasks import process_photo as process_photo_task


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((1024, 768)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_photo(event, data: bytes | None = None, name="IMG_0001.JPG") -> Photo:
    data = jpeg(seed=Photo.objects.count()) if data is None else data
    return Photo.objects.create(event=event, content_hash=hashlib.sha256(data).hexdigest(),
                                original=ContentFile(data, name=name), original_name=name)


def run(*args) -> str:
    out = StringIO()
    call_command("process_event", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def states(event) -> dict[int, str]:
    return dict(Photo.objects.filter(event=event).values_list("pk", "state"))


@pytest.mark.django_db
def test_it_processes_an_event_here_with_sync():
    event = EventFactory(slug="semi-de-lyon")
    photos = [make_photo(event) for _ in range(3)]

    output = run("semi-de-lyon", "--sync")

    assert set(states(event).values()) == {Photo.State.READY}
    assert all(PhotoStep.objects.get(photo=photo).attempts == 1 for photo in photos)
    assert "Ready: 3" in output


@pytest.mark.django_db
def test_it_accepts_the_event_id():
    event = EventFactory()
    make_photo(event)

    run(str(event.pk), "--sync")

    assert set(states(event).values()) == {Photo.State.READY}


@pytest.mark.django_db
def test_it_says_clearly_when_the_event_does_not_exist():
    with pytest.raises(CommandError, match="No event with slug or id “no-such-race”"):
        run("no-such-race")


@pytest.mark.django_db
def test_it_lists_failures_with_their_reasons():
    event = EventFactory()
    make_photo(event)
    broken = make_photo(event, b"not a photo", name="DSC_0042.JPG")

    output = run(event.slug, "--sync")

    assert "Ready: 1" in output and "Failed: 1" in output
    broken.refresh_from_db()
    assert f"#{broken.pk} DSC_0042.JPG: {broken.failure_reason}" in output
    assert "--only-failed" in output


@pytest.mark.django_db
def test_it_leaves_ready_and_failed_photos_alone_by_default():
    event = EventFactory()
    ready, waiting = make_photo(event), make_photo(event)
    broken = make_photo(event, b"not a photo", name="broken.jpg")
    pipeline.process_photo(ready.pk)
    pipeline.process_photo(broken.pk)

    run(event.slug, "--sync")

    assert states(event) == {ready.pk: Photo.State.READY, waiting.pk: Photo.State.READY,
                             broken.pk: Photo.State.FAILED}
    assert PhotoStep.objects.get(photo=ready).attempts == 1
    assert PhotoStep.objects.get(photo=broken).attempts == 1


@pytest.mark.django_db
def test_it_retries_only_the_failed_photos():
    event = EventFactory()
    waiting = make_photo(event)
    broken = make_photo(event, b"not a photo", name="broken.jpg")
    pipeline.process_photo(broken.pk)
    # Staff replace the broken file with a good one.
    broken.original.storage.delete(broken.original.name)
    broken.original.storage.save(broken.original.name, ContentFile(jpeg(seed=99)))

    run(event.slug, "--only-failed", "--sync")

    assert states(event) == {waiting.pk: Photo.State.UPLOADED, broken.pk: Photo.State.READY}


@pytest.mark.django_db
def test_it_says_when_there_is_nothing_to_do():
    event = EventFactory()
    pipeline.process_photo(make_photo(event).pk)

    assert "Nothing to process." in run(event.slug, "--only-failed")


@pytest.mark.django_db
def test_it_queues_what_is_left_for_the_workers(monkeypatch, django_capture_on_commit_callbacks):
    event = EventFactory()
    ready, waiting, interrupted = make_photo(event), make_photo(event), make_photo(event)
    pipeline.process_photo(ready.pk)
    PhotoStep.objects.create(photo=interrupted, step="derivatives", attempts=1,
                             status=PhotoStep.Status.RUNNING)
    queued = []
    monkeypatch.setattr(process_photo_task, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        output = run(event.slug)

    assert sorted(queued) == sorted([waiting.pk, interrupted.pk])
    assert "Queued 2 photos." in output


@pytest.mark.django_db(transaction=True)
def test_it_waits_until_the_workers_are_done(monkeypatch):
    event = EventFactory()
    photos = [make_photo(event) for _ in range(3)]

    def worker_later(photo_id):
        # A stand-in worker: another thread, with its own connection, a little later.
        def work():
            try:
                pipeline.process_photo(photo_id)
            finally:
                from django.db import connection

                connection.close()

        threading.Timer(0.3, work).start()

    monkeypatch.setattr(process_photo_task, "delay", worker_later)

    output = run(event.slug, "--wait", "--poll-interval", "0.05")

    assert set(states(event).values()) == {Photo.State.READY}
    assert "Ready: 3" in output
    assert len(photos) == 3


@pytest.mark.django_db
def test_redo_runs_a_step_again_on_ready_photos_only():
    event = EventFactory(slug="redo-race")
    photos = [make_photo(event) for _ in range(2)]
    run("redo-race", "--sync")
    failed = make_photo(event)
    Photo.objects.filter(pk=failed.pk).update(state=Photo.State.FAILED)
    before = set(PhotoStep.objects.values_list("pk", flat=True))

    output = run("redo-race", "--redo", "derivatives", "--sync")

    assert "2 ready photos will go through derivatives again." in output
    assert set(states(event).values()) == {Photo.State.READY, Photo.State.FAILED}
    redone = [PhotoStep.objects.get(photo=photo, step="derivatives") for photo in photos]
    assert all(step.pk not in before and step.status == PhotoStep.Status.DONE for step in redone)
    assert not PhotoStep.objects.filter(photo=failed).exists()


@pytest.mark.django_db
def test_redo_names_the_known_steps_on_a_typo():
    EventFactory(slug="redo-typo")
    with pytest.raises(CommandError, match="No processing step “face”. Steps: derivatives"):
        run("redo-typo", "--redo", "face")
    with pytest.raises(CommandError, match="do not go together"):
        run("redo-typo", "--redo", "derivatives", "--only-failed")
