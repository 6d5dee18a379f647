"""An event's name and description are shown in the page's language, else in the other one."""

import json
import re

import pytest
from django.utils import translation

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def _page(client, language, event):
    with translation.override(language):
        url = event.get_absolute_url()
    return client.get(url).content.decode()


def test_it_shows_the_english_name_and_description_on_the_english_page_only(client):
    event = EventFactory(name="Semi de Lyon", name_en="Lyon Half Marathon",
                         description="Le long des quais du Rhône.",
                         description_en="Along the banks of the Rhône.")

    fr, en = _page(client, "fr", event), _page(client, "en", event)

    assert "<h1>Semi de Lyon</h1>" in fr and "Le long des quais" in fr
    assert "Lyon Half Marathon" not in fr and "Along the banks" not in fr
    assert "<h1>Lyon Half Marathon</h1>" in en and "Along the banks" in en
    assert "<h1>Semi de Lyon</h1>" not in en and "Le long des quais" not in en
    # Search engines get the same language as the page.
    assert re.search(r'<meta name="description" content="Along the banks', en)
    ld = json.loads(re.search(r'application/ld\+json">(.*?)</script>', en, re.S).group(1))
    assert ld["name"] == "Lyon Half Marathon"


def test_it_falls_back_to_the_other_language_when_one_is_missing(client):
    event = EventFactory(name="Trail des Monts d'Or", name_en="", description="",
                         description_en="Only written in English.")

    fr, en = _page(client, "fr", event), _page(client, "en", event)

    assert "Trail des Monts d&#x27;Or" in en
    assert "Only written in English." in fr


def test_it_names_the_event_in_the_page_language_on_the_event_list(client):
    EventFactory(name="Course des Lumières", name_en="Festival of Lights Run")

    assert "Festival of Lights Run" in client.get("/en/").content.decode()
    assert "Festival of Lights Run" not in client.get("/fr/").content.decode()
