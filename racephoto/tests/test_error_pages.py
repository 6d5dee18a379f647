"""403, 404 and 500 pages: the site's layout, in the language of the URL, with the reason."""

import pytest
from django.test import RequestFactory
from django.utils import translation
from django.views.defaults import server_error

from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False  # Django's own technical pages otherwise


def test_it_answers_a_missing_page_in_french_under_fr(client):
    response = client.get("/fr/pas-de-page-ici/")

    html = response.content.decode()
    assert response.status_code == 404
    assert '<html lang="fr">' in html
    assert "Page introuvable" in html
    assert 'class="site-header"' in html and "/static/css/site.css" in html
    assert 'href="/fr/"' in html  # back to the events, in French


def test_it_answers_a_missing_page_in_english_under_en(client):
    response = client.get("/en/no-such-event/")

    html = response.content.decode()
    assert response.status_code == 404
    assert '<html lang="en">' in html and "Page not found" in html


def test_it_answers_an_unpublished_event_with_the_site_404(client):
    event = EventFactory(is_published=False)

    response = client.get(f"/fr/events/{event.slug}/")

    assert response.status_code == 404
    assert "Page introuvable" in response.content.decode()


def test_it_gives_the_translated_reason_on_a_403(client):
    event = EventFactory()
    client.force_login(UserFactory(username="rita-runner"))

    response = client.get(f"/fr/staff/events/{event.slug}/upload/")

    html = response.content.decode()
    assert response.status_code == 403
    assert '<html lang="fr">' in html and "Accès refusé" in html
    assert "Vous n’êtes ni photographe ni organisateur de cet événement." in html


def test_it_renders_the_500_page_in_the_layout_without_a_request_context():
    request = RequestFactory().get("/fr/")

    with translation.override("fr"):
        response = server_error(request)

    html = response.content.decode()
    assert response.status_code == 500
    assert '<html lang="fr">' in html and "Un problème est survenu de notre côté" in html
