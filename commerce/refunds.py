"""Refunds: full or partial, per item or an amount, and the downloads they take back.

A refund reaches us in one of two ways:

- from the admin (:func:`refund`): we ask Stripe and record the refund from the API's
  answer, at once (localstripe sends no webhook for refunds, and Stripe's may come late
  or never);
- from Stripe's dashboard: the ``charge.refunded`` and ``charge.refund.updated``
  webhooks (:func:`sync_refunds`), which ask Stripe for the payment's refunds and record
  those we do not know yet, and the state changes of those we do.

Both hold a lock on the order's row while they ask Stripe and write, and a refund's
Stripe id is unique: a refund reported both ways is one row, counted once, and two
refunds at once cannot give back more than was paid (the second waits, then sees the
first). Stripe would refuse an over-refund too, but localstripe accepts one, so the cap
is ours. Every state a refund takes is logged (``RefundStateChange``), like payments'.

What a refund takes back: the items it names (a bundle with the photos it made free);
once everything paid is refunded, the whole order (every link of it answers 403). An
amount refunded without items (a gesture, or a partial refund made in the dashboard)
leaves the downloads open.
"""

import logging
from decimal import Decimal

import stripe
from django.db import transaction
from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from commerce.models import ZERO, Order, OrderItem, Payment, Refund, RefundStateChange
from commerce.pricing import CENT

logger = logging.getLogger(__name__)

# Stripe's refund statuses; "requires_action" is money on its way back, like "pending".
STRIPE_REFUND_STATES = {
    "pending": Refund.State.PENDING,
    "requires_action": Refund.State.PENDING,
    "succeeded": Refund.State.SUCCEEDED,
    "failed": Refund.State.FAILED,
    "canceled": Refund.State.CANCELED,
}


class RefundRefused(Exception):
    """A refund the shop will not make, with a message for the person who asked."""


# --- What was paid and given back ------------------------------------------------------


def refunded_amount(order: Order) -> Decimal:
    """The money given back on ``order`` (refunds pending or done at Stripe), 0.00 if none.

    The one definition of "refunded" for everything that counts money (the sales reports
    included): a failed or canceled refund gave nothing back and does not count.
    """
    total = (Refund.objects.filter(order=order, state__in=Refund.COUNTED)
             .aggregate(total=Sum("amount"))["total"])
    return total or ZERO


def refunded_amounts(orders) -> dict[int, Decimal]:
    """:func:`refunded_amount` of many orders in one query: order id -> amount (orders
    with no refund are absent)."""
    rows = (Refund.objects.filter(order__in=orders, state__in=Refund.COUNTED)
            .values("order").annotate(total=Sum("amount")).values_list("order", "total"))
    return dict(rows)


def paid_amount(order: Order) -> Decimal:
    """What the buyer paid: the amounts of the order's succeeded payments."""
    total = (order.payments.filter(state=Payment.State.SUCCEEDED)
             .aggregate(total=Sum("amount"))["total"])
    return total or ZERO


def refundable_amount(order: Order) -> Decimal:
    return max(ZERO, paid_amount(order) - refunded_amount(order))


def is_fully_refunded(order: Order) -> bool:
    paid = paid_amount(order)
    return paid > 0 and refunded_amount(order) >= paid


def refunded_items(order: Order):
    """The order's items a counted refund took back."""
    return order.items.filter(refund__state__in=Refund.COUNTED)


# --- From the admin --------------------------------------------------------------------


def refund(order: Order, *, provider, item_ids=(), amount: Decimal | None = None,
           reason: str = "", by=None) -> Refund:
    """Give back the price of the items ``item_ids`` of ``order``, or ``amount``, through
    Stripe, and record it; RefundRefused (nothing asked of Stripe, nothing written) when
    the order was not paid, the items are not refundable or the amount is more than what
    is left to refund."""
    item_ids = sorted({int(pk) for pk in item_ids})
    if bool(item_ids) == (amount is not None):
        raise RefundRefused(_("Choose the items to refund, or an amount, not both."))
    if provider is None:
        raise RefundRefused(_("Payments are not configured on this site: nothing can be refunded."))
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        items = _refundable_items(order, item_ids) if item_ids else []
        if items:
            amount = sum((item.price for item in items), ZERO)
        amount = Decimal(amount).quantize(CENT)
        if amount <= 0:
            raise RefundRefused(_("There is no amount to refund: choose items that were "
                                  "charged, or enter an amount above zero."))
        left = refundable_amount(order)
        if amount > left:
            raise RefundRefused(
                _("At most %(amount)s %(currency)s can still be refunded on this order.")
                % {"amount": left, "currency": order.currency})
        payment = _payment_to_refund(order, amount)
        metadata = {"order": str(order.pk), "items": ",".join(str(item.pk) for item in items)}
        if reason:
            metadata["reason"] = reason[:500]
        try:
            answer = provider.client().v1.refunds.create(
                params={"payment_intent": payment.provider_reference,
                        "amount": int((amount * 100).to_integral_value()), "metadata": metadata},
                # A retry of this same refund (its first answer lost) is not made twice.
                options={"idempotency_key": f"racephoto-refund-{order.pk}-{order.refunds.count()}"})
        except stripe.StripeError as error:
            logger.exception("Stripe refused a refund of order %s", order.pk)
            raise RefundRefused(_("Stripe did not make the refund: %(message)s")
                                % {"message": error.user_message or str(error)}) from error
        who = getattr(by, "get_username", lambda: "")()
        return _record(order, payment, answer.to_dict(), source=f"admin {who}".strip(),
                       items=items, reason=reason, by=by)


