"""Refunds against a real localstripe: from the admin, from Stripe's dashboard (webhooks),
both at once, concurrently, and what each takes back from the downloads."""

import io
import threading
import zipfile
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.urls import reverse

from commerce import refunds
from commerce.downloads import WHOLE_ORDER, link
from commerce.models import Order, Refund
from commerce.tests.conftest import add, deliver, pay_with_card, signed_event, start_checkout

pytestmark = pytest.mark.django_db


def paid_order(client, shop, stripe_local, webhook_endpoint, photos=(), bib=None) -> Order:
    for photo in photos:
        add(client, shop.event, photo=photo.pk)
    if bib:
        add(client, shop.event, bib=bib)
    response = start_checkout(client, shop.event)
    assert response.status_code == 200, response.content
    payment = response.context["payment"]
    intent = pay_with_card(stripe_local, payment)
    assert intent.status == "succeeded"
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_paid_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    order = Order.objects.get(pk=payment.order_id)
    assert order.is_paid
    return order


def stripe_refunds(stripe_local, order):
    intent = order.payments.get().provider_reference
    listed = stripe_local.client().v1.refunds.list(params={"payment_intent": intent})
    return [(refund.id, refund.amount) for refund in listed.data]


def charge_of(stripe_local, order):
    intent = stripe_local.client().v1.payment_intents.retrieve(order.payments.get().provider_reference)
    return intent.latest_charge


def refund_page(order):
    return reverse("admin:commerce_order_refund", args=[order.pk])


def status(client, url) -> int:
    return client.get(url).status_code


@pytest.fixture
def owner(shop, named_people):
    return named_people(shop.event)["owner"]


def test_refunded_amount_of_an_order_without_refunds_is_zero(shop):
    order = Order.objects.create(event=shop.event, email="r@example.org", currency="EUR",
                                 total=Decimal("9.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("1.50"), state=Order.State.PAID)
    assert refunds.refunded_amount(order) == Decimal("0.00")
    assert refunds.refunded_amounts(Order.objects.all()) == {}


def test_full_refund_from_the_admin_closes_every_link(client, shop, stripe_local, webhook_endpoint,
                                                      make_public_photo, owner):
    photos = [make_public_photo(shop.event) for _ in range(2)]
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=photos)
    links = [link(order, photo.pk) for photo in photos] + [link(order, WHOLE_ORDER)]
    assert [status(client, url) for url in links] == [200, 200, 200]

    client.force_login(owner)
    page = client.get(refund_page(order))
    assert page.status_code == 200 and page.context["left"] == Decimal("18.00")
    response = client.post(refund_page(order), {"what": "everything", "reason": "Wrong runner"})
    assert response.status_code == 302, response.context["form"].errors

    refund = order.refunds.get()
    assert (refund.amount, refund.state, refund.requested_by) == (Decimal("18.00"), "succeeded", owner)
    assert refund.reason == "Wrong runner"
    assert stripe_refunds(stripe_local, order) == [(refund.provider_reference, 1800)]
    assert [(c.from_state, c.to_state, c.source) for c in refund.changes.all()] == [
        ("", "succeeded", "admin olivier-owner")]
    assert LogEntry.objects.filter(object_id=str(order.pk),
                                   change_message__contains=refund.provider_reference).exists()
    assert refunds.refunded_amount(order) == Decimal("18.00") and refunds.is_fully_refunded(order)
    client.logout()
    assert [status(client, url) for url in links] == [403, 403, 403]
    order_page = client.get(reverse("commerce:order", kwargs={"token": order.token}))
    assert order_page.context["photo_links"] == [] and order_page.context["fully_refunded"]
    # Nothing is left: the page says so and a second refund is refused before Stripe.
    client.force_login(owner)
    assert client.get(refund_page(order)).context["left"] == Decimal("0.00")
    with pytest.raises(refunds.RefundRefused):
        refunds.refund(order, provider=stripe_local, amount=Decimal("1.00"))
    assert len(stripe_refunds(stripe_local, order)) == 1


def test_an_item_refund_takes_back_only_its_photo(client, shop, stripe_local, webhook_endpoint,
                                                  make_public_photo, owner):
    photos = [make_public_photo(shop.event) for _ in range(3)]
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=photos)
    assert order.total == Decimal("19.00")  # the 3-pack, spread 6.34 + 6.33 + 6.33
    item = order.items.get(photo=photos[1])
    client.force_login(owner)
    response = client.post(refund_page(order), {"what": "items", "items": [item.pk]})
    assert response.status_code == 302
    assert refunds.refunded_amount(order) == item.price == Decimal("6.33")
    assert not refunds.is_fully_refunded(order)
    client.logout()
    assert [status(client, link(order, photo.pk)) for photo in photos] == [200, 403, 200]
    archive = client.get(link(order, WHOLE_ORDER))
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    assert [name.split("-")[0] for name in names] == [str(photos[0].pk), str(photos[2].pk)]
    # The same item cannot be refunded twice.
    with pytest.raises(refunds.RefundRefused, match="déjà été remboursés"):
        refunds.refund(order, provider=stripe_local, item_ids=[item.pk])


