"""The admin follows the language its user reads the site in, with that language's dates,
and its index names each section once."""

import datetime
import re

import pytest
from django.urls import reverse

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_it_shows_the_admin_in_french_to_someone_who_uses_the_site_in_french(admin_client):
    admin_client.get("/fr/")  # the site remembers the language of the pages read
    event = EventFactory(date=datetime.date(2031, 9, 14))

    # The browser asks for English (an English-language Chrome, say): the site's choice wins.
    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]),
                                HTTP_ACCEPT_LANGUAGE="en-US,en")

    html = response.content.decode()
    assert '<html lang="fr"' in html
    assert "Modification de événement" in html
    assert 'value="14/09/2031"' in html  # French date format, not 09/14/2031


def test_it_switches_to_english_after_an_english_page(admin_client):
    admin_client.get("/en/")

    html = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert '<html lang="en"' in html and "Back office" in html


def test_it_sends_a_french_organiser_to_the_french_sign_in_page(client):
    client.get("/fr/")

    response = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en", follow=True)

    assert response.redirect_chain[-1][0].startswith("/fr/accounts/login/")
    assert "Se connecter" in response.content.decode()


def test_it_uses_the_sign_in_pages_words_in_the_site_header(client):
    html = client.get("/fr/accounts/login/").content.decode()

    header = re.search(r'<header class="site-header">.*?</header>', html, re.S).group(0)
    title = re.search(r"<h1>\s*(.*?)\s*</h1>", html, re.S).group(1)
    assert "Se connecter" in header and title == "Se connecter"


def test_it_names_each_admin_section_once(admin_client):
    for language in ("fr", "en"):
        html = admin_client.get(reverse("admin:index"),
                                HTTP_ACCEPT_LANGUAGE=language).content.decode()
        sections = re.findall(r'<caption>\s*<a[^>]*class="section"[^>]*>(.*?)</a>', html, re.S)
        assert len(sections) == len(set(sections)) > 3, sections
