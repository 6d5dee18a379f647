"""Selfie search through the index and the database. No real face can ship with the
tests, so where a match is needed the selfie's embedding is that of a stored face;
everything after the embedding (index, privacy re-check, ranking) is real."""

import io

import numpy as np
import pytest
from django.utils import translation
from PIL import Image

from events.tests.factories import EventFactory
from mlpipeline import indexes, loaded
from photos.models import Face
from photos.tests.factories import PhotoFactory
from search import services
from search.services import SearchError, photos_by_selfie

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_english():
    with translation.override("en"):
        yield


def selfie_file(size=(640, 480)) -> io.BytesIO:
    data = io.BytesIO()
    Image.new("RGB", size, (200, 180, 160)).save(data, "JPEG")
    data.seek(0)
    return data


def stored_face(event, seed) -> Face:
    vector = np.random.default_rng(seed).normal(size=128)
    return Face.objects.create(photo=PhotoFactory(event=event), event=event, box=[1, 2, 30, 40],
                               score=0.99, embedding=(vector / np.linalg.norm(vector)).tolist(),
                               model=loaded.face_embedder().signature)


def test_it_says_when_the_selfie_shows_no_face():
    with pytest.raises(SearchError, match="No face was found"):
        photos_by_selfie(EventFactory(face_search="on"), selfie_file())


def test_it_refuses_an_unreadable_selfie():
    with pytest.raises(SearchError, match="could not be read"):
        photos_by_selfie(EventFactory(face_search="on"), io.BytesIO(b"%PDF-1.7 not a photo"))


def test_it_refuses_selfie_search_when_the_event_has_it_off():
    with pytest.raises(SearchError, match="turned face search off"):
        photos_by_selfie(EventFactory(face_search="off"), selfie_file())


def test_it_finds_the_runners_photo_and_forgets_it_once_the_face_leaves_search(monkeypatch):
    event = EventFactory(face_search="on")
    mine, stranger = stored_face(event, 1), stored_face(event, 2)
    indexes.sync(event.pk, indexes.FACES)
    monkeypatch.setattr(services, "embed_selfie",
                        lambda image, detector, embedder: np.asarray(mine.embedding))

    [match] = photos_by_selfie(event, selfie_file())
    assert match.photo_id == mine.photo_id and match.score == pytest.approx(1.0, abs=1e-4)

    mine.searchable = False
    mine.save()  # the index is updated on commit; until then the database has the last word
    assert photos_by_selfie(event, selfie_file()) == []
    assert stranger.photo_id not in [m.photo_id for m in photos_by_selfie(event, selfie_file())]
