import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import translation

from events.models import Event, Race, StartListEntry
from events.services import DEMO_EVENT_SLUG, load_demo_event

pytestmark = pytest.mark.django_db


def _load_demo():
    # Commands speak the site's default language (French); the assertions read English.
    out = StringIO()
    with translation.override("en"):
        call_command("load_demo", "--no-photos", stdout=out)
    return out.getvalue()


def test_it_creates_a_published_demo_event_with_races_and_runners():
    result = load_demo_event()

    event = Event.objects.get(slug=DEMO_EVENT_SLUG)
    assert result.event == event
    assert result.event_created
    assert event.name == "10 km de Lyon (démo)"
    assert event.location == "Lyon"
    assert event.is_published
    assert event.description
    races = {race.name: race for race in event.races.all()}
    assert races["5 km"].distance_km == Decimal("5")
    assert races["10 km"].distance_km == Decimal("10")
    assert races["5 km"].start_time == datetime.time(9, 0)
    assert races["10 km"].start_time == datetime.time(10, 0)
    bibs = sorted(int(bib) for bib in event.start_list.values_list("bib", flat=True))
    assert bibs == list(range(101, 131))
    assert not event.start_list.filter(race=None).exists()
    assert not event.start_list.filter(first_name="").exists()
    assert result.runners_created == 30


def test_it_builds_the_same_start_list_every_time():
    load_demo_event()
    columns = ("bib", "first_name", "last_name", "race__name")
    first = list(StartListEntry.objects.values_list(*columns))
    Event.objects.filter(slug=DEMO_EVENT_SLUG).delete()

    load_demo_event()
    second = list(StartListEntry.objects.values_list(*columns))

    assert first == second
    assert StartListEntry.objects.get(bib="101").first_name == "Camille"


def test_it_creates_nothing_the_second_time_and_says_so():
    first_output = _load_demo()
    counts = (Event.objects.count(), Race.objects.count(), StartListEntry.objects.count())

    second_output = _load_demo()

    assert counts == (1, 2, 30)
    assert (Event.objects.count(), Race.objects.count(), StartListEntry.objects.count()) == counts
    assert "10 km de Lyon (démo)" in first_output
    assert "30" in first_output
    assert "nothing created" in second_output
    assert "30" not in second_output


def test_it_only_fills_in_what_is_missing():
    load_demo_event()
    event = Event.objects.get(slug=DEMO_EVENT_SLUG)
    event.name = "Renamed by an organiser"
    event.save()
    event.start_list.filter(bib__in=["101", "102"]).delete()
    event.races.filter(name="5 km").delete()

    result = load_demo_event()

    event.refresh_from_db()
    assert event.name == "Renamed by an organiser"
    assert not result.event_created
    assert [race.name for race in result.races_created] == ["5 km"]
    assert result.runners_created == 2
    assert event.start_list.count() == 30


def test_it_shows_the_demo_event_on_the_public_site(client):
    load_demo_event()

    response = client.get(f"/fr/events/{DEMO_EVENT_SLUG}/")

    assert response.status_code == 200
    assert response.context["event"].runner_count == 30


def test_the_demo_event_speaks_each_visitor_s_language_only(client):
    load_demo_event()

    english = client.get(f"/en/events/{DEMO_EVENT_SLUG}/").content.decode()
    french = client.get(f"/fr/events/{DEMO_EVENT_SLUG}/").content.decode()

    assert "Lyon 10K (demo)" in english and "10 km de Lyon (démo)" not in english
    assert "Demo race along the banks" in english and "Course de démonstration" not in english
    assert "Course de démonstration" in french and "Demo race along the banks" not in french
