"""Carts, checkout and payment states: the writes of commerce, each in one transaction."""

import logging
import secrets
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from commerce import discounts, pricing
from commerce.models import Cart, CartItem, Order, OrderItem, Payment, PaymentStateChange, Shop
from mlpipeline.bibrules import canonical
from photos.models import BibTag
from search.gallery import public_photos
from search.services import SearchError, photo_ids_by_bib, photos_by_bib

logger = logging.getLogger(__name__)


class CommerceError(Exception):
    """A request the shop refuses, with a message for the buyer."""


# --- What is for sale -------------------------------------------------------------------


def shop_of(event) -> Shop | None:
    """The event's shop, when it sells something (a ladder, a bundle, or free downloads)."""
    shop = Shop.objects.filter(event=event).prefetch_related("packs").first()
    if shop is None or not (shop.is_free or shop.bundle_price is not None or shop.packs.all()):
        return None
    return shop


def single_photo_price(shop):
    pack = next((pack for pack in shop.packs.all() if pack.quantity == 1), None)
    return None if pack is None else pack.price


def photos_of_bib(event, bib: str) -> list[int]:
    """The public photos the "all my photos" bundle of ``bib`` covers today."""
    try:
        matched = [match.photo_id for match in photos_by_bib(event, bib)]
    except SearchError:
        return []
    return list(public_photos(event).filter(pk__in=matched).values_list("pk", flat=True))


def photos_of_bibs(event, bibs) -> dict[str, set[int]]:
    """:func:`photos_of_bib` for many bibs at once, in a fixed number of queries."""
    matched = photo_ids_by_bib(event, bibs)
    public = set(public_photos(event).filter(pk__in=set().union(*matched.values()))
                 .values_list("pk", flat=True))
    return {bib: ids & public for bib, ids in matched.items()}


def bibs_of_photos(photo_ids) -> dict[int, list[str]]:
    bibs: dict[int, list[str]] = {}
    tags = (BibTag.objects.filter(photo_id__in=photo_ids)
            .exclude(source=BibTag.Source.OCR, confirmed=False).values_list("photo_id", "bib"))
    for photo_id, bib in tags:
        bibs.setdefault(photo_id, [])
        if bib not in bibs[photo_id]:
            bibs[photo_id].append(bib)
    return bibs


# --- Carts -------------------------------------------------------------------------------


# A guest's carts are found by a random key kept in their session's data, which survives
# the new session key that signing in gives (the session key itself does not).
GUEST_KEY = "commerce_guest"


def _cart_filter(request, event) -> Q | None:
    if request.user.is_authenticated:
        return Q(event=event, user=request.user)
    if request.session.get(GUEST_KEY):
        return Q(event=event, user=None, session_key=request.session[GUEST_KEY])
    return None


def find_cart(request, event) -> Cart | None:
    lookup = _cart_filter(request, event)
    return None if lookup is None else Cart.objects.filter(lookup).first()


def get_or_create_cart(request, event) -> Cart:
    if not request.user.is_authenticated and not request.session.get(GUEST_KEY):
        request.session[GUEST_KEY] = secrets.token_urlsafe(24)
    cart = find_cart(request, event)
    if cart is not None:
        return cart
    fields = ({"user": request.user} if request.user.is_authenticated
              else {"session_key": request.session[GUEST_KEY]})
    try:
        with transaction.atomic():
            return Cart.objects.create(event=event, **fields)
    except IntegrityError:  # the same buyer's other request created it first
        return Cart.objects.get(event=event, **fields)


def add_photo(request, event, photo_id: int) -> CartItem:
    shop = shop_of(event)
    price = single_photo_price(shop) if shop else None
    if shop is None or (price is None and not shop.is_free):
        raise CommerceError(_("Photos of this event are not for sale."))
    photo = public_photos(event).filter(pk=photo_id).first()
    if photo is None:
        raise CommerceError(_("This photo is not available."))
    cart = get_or_create_cart(request, event)
    item, _created = CartItem.objects.get_or_create(
        cart=cart, photo=photo, defaults={"price_seen": price or pricing.ZERO})
    return item


def add_bundle(request, event, raw_bib: str) -> CartItem:
    shop = shop_of(event)
    if shop is None or (shop.bundle_price is None and not shop.is_free):
        raise CommerceError(_("This event offers no “all my photos” bundle."))
    bib = canonical(raw_bib or "")
    if not bib.isdigit() or len(bib) > 20:
        raise CommerceError(_("A bib number is made of digits only."))
    cart = get_or_create_cart(request, event)
    item, _created = CartItem.objects.get_or_create(
        cart=cart, bib=bib, defaults={"price_seen": shop.bundle_price or pricing.ZERO})
    return item


def remove_item(cart: Cart, item_id: int) -> None:
    cart.items.filter(pk=item_id).delete()


def swap_for_bundle(request, event, bib: str) -> None:
    """Put the bundle of ``bib`` in the cart and take out the photos it covers."""
    item = add_bundle(request, event, bib)
    item.cart.items.filter(photo_id__in=photos_of_bib(event, item.bib)).delete()


