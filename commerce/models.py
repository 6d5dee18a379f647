"""Prices, carts, orders and payments.

Money is ``Decimal`` in the event's currency, VAT included (the rate is shown on the
receipt). Totals are computed on the server only (``commerce.pricing``); a browser
never sends a price. Orders are kept for accounting: every foreign key to an order is
``PROTECT``, and a payment's state changes are each logged.
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

ZERO = Decimal("0.00")


def _order_token() -> str:
    return secrets.token_urlsafe(24)


class Shop(models.Model):
    """An event's sales settings: currency, VAT, and whether downloads are free."""

    event = models.OneToOneField("events.Event", on_delete=models.CASCADE, related_name="shop",
                                 verbose_name=_("event"))
    currency = models.CharField(_("currency"), max_length=3, default="EUR",
                                help_text=_("ISO 4217 code, e.g. EUR."))
    vat_rate = models.DecimalField(_("VAT rate (%)"), max_digits=5, decimal_places=2,
                                   default=Decimal("20.00"), validators=[MinValueValidator(ZERO)],
                                   help_text=_("Prices are shown VAT included."))
    is_free = models.BooleanField(
        _("free downloads"), default=False,
        help_text=_("Paid by a sponsor or the organiser: runners download the web-size "
                    "photos without watermark, with no payment."))
    bundle_price = models.DecimalField(
        _("“all my photos” price"), max_digits=8, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text=_("Every photo of one bib, including photos found later. Empty: not offered."))
    # The photographers' part of the sales (commerce.reports), the rest is the organiser's.
    photographer_share = models.DecimalField(
        _("photographers' share (%)"), max_digits=5, decimal_places=2, default=Decimal("70.00"),
        validators=[MinValueValidator(ZERO), MaxValueValidator(Decimal("100"))],
        help_text=_("Part of the sales net of VAT that goes to the photographers whose photos "
                    "were sold, e.g. 70 for 70/30."))

    class Meta:
        verbose_name = _("shop")
        verbose_name_plural = _("shops")

    def __str__(self):
        return str(self.event)


class PricePack(models.Model):
    """One rung of the event's price ladder: ``quantity`` photos for ``price`` (1 = one photo)."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="packs",
                             verbose_name=_("shop"))
    quantity = models.PositiveIntegerField(_("photos"), validators=[MinValueValidator(1)])
    price = models.DecimalField(_("price"), max_digits=8, decimal_places=2,
                                validators=[MinValueValidator(ZERO)])

    class Meta:
        verbose_name = _("price pack")
        verbose_name_plural = _("price packs")
        ordering = ["quantity"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "quantity"], name="commerce_pack_quantity_once"),
            models.CheckConstraint(condition=models.Q(quantity__gte=1),
                                   name="commerce_pack_quantity_positive"),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.price}"


class Cart(models.Model):
    """One buyer's cart for one event: a signed-in runner's (any device) or a guest's session."""

    event = models.ForeignKey("events.Event", on_delete=models.CASCADE, related_name="carts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True,
                             blank=True, related_name="carts")
    session_key = models.CharField(max_length=40, blank=True)
    # The code the buyer entered; checked again each time the cart is priced (commerce.discounts).
    discount_code = models.ForeignKey("DiscountCode", on_delete=models.SET_NULL, null=True,
                                      blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "user"], name="commerce_cart_one_per_user",
                                    condition=models.Q(user__isnull=False)),
            models.UniqueConstraint(fields=["event", "session_key"],
                                    name="commerce_cart_one_per_session",
                                    condition=models.Q(user__isnull=True)),
        ]


class CartItem(models.Model):
    """A photo, or the "all my photos" bundle of one bib, with the price the buyer saw."""

    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    photo = models.ForeignKey("photos.Photo", on_delete=models.CASCADE, null=True, blank=True)
    bib = models.CharField(max_length=20, blank=True)
    # The single-photo or bundle price when the item was added: a later change is shown.
    price_seen = models.DecimalField(max_digits=8, decimal_places=2)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(photo__isnull=False, bib="")
                           | models.Q(photo__isnull=True) & ~models.Q(bib="")),
                name="commerce_cartitem_photo_or_bib"),
            models.UniqueConstraint(fields=["cart", "photo"], name="commerce_cartitem_photo_once",
                                    condition=models.Q(photo__isnull=False)),
            models.UniqueConstraint(fields=["cart", "bib"], name="commerce_cartitem_bib_once",
                                    condition=~models.Q(bib="")),
        ]

    @property
    def is_bundle(self) -> bool:
        return bool(self.bib)


