"""Selfie search and privacy, end to end through the API: the event's setting, erasure
(the runner's face stops matching, index and database agree), and selfies that never
reach the disk or the logs.

Faces are drawn (no real person's face in the tests) and embedded with the real dlib
model; the detector is a stub that reports the drawn face where it is drawn.
"""

import io
import os
import sys

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from accounts import privacy
from accounts.tests.factories import UserFactory
from events.models import Event
from events.tests.factories import EventFactory
from mlpipeline import indexes, loaded
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder
from mlpipeline.inference.faces import DetectedFace
from photos.models import Face, Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

SIZE = 160


def drawn_face(skin, eyes, size=SIZE, noise=0) -> Image.Image:
    """A drawn face in the middle of the picture; ``noise`` pads it with random pixels."""
    image = Image.new("RGB", (size, size), (90, 120, 160))
    if noise:
        pixels = np.random.default_rng(noise).integers(0, 255, (size, size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    o = (size - SIZE) / 2
    draw.ellipse((o + 40, o + 25, o + 120, o + 130), fill=skin)
    for x in (60, 100):
        draw.ellipse((o + x - eyes, o + 62, o + x + eyes, o + 72), fill=(40, 30, 30))
    draw.polygon(((o + 80, o + 70), (o + 73, o + 95), (o + 87, o + 95)), fill=(200, 150, 130))
    draw.arc((o + 62, o + 95, o + 98, o + 115), 20, 160, fill=(150, 60, 60), width=3)
    return image


class CentreDetector:
    """Stands in for MTCNN: the drawn face, centred, scaled with the picture."""

    name, version, signature = "centre-stub", "1", "centre-stub@1"

    def ensure_loaded(self):
        return self

    def __call__(self, image):
        scale = image.width / SIZE if image.width <= SIZE else 1.0
        o = (image.width - SIZE * scale) / 2
        return [DetectedFace(o + 40 * scale, o + 25 * scale, o + 120 * scale, o + 130 * scale,
                             0.99)]

    predict = __call__


@pytest.fixture(scope="module")
def embedder():
    return DlibFaceEmbedder().ensure_loaded()


@pytest.fixture(autouse=True)
def _models(monkeypatch, embedder, settings):
    monkeypatch.setattr(loaded, "face_detector", lambda: CentreDetector())
    monkeypatch.setattr(loaded, "face_embedder", lambda: embedder)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # The selfie throttle counts in the cache: start from zero, apart from other tests.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "selfie-tests"}}


RUNNERS = {"camille": ((225, 185, 160), 7), "dominique": ((140, 95, 70), 4)}


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _no_stale_pending_index_runs():
    # Index runs are debounced with Redis keys named by event id; ids start again in each
    # test database, so a key left by an earlier run would swallow this test's updates.
    from mlpipeline import tasks
    from racephoto.redis import get_redis

    keys = list(get_redis().scan_iter(tasks.PENDING_KEY.format(name="*", args="*")))
    if keys:
        get_redis().delete(*keys)


def photo_of(event, who, embedder, bib=""):
    """A ready photo of ``who`` with their face embedded as the pipeline would."""
    image = drawn_face(*RUNNERS[who])
    photo = PhotoFactory(event=event, state=Photo.State.READY, original_name=f"{who}.jpg")
    (vector,) = embedder(image, CentreDetector()(image))
    Face.objects.create(photo=photo, event=event, box=[40, 25, 120, 130], score=0.99,
                        embedding=vector.tolist(), model=embedder.signature, bib=bib)
    return photo


def search(event, selfie: bytes, name="selfie.png"):
    return APIClient().post(f"/api/v1/events/{event.slug}/selfie-search/",
                            {"selfie": ContentFile(selfie, name=name)}, format="multipart",
                            HTTP_ACCEPT_LANGUAGE="en")


def found(event, who) -> list[int]:
    response = search(event, png(drawn_face(*RUNNERS[who])))
    assert response.status_code == 200, response.content
    return [result["photo"] for result in response.json()["results"]]


def ids_in_index(event, embedder) -> set[int]:
    path = indexes.index_path(event.pk, indexes.FACES, embedder.signature)
    return set(indexes._read(path)["ids"].tolist()) if path.exists() else set()


def test_it_stops_matching_an_erased_runner_and_keeps_index_and_database_in_step(
        embedder, django_capture_on_commit_callbacks):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.ON)
    with django_capture_on_commit_callbacks(execute=True):
        camille = photo_of(event, "camille", embedder, bib="42")
        dominique = photo_of(event, "dominique", embedder, bib="43")
    runner = UserFactory(username="camille")
    privacy.claim_bib(runner, event, "42")
    camille_face = Face.objects.get(photo=camille)
    assert camille.pk in found(event, "camille")
    assert camille_face.pk in ids_in_index(event, embedder)

    with django_capture_on_commit_callbacks(execute=True):
        (request,) = privacy.request_erasure(runner)
    assert camille.pk not in found(event, "camille")  # out of search at once
    assert camille_face.pk not in ids_in_index(event, embedder)
    with django_capture_on_commit_callbacks(execute=True):
        privacy.erase(request)

    assert camille.pk not in found(event, "camille")
    assert dominique.pk in found(event, "dominique")
    assert not Face.objects.filter(pk=camille_face.pk).exists()
    assert ids_in_index(event, embedder) == set(
        Face.objects.filter(event=event, searchable=True).values_list("pk", flat=True))
    assert indexes.check(event.pk) == []


def test_a_big_events_inverted_file_finds_a_runner_and_forgets_them_once_erased(
        embedder, django_capture_on_commit_callbacks, monkeypatch):
    from mlpipeline import ann

    # The inverted file serves events from 100,000 faces; here from 16, with strangers.
    monkeypatch.setattr(ann, "INVERTED_FROM", 16)
    event = EventFactory(slug="marathon", face_search=Event.FaceSearch.ON)
    rng = np.random.default_rng(3)
    with django_capture_on_commit_callbacks(execute=True):
        camille = photo_of(event, "camille", embedder, bib="42")
        for _stranger in range(20):
            vector = rng.normal(size=embedder.dimension)
            Face.objects.create(photo=PhotoFactory(event=event, state=Photo.State.READY),
                                event=event, box=[0, 0, 10, 10], score=0.99,
                                embedding=(vector / np.linalg.norm(vector)).tolist(),
                                model=embedder.signature)
    runner = UserFactory(username="camille")
    privacy.claim_bib(runner, event, "42")
    path = indexes.index_path(event.pk, indexes.FACES, embedder.signature)
    assert isinstance(indexes._read(path)["index"], ann.Inverted)
    assert found(event, "camille") == [camille.pk]

    with django_capture_on_commit_callbacks(execute=True):
        (request,) = privacy.request_erasure(runner)
        privacy.erase(request)

    assert found(event, "camille") == []
    assert len(ids_in_index(event, embedder)) == 20
    assert indexes.check(event.pk) == []


def test_it_finds_an_opted_in_runner_only_after_they_agree(embedder,
                                                           django_capture_on_commit_callbacks):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.OPT_IN)
    with django_capture_on_commit_callbacks(execute=True):
        camille = photo_of(event, "camille", embedder, bib="42")
    assert camille.pk not in found(event, "camille")

    with django_capture_on_commit_callbacks(execute=True):
        privacy.claim_bib(UserFactory(), event, "42", privacy.BibClaim.FaceSearch.CONSENTED)

    assert camille.pk in found(event, "camille")
    assert indexes.check(event.pk) == []


