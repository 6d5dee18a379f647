"""The admin's refund page of an order: everything left, chosen items, or an amount.

Opened from the order's page in the admin (``OrderAdmin.get_urls``); the refund itself
is ``commerce.refunds.refund``.
"""

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from commerce import refunds
from commerce.models import ZERO, Order, Refund
from commerce.payments import provider as payment_provider


def item_label(item) -> str:
    if item.bib:
        what = _("“All my photos”, bib %(bib)s") % {"bib": item.bib}
    else:
        what = _("Photo %(number)s") % {"number": item.photo_id}
        if item.photo and item.photo.original_name:
            what = f"{what} ({item.photo.original_name})"
    return f"{what} — {item.price} {item.order.currency}"


class RefundForm(forms.Form):
    EVERYTHING, ITEMS, AMOUNT = "everything", "items", "amount"

    what = forms.ChoiceField(label=gettext_lazy("Refund"), widget=forms.RadioSelect)
    items = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Items"), required=False, coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Their photos can no longer be downloaded; a bundle takes with it "
                               "the photos it made free."))
    amount = forms.DecimalField(
        label=gettext_lazy("Amount"), required=False, min_value=Decimal("0.01"), decimal_places=2,
        help_text=gettext_lazy("A partial refund that keeps the downloads open (a gesture). "
                               "Refunding everything left closes them."))
    reason = forms.CharField(label=gettext_lazy("Reason"), required=False, max_length=255,
                             help_text=gettext_lazy("For the order's history; the buyer does not see it."))

    def __init__(self, order: Order, left: Decimal, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order, self.left = order, left
        self.fields["what"].choices = [
            (self.EVERYTHING, _("Everything left to refund: %(amount)s %(currency)s")
             % {"amount": left, "currency": order.currency}),
            (self.ITEMS, _("The chosen items")),
            (self.AMOUNT, _("An amount")),
        ]
        chargeable = (order.items.filter(price__gt=ZERO).exclude(refund__state__in=Refund.COUNTED)
                      .select_related("photo", "order"))
        self.fields["items"].choices = [(item.pk, item_label(item)) for item in chargeable]
        if not self.fields["items"].choices:
            self.fields["what"].choices = [c for c in self.fields["what"].choices if c[0] != self.ITEMS]

    def clean(self):
        cleaned = super().clean()
        what = cleaned.get("what")
        if what == self.ITEMS and not cleaned.get("items"):
            self.add_error("items", _("Choose at least one item to refund."))
        if what == self.AMOUNT and cleaned.get("amount") is None:
            self.add_error("amount", _("Enter the amount to refund."))
        return cleaned

    def refund_arguments(self) -> dict:
        """What to hand to ``refunds.refund``."""
        what = self.cleaned_data["what"]
        if what == self.ITEMS:
            return {"item_ids": self.cleaned_data["items"]}
        amount = self.left if what == self.EVERYTHING else self.cleaned_data["amount"]
        return {"amount": amount}


def refund_view(model_admin, request, order_id):
    # A row outside the person's scope answers like a row that does not exist.
    order = model_admin.get_queryset(request).filter(pk=order_id).select_related("event").first()
    if order is None:
        raise Http404
    if not model_admin.has_refund_permission(request, order):
        raise PermissionDenied
    left = refunds.refundable_amount(order)
    form = RefundForm(order, left, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = refunds.refund(order, provider=payment_provider(), by=request.user,
                                  reason=form.cleaned_data["reason"], **form.refund_arguments())
        except refunds.RefundRefused as error:
            form.add_error(None, str(error))
        else:
            model_admin.log_change(request, order, _("Refunded %(amount)s %(currency)s (%(reference)s).")
                                   % {"amount": made.amount, "currency": made.currency,
                                      "reference": made.provider_reference})
            model_admin.message_user(
                request, _("Refunded %(amount)s %(currency)s.") % {"amount": made.amount,
                                                                  "currency": made.currency},
                messages.SUCCESS)
            return redirect(reverse("admin:commerce_order_change", args=[order.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta, "original": order, "order": order, "form": form,
        "title": _("Refund order %(number)s") % {"number": order.pk},
        "paid": refunds.paid_amount(order), "refunded": refunds.refunded_amount(order), "left": left,
        "refunded_items": [item_label(item) for item in
                           refunds.refunded_items(order).select_related("photo", "order")],
        "past_refunds": order.refunds.all(),
    }
    return TemplateResponse(request, "admin/commerce/order/refund.html", context,
                            status=400 if request.method == "POST" else 200)
