"""The purchase path against a real localstripe: cart, checkout, webhooks, downloads."""

import threading
from decimal import Decimal

import pytest
from django.core import mail, signing
from django.db import connection
from django.urls import reverse

from commerce.downloads import WHOLE_ORDER, link, make_token
from commerce.models import Order, Payment, PricePack
from commerce.tests.conftest import (
    DECLINED_CARD,
    add,
    deliver,
    pay_with_card,
    signed_event,
    start_checkout,
)

pytestmark = pytest.mark.django_db


def _paid_order(client, shop, stripe_local, webhook_endpoint, photos=(), bib=None):
    for photo in photos:
        add(client, shop.event, photo=photo.pk)
    if bib:
        add(client, shop.event, bib=bib)
    response = start_checkout(client, shop.event)
    assert response.status_code == 200, response.content
    payment = response.context["payment"]
    intent = pay_with_card(stripe_local, payment)
    assert intent.status == "succeeded"
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_ok_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    return Order.objects.get(pk=payment.order_id)


def test_paid_checkout_marks_order_paid_and_mails_links(client, shop, stripe_local,
                                                       webhook_endpoint, make_public_photo):
    photo = make_public_photo(shop.event)
    order = _paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    assert order.state == Order.State.PAID
    assert order.total == Decimal("9.00") and order.vat_amount == Decimal("1.50")
    payment = order.payments.get()
    assert payment.state == Payment.State.SUCCEEDED
    assert [c.to_state for c in payment.changes.all()] == ["created", "succeeded"]
    assert len(mail.outbox) == 1 and order.email in mail.outbox[0].to
    assert "/download/" in mail.outbox[0].body
    # The cart is emptied once paid.
    cart_page = client.get(reverse("commerce:cart", kwargs={"slug": shop.event.slug}))
    assert not cart_page.context["view"].items


def test_declined_card_leaves_order_unpaid(client, shop, stripe_local, webhook_endpoint,
                                           make_public_photo):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    payment = start_checkout(client, shop.event).context["payment"]
    intent = pay_with_card(stripe_local, payment, DECLINED_CARD)
    assert intent.status == "requires_payment_method"
    body, signature = signed_event("payment_intent.payment_failed", intent, "evt_declined")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    payment.refresh_from_db()
    assert payment.state == Payment.State.FAILED
    assert payment.order.state == Order.State.PENDING
    assert not mail.outbox


def test_abandoned_checkout_is_not_paid_and_the_order_page_says_so(client, shop, stripe_local,
                                                                   make_public_photo):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    payment = start_checkout(client, shop.event).context["payment"]
    page = client.get(reverse("commerce:order", kwargs={"token": payment.order.token}))
    assert page.status_code == 200
    assert payment.order.state == Order.State.PENDING
    assert not page.context["photo_links"]


def test_duplicate_and_out_of_order_webhooks_change_nothing(client, shop, stripe_local,
                                                           webhook_endpoint, make_public_photo):
    order = _paid_order(client, shop, stripe_local, webhook_endpoint,
                        photos=[make_public_photo(shop.event)])
    payment = order.payments.get()
    intent = stripe_local.client().v1.payment_intents.retrieve(payment.provider_reference)
    # The same event again, then an old "failed" event for the same intent, arriving late.
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_ok_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    stale = {**intent.to_dict(), "status": "requires_payment_method"}
    body, signature = signed_event("payment_intent.payment_failed", stale, "evt_late_failure")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert payment.state == Payment.State.SUCCEEDED and order.state == Order.State.PAID
    assert payment.changes.count() == 2
    assert len(mail.outbox) == 1


def test_bad_signature_is_refused_and_changes_nothing(client, shop, stripe_local,
                                                     webhook_endpoint, make_public_photo):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    payment = start_checkout(client, shop.event).context["payment"]
    intent = pay_with_card(stripe_local, payment)
    body, signature = signed_event("payment_intent.succeeded", intent, "evt_forged",
                                   secret="whsec_not_ours")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 400
    url = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": webhook_endpoint.djstripe_uuid})
    assert client.post(url, body, content_type="application/json").status_code == 400
    payment.refresh_from_db()
    assert payment.state == Payment.State.CREATED
    assert payment.order.state == Order.State.PENDING


def test_price_change_after_adding_is_shown_not_charged(client, shop, stripe_local,
                                                       make_public_photo):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    checkout_url = reverse("commerce:checkout", kwargs={"slug": shop.event.slug})
    assert client.get(checkout_url).context["view"].quote.total == Decimal("9.00")
    PricePack.objects.filter(shop=shop, quantity=1).update(price=Decimal("12.00"))
    response = start_checkout(client, shop.event, total="9.00")
    assert response.status_code == 409
    assert not Order.objects.exists()
    view = response.context["view"]
    assert view.quote.total == Decimal("12.00")
    assert [(before, now) for _item, before, now in view.changed] == [(Decimal("9.00"),
                                                                       Decimal("12.00"))]
    # Confirming the new total shown goes on, at the new price.
    response = start_checkout(client, shop.event, total="12.00")
    assert response.context["order"].total == Decimal("12.00")


