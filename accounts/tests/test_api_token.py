"""The API token page of the account area: who may have a token, create, replace, revoke."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

URL = "/en/accounts/api-token/"


@pytest.fixture
def event():
    return EventFactory(slug="semi-de-lyon")


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(("who", "allowed"), [
    ("anonymous", False), ("runner", False), ("staff", True), ("photographer", True),
    ("owner", True), ("admin", True),
])
def test_it_gives_api_tokens_only_to_staff(people, who, allowed):
    client = client_for(people[who])

    page = client.get(URL)
    create = client.post(URL, {"action": "create"})

    if who == "anonymous":
        assert page.status_code == create.status_code == 302
        assert page["Location"].startswith("/en/accounts/login/")
    else:
        assert (page.status_code, create.status_code) == ((200, 200) if allowed else (403, 403))
    assert Token.objects.exists() == allowed


def test_it_shows_a_new_key_once_and_never_again(people):
    client = client_for(people["photographer"])

    created = client.post(URL, {"action": "create"})
    later = client.get(URL)

    key = Token.objects.get(user=people["photographer"]).key
    assert key in created.content.decode()
    assert "no-store" in created["Cache-Control"]
    assert key not in later.content.decode()
    assert "You have a token" in later.content.decode()


def test_it_replaces_a_token_so_the_old_one_stops_working(people):
    client = client_for(people["photographer"])
    client.post(URL, {"action": "create"})
    old = Token.objects.get(user=people["photographer"]).key

    client.post(URL, {"action": "create"})

    new = Token.objects.get(user=people["photographer"]).key
    assert new != old
    api = Client(HTTP_AUTHORIZATION=f"Token {old}")
    assert api.get("/api/v1/events/semi-de-lyon/processing/").status_code == 401


def test_it_revokes_a_token(people):
    client = client_for(people["owner"])
    client.post(URL, {"action": "create"})
    key = Token.objects.get(user=people["owner"]).key

    response = client.post(URL, {"action": "revoke"}, follow=True)

    assert not Token.objects.filter(user=people["owner"]).exists()
    assert "Your API token was revoked" in response.content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/events/semi-de-lyon/processing/").status_code == 401


def test_it_needs_the_csrf_token_to_create_a_token(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["owner"])

    response = client.post(URL, {"action": "create"})

    assert response.status_code == 403
    assert not Token.objects.exists()
