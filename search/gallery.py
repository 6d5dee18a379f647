"""The public side of an event's photos: which ones a runner may see, in what order, and
the sizes of their public derivatives.

Only the watermarked preview and its thumbnail are ever public; the original and the
clean web version stay private (photos.models.Photo), so nothing here loads them.
"""

import datetime
from dataclasses import dataclass

from django.db.models import Count, IntegerField, Q
from django.db.models.functions import Cast, Coalesce, ExtractMinute, Trunc
from django.http import Http404
from django.utils import timezone

from photos.derivatives import PREVIEW_SIZE, THUMBNAIL_SIZE, WEB_SIZE, fit
from photos.models import BibTag, Photo

PAGE_SIZE = 24
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def public_photos(event):
    """The event's photos a runner may see: processed, with their public derivatives.

    Newest first by capture time (upload time when the camera gave none), then by id so
    the order is total and a cursor can resume it.
    """
    return (Photo.objects.filter(event=event, state=Photo.State.READY)
            .exclude(preview="").exclude(thumbnail="")
            .only("pk", "event_id", "preview", "thumbnail", "width", "height", "captured_at",
                  "created_at")
            .annotate(taken_at=Coalesce("captured_at", "created_at"))
            .order_by("-taken_at", "-pk"))


def photos_left_to_process(event) -> int:
    """Photos uploaded to the event that are not ready yet (failed ones will not be)."""
    return (Photo.objects.filter(event=event)
            .exclude(state__in=[Photo.State.READY, Photo.State.FAILED]).count())


def cursor_of(photo) -> str:
    """Where the gallery resumes after ``photo``: its time and id, as an opaque-looking token."""
    return f"{(photo.taken_at - _EPOCH) // _MICROSECOND}_{photo.pk}"


def _parse_cursor(cursor: str) -> tuple[datetime.datetime, int]:
    try:
        micros, photo_id = (int(part) for part in cursor.split("_"))
        return _EPOCH + micros * _MICROSECOND, photo_id
    except (ValueError, OverflowError):
        # A mangled "more" link: there is no such page.
        raise Http404("bad gallery cursor") from None


def _older_than(taken_at, photo_id) -> Q:
    return Q(taken_at__lt=taken_at) | Q(taken_at=taken_at, pk__lt=photo_id)


@dataclass
class GalleryPage:
    photos: list
    next_cursor: str | None  # None: this is the last page


def gallery_page(event, cursor: str = "", size: int = PAGE_SIZE) -> GalleryPage:
    """One page of the event's gallery, after ``cursor`` (a keyset, never an OFFSET: a page
    deep into a 20,000-photo event costs what the first one does)."""
    photos = public_photos(event)
    if cursor:
        photos = photos.filter(_older_than(*_parse_cursor(cursor)))
    # One more than shown tells whether there is a next page without counting.
    rows = list(photos[:size + 1])
    shown = rows[:size]
    return GalleryPage(shown, cursor_of(shown[-1]) if len(rows) > size else None)


def gallery_neighbours(photo) -> tuple:
    """The photos just before (newer) and after (older) ``photo`` in its event's gallery."""
    photos = public_photos(photo.event_id)
    newer = (photos.filter(Q(taken_at__gt=photo.taken_at)
                           | Q(taken_at=photo.taken_at, pk__gt=photo.pk))
             .order_by("taken_at", "pk").first())
    older = photos.filter(_older_than(photo.taken_at, photo.pk)).first()
    return newer, older


def confirmed_bibs(photo) -> list[str]:
    """The bibs a runner may see on the photo's page: confirmed ones only (an unconfirmed
    reading is for staff to review, and could name a stranger's number)."""
    bibs = set(BibTag.objects.filter(photo=photo, confirmed=True).values_list("bib", flat=True))
    return sorted(bibs, key=lambda bib: (len(bib), bib))


