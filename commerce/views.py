"""Cart, checkout, order page and downloads."""

import logging
from decimal import Decimal, InvalidOperation

import stripe
import zipstream
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import F
from django.http import FileResponse, Http404, HttpResponseForbidden, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from commerce import discounts, refunds, resend, services
from commerce.downloads import (
    WHOLE_ORDER,
    LinkRefused,
    downloadable_photos,
    downloads_closed,
    link,
    photo_file,
    read_token,
)
from commerce.models import Order, OrderItem, Payment, Refund
from commerce.payments import provider as payment_provider
from events.models import Event
from racephoto.storage import signed_download_url

logger = logging.getLogger(__name__)


def _event(slug):
    return get_object_or_404(Event, slug=slug, is_published=True)


def _cart_url(event):
    return reverse("commerce:cart", kwargs={"slug": event.slug})


@never_cache
def cart(request, slug):
    event = _event(slug)
    view = services.describe_cart(services.find_cart(request, event), event)
    return render(request, "commerce/cart.html", {
        "event": event, "view": view, "provider": payment_provider(),
    })


@require_POST
def add_to_cart(request, slug):
    event = _event(slug)
    try:
        if request.POST.get("bib"):
            services.add_bundle(request, event, request.POST["bib"])
            messages.success(request, _("“All my photos” added to your cart."))
        else:
            services.add_photo(request, event, _int(request.POST.get("photo")))
            messages.success(request, _("Photo added to your cart."))
    except services.CommerceError as error:
        messages.error(request, str(error))
    return redirect(_cart_url(event))


@require_POST
def remove_from_cart(request, slug):
    event = _event(slug)
    found = services.find_cart(request, event)
    if found is not None:
        services.remove_item(found, _int(request.POST.get("item")))
    return redirect(_cart_url(event))


@require_POST
def swap(request, slug):
    event = _event(slug)
    try:
        services.swap_for_bundle(request, event, request.POST.get("bib", ""))
        messages.success(request, _("Swapped for “all my photos”."))
    except services.CommerceError as error:
        messages.error(request, str(error))
    return redirect(_cart_url(event))


@require_POST
def discount(request, slug):
    """The cart's discount code: entered (checked now, priced in commerce.pricing) or removed."""
    event = _event(slug)
    found = services.find_cart(request, event)
    view = services.describe_cart(found, event)
    if not view.items:
        messages.error(request, _("Your cart is empty."))
    elif view.shop is None:
        messages.error(request, _("Photos of this event are not for sale."))
    elif request.POST.get("remove"):
        discounts.remove(found)
        messages.success(request, _("The discount code was removed."))
    else:
        try:
            code = discounts.enter(found, view.shop, request.POST.get("code", ""),
                                   subtotal=view.quote.subtotal)
        except discounts.DiscountRefused as error:
            messages.error(request, str(error))
        else:
            messages.success(request, _("Discount code %(code)s applied.") % {"code": code.code})
    return redirect(_cart_url(event))


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _money(value) -> Decimal | None:
    try:
        return Decimal(value).quantize(Decimal("0.01"))
    except (TypeError, ValueError, InvalidOperation):
        return None


@never_cache
@require_http_methods(["GET", "POST"])
def checkout(request, slug):
    event = _event(slug)
    provider = payment_provider()
    view = services.describe_cart(services.find_cart(request, event), event)
    context = {"event": event, "view": view, "provider": provider, "error": "",
               "email": request.user.email if request.user.is_authenticated else ""}
    if not view.items:
        return redirect(_cart_url(event))
    needs_payment = view.quote is not None and view.quote.total > 0
    if provider is None and needs_payment:
        context["error"] = _("Payments are not configured on this site yet.")
        return render(request, "commerce/checkout.html", context, status=503)
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        context["email"] = email
        try:
            validate_email(email)
        except ValidationError:
            context["error"] = _("Enter a valid e-mail address: your download links go there.")
            return _checkout_page(request, context, provider, status=400)
        try:
            order, payment = services.checkout(
                request, event, email=email, expected_total=_money(request.POST.get("total")),
                provider=provider)
        except services.PriceChanged:
            context["error"] = _("The price changed since you saw it: the new total is shown "
                                 "below. Check it and confirm again.")
            context["view"] = services.describe_cart(services.find_cart(request, event), event)
            return _checkout_page(request, context, provider, status=409)
        except services.CommerceError as error:
            context["error"] = str(error)
            return _checkout_page(request, context, provider, status=400)
        except stripe.StripeError:
            logger.exception("Could not start a payment for event %s", event.pk)
            context["error"] = _("The payment service did not answer. Please try again.")
            return _checkout_page(request, context, provider, status=502)
        # The buyer confirmed the total shown, changed prices included.
        services.accept_current_prices(view.cart, view.changed)
        if payment is None:
            return redirect(reverse("commerce:order", kwargs={"token": order.token}))
        context.update(order=order, payment=payment,
                       return_url=request.build_absolute_uri(
                           reverse("commerce:order", kwargs={"token": order.token})))
    return _checkout_page(request, context, provider)


