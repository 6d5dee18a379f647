"""Discount codes: finding the code a buyer typed, and whether it may still be used.

The amount is computed with the rest of the price, in ``commerce.pricing``.

When a use counts: at payment, never at checkout. ``Order.mark_paid`` adds one to
``used_count`` in the same conditional update that makes the order paid, so a paid
order counts exactly once (a webhook sent twice, the order page and reconciliation
racing each other) and an abandoned or declined payment uses nothing.

So that the last uses of a limited code are not promised to more buyers than it has
left, a checkout *holds* a use while its payment is open: an order waiting for payment,
younger than ``HOLD``, with a payment neither failed nor canceled. A declined card
frees its hold at once; an abandoned checkout frees it after ``HOLD``. Checkouts lock
the code's row while they count, so two buyers cannot both take its last use. A held
order paid after its hold lapsed, when someone else took the use meanwhile, keeps
the price it was charged and is counted (logged): the buyer paid what we showed.
"""

import datetime
import logging

from django.db.models import F, Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from commerce.models import Cart, DiscountCode, Order, Payment

logger = logging.getLogger(__name__)

# How long an unpaid checkout keeps one use of a limited code for its buyer.
HOLD = datetime.timedelta(minutes=30)
MAX_LENGTH = 40


class DiscountRefused(Exception):
    """A code that cannot be used, with the reason for the buyer."""


def normalise(raw: str) -> str:
    """Codes are compared in capitals, without surrounding spaces."""
    return (raw or "").strip().upper()


def below_minimum(code: DiscountCode, currency: str) -> str:
    return _("The code %(code)s needs an order of at least %(minimum)s %(currency)s.") % {
        "code": code.code, "minimum": formats.number_format(code.minimum_total, 2),
        "currency": currency}


def held_uses(code: DiscountCode, *, for_cart: Cart | None = None, now=None) -> int:
    """Uses held by other buyers' open checkouts (see the module's note)."""
    now = now or timezone.now()
    open_payment = Q(payments__state__in=[Payment.State.CREATED, Payment.State.PROCESSING])
    orders = Order.objects.filter(open_payment, discount_code=code, state=Order.State.PENDING,
                                  created_at__gte=now - HOLD)
    if for_cart is not None:
        orders = orders.exclude(cart=for_cart)
    return orders.distinct().count()


def refusal(code: DiscountCode, *, for_cart: Cart | None = None, now=None) -> str:
    """Why ``code`` cannot be used now, or "" when it can (its minimum is pricing's)."""
    now = now or timezone.now()
    if not code.is_active:
        return _("The code %(code)s is no longer valid.") % {"code": code.code}
    if code.valid_until is not None and code.valid_until <= now:
        return _("The code %(code)s expired on %(date)s.") % {
            "code": code.code,
            "date": formats.date_format(timezone.localtime(code.valid_until), "DATETIME_FORMAT")}
    if code.max_uses is not None:
        if code.used_count + held_uses(code, for_cart=for_cart, now=now) >= code.max_uses:
            return _("The code %(code)s has already been used as many times as it allows.") % {
                "code": code.code}
    return ""


def find(shop, raw: str) -> DiscountCode:
    """The shop's code typed as ``raw``; DiscountRefused when there is none."""
    typed = normalise(raw)
    if not typed:
        raise DiscountRefused(_("Type a discount code."))
    code = (DiscountCode.objects.filter(shop=shop, code=typed).first()
            if len(typed) <= MAX_LENGTH else None)
    if code is None:
        raise DiscountRefused(_("The code %(code)s does not exist for this event.") % {
            "code": typed[:MAX_LENGTH]})
    return code


def enter(cart: Cart, shop, raw: str, subtotal) -> DiscountCode:
    """Put the code typed as ``raw`` on ``cart``, or refuse it with the reason."""
    if shop.is_free:
        raise DiscountRefused(_("Photos of this event are free: no code is needed."))
    code = find(shop, raw)
    reason = refusal(code, for_cart=cart)
    if not reason and code.minimum_total is not None and subtotal < code.minimum_total:
        reason = below_minimum(code, shop.currency)
    if reason:
        raise DiscountRefused(reason)
    Cart.objects.filter(pk=cart.pk).update(discount_code=code)
    cart.discount_code = code
    return code


def remove(cart: Cart) -> None:
    Cart.objects.filter(pk=cart.pk).update(discount_code=None)
    cart.discount_code = None


def for_cart(cart: Cart | None) -> tuple[DiscountCode | None, str]:
    """The cart's code if it may be used now, and why not otherwise."""
    if cart is None or cart.discount_code_id is None:
        return None, ""
    code = cart.discount_code
    reason = refusal(code, for_cart=cart)
    return (None, reason) if reason else (code, "")


def lock(cart: Cart) -> None:
    """Checkout: take the row lock of the cart's code, so checkouts count its uses one at a time."""
    if cart.discount_code_id is not None:
        cart.discount_code = DiscountCode.objects.select_for_update().get(pk=cart.discount_code_id)


def count_use(order: Order) -> None:
    """One more use of the order's code; called once, when the order becomes paid.

    The conditional update stays within the limit; a held order paid after its hold
    lapsed, when the last use went to someone else meanwhile, is counted all the same
    (the buyer paid the price we showed) and logged for the organiser.
    """
    if order.discount_code_id is None:
        return
    within_limit = Q(max_uses=None) | Q(used_count__lt=F("max_uses"))
    codes = DiscountCode.objects.filter(pk=order.discount_code_id)
    if not codes.filter(within_limit).update(used_count=F("used_count") + 1):
        codes.update(used_count=F("used_count") + 1)
        logger.warning("Discount code %s used past its limit by order %s (paid after its hold "
                       "lapsed)", order.discount_code_id, order.pk)