def derivative_sizes(photo) -> dict:
    """Pixel sizes of the public derivatives, computed as photos.derivatives makes them, so
    pages can reserve the room of every image before it loads (no layout shift)."""
    if not (photo.width and photo.height):
        return {}
    web = fit((photo.width, photo.height), WEB_SIZE)
    preview = fit(web, PREVIEW_SIZE)
    return {"preview": preview, "thumbnail": fit(preview, THUMBNAIL_SIZE)}



def confirmed_bibs_by_photo(photo_ids) -> dict[int, list[str]]:
    """confirmed_bibs for many photos in one query (a grid's lightbox shows each tile's)."""
    found: dict[int, set[str]] = {}
    for photo_id, bib in (BibTag.objects.filter(photo_id__in=photo_ids, confirmed=True)
                          .values_list("photo_id", "bib")):
        found.setdefault(photo_id, set()).add(bib)
    return {photo_id: sorted(bibs, key=lambda bib: (len(bib), bib)) for photo_id, bibs in found.items()}


# --- The whole event by time ("Lost & Found") -------------------------------------------
# For runners whose bib nobody read: every public photo, oldest first, from a time of day
# they choose (when they passed the photographers), paged by a keyset like the gallery.

QUARTER = 15  # minutes: the steps of the "jump to a time" list


def _newer_than(taken_at, photo_id) -> Q:
    return Q(taken_at__gt=taken_at) | Q(taken_at=taken_at, pk__gt=photo_id)


@dataclass
class TimeSlot:
    """A quarter of an hour with photos: where the timeline can jump to."""

    start: datetime.datetime  # aware, in the site's time zone
    count: int


def time_slots(event) -> list[TimeSlot]:
    """The quarters of an hour (site time zone) in which the event's public photos were
    taken, with how many each holds: counted by the database, not by loading the photos."""
    zone = timezone.get_current_timezone()
    rows = (public_photos(event).order_by()
            .annotate(hour=Trunc("taken_at", "hour", tzinfo=zone),
                      # An integer division (EXTRACT gives a numeric in PostgreSQL).
                      quarter=Cast(ExtractMinute("taken_at", tzinfo=zone), IntegerField()) / QUARTER)
            .values("hour", "quarter").annotate(count=Count("pk")).order_by("hour", "quarter"))
    return [TimeSlot(timezone.localtime(row["hour"], zone)
                     + datetime.timedelta(minutes=row["quarter"] * QUARTER), row["count"])
            for row in rows]


def slot_value(event, moment: datetime.datetime) -> str:
    """How an address names a time: "10:45" on the event's day, else with its date
    (a camera whose clock was a day off)."""
    local = timezone.localtime(moment)
    if local.date() == event.date:
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%dT%H:%M")


def parse_time_of_day(event, value: str) -> datetime.datetime:
    """``value`` ("10:45", or "2026-09-14T10:45") as an aware moment of the event's day.

    Raises ValueError with the reason when it is not a time."""
    value = value.strip()
    try:
        if "T" in value:
            naive = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M")
        else:
            naive = datetime.datetime.combine(event.date, datetime.datetime.strptime(value, "%H:%M").time())
    except ValueError:
        raise ValueError(value) from None
    return timezone.make_aware(naive)


def timeline_page(event, at: datetime.datetime | None = None, cursor: str = "",
                  size: int | None = None) -> GalleryPage:
    """One page of the event's photos oldest first, from the moment ``at`` or after
    ``cursor`` (the same keyset tokens as the gallery, read the other way)."""
    size = size or PAGE_SIZE
    photos = public_photos(event).order_by("taken_at", "pk")
    if cursor:
        photos = photos.filter(_newer_than(*_parse_cursor(cursor)))
    elif at is not None:
        photos = photos.filter(taken_at__gte=at)
    rows = list(photos[:size + 1])
    shown = rows[:size]
    return GalleryPage(shown, cursor_of(shown[-1]) if len(rows) > size else None)
