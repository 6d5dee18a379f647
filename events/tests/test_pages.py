import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from events.tests.factories import EventFactory, RaceFactory, StartListEntryFactory
from photos.models import Photo

pytestmark = pytest.mark.django_db


def _url(name, language="fr", **kwargs):
    with translation.override(language):
        return reverse(name, kwargs=kwargs or None)


def _add_photo(event, state, n):
    return Photo.objects.create(event=event, original=f"originals/{n}.jpg",
                                content_hash=f"{event.pk}-{n}", state=state)


def test_it_lists_only_published_events(client):
    EventFactory(name="Trail des Monts d'Or")
    EventFactory(name="Brouillon secret", is_published=False)

    response = client.get(_url("events:list"))

    assert response.status_code == 200
    assert "Trail des Monts d&#x27;Or" in response.content.decode()
    assert "Brouillon secret" not in response.content.decode()


def test_it_lists_upcoming_events_before_past_ones(client):
    today = timezone.localdate()
    EventFactory(name="Old race", date=today - datetime.timedelta(days=400))
    EventFactory(name="Last week race", date=today - datetime.timedelta(days=7))
    EventFactory(name="Far race", date=today + datetime.timedelta(days=60))
    EventFactory(name="Soon race", date=today + datetime.timedelta(days=3))
    EventFactory(name="Today race", date=today)

    html = client.get(_url("events:list", "en")).content.decode()

    order = ["Today race", "Soon race", "Far race", "Last week race", "Old race"]
    positions = [html.index(name) for name in order]
    assert positions == sorted(positions)
    assert html.index("Upcoming events") < html.index("Today race")
    assert html.index("Far race") < html.index("Past events") < html.index("Last week race")


def test_it_shows_a_localized_date_and_link_on_each_card(client):
    event = EventFactory(name="Course du Rhône", date=datetime.date(2031, 9, 14))

    fr = client.get(_url("events:list", "fr")).content.decode()
    en = client.get(_url("events:list", "en")).content.decode()

    assert "14 septembre 2031" in fr
    assert "Sept. 14, 2031" in en or "Sep. 14, 2031" in en
    assert f'href="/fr/events/{event.slug}/"' in fr
    assert f'href="/en/events/{event.slug}/"' in en


def test_it_says_so_when_no_event_is_published(client):
    response = client.get(_url("events:list", "en"))

    assert "No events have been published yet" in response.content.decode()


def test_it_lists_events_in_one_query(client, django_assert_num_queries):
    for n in range(5):
        event = EventFactory()
        _add_photo(event, Photo.State.READY, n)

    with django_assert_num_queries(1):
        response = client.get(_url("events:list"))

    assert response.status_code == 200


def test_it_shows_the_event_details(client):
    event = EventFactory(name="Semi de Lyon", location="Parc de la Tête d'Or",
                         description="Départ place Bellecour.\n\nArrivée au parc.")
    RaceFactory(event=event, name="Semi-marathon", distance_km=Decimal("21.10"),
                start_time=datetime.time(9, 30))
    RaceFactory(event=event, name="10 km", distance_km=Decimal("10.00"),
                start_time=datetime.time(8, 45))

    html = client.get(_url("events:detail", "en", slug=event.slug)).content.decode()

    assert "<h1>Semi de Lyon</h1>" in html
    assert "Parc de la Tête d&#x27;Or" in html
    assert "<p>Départ place Bellecour.</p>" in html
    assert "21.1 km" in html
    assert html.count("10 km") == 1  # the race's name already says it
    assert "8:45 a.m." in html
    # The earliest start is listed first.
    assert html.index("8:45 a.m.") < html.index("9:30 a.m.")


def test_it_formats_distances_and_times_for_french(client):
    event = EventFactory()
    RaceFactory(event=event, name="Semi", distance_km=Decimal("21.10"),
                start_time=datetime.time(9, 30))

    html = client.get(_url("events:detail", "fr", slug=event.slug)).content.decode()

    assert "21,1 km" in html
    assert "09:30" in html


def test_it_counts_runners_and_ready_photos(client):
    event = EventFactory()
    other = EventFactory()
    StartListEntryFactory.create_batch(3, event=event)
    StartListEntryFactory(event=other)
    _add_photo(event, Photo.State.READY, 1)
    _add_photo(event, Photo.State.READY, 2)
    _add_photo(event, Photo.State.OCR, 3)
    _add_photo(other, Photo.State.READY, 4)

    response = client.get(_url("events:detail", "en", slug=event.slug))

    assert response.context["event"].runner_count == 3
    assert response.context["event"].ready_photo_count == 2
    html = response.content.decode()
    assert re.search(r"<strong>3</strong>\s*runners on the start list", html)
    assert re.search(r"<strong>2</strong>\s*photos ready", html)
    assert "Photos are on their way" not in html


def test_it_says_photos_are_on_their_way_when_none_is_ready(client):
    event = EventFactory()
    _add_photo(event, Photo.State.UPLOADED, 1)

    html = client.get(_url("events:detail", "en", slug=event.slug)).content.decode()

    assert re.search(r"<strong>0</strong>\s*photos ready", html)
    assert "Photos are on their way" in html


def test_it_shows_an_event_in_few_queries(client, django_assert_max_num_queries):
    event = EventFactory()
    RaceFactory.create_batch(3, event=event)
    StartListEntryFactory.create_batch(10, event=event)
    for n in range(5):
        _add_photo(event, Photo.State.READY, n)

    # The event with its counts and organiser, its races, its highlights, the first page of
    # its gallery.
    with django_assert_max_num_queries(4):
        response = client.get(_url("events:detail", slug=event.slug))

    assert response.status_code == 200


def test_it_404s_for_an_unpublished_event(client):
    event = EventFactory(is_published=False)

    assert client.get(_url("events:detail", slug=event.slug)).status_code == 404


def test_it_404s_for_an_unknown_event(client):
    assert client.get(_url("events:detail", slug="nope")).status_code == 404


@pytest.mark.parametrize("language", ["fr", "en"])
def test_it_serves_the_event_under_both_language_prefixes(client, language):
    event = EventFactory()

    response = client.get(f"/{language}/events/{event.slug}/")

    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()


@pytest.mark.parametrize(("language", "other"), [("fr", "en"), ("en", "fr")])
def test_it_points_the_language_switch_at_the_same_event(client, language, other):
    event = EventFactory()

    html = client.get(f"/{language}/events/{event.slug}/").content.decode()

    switch = html[html.index('class="lang-switch"'):html.index("</nav>")]
    assert f'href="/{other}/events/{event.slug}/" hreflang="{other}"' in switch
    assert (f'href="/{language}/events/{event.slug}/" hreflang="{language}" '
            f'lang="{language}" aria-current="true"') in switch
