"""The event page's bib + selfie search, and probable results without a start list."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from events.models import Event
from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import indexes
from photos.models import BibTag
from search.tests.test_pages import (
    photo_with_faces,
    ready_photo,
    selfie_of_astronaut,
    tile_ids,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "search-combined"}}
    cache.clear()


@pytest.fixture
def event(django_capture_on_commit_callbacks):
    """Marie (bib 42) read on one photo; the astronaut's face on another, no bib read."""
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.ON)
    StartListEntryFactory(event=event, bib="42", first_name="Marie", last_name="Dupont")
    with django_capture_on_commit_callbacks(execute=True):
        face_photo = photo_with_faces(event, ("astronaut", (120, 0, 330, 260), (400, 150), 1.3, 1), 1)
    read = ready_photo(event, 2)
    BibTag.objects.create(photo=read, bib="42", confidence=0.9, source="ocr", confirmed=True)
    indexes.sync(event.pk, indexes.FACES)
    return event, read, face_photo


def test_the_panel_of_a_bib_search_sends_the_bib_with_the_selfie(client, event):
    event, _read, _face_photo = event
    html = client.get(url("events:detail", slug="semi", query="bib=42")).content.decode()
    assert '<input type="hidden" name="bib" value="42">' in html
    assert "Your selfie is searched together with bib 42." in html
    assert 'name="bib" value="42">' not in client.get(url("events:detail", slug="semi")).content.decode()


def test_a_selfie_with_the_bib_shows_both_photos_with_why_each_matched(client, event):
    event, read, face_photo = event
    response = client.post(url("search:selfie", "fr", slug="semi"), {
        "bib": "42", "selfie": SimpleUploadedFile("me.jpg", selfie_of_astronaut(), "image/jpeg")})

    html = response.content.decode()
    assert response.status_code == 200
    assert tile_ids(html) == [read.pk, face_photo.pk]  # the bib read first, then the face
    assert "Dossard 42 — Marie D., et votre selfie" in html
    assert 'data-reason="ocr"' in html and 'data-reason="face"' in html
    # The bib stays with the next selfie the runner sends from this page.
    assert '<input type="hidden" name="bib" value="42">' in html


def test_a_malformed_bib_with_the_selfie_is_refused_clearly(client, event):
    response = client.post(url("search:selfie", slug="semi"), {
        "bib": "4x2", "selfie": SimpleUploadedFile("me.jpg", selfie_of_astronaut(), "image/jpeg")})
    assert response.status_code == 400
    assert "A bib number is made of digits only." in response.content.decode()


def test_without_a_start_list_a_confident_reading_is_shown_with_a_probable_badge(client):
    event = EventFactory(slug="trail", face_search=Event.FaceSearch.ON)
    photo = ready_photo(event, 1)
    BibTag.objects.create(photo=photo, bib="7", confidence=0.99, source="ocr", confirmed=False)
    unsure = ready_photo(event, 2)
    BibTag.objects.create(photo=unsure, bib="7", confidence=0.35, source="ocr", confirmed=False)

    html = client.get(url("events:detail", "fr", slug="trail", query="bib=7")).content.decode()

    assert tile_ids(html) == [photo.pk]
    assert 'data-reason="probable"' in html and "Probable (pas de liste de départ)" in html
