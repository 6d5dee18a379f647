"""The site's name in e-mails (SITE_NAME, not the host) and its icon on every page."""

import io
import uuid

import pytest
from django.core import mail
from PIL import Image

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase-42"


def sign_up(client, language: str):
    # A new address each time: allauth sends one confirmation per address every few
    # minutes, counted in the cache, which outlives a test.
    email = f"camille-{uuid.uuid4().hex[:8]}@example.org"
    response = client.post(f"/{language}/accounts/signup/", {
        "email": email, "password1": PASSWORD, "password2": PASSWORD},
        HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 302
    [message] = mail.outbox
    return message


def test_the_verification_e_mail_greets_with_the_sites_name_not_its_host(client):
    message = sign_up(client, "fr")

    greeting = message.body.strip().splitlines()[0]
    assert greeting.startswith("Bonjour, c'est RacePhoto")
    assert "127.0.0.1" not in greeting
    assert message.subject.startswith("[RacePhoto] ")
    assert "http://127.0.0.1:8000/fr/accounts/confirm-email/" in message.body  # the link still works


def test_the_sites_name_comes_from_the_settings(client, settings):
    settings.SITE_NAME = "Photos du Trail"

    message = sign_up(client, "en")

    assert message.body.strip().splitlines()[0] == "Hello from Photos du Trail!"
    assert "Thank you for using Photos du Trail!" in message.body


def test_favicon_ico_is_a_real_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert "max-age=86400" in response["Cache-Control"]
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as icon:
        assert icon.format == "ICO"
        assert {(16, 16), (32, 32)} <= set(icon.info["sizes"])


def test_every_page_links_its_icons_and_they_exist(client):
    from django.contrib.staticfiles import finders

    page = client.get("/fr/").content.decode()

    for name, markup in (("favicon.ico", 'rel="icon"'), ("favicon.svg", 'type="image/svg+xml"'),
                         ("apple-touch-icon.png", 'rel="apple-touch-icon"')):
        assert f"/static/{name}" in page and markup in page
        assert finders.find(name), name
