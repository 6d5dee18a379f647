"""A guest on a phone buys "all my photos" of their bib with the test card, on a real
localstripe whose signed webhook reaches the live server, then downloads the ZIP."""

import json
import os
import urllib.request
from decimal import Decimal

import pytest
from django.core import mail
from playwright.sync_api import expect

from commerce.models import Order, Payment, PricePack, Shop
from events.tests.factories import EventFactory
from photos.models import BibTag, Photo
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture
def shop_with_photos(db):
    event = EventFactory(slug="semi-de-lyon", name="Semi de Lyon")
    shop = Shop.objects.create(event=event, bundle_price=Decimal("25.00"))
    PricePack.objects.create(shop=shop, quantity=1, price=Decimal("9.00"))
    for _ in range(3):
        photo = PhotoFactory(event=event, with_original=True, state=Photo.State.READY,
                             preview="previews/p.jpg", thumbnail="thumbnails/t.jpg")
        BibTag.objects.create(photo=photo, bib="77", confidence=1.0, source=BibTag.Source.MANUAL,
                              confirmed=True)
    return shop


def _shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"commerce-{name}.png"), full_page=True)


def test_guest_buys_all_photos_of_a_bib_and_downloads(page, live_server, shop_with_photos,
                                                      stripe_local, webhook_endpoint):
    from django.urls import reverse

    webhook = live_server.url + reverse("djstripe:djstripe_webhook_by_uuid",
                                        kwargs={"uuid": webhook_endpoint.djstripe_uuid})
    urllib.request.urlopen(urllib.request.Request(
        f"{stripe_local.api_base}/_config/webhooks/browser-test", method="POST",
        data=json.dumps({"url": webhook, "secret": webhook_endpoint.secret}).encode(),
        headers={"Content-Type": "application/json"}), timeout=10)
    event = shop_with_photos.event

    page.goto(f"{live_server.url}/en/events/{event.slug}/?bib=77")
    page.get_by_role("button", name="Buy all my photos (bib 77)").click()
    expect(page.get_by_text("All my photos, bib 77").first).to_be_visible()
    _shot(page, "cart-phone")
    page.get_by_role("link", name="Checkout").click()
    page.get_by_label("E-mail address").fill("guest@example.org")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_text("Local test payment.")).to_be_visible()
    page.get_by_placeholder("number").fill("4242424242424242")
    page.get_by_placeholder("exp_month").fill("12")
    page.get_by_placeholder("exp_year").fill("34")
    page.get_by_placeholder("cvc").fill("123")
    page.get_by_placeholder("postal_code").fill("69001")
    _shot(page, "checkout-phone")
    page.get_by_role("button", name="Pay 25.00 EUR").click()
    expect(page.get_by_text("Thank you! Your photos are ready.")).to_be_visible(timeout=15000)
    _shot(page, "order-phone")

    order = Order.objects.get()
    assert order.state == Order.State.PAID and order.total == Decimal("25.00")
    assert order.payments.get().state == Payment.State.SUCCEEDED
    assert mail.outbox and "guest@example.org" in mail.outbox[0].to
    zip_link = page.get_by_role("link", name="Download all 3 photos (ZIP)")
    response = page.request.get(live_server.url + zip_link.get_attribute("href"))
    assert response.status == 200 and response.body()[:2] == b"PK"
    single = page.get_by_role("link", name="Download photo").first
    assert page.request.get(live_server.url + single.get_attribute("href")).status == 200
    if SHOTS:
        page.set_viewport_size({"width": 1280, "height": 900})
        _shot(page, "order-desktop")
