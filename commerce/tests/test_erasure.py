"""An erased runner's orders are kept for accounting, without the runner (issue 5's note)."""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from accounts import privacy
from accounts.models import BibClaim
from accounts.tests.factories import UserFactory
from commerce.downloads import WHOLE_ORDER, link
from commerce.models import Cart, Order
from commerce.tests.conftest import add, deliver, pay_with_card, signed_event, start_checkout
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def buy(client, shop, stripe_local, webhook_endpoint, photo, email) -> Order:
    add(client, shop.event, photo=photo.pk)
    payment = start_checkout(client, shop.event, email=email).context["payment"]
    intent = pay_with_card(stripe_local, payment)
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_erasure_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    return Order.objects.get(pk=payment.order_id)


def test_erasure_anonymises_the_runners_orders_and_revokes_their_links(
        client, shop, stripe_local, webhook_endpoint, make_public_photo):
    runner = UserFactory(email="Rita@example.org")
    privacy.claim_bib(runner, shop.event, "77", BibClaim.FaceSearch.UNDECIDED)
    photo = make_public_photo(shop.event, bib="77")
    client.force_login(runner)
    signed_in = buy(client, shop, stripe_local, webhook_endpoint, photo, "rita@example.org")
    add(client, shop.event, photo=make_public_photo(shop.event).pk)  # a cart left behind
    guest = buy(Client(), shop, stripe_local, webhook_endpoint, photo, "RITA@example.org")
    stranger = buy(Client(), shop, stripe_local, webhook_endpoint, photo, "someone@example.org")
    elsewhere = Order.objects.create(event=EventFactory(), user=runner, email=runner.email,
                                     currency="EUR", total=Decimal("9.00"), vat_rate=Decimal("20"),
                                     vat_amount=Decimal("1.50"), state=Order.State.PAID)
    old_links = [link(order, photo.pk) for order in (signed_in, guest)] + [link(signed_in, WHOLE_ORDER)]
    old_pages = [reverse("commerce:order", kwargs={"token": o.token}) for o in (signed_in, guest)]
    before = {o.pk: (o.total, o.vat_amount, o.paid_at, o.created_at, o.state,
                     list(o.items.values_list("photo_id", "bib", "price")),
                     list(o.payments.values_list("amount", "state", "provider_reference")))
              for o in (signed_in, guest)}

    for record in privacy.request_erasure(runner):
        privacy.erase(record)

    for order in (signed_in, guest):
        order.refresh_from_db()
        assert order.email == f"erased-{order.pk}@erased.invalid"
        assert order.user is None and order.cart is None and order.anonymised_at is not None
        assert before[order.pk] == (order.total, order.vat_amount, order.paid_at, order.created_at,
                                    order.state,
                                    list(order.items.values_list("photo_id", "bib", "price")),
                                    list(order.payments.values_list("amount", "state",
                                                                    "provider_reference")))
    anonymous = Client()
    assert [anonymous.get(url).status_code for url in old_links] == [403, 403, 403]
    assert [anonymous.get(url).status_code for url in old_pages] == [404, 404]
    # Even a link signed afresh for an anonymised order opens nothing.
    assert anonymous.get(link(signed_in, photo.pk)).status_code == 403
    assert not Cart.objects.filter(user=runner, event=shop.event).exists()
    # Someone else's order at the event, and the runner's order at an event not erased, stay.
    stranger.refresh_from_db()
    elsewhere.refresh_from_db()
    assert stranger.email == "someone@example.org" and stranger.anonymised_at is None
    assert elsewhere.user == runner and elsewhere.anonymised_at is None
    assert anonymous.get(link(stranger, photo.pk)).status_code == 200


def test_erasing_twice_changes_nothing_more(shop):
    runner = UserFactory(email="twice@example.org")
    privacy.claim_bib(runner, shop.event, "12", BibClaim.FaceSearch.UNDECIDED)
    order = Order.objects.create(event=shop.event, user=runner, email=runner.email, currency="EUR",
                                 total=Decimal("9.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("1.50"), state=Order.State.PAID)
    (record,) = privacy.request_erasure(runner)
    privacy.erase(record)
    order.refresh_from_db()
    token, when = order.token, order.anonymised_at
    privacy.erase(record)
    order.refresh_from_db()
    assert (order.token, order.anonymised_at) == (token, when)