def test_empty_cart_cannot_check_out(client, shop, stripe_local):
    response = start_checkout(client, shop.event, total="0.00")
    assert response.status_code == 302
    assert not Order.objects.exists()


def test_ladder_and_bundle_offer(client, shop, stripe_local, make_public_photo):
    photos = [make_public_photo(shop.event, bib="123") for _ in range(4)]
    for photo in photos:
        add(client, shop.event, photo=photo.pk)
    view = client.get(reverse("commerce:cart", kwargs={"slug": shop.event.slug})).context["view"]
    assert view.quote.total == Decimal("25.00")  # 4 photos: the 5-pack beats 3 + 1 (28 €)
    PricePack.objects.filter(shop=shop, quantity=5).delete()
    view = client.get(reverse("commerce:cart", kwargs={"slug": shop.event.slug})).context["view"]
    assert view.quote.total == Decimal("28.00")
    assert [(o.bib, o.saving) for o in view.offers] == [("123", Decimal("3.00"))]
    client.post(reverse("commerce:swap", kwargs={"slug": shop.event.slug}), {"bib": "123"})
    view = client.get(reverse("commerce:cart", kwargs={"slug": shop.event.slug})).context["view"]
    assert [item.bib for item in view.items] == ["123"] and view.quote.total == Decimal("25.00")


def test_concurrent_submits_of_one_cart_make_one_order_and_one_charge(
        client, shop, stripe_local, make_public_photo, transactional_db):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    results = []

    def submit():
        try:
            results.append(start_checkout(client, shop.event, total="9.00").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]
    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1


def test_download_links_refuse_tampered_expired_and_foreign(client, shop, stripe_local,
                                                            webhook_endpoint, make_public_photo,
                                                            settings):
    photo = make_public_photo(shop.event)
    order = _paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    good = client.get(link(order, photo.pk))
    assert good.status_code == 200
    assert b"".join(good.streaming_content) == photo.original.open("rb").read()
    zip_response = client.get(link(order, WHOLE_ORDER))
    assert zip_response.status_code == 200
    assert b"".join(zip_response.streaming_content)[:2] == b"PK"

    token = make_token(order, photo.pk)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    url = reverse("commerce:download", kwargs={"token": order.token, "signed": tampered})
    assert client.get(url).status_code == 403
    other = Order.objects.create(event=shop.event, email="x@example.org", currency="EUR",
                                 total=Decimal("1.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("0.17"), state=Order.State.PAID)
    foreign = reverse("commerce:download", kwargs={"token": order.token,
                                                   "signed": make_token(other, photo.pk)})
    assert client.get(foreign).status_code == 403
    # Another photo, not in the order, with a well-signed link.
    stranger = make_public_photo(shop.event)
    assert client.get(link(order, stranger.pk)).status_code == 403
    settings.DOWNLOAD_LINK_MAX_AGE = -1
    assert client.get(link(order, photo.pk)).status_code == 403
    with pytest.raises(signing.BadSignature):
        signing.TimestampSigner(salt="commerce.download").unsign(tampered)


def test_bundle_covers_photos_found_after_purchase(client, shop, stripe_local, webhook_endpoint,
                                                   make_public_photo):
    order = _paid_order(client, shop, stripe_local, webhook_endpoint, bib="77")
    assert order.total == Decimal("25.00")
    page = client.get(reverse("commerce:order", kwargs={"token": order.token}))
    assert page.context["photo_links"] == []
    later = make_public_photo(shop.event, bib="77")
    page = client.get(reverse("commerce:order", kwargs={"token": order.token}))
    assert [photo.pk for photo, _url in page.context["photo_links"]] == [later.pk]


def test_reconcile_finds_a_payment_whose_webhook_was_lost(client, shop, stripe_local,
                                                          make_public_photo):
    from django.core.management import call_command

    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    payment = start_checkout(client, shop.event).context["payment"]
    pay_with_card(stripe_local, payment)
    call_command("reconcile_payments")
    payment.refresh_from_db()
    assert payment.state == Payment.State.SUCCEEDED
    assert payment.order.state == Order.State.PAID
    assert payment.changes.last().source == "reconcile"


def test_shop_closed_without_keys(client, shop, settings, make_public_photo):
    settings.STRIPE_SECRET_KEY = settings.STRIPE_PUBLISHABLE_KEY = ""
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    response = client.get(reverse("commerce:checkout", kwargs={"slug": shop.event.slug}))
    assert response.status_code == 503
    assert not Order.objects.exists()
