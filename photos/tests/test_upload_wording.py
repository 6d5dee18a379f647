"""The upload page's words: counts in the right plural, French punctuation, no word for
a mouse on a phone or for a finger on a desktop."""

import pytest
from django.utils import translation

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.factories import PhotoFactory
from photos.views import _upload_messages

pytestmark = pytest.mark.django_db


def test_it_gives_the_script_both_plural_forms_in_french():
    with translation.override("fr"):
        messages = _upload_messages()

    plurals = messages["plurals"]
    assert plurals["accepted"] == {"one": "%(count)s acceptée", "other": "%(count)s acceptées"}
    assert plurals["duplicate"] == {"one": "%(count)s doublon", "other": "%(count)s doublons"}
    assert plurals["rejected"] == {"one": "%(count)s refusée", "other": "%(count)s refusées"}
    assert plurals["zip_archives"]["other"] == "%(count)s archives ZIP"
    assert plurals["files_sent"]["other"] == "%(done)s sur %(total)s fichiers envoyés"
    # A (non-breaking) space before the colon, as French typography wants.
    assert messages["summary"] == "%(files)s\u00a0: %(outcomes)s."
    assert messages["status_reason"] == "%(status)s\u00a0: %(reason)s"


def test_it_gives_the_script_both_plural_forms_in_english():
    with translation.override("en"):
        plurals = _upload_messages()["plurals"]

    assert plurals["duplicate"] == {"one": "%(count)s duplicate", "other": "%(count)s duplicates"}
    assert plurals["photos"] == {"one": "%(count)s photo", "other": "%(count)s photos"}


@pytest.fixture
def photographer_client(client):
    event = EventFactory(slug="semi")
    user = UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(user)
    client.force_login(user)
    return client, event


def test_it_says_click_on_a_desktop_and_offers_a_translated_button(photographer_client):
    client, event = photographer_client

    html = client.get(f"/fr/staff/events/{event.slug}/upload/").content.decode()

    assert "touchez" not in html
    assert '<span class="only-pointer">ou cliquez sur le bouton pour les choisir</span>' in html
    assert '<strong class="only-touch">Envoyez des photos ou des fichiers ZIP</strong>' in html
    assert '<label for="upload-input" class="btn btn-primary file-button">Choisir des photos' in html


def test_it_counts_the_processing_panel_in_the_right_plural(photographer_client):
    client, event = photographer_client
    photographer = User.objects.get(username="paula")
    PhotoFactory(event=event, photographer=photographer, state=Photo.State.READY)

    one = " ".join(client.get(f"/fr/staff/events/{event.slug}/processing/").content.decode()
                   .split())
    PhotoFactory(event=event, photographer=photographer, state=Photo.State.FAILED)
    two = " ".join(client.get(f"/fr/staff/events/{event.slug}/processing/").content.decode()
                   .split())

    assert "1 sur 1 photo prête." in one
    assert "1 sur 2 photos prêtes, 1 en échec." in two
