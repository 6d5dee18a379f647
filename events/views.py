import io
import json
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Concat, Lower
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse, translate_url
from django.utils import formats, timezone
from django.utils.html import strip_tags
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from PIL import Image

from events.models import LOGO_MAX_BYTES, Event, Organisation, Race, StartListEntry
from photos.models import Face, Photo
from search import gallery
from search import views as search_views

META_DESCRIPTION_LENGTH = 160

# What json_script escapes: inside <script>, "</script>" or "<!--" in an event
# name would otherwise end the block and let the rest run as HTML.
_SCRIPT_SAFE_JSON = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def _count_per_event(queryset):
    """Count of ``queryset`` rows for the outer event, as a correlated subquery.

    Two plain Count() annotations would join the start list and the photos
    together and count their product: tens of thousands of rows per event.
    """
    counted = (
        queryset.filter(event=OuterRef("pk"))
        .order_by()
        .values("event")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _ready_photo_count():
    return _count_per_event(Photo.objects.filter(state=Photo.State.READY))


def _language_alternates(request, path):
    """The page at ``path`` in every language, for hreflang links and the language switch."""
    return [
        {
            "code": code,
            "name": name,
            "path": (translated := translate_url(path, code)),
            "url": request.build_absolute_uri(translated),
        }
        for code, name in settings.LANGUAGES
    ]


def _seo_context(request, path):
    return {
        "canonical_url": request.build_absolute_uri(path),
        "alternates": _language_alternates(request, path),
        "x_default_url": request.build_absolute_uri(translate_url(path, settings.LANGUAGE_CODE)),
    }


def _script_safe_json(data):
    return mark_safe(
        json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False).translate(_SCRIPT_SAFE_JSON)
    )


def _distance_label(distance):
    # 10.00 reads "10", 21.10 reads "21,1" in French: normalize() drops the
    # trailing zeros the DecimalField keeps.
    return formats.number_format(distance.normalize()) if distance is not None else ""


def _meta_description(event):
    if event.display_description:
        text = " ".join(strip_tags(event.display_description).split())
        return Truncator(text).chars(META_DESCRIPTION_LENGTH)
    if event.location:
        return _(
            "Race photos from %(name)s, %(date)s in %(location)s. "
            "Find yours by bib number, selfie or outfit."
        ) % {
            "name": event.display_name,
            "date": formats.date_format(event.date, "DATE_FORMAT"),
            "location": event.location,
        }
    return _(
        "Race photos from %(name)s, %(date)s. Find yours by bib number, selfie or outfit."
    ) % {"name": event.display_name, "date": formats.date_format(event.date, "DATE_FORMAT")}


def _sports_event_data(event, races, url, description):
    # The first start is more useful to search engines than a bare date.
    start_times = [race.start_time for race in races if race.start_time is not None]
    if start_times:
        start = timezone.make_aware(datetime.combine(event.date, min(start_times)))
        start_date = start.isoformat()
    else:
        start_date = event.date.isoformat()
    data = {
        "@context": "https://schema.org",
        "@type": "SportsEvent",
        "name": event.display_name,
        "startDate": start_date,
        "url": url,
        "description": description,
    }
    if event.location:
        data["location"] = {"@type": "Place", "name": event.location, "address": event.location}
    return data


RECENT_EVENTS_SHOWN = 12
SEARCH_RESULTS_SHOWN = 50
# A runner remembers the weekend, not always the day: a date finds the events around it.
DATE_SEARCH_DAYS = 3


class Unaccent(Func):
    """PostgreSQL's unaccent() (events migration 0009 creates the extension): "Fête" → "Fete"."""

    function = "unaccent"
    output_field = CharField()


def _searchable_text():
    """The text a home-page search looks in, folded the way the words are: no accents, no
    capitals (a runner types "fete de lyon" for "Fête de Lyon")."""
    # unaccent() first: LOWER() leaves "É" as it is in a database of the C locale.
    return Lower(Unaccent(Concat("name", Value(" "), "name_en", Value(" "), "location",
                                 output_field=CharField())))