class Order(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", _("awaiting payment")
        PAID = "paid", _("paid")
        CANCELED = "canceled", _("canceled")

    token = models.CharField(max_length=40, unique=True, default=_order_token, editable=False)
    event = models.ForeignKey("events.Event", on_delete=models.PROTECT, related_name="orders",
                              verbose_name=_("event"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="orders", verbose_name=_("buyer"))
    # The cart it was made from, while it waits for payment: a second submit finds it.
    cart = models.ForeignKey(Cart, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="orders")
    email = models.EmailField(_("e-mail"))
    language = models.CharField(_("language"), max_length=8, default=settings.LANGUAGE_CODE)
    state = models.CharField(_("state"), max_length=20, choices=State.choices,
                             default=State.PENDING)
    currency = models.CharField(_("currency"), max_length=3)
    total = models.DecimalField(_("total (VAT incl.)"), max_digits=10, decimal_places=2)
    vat_rate = models.DecimalField(_("VAT rate (%)"), max_digits=5, decimal_places=2)
    vat_amount = models.DecimalField(_("of which VAT"), max_digits=10, decimal_places=2)
    # ``total`` is already net of the discount; total + discount_amount is the price before it.
    discount_code = models.ForeignKey("DiscountCode", on_delete=models.PROTECT, null=True,
                                      blank=True, related_name="orders",
                                      verbose_name=_("discount code"))
    discount_amount = models.DecimalField(_("discount (VAT incl.)"), max_digits=10,
                                          decimal_places=2, default=ZERO)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    # Set when the buyer's data was erased: the order is kept for accounting, without them.
    anonymised_at = models.DateTimeField(_("anonymised"), null=True, blank=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["cart"], name="commerce_order_one_pending_per_cart",
                                    condition=models.Q(state="pending")),
        ]

    def __str__(self):
        return f"#{self.pk} {self.email}"

    @property
    def is_paid(self) -> bool:
        return self.state == self.State.PAID

    @property
    def amount_minor(self) -> int:
        """The total in the currency's smallest unit, as Stripe counts it."""
        return int((self.total * 100).to_integral_value())

    @property
    def subtotal(self) -> Decimal:
        """The price before the discount code."""
        return self.total + self.discount_amount

    def mark_paid(self):
        """Paid, once: a conditional update, so only the first of two concurrent callers
        changes the row and counts the order's discount code use."""
        paid_at = timezone.now()
        changed = Order.objects.filter(pk=self.pk).exclude(state=self.State.PAID).update(
            state=self.State.PAID, paid_at=paid_at, cart=None)
        self.state, self.cart = self.State.PAID, None
        if not changed:
            self.refresh_from_db(fields=["paid_at"])
            return
        self.paid_at = paid_at
        # A code's use counts when its order is paid, never at checkout: an abandoned or
        # declined payment uses nothing.
        from commerce.discounts import count_use

        count_use(self)


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="items")
    photo = models.ForeignKey("photos.Photo", on_delete=models.PROTECT, null=True, blank=True,
                              verbose_name=_("photo"))
    bib = models.CharField(_("bundle for bib"), max_length=20, blank=True)
    # The item's share of the order total (the ladder price spread over its photos).
    price = models.DecimalField(_("price"), max_digits=10, decimal_places=2)
    download_count = models.PositiveIntegerField(_("downloads"), default=0)
    # The refund that took this item back: it is no longer downloadable while that refund
    # counts (pending or succeeded at Stripe).
    refund = models.ForeignKey("Refund", on_delete=models.PROTECT, null=True, blank=True,
                               related_name="items", verbose_name=_("refund"))

    class Meta:
        ordering = ["pk"]
        verbose_name = _("order item")
        verbose_name_plural = _("order items")


