"""In a browser: an organiser refunds one photo of an order from the admin; a buyer asks
for their links again on a phone. Both pages pass axe-core's check (no serious or
critical violation); with SCREENSHOT_DIR set, each is saved on a phone and a desktop."""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from playwright.sync_api import expect

from commerce import refunds
from commerce.models import Order, OrderItem, Payment
from commerce.tests.conftest import pay_with_card

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("SCREENSHOT_DIR", "")
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}


def _shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"commerce-{name}.png"), full_page=True)


def _new_page(browser, size):
    """A tab of its own size, with axe-core injected by the driver (the site's CSP, which
    allows only its own scripts, does not apply to an init script)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make browser-deps` (npm ci) first.")
    context = browser.new_context(viewport=size)
    context.add_init_script(path=str(AXE))
    return context, context.new_page()


def _serious_violations(page) -> list[str]:
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
      .violations.map(v => ({id: v.id, impact: v.impact,
                             targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return [f"{v['impact']}: {v['id']} at {v['targets']}" for v in found
            if v["impact"] in ("serious", "critical")]


def _paid_order(shop, stripe_local, photos) -> Order:
    """A paid order of ``photos`` with a real PaymentIntent, paid on localstripe."""
    order = Order.objects.create(event=shop.event, email="buyer@example.org", language="en",
                                 currency="EUR", total=Decimal("19.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("3.17"), state=Order.State.PAID)
    OrderItem.objects.bulk_create([OrderItem(order=order, photo=photo, price=price) for photo, price
                                   in zip(photos, ("6.34", "6.33", "6.33"), strict=True)])
    intent = stripe_local.client().v1.payment_intents.create(
        params={"amount": 1900, "currency": "eur", "payment_method_types": ["card"]})
    payment = Payment.objects.create(order=order, amount=order.total, currency="EUR",
                                     provider_reference=intent.id)
    assert pay_with_card(stripe_local, payment).status == "succeeded"
    Payment.objects.filter(pk=payment.pk).update(state=Payment.State.SUCCEEDED)
    return order


def test_an_organiser_refunds_one_photo_from_the_admin(browser, live_server, shop, stripe_local,
                                                      make_public_photo, named_people):
    owner = named_people(shop.event)["owner"]
    photos = [make_public_photo(shop.event) for _ in range(3)]
    order = _paid_order(shop, stripe_local, photos)
    signed_in = Client()
    signed_in.force_login(owner)
    cookie = {"name": "sessionid", "value": signed_in.cookies["sessionid"].value, "url": live_server.url}
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context, page = _new_page(browser, size)
        context.add_cookies([cookie, {"name": "django_language", "value": "en", "url": live_server.url}])
        page.goto(f"{live_server.url}/admin/commerce/order/{order.pk}/change/")
        page.get_by_role("link", name="Refund").click()
        expect(page.get_by_role("heading", name=f"Refund order {order.pk}")).to_be_visible()
        assert _serious_violations(page) == []
        page.get_by_label("The chosen items").check()
        # The desktop refunds the first photo; the phone then offers the two others.
        chosen = photos[0] if name == "desktop" else photos[1]
        page.get_by_label(f"Photo {chosen.pk} ", exact=False).check()
        page.get_by_label("Reason").fill("Not the runner")
        _shot(page, f"admin-refund-{name}")
        if name == "desktop":
            page.get_by_role("button", name="Refund").click()
            expect(page.get_by_text("Refunded 6.34 EUR.")).to_be_visible()
            _shot(page, "admin-refunded-desktop")
        context.close()
    assert refunds.refunded_amount(order) == Decimal("6.34")
    assert list(refunds.refunded_items(order).values_list("photo_id", flat=True)) == [photos[0].pk]


def test_a_buyer_asks_for_their_links_again_on_a_phone(browser, live_server, shop, stripe_local,
                                                      make_public_photo, settings, own_cache):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    _paid_order(shop, stripe_local, [make_public_photo(shop.event) for _ in range(3)])
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context, page = _new_page(browser, size)
        page.goto(f"{live_server.url}/en/events/{shop.event.slug}/cart/")
        page.get_by_role("link", name="Bought photos already? Get your download links again").click()
        expect(page.get_by_role("heading", name="Get my download links again")).to_be_visible()
        expect(page.get_by_label("Event")).to_have_value(shop.event.slug)
        assert _serious_violations(page) == []
        _shot(page, f"resend-{name}")
        page.get_by_label("E-mail address").fill("buyer@example.org")
        page.get_by_role("button", name="Send my links").click()
        expect(page.get_by_text("an e-mail with their links is on its way")).to_be_visible()
        _shot(page, f"resend-sent-{name}")
        context.close()
    assert len(mail.outbox) == 2
    assert all(message.to == ["buyer@example.org"] for message in mail.outbox)