def _event_search(request):
    """The home page's search (?q= name or place, ?date=): the filter, and what the form
    shows back. Each word of ``q`` must appear in the name (either language) or the place,
    accents and capitals aside."""
    words = request.GET.get("q", "").split()[:8]
    raw_date = request.GET.get("date", "").strip()
    query, error, day = Q(), "", None
    for word in words:
        # Django escapes LIKE's wildcards in the word: "100%" looks for "100%".
        query &= Q(searchable_text__contains=Lower(Unaccent(Value(word))))
    if raw_date:
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            error = _("“%(value)s” is not a date: pick one in the calendar, e.g. 2026-09-14.") % {
                "value": raw_date[:20]}
        else:
            window = timedelta(days=DATE_SEARCH_DAYS)
            query &= Q(date__range=(day - window, day + window))
    return {"q": " ".join(words), "date": raw_date[:20], "day": day, "error": error,
            "active": bool(words or raw_date), "filter": query}


def event_list(request):
    """The home page: upcoming events, the most recent ones, and a search by name, place or
    date (a plain GET form, so it works without JavaScript and can be shared)."""
    published = (Event.objects.filter(is_published=True)
                 .annotate(ready_photo_count=_ready_photo_count()))
    search = _event_search(request)
    if search["active"]:
        published = published.alias(searchable_text=_searchable_text())
    context = {"search": search, **_seo_context(request, reverse("events:list"))}
    today = timezone.localdate()
    if search["active"]:
        found = published.none() if search["error"] else published.filter(search["filter"])
        results = list(found.order_by("-date", "name")[:SEARCH_RESULTS_SHOWN + 1])
        if search["day"]:  # a week's events at most: the closest to the date asked first
            results.sort(key=lambda event: abs((event.date - search["day"]).days))
        context.update(results=results[:SEARCH_RESULTS_SHOWN],
                       more_results=len(results) > SEARCH_RESULTS_SHOWN)
    else:
        # One query: every upcoming event, and the most recent past ones (one more than
        # shown tells whether older ones exist).
        recent = published.filter(date__lt=today).order_by("-date", "name")[:RECENT_EVENTS_SHOWN + 1]
        events = list(published.filter(date__gte=today).order_by().union(recent, all=True))
        upcoming = sorted((event for event in events if event.date >= today),
                          key=lambda event: (event.date, event.name))
        # Most recent first: last weekend's race is what runners come looking for.
        past = sorted((event for event in events if event.date < today),
                      key=lambda event: (-event.date.toordinal(), event.name))
        context.update(upcoming=upcoming, past=past[:RECENT_EVENTS_SHOWN],
                       older_events=len(past) > RECENT_EVENTS_SHOWN)
    return render(request, "events/event_list.html", context,
                  status=400 if search["error"] else 200)


def event_detail(request, slug):
    event = get_object_or_404(
        Event.objects.filter(is_published=True).select_related("organisation")
        .annotate(
            runner_count=_count_per_event(StartListEntry.objects.all()),
            ready_photo_count=_ready_photo_count(),
        )
        .prefetch_related(
            Prefetch("races", queryset=Race.objects.order_by("start_time", "distance_km", "name"))
        ),
        slug=slug,
    )
    races = list(event.races.all())
    featured = featured_photos(event)
    for race in races:
        label = _distance_label(race.distance_km)
        # A race called "10 km" needs no "10 km" next to its name.
        race.distance_label = "" if f"{label} km" in race.name else label

    seo = _seo_context(request, event.get_absolute_url())
    description = _meta_description(event)
    context = {
        "event": event,
        "races": races,
        "featured": featured,
        "featured_picked": any(photo.featured for photo in featured),
        "meta_description": description,
        "event_json_ld": _script_safe_json(
            _sports_event_data(event, races, seo["canonical_url"], description)
        ),
        **seo,
        # The search panel, and a search's results or the gallery (search/views.py).
        **search_views.event_search_context(request, event),
    }
    return render(request, "events/event_detail.html", context)