class Payment(models.Model):
    """One attempt to pay an order; a new attempt is a new row."""

    class State(models.TextChoices):
        CREATED = "created", _("created")
        PROCESSING = "processing", _("processing")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELED = "canceled", _("canceled")

    # A payment in one of these never changes again: a late or repeated event is ignored.
    FINAL = (State.SUCCEEDED, State.CANCELED)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=20, default="stripe")
    provider_reference = models.CharField(_("provider reference"), max_length=255, blank=True,
                                          db_index=True)
    client_secret = models.CharField(max_length=255, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CREATED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("payment")
        verbose_name_plural = _("payments")

    def __str__(self):
        return self.provider_reference or f"payment {self.pk}"


class PaymentStateChange(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="changes")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    # What told us: "checkout", "webhook <event id>", "reconcile".
    source = models.CharField(max_length=255)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("payment state change")
        verbose_name_plural = _("payment state changes")


class Refund(models.Model):
    """Money given back on a paid order, as Stripe recorded it (one row per Stripe refund).

    Made from the admin (recorded from the API's answer) or in Stripe's dashboard
    (recorded from the ``charge.refunded`` webhook); the Stripe id is unique, so a refund
    reported both ways is one row. See ``commerce.refunds``.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELED = "canceled", _("canceled")

    # The refunds whose money is (or is being) given back: they count against what was
    # paid, and their items lose download access. A failed or canceled one gives it back.
    COUNTED = (State.PENDING, State.SUCCEEDED)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds",
                              verbose_name=_("order"))
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds",
                                verbose_name=_("payment"))
    provider_reference = models.CharField(_("provider reference"), max_length=255, unique=True)
    amount = models.DecimalField(_("amount"), max_digits=10, decimal_places=2,
                                 validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(_("currency"), max_length=3)
    state = models.CharField(_("state"), max_length=20, choices=State.choices)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    # Who asked for it in the admin; empty for a refund made in Stripe's dashboard.
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+",
                                     verbose_name=_("requested by"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0),
                                   name="commerce_refund_amount_positive"),
        ]

    def __str__(self):
        return self.provider_reference

    @property
    def counts(self) -> bool:
        return self.state in self.COUNTED


class RefundStateChange(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="changes")
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    # What told us: "admin <username>", "webhook <event id>".
    source = models.CharField(max_length=255)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("refund state change")
        verbose_name_plural = _("refund state changes")
class DiscountCode(models.Model):
    """A code a buyer types in the cart: a percentage or a fixed amount off one shop's prices.

    The rules (expiry, uses, minimum) are checked by ``commerce.discounts`` each time a
    cart is priced; ``used_count`` counts paid orders only (``Order.mark_paid``).
    """

    class Kind(models.TextChoices):
        PERCENT = "percent", _("percentage")
        FIXED = "fixed", _("fixed amount")

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="discount_codes",
                             verbose_name=_("shop"))
    # Stored in capitals: buyers type codes in any case (commerce.discounts.normalise).
    code = models.CharField(_("code"), max_length=40,
                            help_text=_("Letters, digits, dashes and underscores; buyers may type it in any "
                                        "case."))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.PERCENT)
    value = models.DecimalField(
        _("value"), max_digits=8, decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("A percentage (e.g. 20 for 20 %) or an amount in the shop's currency, "
                    "VAT included."))
    max_uses = models.PositiveIntegerField(
        _("use limit"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("How many paid orders may use it. Empty: no limit."))
    used_count = models.PositiveIntegerField(_("paid orders that used it"), default=0,
                                             editable=False)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True,
                                       help_text=_("Empty: no expiry."))
    minimum_total = models.DecimalField(
        _("minimum order"), max_digits=8, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(ZERO)],
        help_text=_("The cart's total before the discount must reach it. Empty: no minimum."))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("discount code")
        verbose_name_plural = _("discount codes")
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["shop", "code"], name="commerce_discount_code_once"),
            models.CheckConstraint(condition=models.Q(value__gt=0), name="commerce_discount_positive"),
            models.CheckConstraint(condition=~models.Q(kind="percent") | models.Q(value__lte=100),
                                   name="commerce_discount_percent_at_most_100"),
        ]

    def __str__(self):
        return self.code

    def save(self, *args, **kwargs):
        self.code = (self.code or "").strip().upper()
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        self.code = (self.code or "").strip().upper()
        if self.code and not all(char.isalnum() or char in "-_" for char in self.code):
            raise ValidationError({"code": _("Use letters, digits, dashes and underscores only.")})
        if self.kind == self.Kind.PERCENT and self.value is not None and self.value > 100:
            raise ValidationError({"value": _("A percentage cannot be more than 100.")})