def test_it_refuses_selfie_search_where_the_event_turned_it_off(embedder):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.OFF)
    photo_of(event, "camille", embedder, bib="42")

    response = search(event, png(drawn_face(*RUNNERS["camille"])))

    assert response.status_code == 403
    assert "Face search is off" in response.json()["detail"]


def test_it_hides_unpublished_events_and_says_what_is_wrong_with_a_bad_selfie():
    hidden = EventFactory(slug="secret", is_published=False)
    event = EventFactory(slug="semi")

    assert search(hidden, png(drawn_face(*RUNNERS["camille"]))).status_code == 404
    assert search(event, b"not a picture").status_code == 400
    no_file = APIClient().post(f"/api/v1/events/{event.slug}/selfie-search/", {},
                               format="multipart")
    assert no_file.status_code == 400


# --- Selfies never reach the disk or the logs ----------------------------------------------

_opened_for_writing: list | None = None


def _audit(event, args):
    # Python reports every file opened, temporary files included (os.open goes through here).
    if _opened_for_writing is not None and event == "open":
        path, mode, flags = args
        writing = (mode and any(char in mode for char in "wax+")) or (
            flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing:
            _opened_for_writing.append(str(path))


sys.addaudithook(_audit)


def files_written_during(call):
    global _opened_for_writing
    _opened_for_writing = []
    try:
        result = call()
        return result, list(_opened_for_writing)
    finally:
        _opened_for_writing = None


def test_it_never_writes_a_selfie_to_disk_or_to_a_log(embedder, caplog, settings, tmp_path):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.ON)
    photo_of(event, "camille", embedder, bib="42")
    indexes.sync(event.pk, indexes.FACES)
    # Larger than Django's in-memory upload limit (2.5 MB): a plain view would spool it.
    selfie = png(drawn_face(*RUNNERS["camille"], size=1100, noise=7))
    assert len(selfie) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR)
    caplog.set_level("DEBUG")

    response, written = files_written_during(
        lambda: search(event, selfie, name="camille-martin-selfie.png"))

    assert response.status_code == 200, response.content
    assert written == []
    assert os.listdir(settings.FILE_UPLOAD_TEMP_DIR) == []
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "camille-martin-selfie" not in logged
    for start in range(0, len(selfie) - 32, len(selfie) // 50):
        sample = selfie[start:start + 32]
        assert sample.hex() not in logged and repr(sample)[2:-1] not in logged

    # The same watch does see a file written when one is: an upload to the staff page.
    photographer = UserFactory(username="paula", role="photographer")
    event.photographers.add(photographer)
    client = APIClient()
    client.force_authenticate(photographer)
    _response, written = files_written_during(lambda: client.post(
        f"/api/v1/events/{event.slug}/photos/",
        {"file": ContentFile(selfie, name="IMG_1.png")}, format="multipart"))
    assert written
