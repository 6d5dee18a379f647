"""Discount codes against a real localstripe: entered in the cart, priced on the server,
counted once per paid order, never by an abandoned or declined payment."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from commerce import discounts
from commerce.models import DiscountCode, Order, Payment
from commerce.tests.conftest import DECLINED_CARD, add, deliver, pay_with_card, signed_event, start_checkout

pytestmark = pytest.mark.django_db


def _code(shop, **fields):
    fields = {"code": "MARATHON20", "kind": DiscountCode.Kind.PERCENT, "value": Decimal("20"),
              **fields}
    return DiscountCode.objects.create(shop=shop, **fields)


def _enter(client, event, code):
    return client.post(reverse("commerce:discount", kwargs={"slug": event.slug}), {"code": code},
                       follow=True)


def _cart(client, event):
    return client.get(reverse("commerce:cart", kwargs={"slug": event.slug})).context["view"]


def _pay(client, stripe_local, webhook_endpoint, payment, card=None):
    intent = pay_with_card(stripe_local, payment, *([card] if card else []))
    kind = "payment_intent.succeeded" if intent.status == "succeeded" else "payment_intent.payment_failed"
    body, signature = signed_event(kind, intent, f"evt_{intent.status}_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    return intent


def test_a_code_is_applied_on_the_server_shown_on_the_receipt_and_counted_once(
        client, shop, stripe_local, webhook_endpoint, make_public_photo):
    code = _code(shop)
    for _ in range(3):
        add(client, shop.event, photo=make_public_photo(shop.event).pk)
    page = _enter(client, shop.event, "  marathon20 ")  # any case, spaces around
    assert "Code de réduction MARATHON20 appliqué." in page.content.decode()
    view = page.context["view"]
    # 3 photos for 19.00, 20 % off: 3.80; the lines still add up to the total.
    assert (view.quote.subtotal, view.quote.discount, view.quote.total) == (
        Decimal("19.00"), Decimal("3.80"), Decimal("15.20"))
    assert view.quote.vat == Decimal("2.53")
    assert "−3,80 EUR" in page.content.decode()

    response = start_checkout(client, shop.event)
    order = response.context["order"]
    assert (order.total, order.discount_amount, order.discount_code) == (
        Decimal("15.20"), Decimal("3.80"), code)
    assert sum(item.price for item in order.items.all()) == Decimal("15.20")
    assert response.context["payment"].amount == Decimal("15.20")
    code.refresh_from_db()
    assert code.used_count == 0  # not at checkout

    payment = response.context["payment"]
    intent = _pay(client, stripe_local, webhook_endpoint, payment)
    assert intent.amount == 1520
    # The same news three more times: the webhook again, the order page, reconciliation.
    body, signature = signed_event("payment_intent.succeeded", intent, "evt_again")
    deliver(client, webhook_endpoint, body, signature)
    receipt = client.get(reverse("commerce:order", kwargs={"token": order.token}))
    from django.core.management import call_command

    call_command("reconcile_payments")
    code.refresh_from_db()
    assert code.used_count == 1
    assert "Code de réduction MARATHON20\u00a0: −3,80 EUR sur 19,00 EUR." in receipt.content.decode()
    assert len(mail.outbox) == 1
    assert "Code de réduction MARATHON20\u00a0: −3,80 EUR sur 19,00 EUR." in mail.outbox[0].body


def test_a_fixed_code_never_costs_less_than_nothing_and_a_free_order_counts_its_use(
        client, shop, stripe_local, make_public_photo):
    code = _code(shop, code="OFFERT", kind=DiscountCode.Kind.FIXED, value=Decimal("50"))
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    view = _enter(client, shop.event, "offert").context["view"]
    assert (view.quote.discount, view.quote.total) == (Decimal("9.00"), Decimal("0.00"))
    response = start_checkout(client, shop.event)
    order = Order.objects.get()
    assert response.status_code == 302 and order.is_paid and not order.payments.exists()
    code.refresh_from_db()
    assert code.used_count == 1


@pytest.mark.parametrize(("fields", "typed", "message"), [
    ({}, "NOPE", "Le code NOPE n’existe pas pour cet événement."),
    ({"valid_until": timezone.now() - datetime.timedelta(minutes=1)}, "MARATHON20",
     "Le code MARATHON20 a expiré le"),
    ({"is_active": False}, "MARATHON20", "Le code MARATHON20 n’est plus valable."),
    ({"max_uses": 2, "used_count": 2}, "MARATHON20",
     "Le code MARATHON20 a déjà été utilisé autant de fois qu’il le permet."),
    ({"minimum_total": Decimal("20")}, "MARATHON20",
     "Le code MARATHON20 demande une commande d’au moins 20,00 EUR."),
])
def test_a_code_that_cannot_be_used_is_refused_with_its_reason(client, shop, make_public_photo,
                                                               fields, typed, message):
    _code(shop, **fields)
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    page = _enter(client, shop.event, typed)
    assert message in page.content.decode()
    view = page.context["view"]
    assert view.cart.discount_code is None and view.quote.total == Decimal("9.00")


def test_a_code_of_another_event_does_not_exist_here(client, shop, make_public_photo):
    from commerce.models import Shop
    from events.tests.factories import EventFactory

    _code(Shop.objects.create(event=EventFactory()), code="AILLEURS")
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    assert "Le code AILLEURS n’existe pas" in _enter(client, shop.event, "AILLEURS").content.decode()


def test_a_code_that_stops_applying_is_shown_and_the_checkout_asks_again(
        client, shop, stripe_local, make_public_photo):
    code = _code(shop, minimum_total=Decimal("15"))
    photos = [make_public_photo(shop.event) for _ in range(2)]
    for photo in photos:
        add(client, shop.event, photo=photo.pk)
    view = _enter(client, shop.event, "MARATHON20").context["view"]
    assert view.quote.total == Decimal("14.40")  # 18.00 - 20 %
    # The buyer takes a photo out: under the minimum, the code stays but does not apply.
    client.post(reverse("commerce:remove", kwargs={"slug": shop.event.slug}),
                {"item": view.items[0].pk})
    view = _cart(client, shop.event)
    assert view.quote.total == Decimal("9.00") and view.cart.discount_code == code
    assert "demande une commande d’au moins 15,00 EUR" in view.discount_error
    add(client, shop.event, photo=photos[0].pk)
    assert _cart(client, shop.event).quote.total == Decimal("14.40")
    # It expires between the page and the payment: the new total is shown, nothing charged.
    DiscountCode.objects.filter(pk=code.pk).update(valid_until=timezone.now())
    response = start_checkout(client, shop.event, total="14.40")
    assert response.status_code == 409 and not Order.objects.exists()
    assert response.context["view"].quote.total == Decimal("18.00")
    assert "a expiré le" in response.content.decode()


def test_the_code_can_be_removed(client, shop, make_public_photo):
    _code(shop)
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    _enter(client, shop.event, "MARATHON20")
    client.post(reverse("commerce:discount", kwargs={"slug": shop.event.slug}), {"remove": "1"})
    view = _cart(client, shop.event)
    assert view.cart.discount_code is None and view.quote.total == Decimal("9.00")


def test_an_empty_cart_takes_no_code(client, shop):
    _code(shop)
    page = _enter(client, shop.event, "MARATHON20")
    assert "Votre panier est vide." in page.content.decode()


def test_a_declined_payment_uses_nothing_and_frees_its_hold_at_once(
        client, shop, stripe_local, webhook_endpoint, make_public_photo):
    code = _code(shop, max_uses=1)
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    _enter(client, shop.event, "MARATHON20")
    payment = start_checkout(client, shop.event).context["payment"]
    # While the first buyer pays, the last use is theirs.
    other = Client()
    add(other, shop.event, photo=make_public_photo(shop.event).pk)
    assert "autant de fois" in _enter(other, shop.event, "MARATHON20").content.decode()
    _pay(client, stripe_local, webhook_endpoint, payment, DECLINED_CARD)
    payment.refresh_from_db()
    assert payment.state == Payment.State.FAILED
    code.refresh_from_db()
    assert code.used_count == 0
    assert "appliqué" in _enter(other, shop.event, "MARATHON20").content.decode()


def test_an_abandoned_checkout_uses_nothing_and_its_hold_lapses(
        client, shop, stripe_local, make_public_photo):
    code = _code(shop, max_uses=1)
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    _enter(client, shop.event, "MARATHON20")
    order = start_checkout(client, shop.event).context["order"]
    other = Client()
    add(other, shop.event, photo=make_public_photo(shop.event).pk)
    assert "autant de fois" in _enter(other, shop.event, "MARATHON20").content.decode()
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - discounts.HOLD - datetime.timedelta(seconds=1))
    assert "appliqué" in _enter(other, shop.event, "MARATHON20").content.decode()
    code.refresh_from_db()
    assert code.used_count == 0


def test_two_buyers_checking_out_the_last_use_at_once_get_it_once(
        shop, stripe_local, make_public_photo, transactional_db):
    code = _code(shop, max_uses=1)
    buyers = []
    for _ in range(2):
        buyer = Client()
        add(buyer, shop.event, photo=make_public_photo(shop.event).pk)
        assert "appliqué" in _enter(buyer, shop.event, "MARATHON20").content.decode()
        buyers.append(buyer)
    results = []

    def submit(buyer):
        try:
            results.append(start_checkout(buyer, shop.event, total="7.20").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=[buyer]) for buyer in buyers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One checkout holds the use; the other is shown the full price (409), nothing made.
    assert sorted(results) == [200, 409]
    assert list(Order.objects.values_list("discount_code", "total")) == [(code.pk, Decimal("7.20"))]
    assert Payment.objects.count() == 1


def test_paid_past_a_lapsed_hold_keeps_its_price_and_counts(db, shop):
    """The buyer paid what was shown: counted, the code then says it is used up."""
    code = _code(shop, max_uses=1, used_count=1)
    order = Order.objects.create(event=shop.event, email="r@example.org", currency="EUR",
                                 total=Decimal("7.20"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("1.20"), discount_code=code,
                                 discount_amount=Decimal("1.80"))
    order.mark_paid()
    order.mark_paid()  # a second caller changes nothing
    code.refresh_from_db()
    assert code.used_count == 2 and order.is_paid
    assert "autant de fois" in discounts.refusal(code)


def test_guest_code_follows_the_cart_at_sign_in(client, shop, make_public_photo):
    from accounts.tests.factories import UserFactory

    code = _code(shop)
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    _enter(client, shop.event, "MARATHON20")
    user = UserFactory(username="camille")
    from commerce.services import merge_carts_at_sign_in

    # What allauth's user_logged_in signal does with the guest's session.
    request = type("Request", (), {"session": client.session})()
    merge_carts_at_sign_in(request, user)
    assert user.carts.get().discount_code == code