def test_a_bundle_refund_takes_the_photos_it_made_free(client, shop, stripe_local,
                                                      webhook_endpoint, make_public_photo):
    in_bundle = make_public_photo(shop.event, bib="77")
    other = make_public_photo(shop.event)
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[in_bundle, other], bib="77")
    assert order.total == Decimal("34.00")  # bundle 25 + one photo 9; the bib's photo is free
    bundle = order.items.get(bib="77")
    made = refunds.refund(order, provider=stripe_local, item_ids=[bundle.pk])
    assert made.amount == Decimal("25.00")
    assert sorted(made.items.values_list("pk", flat=True)) == sorted(
        [bundle.pk, order.items.get(photo=in_bundle).pk])
    assert status(client, link(order, in_bundle.pk)) == 403
    assert status(client, link(order, other.pk)) == 200


def test_an_amount_refund_keeps_downloads_and_is_capped(client, shop, stripe_local,
                                                        webhook_endpoint, make_public_photo):
    photo = make_public_photo(shop.event)
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    refunds.refund(order, provider=stripe_local, amount=Decimal("4.00"), reason="goodwill")
    assert status(client, link(order, photo.pk)) == 200
    with pytest.raises(refunds.RefundRefused, match="5.00 EUR"):
        refunds.refund(order, provider=stripe_local, amount=Decimal("5.01"))
    assert [amount for _id, amount in stripe_refunds(stripe_local, order)] == [400]
    with pytest.raises(refunds.RefundRefused):
        refunds.refund(order, provider=stripe_local, amount=Decimal("0"))
    refunds.refund(order, provider=stripe_local, amount=Decimal("5.00"))
    assert refunds.refunded_amount(order) == Decimal("9.00")
    assert status(client, link(order, photo.pk)) == 403


def test_the_admin_form_refuses_an_amount_above_what_is_left(client, shop, stripe_local,
                                                             webhook_endpoint, make_public_photo, owner):
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[make_public_photo(shop.event)])
    client.force_login(owner)
    response = client.post(refund_page(order), {"what": "amount", "amount": "9.50"})
    assert response.status_code == 400
    assert "9.00 EUR" in " ".join(response.context["form"].non_field_errors())
    response = client.post(refund_page(order), {"what": "items"})
    assert response.status_code == 400 and response.context["form"].errors["items"]
    assert not Refund.objects.exists() and stripe_refunds(stripe_local, order) == []


def test_a_dashboard_refund_arrives_by_webhook_and_counts_once(client, shop, stripe_local,
                                                              webhook_endpoint, make_public_photo):
    photo = make_public_photo(shop.event)
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    # Made in Stripe's dashboard: we only hear of it through the webhook.
    stripe_local.client().v1.refunds.create(
        params={"payment_intent": order.payments.get().provider_reference, "amount": 300})
    body, signature = signed_event("charge.refunded", charge_of(stripe_local, order), "evt_refund_1")
    for _delivery in range(2):  # Stripe may send an event twice
        assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    refund = order.refunds.get()
    assert (refund.amount, refund.state, refund.requested_by) == (Decimal("3.00"), "succeeded", None)
    assert refund.changes.get().source == "webhook evt_refund_1"
    assert refunds.refunded_amount(order) == Decimal("3.00")
    assert status(client, link(order, photo.pk)) == 200  # a partial amount keeps the photo


def test_an_admin_refund_reported_again_by_webhook_counts_once(client, shop, stripe_local,
                                                               webhook_endpoint, make_public_photo):
    photo = make_public_photo(shop.event)
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    made = refunds.refund(order, provider=stripe_local, item_ids=[order.items.get().pk])
    charge = charge_of(stripe_local, order)
    body, signature = signed_event("charge.refunded", charge, "evt_refund_admin")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    # A late "updated" event carrying an older state changes nothing: Stripe's answer now wins.
    stale = {**stripe_local.client().v1.refunds.retrieve(made.provider_reference).to_dict(),
             "status": "pending"}
    body, signature = signed_event("charge.refund.updated", stale, "evt_refund_stale")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    assert list(Refund.objects.values_list("provider_reference", "state")) == [
        (made.provider_reference, "succeeded")]
    assert made.changes.count() == 1
    assert refunds.refunded_amount(order) == Decimal("9.00")


