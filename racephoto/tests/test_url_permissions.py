"""Every URL of the site is classified, and nothing but the public pages opens to strangers.

A new view fails here until it is put in one of the sets below, with a
permission test of its own for the people who may use it (see the modules
named in the comments). The admin is covered the same way, model by model.
"""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from accounts.privacy import claim_bib
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

PUBLIC = {"healthz", "metrics", "set_language", "sitemap", "robots_txt", "list", "detail",
          "event-list", "event-detail", "favicon",
          "media",  # public derivatives only: racephoto/tests/test_media.py
          "selfie-search",  # within the event's setting: search/tests/test_selfie_privacy.py
          # Ready photos' public derivatives of published events only, the selfie within
          # the event's setting: search/tests/test_pages.py
          "photos", "photo", "selfie",
          "timeline",  # the same photos by time: search/tests/test_timeline.py
          # A published event's logo and an organiser's page of published events:
          # events/tests/test_branding_and_public_site.py
          "logo", "organisation",
          # The buyer's own cart (session or account), checkout, and an order reached by its
          # unguessable token, its downloads by signed links bound to it; Stripe's signed
          # webhooks; the local test card step (localstripe only): commerce/tests/.
          "cart", "add", "remove", "swap", "discount", "checkout", "order", "download", "local-card",
          "djstripe_webhook_by_uuid",
          # "Send my links again": mails only the address typed, answers the same for any
          # address, throttled per address: commerce/tests/test_resend.py
          "resend",
          # The pages' rules over JSON, no sign-in: search/tests/test_public_api.py
          "search", "public-photos", "public-photo", "api-schema", "api-docs"}
# Any signed-in person, on their own data only (accounts/tests/test_privacy.py, test_auth.py).
SIGNED_IN = {"profile", "privacy", "claim_bib", "set_face_search", "request_erasure"}
# The event's staff only (photos/tests/test_upload_views.py, photos/tests/test_api.py,
# accounts/tests/test_api_token.py).
STAFF = {"upload", "upload_file", "processing_status", "retry_failed", "api_token",
         "event-photos", "event-processing", "photo-detail"}
# Platform admins only (mlpipeline/tests/test_model_status.py).
PLATFORM_ADMIN = {"model-status"}
# The admin's models a staff member who is not a platform admin may open
# (accounts/tests/test_admin_roles.py); every other model is for platform admins only.
STAFF_ADMIN_MODELS = {"events.event", "events.startlistentry", "photos.photo", "photos.bibtag",
                      "photos.dropfolderfile",
                      # Their events' shops and orders: commerce/tests/test_pages_and_admin.py
                      "commerce.shop", "commerce.order", "commerce.paymentstatechange"}


def _routes(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            yield from _routes(pattern.url_patterns,
                               f"{namespace}{pattern.namespace}:" if pattern.namespace
                               else namespace)
        else:
            yield namespace, pattern


def site_routes():
    return [(namespace, pattern) for namespace, pattern in _routes(get_resolver().url_patterns)
            if not pattern.callback.__module__.startswith("allauth.")]  # allauth's own pages


def test_it_classifies_every_url_of_the_site():
    names = {pattern.name for _namespace, pattern in site_routes()}

    assert names - PUBLIC - SIGNED_IN - STAFF - PLATFORM_ADMIN == set()
    assert (SIGNED_IN | STAFF | PLATFORM_ADMIN) - names == set()


@pytest.fixture
def world(named_people):
    event = EventFactory(slug="semi")
    people = named_people(event)
    photo = PhotoFactory(event=event, photographer=people["photographer"])
    claim = claim_bib(UserFactory(username="camille"), event, "42")
    return {"people": people, "kwargs": {"slug": event.slug, "pk": photo.pk,
                                         "claim_id": claim.pk}}


def _url(namespace, pattern, kwargs):
    wanted = {name: kwargs[name] for name in pattern.pattern.regex.groupindex}
    return reverse(f"{namespace}{pattern.name}", kwargs=wanted)


@pytest.mark.parametrize("who", ["anonymous", "runner", "staff"])
def test_it_opens_no_staff_url_to_people_who_are_not_the_events_staff(world, who):
    client = Client()
    if world["people"][who] is not None:
        client.force_login(world["people"][who])

    opened = []
    for namespace, pattern in site_routes():
        if pattern.name not in STAFF:
            continue
        url = _url(namespace, pattern, world["kwargs"])
        for response in (client.get(url), client.post(url)):
            if response.status_code < 300:
                opened.append((url, response.status_code))
            if response.status_code in (301, 302):
                assert "/accounts/login/" in response["Location"]

    if who == "staff":  # staff of another event: only their own token page opens
        assert [url for url, _status in opened] == ["/fr/accounts/api-token/"] * 2
    else:
        assert opened == []


def test_it_sends_anonymous_visitors_from_every_account_url_to_sign_in(world):
    for namespace, pattern in site_routes():
        if pattern.name not in SIGNED_IN:
            continue
        url = _url(namespace, pattern, world["kwargs"])
        response = Client().post(url) if pattern.name != "profile" else Client().get(url)

        assert response.status_code == 302, url
        assert "/accounts/login/" in response["Location"]


def test_it_keeps_every_other_admin_model_to_platform_admins(world):
    client = Client()
    client.force_login(world["people"]["owner"])

    opened = set()
    for model in admin.site._registry:
        label = model._meta.label_lower
        app_label, model_name = label.split(".")
        response = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
        if response.status_code == 200:
            opened.add(label)

    assert opened == STAFF_ADMIN_MODELS