def _refundable_items(order: Order, item_ids: list[int]) -> list[OrderItem]:
    from commerce.services import photos_of_bib

    items = list(order.items.filter(pk__in=item_ids).select_related("refund"))
    if len(items) != len(item_ids):
        raise RefundRefused(_("Some of the chosen items are not in this order."))
    if any(item.refund is not None and item.refund.counts for item in items):
        raise RefundRefused(_("Some of the chosen items were already refunded."))
    # A bundle takes back the photos of the cart it made free (their price is 0 in the order).
    covered: set[int] = set()
    for item in items:
        if item.bib:
            covered.update(photos_of_bib(order.event, item.bib))
    if covered:
        items += list(order.items.filter(photo_id__in=covered, price=ZERO)
                      .exclude(pk__in=item_ids)
                      .exclude(refund__state__in=Refund.COUNTED))
    return items


def _payment_to_refund(order: Order, amount: Decimal) -> Payment:
    """The succeeded payment that still holds ``amount`` (an order has one, almost always)."""
    for payment in order.payments.filter(state=Payment.State.SUCCEEDED).order_by("-pk"):
        given_back = (payment.refunds.filter(state__in=Refund.COUNTED)
                      .aggregate(total=Sum("amount"))["total"] or ZERO)
        if payment.amount - given_back >= amount:
            return payment
    raise RefundRefused(_("No single payment of this order holds that amount: refund it in "
                          "smaller parts."))


# --- From Stripe (webhooks) ------------------------------------------------------------


def sync_refunds(payment_intent_id: str, *, provider, source: str) -> list[Refund]:
    """Bring our refunds of PaymentIntent ``payment_intent_id`` up to date with Stripe's.

    Asks Stripe for the intent's refunds (the event's own copy may be partial or older
    than what we know) under the order's lock, so deliveries in any order, twice, or of a
    refund we made from the admin, each leave one row per Stripe refund.
    """
    payment = Payment.objects.filter(provider_reference=payment_intent_id).first()
    if payment is None:
        logger.warning("No payment for refunded PaymentIntent %s (%s)", payment_intent_id, source)
        return []
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=payment.order_id)
        listed = provider.client().v1.refunds.list(
            params={"payment_intent": payment_intent_id, "limit": 100})
        return [_record(order, payment, data.to_dict(), source=source,
                        items=_items_named_in(order, data.to_dict()))
                for data in listed.auto_paging_iter()]


def _items_named_in(order: Order, data: dict) -> list[OrderItem]:
    """The items an admin refund named in its metadata: when our write after Stripe's
    answer was lost, the webhook still takes the right items back."""
    metadata = data.get("metadata") or {}
    if metadata.get("order") != str(order.pk):
        return []
    ids = [int(pk) for pk in str(metadata.get("items", "")).split(",") if pk.strip().isdigit()]
    return list(order.items.filter(pk__in=ids).filter(
        Q(refund=None) | ~Q(refund__state__in=Refund.COUNTED)))


# --- Recording -------------------------------------------------------------------------


def _record(order: Order, payment: Payment, data: dict, *, source: str, items=(),
            reason: str = "", by=None) -> Refund:
    """The row of Stripe refund ``data`` (created, or its state brought up to date);
    the caller holds the order's lock."""
    state = STRIPE_REFUND_STATES.get(data.get("status"), Refund.State.PENDING)
    known = Refund.objects.filter(provider_reference=data["id"]).first()
    if known is not None:
        if known.state != state:
            _change_state(known, state, source)
        return known
    record = Refund.objects.create(
        order=order, payment=payment, provider_reference=data["id"],
        amount=(Decimal(data["amount"]) / 100).quantize(CENT),
        currency=str(data.get("currency") or order.currency).upper(), state=state,
        reason=(reason or (data.get("metadata") or {}).get("reason", ""))[:255], requested_by=by)
    RefundStateChange.objects.create(refund=record, from_state="", to_state=state,
                                     source=source[:255])
    if items:
        OrderItem.objects.filter(pk__in=[item.pk for item in items]).update(refund=record)
    logger.info("Refund %s of %s %s on order %s recorded (%s, %s item(s), %s)",
                record.provider_reference, record.amount, record.currency, order.pk, state,
                len(items), source)
    return record


def _change_state(record: Refund, state: str, source: str) -> None:
    RefundStateChange.objects.create(refund=record, from_state=record.state, to_state=state,
                                     source=source[:255])
    logger.info("Refund %s of order %s: %s -> %s (%s)", record.provider_reference,
                record.order_id, record.state, state, source)
    record.state = state
    record.save(update_fields=["state"])
