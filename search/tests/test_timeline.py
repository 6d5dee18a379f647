"""The whole event by time ("Lost & Found"): every public photo oldest first, a jump to a
time of day, a cursor for the next page; and the tiles' lightbox data."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from events.tests.factories import EventFactory
from photos.models import BibTag, Photo
from photos.tests.factories import PhotoFactory
from search import gallery

pytestmark = pytest.mark.django_db

# 09:50 in the site's time zone (Europe/Paris) on the event's day.
START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 50))


def url(event, query="", language="en"):
    with translation.override(language):
        path = reverse("search:timeline", kwargs={"slug": event.slug})
    return f"{path}?{query}" if query else path


def ready_photo(event, minute, **fields):
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=6000, height=4000,
                         captured_at=START + datetime.timedelta(minutes=minute), **fields)
    photo.preview = f"previews/{photo.pk}.jpg"
    photo.thumbnail = f"thumbnails/{photo.pk}.jpg"
    photo.save()
    return photo


def tile_ids(html) -> list[int]:
    return [int(found) for found in re.findall(r'class="photo-link" href="[^"]*/photos/(\d+)/', html)]


@pytest.fixture
def event():
    return EventFactory(slug="semi", date=START.date())


def test_it_shows_every_public_photo_oldest_first(client, event):
    photos = [ready_photo(event, minute) for minute in (30, 0, 12)]
    PhotoFactory(event=event, state=Photo.State.UPLOADED, captured_at=START)  # not ready

    response = client.get(url(event))

    assert response.status_code == 200
    assert tile_ids(response.content.decode()) == [photos[1].pk, photos[2].pk, photos[0].pk]
    assert '<meta name="robots" content="noindex, follow">' in response.content.decode()


def test_it_jumps_to_a_time_of_day_and_lists_the_quarters_with_their_counts(client, event):
    early = ready_photo(event, 0)                      # 09:50
    ten = [ready_photo(event, minute) for minute in (12, 14, 20)]   # 10:02, 10:04, 10:10
    late = ready_photo(event, 60)                      # 10:50

    html = client.get(url(event, "at=10:05")).content.decode()

    assert tile_ids(html) == [ten[2].pk, late.pk]
    options = re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', html)
    assert options == [("09:45", "9:45 a.m. (1 photo)"), ("10:00", "10 a.m. (3 photos)"),
                       ("10:45", "10:45 a.m. (1 photo)")]
    assert early.pk not in tile_ids(html)
    assert 'value="10:00" selected' not in html  # 10:05 is not a quarter: nothing pre-picked
    assert 'value="10:45" selected' in client.get(url(event, "at=10:45")).content.decode()


def test_it_names_a_photo_taken_on_another_day_with_its_date(event):
    ready_photo(event, 24 * 60)  # a camera whose clock was a day ahead

    slot = gallery.time_slots(event)[0]

    assert gallery.slot_value(event, slot.start) == "2026-09-15T09:45"
    assert gallery.parse_time_of_day(event, "2026-09-15T09:45") == slot.start


def test_it_pages_by_cursor_without_repeating_or_skipping(client, event, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE_SIZE", 3)
    photos = [ready_photo(event, minute) for minute in range(8)]
    same_time = ready_photo(event, 3)  # a burst: same second as another photo

    first = client.get(url(event)).content.decode()
    more = re.search(r'hx-get="([^"]+after=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(more, headers={"HX-Request": "true"})
    third_url = re.search(r'hx-get="([^"]+)"', second.content.decode()).group(1).replace("&amp;", "&")
    third = client.get(third_url, headers={"HX-Request": "true"}).content.decode()

    seen = tile_ids(first) + tile_ids(second.content.decode()) + tile_ids(third)
    ordered = sorted([*photos, same_time], key=lambda photo: (photo.captured_at, photo.pk))
    assert seen == [photo.pk for photo in ordered]
    assert "<html" not in second.content.decode()  # htmx gets the tiles alone
    assert "Later photos" in first


@pytest.mark.parametrize("value", ["25:00", "lunch", "10h45", "2026-13-01T10:00"])
def test_it_refuses_what_is_not_a_time_of_day(client, event, value):
    ready_photo(event, 0)

    response = client.get(url(event, f"at={value}"))

    assert response.status_code == 400
    assert "is not a time of day: give hours and minutes, e.g. 10:45." in response.content.decode()


def test_it_says_it_in_french(client, event):
    ready_photo(event, 0)

    html = client.get(url(event, "at=midi", language="fr")).content.decode()

    assert "n’est pas une heure" in html
    assert "toutes les photos par heure" in html


def test_a_bad_cursor_is_not_found_and_an_unpublished_event_neither(client, event):
    assert client.get(url(event, "after=garbage")).status_code == 404
    hidden = EventFactory(slug="brouillon", is_published=False)
    assert client.get(url(hidden)).status_code == 404


def test_the_gallery_and_an_empty_bib_search_lead_to_it(client, event):
    ready_photo(event, 0)
    timeline = url(event)

    with translation.override("en"):
        page = reverse("events:detail", kwargs={"slug": event.slug})
    assert f'href="{timeline}"' in client.get(page).content.decode()
    assert f'href="{timeline}"' in client.get(f"{page}?bib=999").content.decode()


def test_tiles_carry_the_preview_and_confirmed_bibs_for_the_lightbox(client, event):
    photo = ready_photo(event, 0)
    BibTag.objects.create(photo=photo, bib="1234", source=BibTag.Source.OCR, confirmed=True,
                          confidence=0.9)
    BibTag.objects.create(photo=photo, bib="77", source=BibTag.Source.FACE_LINK, confirmed=True,
                          confidence=0.7)
    BibTag.objects.create(photo=photo, bib="4321", source=BibTag.Source.OCR, confirmed=False,
                          confidence=0.4)  # unconfirmed: could name a stranger

    html = client.get(url(event)).content.decode()

    assert f'data-lightbox-src="/media/previews/{photo.pk}.jpg"' in html
    assert 'data-lightbox-bibs="77,1234"' in html
    assert 'data-lightbox-width="1200" data-lightbox-height="800"' in html
    assert 'id="lightbox"' in html and "/static/js/lightbox.js" in html


def test_the_language_switch_keeps_the_time(client, event):
    ready_photo(event, 0)

    html = client.get(url(event, "at=09:45")).content.decode()

    assert 'href="/fr/events/semi/by-time/?at=09:45" hreflang="fr"' in html
