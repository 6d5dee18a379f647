"""The back office's Stripe pages on a phone and a laptop, in French: a received webhook's
page, its history and deletion pages, and the "add webhook endpoint" form with metadata typed
fit the screen and read in French (racephoto/admin.py).
Screenshots go to SCREENSHOT_DIR (/work/notes/shots/ in the team's runs) when it is set."""

import json
import os
from pathlib import Path

import pytest
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from tests.browser.signing import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE, LAPTOP = {"width": 390, "height": 844}, {"width": 1366, "height": 900}
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # Sign-in attempts are counted in the cache: start from zero.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "browser-stripe-admin"}}


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"stripe-admin-{name}.png"), full_page=True)


def test_the_stripe_pages_fit_a_phone_and_a_laptop_in_french(live_server, page):
    endpoint = WebhookEndpoint.objects.create(
        id="we_1PqZ8sLkdIwHu7ix", livemode=True, enabled_events=["*"], status="enabled",
        secret="whsec_admin", url="https://photos.example.org/stripe/webhook/0b3c9a4e/")
    event = {"id": "evt_3PqZ9tLkdIwHu7ix0sAbCdEf", "type": "payment_intent.succeeded",
             "livemode": True, "data": {"object": {"id": "pi_3PqZ9tLkdIwHu7ix0", "object":
                                                   "payment_intent", "amount": 1500,
                                                   "currency": "eur", "status": "succeeded"}}}
    trigger = WebhookEventTrigger.objects.create(
        remote_ip="54.187.174.169", webhook_endpoint=endpoint, valid=True,
        headers={"Content-Type": "application/json; charset=utf-8",
                 "Stripe-Signature": "t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff"
                                     "536d0ce8e108d8bd"},
        body=json.dumps(event), exception="PaymentsNotConfigured: webhook evt_3PqZ9tLkdIwHu7ix0",
        traceback="Traceback (most recent call last):\n  File \"commerce/webhooks.py\", line 58\n"
                  "PaymentsNotConfigured: webhook evt_3PqZ9tLkdIwHu7ix0")
    event_name = "payment_intent.succeeded evt_3PqZ9tLkdIwHu7ix0sAbCdEf"
    sign_in(page, live_server, UserFactory(username="ada", role=User.Role.ADMIN))

    webhook = f"/admin/djstripe/webhookeventtrigger/{trigger.pk}"
    # Each page, and what must be seen on it.
    pages = {"webhook": (f"{webhook}/change/", "label", "Corps"),
             "webhook-history": (f"{webhook}/history/", "h1", event_name),
             "webhook-delete": (f"{webhook}/delete/", "p", event_name),
             "add-endpoint": ("/admin/djstripe/webhookendpoint/add/", "label", "Adresse du site")}
    for viewport, size in ((PHONE, "phone"), (LAPTOP, "laptop")):
        page.set_viewport_size(viewport)
        for name, (path, element, seen) in pages.items():
            page.goto(live_server.url + path)

            assert page.locator("html").get_attribute("lang") == "fr"
            if page.locator("summary", has_text="Options avancées").count():
                page.locator("summary", has_text="Options avancées").click()  # shown in the shot
            if name == "add-endpoint":
                metadata = page.locator("textarea[name=metadata]")
                expect(metadata).to_have_value("")  # not Django's "null"
                metadata.fill('{"site": "photos", "race": "Paris 10 km"}')
            expect(page.locator(element, has_text=seen)).to_be_visible()
            assert "valid=True" not in page.content(), name  # dj-stripe's name of a webhook
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], name
            shot(page, f"{name}-{size}")