@require_POST
def local_card_payment(request, token):
    """Development only (localstripe): pay an order's open intent with a test card.

    Stands in for what Stripe.js does in the browser, which localstripe's fake Stripe.js
    cannot (static/commerce/localstripe-card.js). With real Stripe this answers 404.
    """
    provider = payment_provider()
    if provider is None or not provider.is_local:
        raise Http404
    order = get_object_or_404(Order, token=token, state=Order.State.PENDING)
    payment = get_object_or_404(order.payments.exclude(state__in=Payment.FINAL),
                                provider_reference=request.POST.get("intent", ""))
    api = provider.client().v1
    try:
        method = api.payment_methods.create(params={"type": "card", "card": {
            "number": request.POST.get("number", ""), "exp_month": _int(request.POST.get("exp_month")),
            "exp_year": _int(request.POST.get("exp_year")), "cvc": request.POST.get("cvc", "")}})
        api.payment_intents.update(payment.provider_reference, params={"payment_method": method.id})
        intent = api.payment_intents.confirm(payment.provider_reference)
    except stripe.CardError as error:
        return JsonResponse({"error": {"message": error.user_message or _("Your card was declined.")}})
    except stripe.StripeError as error:
        return JsonResponse({"error": {"message": error.user_message or _("Check the card details.")}})
    return JsonResponse({"id": intent.id, "status": intent.status})


def _checkout_page(request, context, provider, status=200):
    response = render(request, "commerce/checkout.html", context, status=status)
    if provider is not None:
        response["Content-Security-Policy"] = provider.content_security_policy(
            settings.CONTENT_SECURITY_POLICY)
    return response


@never_cache
def order_page(request, token):
    order = get_object_or_404(Order.objects.select_related("event"), token=token)
    provider = payment_provider()
    if not order.is_paid and provider is not None:
        # The buyer is back from paying: ask Stripe now rather than wait for the webhook.
        for payment in order.payments.exclude(state__in=Payment.FINAL).exclude(provider_reference=""):
            try:
                intent = provider.client().v1.payment_intents.retrieve(payment.provider_reference)
            except stripe.StripeError:
                logger.exception("Could not read PaymentIntent %s", payment.provider_reference)
                continue
            services.apply_payment_intent(intent, source="order page")
        order.refresh_from_db()
    photos = list(downloadable_photos(order)) if order.is_paid else []
    return render(request, "commerce/order.html", {
        "order": order, "event": order.event,
        "refunded": refunds.refunded_amount(order), "fully_refunded": refunds.is_fully_refunded(order),
        "photo_links": [(photo, link(order, photo.pk)) for photo in photos],
        "zip_url": link(order, WHOLE_ORDER) if photos else "",
    })


def download(request, token, signed):
    order = Order.objects.filter(token=token).select_related("event").first()
    if order is None or not order.is_paid:
        return HttpResponseForbidden(_("This download link is not valid."))
    try:
        what = read_token(order, signed)
    except LinkRefused:
        logger.info("Download refused for order %s", order.pk)
        return HttpResponseForbidden(_("This download link is not valid or has expired."))
    if downloads_closed(order):
        logger.info("Download refused for order %s: refunded or anonymised", order.pk)
        return HttpResponseForbidden(
            _("This download link is not valid.") if order.anonymised_at
            else _("This order was refunded: its downloads are closed."))
    photos = downloadable_photos(order)
    if what == WHOLE_ORDER:
        photos = list(photos)
        if not photos:  # everything it held was refunded
            return HttpResponseForbidden(_("This download link is not valid."))
        return _zip_response(order, photos)
    photo = photos.filter(pk=_int(what)).first()
    if photo is None:
        return HttpResponseForbidden(_("This download link is not valid."))
    _count_download(order, [photo.pk])
    stored = photo_file(order, photo)
    name = photo.original_name or f"photo-{photo.pk}.jpg"
    # Object storage sends the file itself, through a URL signed for a few minutes.
    if bucket_url := signed_download_url(stored, name):
        return redirect(bucket_url)
    return FileResponse(stored.open("rb"), as_attachment=True, filename=name)


def _zip_response(order, photos):
    """The order's photos as one ZIP, written as it is sent (never whole in memory or on disk)."""
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED)  # JPEGs do not compress
    for photo in photos:
        stored = photo_file(order, photo)
        archive.add(_chunks(stored), arcname=f"{photo.pk}-{photo.original_name or 'photo.jpg'}")
    _count_download(order, [photo.pk for photo in photos])
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{order.event.slug}-{order.pk}.zip"'
    return response


def _chunks(stored, size=256 * 1024):
    with stored.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def _count_download(order, photo_ids):
    OrderItem.objects.filter(order=order, photo_id__in=photo_ids).update(
        download_count=F("download_count") + 1)
    OrderItem.objects.filter(order=order).exclude(bib="").exclude(
        refund__state__in=Refund.COUNTED).update(download_count=F("download_count") + 1)


@never_cache
@require_http_methods(["GET", "POST"])
def resend_links(request):
    """"Send my links again": the same answer whether or not the address bought anything."""
    form = resend.ResendLinksForm(request.POST or None, initial={"event": request.GET.get("event")})
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        elif not resend.allow(form.cleaned_data["email"]):
            status = 429
            form.add_error(None, _("You asked for your links several times already: please "
                                   "wait an hour before asking again, and look in your spam "
                                   "folder meanwhile."))
        else:
            event = form.cleaned_data["event"]
            resend.request_links(form.cleaned_data["email"], event)
            messages.success(request, _("If this address bought photos of %(event)s, an e-mail "
                                        "with their links is on its way to it. It can take a few "
                                        "minutes; look in your spam folder too.")
                             % {"event": event.display_name})
            return redirect(f"{reverse('commerce:resend')}?event={event.slug}")
    return render(request, "commerce/resend_links.html", {"form": form}, status=status)