def merge_carts_at_sign_in(request, user) -> None:
    """Move the guest's carts of this session into the signed-in user's, event by event."""
    key = request.session.get(GUEST_KEY)
    if not key:
        return
    with transaction.atomic():
        for guest in Cart.objects.select_for_update().filter(user=None, session_key=key):
            own, _created = Cart.objects.get_or_create(event=guest.event, user=user)
            if guest.discount_code_id and not own.discount_code_id:
                Cart.objects.filter(pk=own.pk).update(discount_code=guest.discount_code_id)
            for item in guest.items.all():
                lookup = {"photo": item.photo} if item.photo_id else {"bib": item.bib}
                CartItem.objects.get_or_create(cart=own, **lookup,
                                               defaults={"price_seen": item.price_seen})
            guest.delete()


@dataclass
class CartView:
    cart: Cart | None
    shop: Shop | None
    items: list
    quote: pricing.Quote | None
    offers: list
    changed: list  # (item, price when added, price now)
    discount_error: str = ""  # why the code on the cart does not apply now


def describe_cart(cart: Cart | None, event) -> CartView:
    shop = shop_of(event)
    items = list(cart.items.select_related("photo")) if cart else []
    if shop is None or not items:
        return CartView(cart, shop, items, None, [], [])
    code, discount_error = discounts.for_cart(cart)
    current = quote_items(shop, event, items, discount=code)
    offers = pricing.bundle_offers(shop, current, bibs_of_photos(current.photo_ids),
                                   lambda bib: photos_of_bib(event, bib))
    single = single_photo_price(shop) or pricing.ZERO
    changed = []
    for item in items:
        now = (shop.bundle_price or pricing.ZERO) if item.is_bundle else single
        if shop.is_free:
            now = pricing.ZERO
        if now != item.price_seen:
            changed.append((item, item.price_seen, now))
    return CartView(cart, shop, items, current, offers, changed,
                    discount_error or current.discount_refused)


def quote_items(shop, event, items, discount=None) -> pricing.Quote:
    photo_ids = [item.photo_id for item in items if item.photo_id]
    bibs = [item.bib for item in items if item.bib]
    return pricing.quote(shop, photo_ids, bibs, lambda bib: photos_of_bib(event, bib),
                         discount=discount)


def accept_current_prices(cart: Cart, changed) -> None:
    for item, _before, now in changed:
        CartItem.objects.filter(pk=item.pk).update(price_seen=now)


# --- Payment states ----------------------------------------------------------------------


STRIPE_STATES = {
    "succeeded": Payment.State.SUCCEEDED,
    "processing": Payment.State.PROCESSING,
    "canceled": Payment.State.CANCELED,
    "requires_payment_method": Payment.State.FAILED,
}


def apply_payment_intent(intent: dict, source: str) -> Payment | None:
    """Bring our payment (and its order) to the state of Stripe's PaymentIntent ``intent``.

    Under a row lock on the payment, so two deliveries of the same news (webhook and
    reconciliation, or a webhook sent twice) cannot both act; a final state never
    changes again, so an old event delivered late changes nothing.
    """
    reference = intent["id"]
    with transaction.atomic():
        payment = (Payment.objects.select_for_update().select_related("order")
                   .filter(provider_reference=reference).first())
        if payment is None:
            logger.warning("No payment for PaymentIntent %s (%s)", reference, source)
            return None
        new_state = STRIPE_STATES.get(intent["status"])
        if new_state is None or payment.state in Payment.FINAL or payment.state == new_state:
            return payment
        if payment.state == Payment.State.FAILED and new_state == Payment.State.PROCESSING:
            return payment
        if new_state == Payment.State.SUCCEEDED:
            order = Order.objects.select_for_update().get(pk=payment.order_id)
            amount_ok = (intent.get("amount") == order.amount_minor
                         and str(intent.get("currency", "")).lower() == order.currency.lower())
            if not amount_ok:
                logger.error("PaymentIntent %s amount %s %s does not match order %s (%s %s)",
                             reference, intent.get("amount"), intent.get("currency"),
                             order.pk, order.amount_minor, order.currency)
                return payment
        _change_state(payment, new_state, source)
        if new_state == Payment.State.SUCCEEDED and not order.is_paid:
            _empty_cart_of(order)
            order.mark_paid()
            transaction.on_commit(lambda: _confirm_by_mail(order.pk))
    return payment


def _confirm_by_mail(order_id: int) -> None:
    """After the commit: a mail server down must not turn a recorded payment into an error
    (the order page shows the same links)."""
    from commerce.emails import send_confirmation

    try:
        send_confirmation(order_id)
    except Exception:
        logger.exception("Could not send the confirmation of order %s", order_id)


def _empty_cart_of(order: Order) -> None:
    """Take what the order bought out of its cart (the buyer may have added more since)."""
    if order.cart_id is None:
        return
    items = CartItem.objects.filter(cart_id=order.cart_id)
    items.filter(photo_id__in=order.items.exclude(photo=None).values("photo_id")).delete()
    items.filter(bib__in=order.items.exclude(bib="").values("bib")).delete()


