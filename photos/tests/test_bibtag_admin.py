"""The review list of bib tags: readings not on the start list, each organiser on their own events."""

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.models import StartListEntry
from events.tests.factories import EventFactory
from photos.admin import off_start_list_url
from photos.models import BibTag
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


def tag(photo, bib, *, source=BibTag.Source.OCR, confirmed=False):
    return BibTag.objects.create(photo=photo, bib=bib, confidence=0.9, source=source,
                                 confirmed=confirmed)


@pytest.fixture
def two_events():
    mine, theirs = EventFactory(), EventFactory()
    for event in (mine, theirs):
        StartListEntry.objects.create(event=event, bib="101", first_name="Léa")
        photo = PhotoFactory(event=event)
        tag(photo, "101", confirmed=True)
        tag(photo, "257")  # not on the start list
    organiser = UserFactory(username="olga-organiser", role=User.Role.ORGANISER)
    mine.organisers.add(organiser)
    return mine, theirs, organiser


def test_it_counts_only_readings_checked_against_a_start_list():
    listed, unlisted = EventFactory(), EventFactory()
    StartListEntry.objects.create(event=listed, bib="101", first_name="Léa")
    tag(PhotoFactory(event=listed), "257")
    tag(PhotoFactory(event=listed), "101")  # read before 101 was listed: it is listed now
    tag(PhotoFactory(event=unlisted), "257")  # no start list: never checked

    assert list(BibTag.objects.off_start_list().values_list("photo__event", "bib")) == [
        (listed.pk, "257")]


def test_an_organiser_reviews_their_events_readings_not_on_the_start_list(client, two_events):
    mine, theirs, organiser = two_events
    client.force_login(organiser)

    page = client.get(reverse("admin:events_event_change", args=[mine.pk]))
    review = client.get(off_start_list_url(mine))
    everything = client.get(reverse("admin:photos_bibtag_changelist"), {"start_list": "off"})
    other = client.get(reverse("admin:photos_bibtag_change",
                               args=[BibTag.objects.get(photo__event=theirs, bib="257").pk]))

    # This organiser reads French.
    assert "1 dossard lu absent de la liste des inscrits : le vérifier" in page.content.decode()

    assert [(t.photo.event_id, t.bib) for t in review.context["cl"].result_list] == [
        (mine.pk, "257")]
    assert [(t.photo.event_id, t.bib) for t in everything.context["cl"].result_list] == [
        (mine.pk, "257")]
    assert other.status_code == 302  # another event's tag looks like one that does not exist


def test_the_event_page_says_so_when_there_is_no_start_list(admin_client):
    event = EventFactory()
    page = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))
    assert "Pas de liste des inscrits : les dossards lus ne sont comparés à aucune liste." \
        in page.content.decode()
