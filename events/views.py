import json
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse, translate_url
from django.utils import formats, timezone
from django.utils.html import strip_tags
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from events.models import Event, Race, StartListEntry
from photos.models import Photo
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


def _event_search(request):
    """The home page's search (?q= name or place, ?date=): the filter, and what the form
    shows back. Each word of ``q`` must appear in the name (either language) or the place."""
    words = request.GET.get("q", "").split()[:8]
    raw_date = request.GET.get("date", "").strip()
    query, error, day = Q(), "", None
    for word in words:
        query &= (Q(name__icontains=word) | Q(name_en__icontains=word)
                  | Q(location__icontains=word))
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
        Event.objects.filter(is_published=True)
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
    for race in races:
        label = _distance_label(race.distance_km)
        # A race called "10 km" needs no "10 km" next to its name.
        race.distance_label = "" if f"{label} km" in race.name else label

    seo = _seo_context(request, event.get_absolute_url())
    description = _meta_description(event)
    context = {
        "event": event,
        "races": races,
        "meta_description": description,
        "event_json_ld": _script_safe_json(
            _sports_event_data(event, races, seo["canonical_url"], description)
        ),
        **seo,
        # The search panel, and a search's results or the gallery (search/views.py).
        **search_views.event_search_context(request, event),
    }
    return render(request, "events/event_detail.html", context)


@require_GET
def robots_txt(request):
    lines = [
        "User-agent: *",
        f"Disallow: {reverse('admin:index')}",
        "Allow: /",
        "",
        f"Sitemap: {request.build_absolute_uri(reverse('sitemap'))}",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")