def _change_state(payment: Payment, new_state: str, source: str) -> None:
    PaymentStateChange.objects.create(payment=payment, from_state=payment.state,
                                      to_state=new_state, source=source[:255])
    payment.state = new_state
    payment.save(update_fields=["state"])


# --- Checkout ------------------------------------------------------------------------------


class PriceChanged(CommerceError):
    def __init__(self, expected, now):
        self.expected, self.now = expected, now
        super().__init__(_("The price changed since you saw it. Please check the new total."))


def checkout(request, event, *, email: str, expected_total, provider) -> tuple[Order, Payment | None]:
    """Turn the buyer's cart into an order and a payment attempt; the total is ours.

    The cart row is locked for the whole step: two submits of one cart (a double tap,
    two tabs) wait for each other, and the second finds the first's pending order and
    its payment instead of making another charge.
    """
    cart = find_cart(request, event)
    if cart is None:
        raise CommerceError(_("Your cart is empty."))
    with transaction.atomic():
        cart = Cart.objects.select_for_update().get(pk=cart.pk)
        discounts.lock(cart)  # its uses are counted one checkout at a time
        view = describe_cart(cart, event)
        if not view.items:
            raise CommerceError(_("Your cart is empty."))
        if view.shop is None or not view.quote.available:
            raise CommerceError(_("Photos of this event are not for sale."))
        current = view.quote
        if expected_total is None or current.total != expected_total:
            raise PriceChanged(expected_total, current.total)
        pending = cart.orders.filter(state=Order.State.PENDING).first()
        if pending is not None and _same_contents(pending, current):
            payment = pending.payments.exclude(state__in=[Payment.State.FAILED,
                                                          Payment.State.CANCELED]).last()
            if payment is not None or pending.total == 0:
                return pending, payment
        if pending is not None:
            _cancel_order(pending, provider)
        order = Order.objects.create(
            event=event, user=request.user if request.user.is_authenticated else None,
            cart=cart, email=email, language=getattr(request, "LANGUAGE_CODE", "") or "fr",
            currency=current.currency, total=current.total, vat_rate=current.vat_rate,
            vat_amount=current.vat, discount_code=current.discount_code,
            discount_amount=current.discount)
        OrderItem.objects.bulk_create(
            [OrderItem(order=order, photo_id=pk, price=current.item_prices[pk])
             for pk in current.photo_ids]
            + [OrderItem(order=order, photo_id=pk, price=pricing.ZERO) for pk in current.covered_ids]
            + [OrderItem(order=order, bib=bib, price=current.item_prices[bib])
               for bib in current.bibs])
        if order.total == 0:
            _empty_cart_of(order)
            order.mark_paid()
            transaction.on_commit(lambda: _confirm_by_mail(order.pk))
            return order, None
        payment = start_payment(order, provider)
        return order, payment


def start_payment(order: Order, provider) -> Payment:
    """A new payment attempt: a PaymentIntent for the order's total, made with our amount."""
    payment = Payment.objects.create(order=order, amount=order.total, currency=order.currency)
    intent = provider.client().v1.payment_intents.create(
        params={"amount": order.amount_minor, "currency": order.currency.lower(),
                "metadata": {"order": str(order.pk), "payment": str(payment.pk)},
                "payment_method_types": ["card"]},
        options={"idempotency_key": f"racephoto-payment-{payment.pk}"})
    payment.provider_reference = intent.id
    payment.client_secret = intent.client_secret
    payment.save(update_fields=["provider_reference", "client_secret"])
    PaymentStateChange.objects.create(payment=payment, from_state="", to_state=payment.state,
                                      source="checkout")
    return payment


def _same_contents(order: Order, current: pricing.Quote) -> bool:
    photos = sorted(order.items.exclude(photo=None).values_list("photo_id", flat=True))
    bibs = sorted(order.items.exclude(bib="").values_list("bib", flat=True))
    code = current.discount_code.pk if current.discount_code else None
    return (order.total == current.total and bibs == sorted(current.bibs)
            and order.discount_code_id == code
            and photos == sorted(current.photo_ids + current.covered_ids))


def _cancel_order(order: Order, provider) -> None:
    """An abandoned pending order (the cart changed): cancel it and its open payments."""
    for payment in order.payments.select_for_update().exclude(state__in=Payment.FINAL):
        try:
            provider.client().v1.payment_intents.cancel(payment.provider_reference)
        except Exception:  # already paid or canceled at Stripe: reconciliation will tell
            logger.exception("Could not cancel PaymentIntent %s", payment.provider_reference)
            raise CommerceError(_("Your previous payment is still being processed. "
                                  "Please wait a moment and try again.")) from None
        _change_state(payment, Payment.State.CANCELED, "checkout: cart changed")
    order.state = Order.State.CANCELED
    order.cart = None
    order.save(update_fields=["state", "cart"])

