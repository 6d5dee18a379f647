"""The photo page's previous/next follow the search the runner came from: a bib, an outfit,
an outfit with a bib, or the whole event by time (oldest first); else the gallery."""

import datetime
import html as html_module
import re

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from events.tests.factories import EventFactory
from mlpipeline.inference.outfit import OutfitReader
from photos.models import BibTag, Face, Outfit, Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 50))


@pytest.fixture(autouse=True)
def no_clip(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights: outfit search reads the stored colours


def ready_photo(event, minute):
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=6000, height=4000,
                         captured_at=START + datetime.timedelta(minutes=minute))
    photo.preview = f"previews/{photo.pk}.jpg"
    photo.thumbnail = f"thumbnails/{photo.pk}.jpg"
    photo.save()
    return photo


def dressed(photo, shirt, confidence=0.8):
    face = Face.objects.create(photo=photo, event=photo.event, box=[10, 10, 50, 60], score=0.99)
    Outfit.objects.create(photo=photo, event=photo.event, face=face, model=OutfitReader.signature,
                          shirt=shirt, shirt_confidence=confidence)


def photo_page(client, event, photo, query="", language="en"):
    with translation.override(language):
        path = reverse("search:photo", kwargs={"slug": event.slug, "photo_id": photo.pk})
    response = client.get(f"{path}?{query}" if query else path)
    assert response.status_code == 200
    return html_module.unescape(response.content.decode())


def links(html) -> dict:
    return {rel: href for rel, href in re.findall(r'rel="(prev|next)" href="([^"]+)"', html)}


def test_after_an_outfit_search_it_walks_the_outfit_results_in_their_order(client):
    event = EventFactory(slug="semi")
    surest, other, middle, least = (ready_photo(event, minute) for minute in range(4))
    dressed(surest, "red", 0.9)
    dressed(other, "blue")
    dressed(middle, "red", 0.7)
    dressed(least, "red", 0.4)

    html = photo_page(client, event, middle, "outfit=maillot+rouge", "fr")

    assert links(html) == {
        "prev": f"/fr/events/semi/photos/{surest.pk}/?outfit=maillot+rouge",
        "next": f"/fr/events/semi/photos/{least.pk}/?outfit=maillot+rouge"}
    assert "2 sur 3" in html
    assert 'href="/fr/events/semi/?outfit=maillot+rouge#results">← Photos correspondant à « maillot rouge »' \
        in html.replace("\u00a0", " ")


def test_after_an_outfit_and_bib_search_it_walks_the_combined_results(client):
    event = EventFactory(slug="semi")
    tagged_red, tagged_blue, red = (ready_photo(event, minute) for minute in range(3))
    for photo in (tagged_red, tagged_blue):
        BibTag.objects.create(photo=photo, bib="1234", source=BibTag.Source.OCR, confidence=0.9,
                              confirmed=True)
    dressed(tagged_red, "red")
    dressed(tagged_blue, "blue")
    dressed(red, "red")

    # Both first, then the bib's, then the outfit's (search/outfit.py combine).
    html = photo_page(client, event, tagged_blue, "bib=01234&outfit=red+shirt")

    query = "bib=1234&outfit=red+shirt"
    assert links(html) == {"prev": f"/en/events/semi/photos/{tagged_red.pk}/?{query}",
                           "next": f"/en/events/semi/photos/{red.pk}/?{query}"}
    assert "2 of 3" in html
    assert "← Photos of bib 1234 and “red shirt”" in html


def test_after_the_event_by_time_previous_is_the_earlier_photo(client):
    event = EventFactory(slug="semi", date=START.date())
    earlier, photo, later = ready_photo(event, 1), ready_photo(event, 2), ready_photo(event, 3)

    html = photo_page(client, event, photo, "from=by-time")

    assert links(html) == {"prev": f"/en/events/semi/photos/{earlier.pk}/?from=by-time",
                           "next": f"/en/events/semi/photos/{later.pk}/?from=by-time"}
    # Back to the event by time, where this photo was (09:52 in the site's time zone).
    assert 'href="/en/events/semi/by-time/?at=09%3A52">← The event by time' in html


def test_the_event_by_time_sends_its_photos_pages_with_the_order_to_follow(client):
    event = EventFactory(slug="semi", date=START.date())
    photo = ready_photo(event, 1)

    with translation.override("en"):
        path = reverse("search:timeline", kwargs={"slug": "semi"})
    html = client.get(path).content.decode()

    assert f'href="/en/events/semi/photos/{photo.pk}/?from=by-time"' in html


def test_a_photo_outside_the_search_walks_the_gallery(client):
    event = EventFactory(slug="semi")
    older, photo, newer = ready_photo(event, 1), ready_photo(event, 2), ready_photo(event, 3)
    dressed(older, "red")
    dressed(photo, "blue")

    html = photo_page(client, event, photo, "outfit=red+shirt")

    # Not a result of that search: the gallery's order (newest first), no search kept.
    assert links(html) == {"prev": f"/en/events/semi/photos/{newer.pk}/",
                           "next": f"/en/events/semi/photos/{older.pk}/"}
    assert "← All photos" in html


def test_an_outfit_the_parser_refuses_falls_back_to_the_gallery(client):
    event = EventFactory(slug="semi")
    older, photo = ready_photo(event, 1), ready_photo(event, 2)

    html = photo_page(client, event, photo, "outfit=licorne")

    assert links(html) == {"next": f"/en/events/semi/photos/{older.pk}/"}
