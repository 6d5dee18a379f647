import json
from datetime import datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Subquery
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


def event_list(request):
    events = list(
        Event.objects.filter(is_published=True)
        .annotate(ready_photo_count=_ready_photo_count())
        .order_by("date", "name")
    )
    today = timezone.localdate()
    upcoming = [event for event in events if event.date >= today]
    # Most recent first: last weekend's race is what runners come looking for.
    past = sorted((event for event in events if event.date < today),
                  key=lambda event: event.date, reverse=True)
    context = {
        "upcoming": upcoming,
        "past": past,
        **_seo_context(request, reverse("events:list")),
    }
    return render(request, "events/event_list.html", context)


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
