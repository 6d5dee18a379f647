"""A real localstripe for the commerce tests, and the shop, cart and payment helpers.

The suite starts one localstripe (racephoto.localstripe_server, loopback, data in memory)
on a free port; the Stripe SDK and the shop are pointed at it. The buyer's browser part
of a card payment (a PaymentMethod, attached, confirmed) is done through the SDK, as
the development shim does in the page.
"""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import stripe
from django.urls import reverse

WEBHOOK_SECRET = "whsec_commerce_tests"
GOOD_CARD = "4242424242424242"
# localstripe declines charges on this card (its 0002 is only refused when attached to a customer).
DECLINED_CARD = "4000000000000341"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_base():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "racephoto.localstripe_server",
                                "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("localstripe did not start")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def stripe_local(settings, localstripe_base, monkeypatch):
    settings.STRIPE_API_BASE = localstripe_base
    settings.STRIPE_SECRET_KEY = "sk_test_localstripe"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_localstripe"
    settings.STRIPE_LOCAL = True
    monkeypatch.setattr(stripe, "api_base", localstripe_base)
    from commerce.payments import provider

    return provider()


@pytest.fixture
def webhook_endpoint(db):
    from djstripe.models import WebhookEndpoint

    return WebhookEndpoint.objects.create(
        id="we_commerce_tests", livemode=False, url="http://testserver/stripe/",
        enabled_events=["*"], status="enabled", secret=WEBHOOK_SECRET)


@pytest.fixture
def shop(db):
    from commerce.models import PricePack, Shop
    from events.tests.factories import EventFactory

    event = EventFactory(slug="marathon-de-lyon")
    shop = Shop.objects.create(event=event, bundle_price=Decimal("25.00"), vat_rate=Decimal("20"))
    for quantity, price in ((1, "9.00"), (3, "19.00"), (5, "25.00")):
        PricePack.objects.create(shop=shop, quantity=quantity, price=Decimal(price))
    return shop


@pytest.fixture
def make_public_photo(db):
    from photos.models import BibTag, Photo
    from photos.tests.factories import PhotoFactory

    def make(event, bib=None):
        photo = PhotoFactory(event=event, with_original=True, state=Photo.State.READY,
                             preview="previews/p.jpg", thumbnail="thumbnails/t.jpg")
        if bib:
            BibTag.objects.create(photo=photo, bib=bib, confidence=1.0,
                                  source=BibTag.Source.MANUAL, confirmed=True)
        return photo

    return make


def add(client, event, **fields):
    return client.post(reverse("commerce:add", kwargs={"slug": event.slug}), fields)


def start_checkout(client, event, email="runner@example.org", total=None):

    url = reverse("commerce:checkout", kwargs={"slug": event.slug})
    if total is None:
        page = client.get(url)
        total = str(page.context["view"].quote.total)
    return client.post(url, {"email": email, "total": total})


def pay_with_card(provider, payment, number=GOOD_CARD):
    """What Stripe.js does in the buyer's browser: the card, attached to the intent, confirmed."""
    api = provider.client().v1
    method = api.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    api.payment_intents.update(payment.provider_reference, params={"payment_method": method.id})
    try:
        return api.payment_intents.confirm(payment.provider_reference)
    except stripe.CardError:
        return api.payment_intents.retrieve(payment.provider_reference)


def signed_event(event_type, intent, event_id, secret=WEBHOOK_SECRET):
    """A Stripe event as localstripe sends it: JSON signed with the endpoint's secret."""
    created = int(time.time())
    body = json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "api_version": "2020-08-27", "created": created, "livemode": False,
                       "data": {"object": intent.to_dict() if hasattr(intent, "to_dict") else intent},
                       "request": {"id": None, "idempotency_key": None}, "pending_webhooks": 1})
    signature = hmac.new(secret.encode(), f"{created}.{body}".encode(), hashlib.sha256).hexdigest()
    return body, f"t={created},v1={signature}"


def deliver(client, endpoint, body, signature):
    """POST a webhook and run what it queued for after its commit (the e-mail)."""
    from django.test import TestCase

    url = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, body, content_type="application/json",
                           headers={"stripe-signature": signature})
