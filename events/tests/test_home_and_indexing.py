"""The home page's event search, and an event's "no search engines" switch."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

NOINDEX = '<meta name="robots" content="noindex">'


def home(client, query="", language="en"):
    with translation.override(language):
        path = reverse("events:list")
    return client.get(f"{path}?{query}" if query else path)


SHOWN = ["Semi-marathon de Lyon", "Gold Hills Trail", "10 km de Villeurbanne"]  # English names


def names_in(response, _races=None):
    html = response.content.decode()
    return [name for name in SHOWN if name in html]


@pytest.fixture
def races():
    return {
        "Semi-marathon de Lyon": EventFactory(name="Semi-marathon de Lyon", location="Lyon",
                                              date=datetime.date(2026, 9, 14)),
        "Trail des Monts d'Or": EventFactory(name="Trail des Monts d'Or", name_en="Gold Hills Trail",
                                             location="Saint-Didier", date=datetime.date(2026, 9, 19)),
        "10 km de Villeurbanne": EventFactory(name="10 km de Villeurbanne", location="Villeurbanne",
                                              date=datetime.date(2026, 3, 1)),
    }


def test_it_finds_events_by_any_word_of_their_name_in_either_language_or_their_place(client, races):
    assert names_in(home(client, "q=lyon"), races) == ["Semi-marathon de Lyon"]
    assert names_in(home(client, "q=GOLD+trail"), races) == ["Gold Hills Trail"]
    assert names_in(home(client, "q=saint-didier"), races) == ["Gold Hills Trail"]
    assert names_in(home(client, "q=semi+villeurbanne"), races) == []  # every word must match


def test_it_finds_events_around_a_date_closest_first(client, races):
    response = home(client, "date=2026-09-16")

    html = response.content.decode()
    assert names_in(response, races) == ["Semi-marathon de Lyon", "Gold Hills Trail"]
    assert html.index("Semi-marathon de Lyon") < html.index("Gold Hills Trail")  # 2 days off, then 3
    assert names_in(home(client, "date=2026-09-21"), races) == ["Gold Hills Trail"]
    assert "2 events found." in html


def test_it_says_when_nothing_matches_and_what_to_try(client, races):
    response = home(client, "q=marseille", language="fr")

    assert response.status_code == 200
    assert "Aucun événement ne correspond à votre recherche." in response.content.decode()
    assert 'content="noindex, follow"' in response.content.decode()


def test_it_refuses_a_date_that_is_not_one(client, races):
    response = home(client, "date=14/09/2026")

    assert response.status_code == 400
    assert "is not a date" in response.content.decode()
    assert names_in(response, races) == []


def test_the_home_page_shows_upcoming_and_only_the_recent_past(client):
    today = timezone.localdate()
    EventFactory(name="Soon race", date=today + datetime.timedelta(days=5))
    for weeks in range(1, 15):
        EventFactory(name=f"Past race {weeks:02d}", date=today - datetime.timedelta(weeks=weeks))

    html = home(client).content.decode()

    assert "Soon race" in html
    assert "Past race 12" in html and "Past race 13" not in html
    assert "Looking for an older race?" in html
    assert 'name="q"' in html and 'type="date"' in html


def test_an_event_may_ask_search_engines_to_stay_away(client):
    shown = EventFactory(slug="public-race")
    hidden = EventFactory(slug="kids-race", search_engines_may_index=False)
    photo = PhotoFactory(event=hidden, state=Photo.State.READY, width=600, height=400)
    photo.preview, photo.thumbnail = f"previews/{photo.pk}.jpg", f"thumbnails/{photo.pk}.jpg"
    photo.save()

    assert NOINDEX in client.get(f"/en/events/{hidden.slug}/").content.decode()
    assert NOINDEX in client.get(f"/en/events/{hidden.slug}/photos/{photo.pk}/").content.decode()
    assert NOINDEX not in client.get(f"/en/events/{shown.slug}/").content.decode()
    sitemap = client.get("/sitemap.xml").content.decode()
    assert "/events/public-race/" in sitemap
    assert "kids-race" not in sitemap


def test_organisers_switch_it_in_the_admin(admin_client):
    event = EventFactory()

    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]),
                                HTTP_ACCEPT_LANGUAGE="en")

    assert "search_engines_may_index" in response.context["adminform"].form.fields
    assert "are left out of the sitemap" in response.content.decode()
