"""The order confirmation, in the buyer's language, with the download links."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

from commerce.downloads import WHOLE_ORDER, downloadable_photos, link
from commerce.models import Order


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def send_confirmation(order_id: int) -> None:
    order = Order.objects.select_related("event").get(pk=order_id)
    with translation.override(order.language):
        photos = list(downloadable_photos(order))
        context = {
            "order": order, "site_name": settings.SITE_NAME,
            "link_days": max(1, settings.DOWNLOAD_LINK_MAX_AGE // 86400),
            "order_url": absolute(order_page_path(order)),
            "zip_url": absolute(link(order, WHOLE_ORDER)) if photos else "",
            "photo_links": [(photo, absolute(link(order, photo.pk))) for photo in photos],
        }
        subject = render_to_string("commerce/email/confirmation_subject.txt", context).strip()
        body = render_to_string("commerce/email/confirmation.txt", context)
    send_mail(subject, body, None, [order.email])


def order_page_path(order: Order) -> str:
    from django.urls import reverse

    with translation.override(order.language):
        return reverse("commerce:order", kwargs={"token": order.token})