FEATURED_SHOWN = 6


def featured_photos(event) -> list:
    """The photos the event page shows first: the organiser's picks, else the sharpest public
    photos with a face (a runner, not a crowd's back or an empty road). One query: picks
    sort first, and any pick leaves the automatic ones out."""
    with_face = Exists(Face.objects.filter(photo=OuterRef("pk")))
    candidates = list(
        gallery.public_photos(event)
        .filter(Q(featured=True) | (with_face & Q(sharpness__isnull=False)))
        .only("pk", "event_id", "preview", "thumbnail", "width", "height", "featured",
              "captured_at", "created_at")
        .order_by("-featured", F("sharpness").desc(nulls_last=True), "-pk")[:FEATURED_SHOWN])
    if candidates and candidates[0].featured:
        return [photo for photo in candidates if photo.featured]
    return candidates


#: logo types a browser shows as they are (no SVG: it can carry script)
LOGO_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def logo_response(field_file, cache_control: str) -> HttpResponse:
    """A logo from the private storage, checked to be a plain picture before it is sent."""
    if not field_file:
        raise Http404("No logo.")
    try:
        with field_file.storage.open(field_file.name, "rb") as handle:
            data = handle.read(LOGO_MAX_BYTES + 1)
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
    except (OSError, Image.UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise Http404("Unreadable logo.") from exc
    if kind not in LOGO_TYPES or len(data) > LOGO_MAX_BYTES:
        raise Http404("Not a logo a browser shows as is.")
    response = HttpResponse(data, content_type=LOGO_TYPES[kind])
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def event_logo(request, slug):
    """The published event's logo. Its URL carries the file's name (``?v=``), so a new logo
    is a new URL and this one can be cached for a day."""
    event = get_object_or_404(Event.objects.filter(is_published=True).only("logo"), slug=slug)
    response = logo_response(event.logo, "public, max-age=86400")
    if not event.search_engines_may_index:
        response["X-Robots-Tag"] = "noindex"
    return response


def organisation_detail(request, slug):
    """An organiser's public page: who they are and their published events."""
    organisation = get_object_or_404(Organisation, slug=slug)
    events = list(organisation.events.filter(is_published=True)
                  .annotate(ready_photo_count=_ready_photo_count()).order_by("-date", "name"))
    today = timezone.localdate()
    upcoming = sorted((event for event in events if event.date >= today),
                      key=lambda event: (event.date, event.name))
    past = [event for event in events if event.date < today]
    return render(request, "events/organisation_detail.html", {
        "organisation": organisation, "upcoming": upcoming, "past": past,
        **_seo_context(request, organisation.get_absolute_url())})


def _unindexed_media() -> list[str]:
    """Disallow lines for the public photo files of events that ask search engines to stay
    away. Their pages say noindex, but the files are served by nginx or the bucket, which
    cannot ask the database (the development server adds X-Robots-Tag itself); files on
    another host (a bucket's domain) are that host's robots.txt's business."""
    if not settings.MEDIA_URL.startswith("/"):
        return []
    ids = (Event.objects.filter(is_published=True, search_engines_may_index=False)
           .order_by("pk").values_list("pk", flat=True))
    return [f"Disallow: {settings.MEDIA_URL}{folder}/{event_id}/"
            for event_id in ids for folder in settings.PUBLIC_MEDIA_FOLDERS]


@require_GET
def robots_txt(request):
    lines = [
        "User-agent: *",
        f"Disallow: {reverse('admin:index')}",
        *_unindexed_media(),
        "Allow: /",
        "",
        f"Sitemap: {request.build_absolute_uri(reverse('sitemap'))}",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")
