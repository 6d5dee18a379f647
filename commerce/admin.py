"""The organisers' side of the shop: prices and discount codes per event, the orders of
their events, the sales report; and each photographer's own sales."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.roles import (
    EVENT_STAFF,
    ORGANISER,
    ParentScopedInline,
    RoleScopedAdmin,
    has_role,
    is_platform_admin,
)
from commerce import refund_admin, refunds, reports
from commerce.models import (
    DiscountCode,
    Order,
    OrderItem,
    Payment,
    PaymentStateChange,
    PricePack,
    Refund,
    Shop,
)


def _organised(request, queryset, path="event"):
    return queryset.filter(**{f"{path}__organisers": request.user}).distinct()


class PricePackInline(ParentScopedInline, admin.TabularInline):
    model = PricePack
    extra = 1


class DiscountCodeInline(ParentScopedInline, admin.StackedInline):
    model = DiscountCode
    extra = 0
    fields = [("code", "is_active"), ("kind", "value"), ("minimum_total", "max_uses", "used_count"),
              "valid_until"]
    readonly_fields = ["used_count"]


@admin.register(Shop)
class ShopAdmin(RoleScopedAdmin):
    list_display = ["event", "currency", "vat_rate", "bundle_price", "is_free",
                    "photographer_share", "sales_report"]
    inlines = [PricePackInline, DiscountCodeInline]
    view_roles = change_roles = add_roles = ORGANISER

    def scope(self, request, queryset):
        return _organised(request, queryset)

    @admin.display(description=gettext_lazy("sales"))
    def sales_report(self, shop):
        return format_html('<a href="{}">{}</a>', reverse("admin:commerce_shop_sales", args=[shop.pk]),
                           _("Sales report"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<int:shop_id>/sales/", view(self.sales_view), name="commerce_shop_sales"),
                path("my-sales/", view(self.own_sales_view), name="commerce_shop_own_sales"),
                *super().get_urls()]

    def sales_view(self, request, shop_id):
        """The event's sales: its organisers and platform admins only; anyone else gets the
        404 of a shop that does not exist."""
        shop = self.get_queryset(request).select_related("event").filter(pk=shop_id).first()
        if shop is None or not self.has_view_permission(request, shop):
            raise Http404
        report = reports.sales_report(shop)
        if request.GET.get("format") == "csv":
            return reports.csv_response(f"{shop.event.slug}-sales.csv", reports.report_rows(report))
        return render(request, "commerce/admin/sales_report.html", {
            **self.admin_site.each_context(request), "title": _("Sales report"),
            "subtitle": shop.event.name, "opts": self.opts, "shop": shop, "report": report,
            "original": shop})

    def own_sales_view(self, request):
        """A photographer's own sales, event by event: their photos only, never a colleague's
        figures nor the event's totals."""
        if not (has_role(request.user, EVENT_STAFF) or is_platform_admin(request.user)):
            raise PermissionDenied
        sales = reports.photographer_sales(request.user)
        if request.GET.get("format") == "csv":
            return reports.csv_response("my-sales.csv", reports.own_rows(request.user, sales))
        return render(request, "commerce/admin/own_sales.html", {
            **self.admin_site.each_context(request), "title": _("Sales of my photos"), "opts": self.opts,
            "sales": sales, "totals": reports.totals_by_currency(sales)})

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
                       "vat_rate", "vat_amount", "discount_code", "discount_amount", "created_at",
                       "paid_at", "refunded", "anonymised_at"]
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

    @admin.display(description=gettext_lazy("refunded"))
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
