"""The buyer's e-mails, in the language of their order, with fresh download links: the
order's confirmation, and "send my links again"."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from commerce.downloads import WHOLE_ORDER, downloadable_photos, downloads_closed, link
from commerce.models import Order


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _links(order: Order) -> dict:
    """An order's page and its download links, signed now (so valid for the full period)."""
    photos = list(downloadable_photos(order))
    return {
        "order": order,
        "order_url": absolute(order_page_path(order)),
        "zip_url": absolute(link(order, WHOLE_ORDER)) if photos else "",
        "photo_links": [(photo, absolute(link(order, photo.pk))) for photo in photos],
    }


def _link_days() -> int:
    return max(1, settings.DOWNLOAD_LINK_MAX_AGE // 86400)


def send_confirmation(order_id: int) -> None:
    order = Order.objects.select_related("event").get(pk=order_id)
    with translation.override(order.language):
        context = {**_links(order), "site_name": settings.SITE_NAME, "link_days": _link_days()}
        subject = render_to_string("commerce/email/confirmation_subject.txt", context).strip()
        body = render_to_string("commerce/email/confirmation.txt", context)
    send_mail(subject, body, None, [order.email])


def orders_to_resend(email: str, event_id: int):
    """The paid orders of ``email`` at the event whose downloads are still open, newest first."""
    orders = (Order.objects.filter(event_id=event_id, email__iexact=email.strip(),
                                   state=Order.State.PAID, anonymised_at=None)
              .select_related("event").order_by("-created_at", "-pk"))
    return [order for order in orders if not downloads_closed(order)]


def send_links_again(email: str, event_id: int) -> bool:
    """One e-mail with the links of every open order of ``email`` at the event, in the
    language of the newest; nothing (False) when there is none."""
    orders = orders_to_resend(email, event_id)
    if not orders:
        return False
    with translation.override(orders[0].language):
        context = {"event": orders[0].event, "orders": [_links(order) for order in orders],
                   "site_name": settings.SITE_NAME, "link_days": _link_days()}
        subject = render_to_string("commerce/email/links_again_subject.txt", context).strip()
        body = render_to_string("commerce/email/links_again.txt", context)
    # To the address the orders were made with (the one typed may differ in case only).
    send_mail(subject, body, None, [orders[0].email])
    return True


def order_page_path(order: Order) -> str:
    with translation.override(order.language):
        return reverse("commerce:order", kwargs={"token": order.token})
