"""Security basics: production settings, response headers, CSRF on every form."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from accounts.models import BibClaim, ErasureRecord
from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.images import jpeg

pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")


def test_it_secures_cookies_and_headers_in_production(production_settings):
    settings = production_settings()

    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["CSRF_COOKIE_SECURE"] is True
    assert settings["CSRF_COOKIE_HTTPONLY"] is True
    assert settings["SECURE_SSL_REDIRECT"] is True
    assert settings["SECURE_HSTS_SECONDS"] >= 31536000
    assert settings["X_FRAME_OPTIONS"] == "DENY"
    assert "frame-ancestors 'none'" in settings["CONTENT_SECURITY_POLICY"]
    assert "script-src 'self'" in settings["CONTENT_SECURITY_POLICY"]
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings["MIDDLEWARE"]
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in settings["MIDDLEWARE"]
    assert settings["ACCOUNT_RATE_LIMITS"]["login_failed"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/fr/", "/en/accounts/login/", "/api/v1/events/"])
def test_it_forbids_framing_and_foreign_scripts_on_every_kind_of_page(client, path):
    response = client.get(path)

    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _forms(event):
    """Every POST the site's own pages make (the admin's are Django's, checked once)."""
    upload = {"file": ContentFile(jpeg(seed=1), name="IMG_1.JPG")}
    return {
        "login": ("/en/accounts/login/", {"login": "ada-admin", "password": "x"}),
        "signup": ("/en/accounts/signup/", {"email": "a@example.org", "password1": "x" * 12,
                                             "password2": "x" * 12}),
        "password_reset": ("/en/accounts/password/reset/", {"email": "a@example.org"}),
        "logout": ("/en/accounts/logout/", {}),
        "api_token": ("/en/accounts/api-token/", {"action": "create"}),
        "upload_file": (f"/en/staff/events/{event.slug}/upload/file/", upload),
        "retry_failed": (f"/en/staff/events/{event.slug}/processing/retry/", {}),
        "admin": (f"/admin/events/event/{event.pk}/change/", {"name": "Hacked"}),
        "claim_bib": ("/en/accounts/privacy/claim/", {"event": event.pk, "bib": "42",
                                                     "face_search": "opted_out"}),
        "set_face_search": ("/en/accounts/privacy/claims/1/", {"face_search": "opted_out"}),
        "request_erasure": ("/en/accounts/privacy/erasure/", {}),
    }


FORMS = ["login", "signup", "password_reset", "logout", "api_token", "upload_file",
         "retry_failed", "admin", "claim_bib", "set_face_search", "request_erasure"]


@pytest.mark.django_db
@pytest.mark.parametrize("form", FORMS)
def test_it_refuses_every_form_posted_without_its_csrf_token(form, named_people):
    event = EventFactory(name="Semi", slug="semi")
    admin = named_people(event)["admin"]
    client = Client(enforce_csrf_checks=True)
    if form not in ("login", "signup", "password_reset"):
        client.force_login(admin)
    path, data = _forms(event)[form]

    response = client.post(path, data)

    assert response.status_code == 403
    event.refresh_from_db()
    assert event.name == "Semi"
    assert not Photo.objects.exists()
    assert not BibClaim.objects.exists()
    assert not ErasureRecord.objects.exists()
