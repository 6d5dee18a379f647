"""Signed, expiring download links bound to one order.

A link carries the order's id and what it opens (one photo, or the whole order as a
ZIP), signed with the site's secret and a timestamp. The view checks the signature,
its age and that the order in the URL is the one signed: anything else is a 403.

What a link opens is decided when it is used, not when it was sent: a refunded item's
photos leave the order's downloads (single files and the ZIP) at once, and a fully
refunded or anonymised order opens nothing.
"""

from django.conf import settings
from django.core import signing
from django.urls import reverse

from commerce.models import Order

SALT = "commerce.download"
WHOLE_ORDER = "zip"


class LinkRefused(Exception):
    pass


def make_token(order: Order, what) -> str:
    return signing.TimestampSigner(salt=SALT).sign(f"{order.pk}:{what}")


def link(order: Order, what) -> str:
    return reverse("commerce:download", kwargs={"token": order.token,
                                                "signed": make_token(order, what)})


def read_token(order: Order, signed: str) -> str:
    """What ``signed`` opens in ``order``; LinkRefused when tampered, expired or another order's."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(
            signed, max_age=settings.DOWNLOAD_LINK_MAX_AGE)
    except signing.BadSignature as exc:  # SignatureExpired is one
        raise LinkRefused(str(exc)) from exc
    order_id, _sep, what = value.partition(":")
    if order_id != str(order.pk) or not what:
        raise LinkRefused("link of another order")
    return what


def downloads_closed(order: Order) -> bool:
    """Whether nothing of ``order`` may be downloaded any more: its buyer's data was
    erased, or everything paid was refunded."""
    from commerce.refunds import is_fully_refunded

    return order.anonymised_at is not None or is_fully_refunded(order)


def downloadable_photos(order: Order):
    """The photos the order gives: bought one by one, and every photo of its bundles' bibs
    as they are today (a photo processed or linked after the purchase is included),
    less what was refunded."""
    from commerce.models import Refund
    from commerce.services import photos_of_bib
    from photos.models import Photo

    if downloads_closed(order):
        return Photo.objects.none()
    kept = order.items.exclude(refund__state__in=Refund.COUNTED)
    ids = set(kept.exclude(photo=None).values_list("photo_id", flat=True))
    for bib in kept.exclude(bib="").values_list("bib", flat=True):
        ids.update(photos_of_bib(order.event, bib))
    return Photo.objects.filter(pk__in=ids, event=order.event).order_by("pk")


def photo_file(order: Order, photo):
    """A paid order gets the original; a free event's order the clean web-size copy."""
    shop = getattr(order.event, "shop", None)
    if shop is not None and shop.is_free and order.total == 0:
        return photo.web
    return photo.original
