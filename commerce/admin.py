"""The organisers' side of the shop: prices per event, and the orders of their events."""

from django.contrib import admin
from django.urls import path
from django.utils.translation import gettext_lazy as _

from accounts.roles import ORGANISER, ParentScopedInline, RoleScopedAdmin, is_platform_admin
from commerce import refund_admin, refunds
from commerce.models import Order, OrderItem, Payment, PaymentStateChange, PricePack, Refund, Shop


def _organised(request, queryset, path="event"):
    return queryset.filter(**{f"{path}__organisers": request.user}).distinct()


class PricePackInline(ParentScopedInline, admin.TabularInline):
    model = PricePack
    extra = 1


@admin.register(Shop)
class ShopAdmin(RoleScopedAdmin):
    list_display = ["event", "currency", "vat_rate", "bundle_price", "is_free"]
    inlines = [PricePackInline]
    view_roles = change_roles = add_roles = ORGANISER

    def scope(self, request, queryset):
        return _organised(request, queryset)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "event" and not request.user.is_superuser:
            from events.models import Event

            kwargs["queryset"] = Event.objects.filter(organisers=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class OrderItemInline(ParentScopedInline, admin.TabularInline):
    model = OrderItem
    extra = 0
    fields = readonly_fields = ["photo", "bib", "price", "download_count", "refund"]
    can_delete = False


class PaymentInline(ParentScopedInline, admin.TabularInline):
    model = Payment
    extra = 0
    fields = readonly_fields = ["provider", "provider_reference", "amount", "currency", "state",
                                "created_at"]
    can_delete = False


class RefundInline(ParentScopedInline, admin.TabularInline):
    model = Refund
    extra = 0
    fields = readonly_fields = ["provider_reference", "amount", "currency", "state", "reason",
                                "requested_by", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # through the refund page, which asks Stripe


@admin.register(Order)
class OrderAdmin(RoleScopedAdmin):
    list_display = ["pk", "event", "email", "state", "total", "currency", "created_at", "paid_at"]
    list_filter = ["state", "event"]
    search_fields = ["email", "token"]
    readonly_fields = ["event", "user", "email", "language", "state", "currency", "total",
                       "vat_rate", "vat_amount", "created_at", "paid_at", "refunded",
                       "anonymised_at"]
    exclude = ["cart"]
    inlines = [OrderItemInline, PaymentInline, RefundInline]
    view_roles = ORGANISER
    # Who may give money back: platform admins, and the organisers of the order's event.
    refund_roles = ORGANISER

    def scope(self, request, queryset):
        return _organised(request, queryset)

    def get_urls(self):
        refund = path("<int:order_id>/refund/",
                      self.admin_site.admin_view(lambda request, order_id:
                                                 refund_admin.refund_view(self, request, order_id)),
                      name="commerce_order_refund")
        return [refund, *super().get_urls()]

    def has_refund_permission(self, request, obj) -> bool:
        if is_platform_admin(request.user):
            return True
        return self._allows(request, self.refund_roles, obj)

    @admin.display(description=_("refunded"))
    def refunded(self, order):
        return f"{refunds.refunded_amount(order)} {order.currency}"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_refund"] = (obj is not None and self.has_refund_permission(request, obj)
                                 and refunds.refundable_amount(obj) > 0)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_add_permission(self, request):
        return False  # orders come from checkouts only

    def has_delete_permission(self, request, obj=None):
        return False  # kept for accounting


@admin.register(PaymentStateChange)
class PaymentStateChangeAdmin(RoleScopedAdmin):
    list_display = ["payment", "from_state", "to_state", "source", "at"]
    readonly_fields = ["payment", "from_state", "to_state", "source", "at"]
    view_roles = ORGANISER

    def scope(self, request, queryset):
        return _organised(request, queryset, "payment__order__event")

    def has_add_permission(self, request):
        return False