def test_a_refund_whose_write_was_lost_is_recovered_with_its_items(client, shop, stripe_local,
                                                                  webhook_endpoint, make_public_photo):
    """Stripe made an admin refund but our write after its answer was lost: the webhook
    records it, and the items its metadata names lose their downloads."""
    photos = [make_public_photo(shop.event) for _ in range(2)]
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=photos)
    item = order.items.get(photo=photos[0])
    stripe_local.client().v1.refunds.create(params={
        "payment_intent": order.payments.get().provider_reference, "amount": 900,
        "metadata": {"order": str(order.pk), "items": str(item.pk)}})
    body, signature = signed_event("charge.refunded", charge_of(stripe_local, order), "evt_lost")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    assert list(order.refunds.get().items.all()) == [item]
    assert [status(client, link(order, photo.pk)) for photo in photos] == [403, 200]


def test_two_refunds_at_once_cannot_give_back_more_than_was_paid(
        client, shop, stripe_local, webhook_endpoint, make_public_photo, transactional_db):
    order = paid_order(client, shop, stripe_local, webhook_endpoint,
                       photos=[make_public_photo(shop.event) for _ in range(3)])
    start = threading.Barrier(2)
    outcomes = []

    def refund_most():
        try:
            start.wait()
            refunds.refund(order, provider=stripe_local, amount=Decimal("15.00"))
            outcomes.append("refunded")
        except refunds.RefundRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=refund_most) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refunded", "refused"]
    assert [amount for _id, amount in stripe_refunds(stripe_local, order)] == [1500]
    assert refunds.refunded_amount(order) == Decimal("15.00")


def test_a_failed_refund_gives_the_downloads_back(client, shop, stripe_local, webhook_endpoint,
                                                  make_public_photo):
    """localstripe's refunds always succeed; Stripe's can fail later (charge.refund.updated)."""
    photo = make_public_photo(shop.event)
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[photo])
    made = refunds.refund(order, provider=stripe_local, item_ids=[order.items.get().pk])
    assert status(client, link(order, photo.pk)) == 403
    refunds._record(order, made.payment, {"id": made.provider_reference, "status": "failed"},
                    source="webhook evt_failed")
    made.refresh_from_db()
    assert made.state == "failed"
    assert [(c.from_state, c.to_state) for c in made.changes.all()] == [("", "succeeded"),
                                                                        ("succeeded", "failed")]
    assert refunds.refunded_amount(order) == Decimal("0.00")
    assert status(client, link(order, photo.pk)) == 200


def test_an_unpaid_order_cannot_be_refunded(client, shop, stripe_local, make_public_photo, owner):
    add(client, shop.event, photo=make_public_photo(shop.event).pk)
    order = start_checkout(client, shop.event).context["order"]
    with pytest.raises(refunds.RefundRefused):
        refunds.refund(order, provider=stripe_local, amount=Decimal("1.00"))
    client.force_login(owner)
    page = client.get(reverse("admin:commerce_order_change", args=[order.pk]))
    assert not page.context["can_refund"]


def test_only_the_event_organisers_and_admins_refund(client, shop, stripe_local, webhook_endpoint,
                                                     make_public_photo, named_people):
    order = paid_order(client, shop, stripe_local, webhook_endpoint, photos=[make_public_photo(shop.event)])
    people = named_people(shop.event)
    answers = {}
    for name in ("runner", "photographer", "staff", "owner", "admin"):
        client.force_login(people[name])
        answers[name] = status(client, refund_page(order))
    # Not staff: the admin's sign-in; the event's photographer and another event's
    # organiser: no such order for them (a row outside their scope does not exist).
    assert answers == {"runner": 302, "photographer": 404, "staff": 404, "owner": 200, "admin": 200}
    client.force_login(people["photographer"])
    client.post(refund_page(order), {"what": "everything"})
    assert not Refund.objects.exists()
    client.force_login(people["owner"])
    change_page = client.get(reverse("admin:commerce_order_change", args=[order.pk]))
    assert change_page.context["can_refund"]
    assert refund_page(order) in change_page.content.decode()
