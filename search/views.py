"""The runner's pages: search by bib or selfie on the event page, the gallery, a page per photo.

Pages only ever show the public derivatives (watermarked preview, thumbnail) of ready
photos of published events. A selfie follows the API's rules (search/api.py): it is
parsed by the in-memory upload handler only, searched and dropped, never stored or
logged, and the same per-address throttle counts page and API searches together.
"""

import base64
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET

from accounts import privacy
from events import views as event_views
from events.models import Event
from mlpipeline.bibrules import canonical
from search import gallery, services
from search import outfit as outfit_search
from search.api import _ENVELOPE_BYTES, SelfieInMemory, SelfieThrottle

# A selfie search cannot be paged (the selfie is gone once the page is sent): the
# closest ones are shown, which is far more than one runner's photos of one event.
SELFIE_RESULTS_SHOWN = 120


def _reason_labels():
    return services.reason_labels()


@dataclass
class Tile:
    """One photo in a grid, with why it is there."""

    photo: object
    url: str
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (code, label)
    bibs: list[str] = field(default_factory=list)  # confirmed ones, for the lightbox

    @property
    def sizes(self):
        return gallery.derivative_sizes(self.photo)


def _photo_url(event, photo_id, query=None) -> str:
    url = reverse("search:photo", kwargs={"slug": event.slug, "photo_id": photo_id})
    return f"{url}?{urlencode(query)}" if query else url


def _tiles(event, photos, matches=None, query=None) -> list[Tile]:
    labels = _reason_labels()
    reasons = {match.photo_id: match.reasons for match in matches or []}
    bibs = gallery.confirmed_bibs_by_photo([photo.pk for photo in photos])
    return [Tile(photo, _photo_url(event, photo.pk, query),
                 [(code, labels.get(code) or outfit_search.reason_label(code))
                  for code in dict.fromkeys(reasons.get(photo.pk, ()))
                  if code in labels or outfit_search.reason_label(code)],
                 bibs.get(photo.pk, []))
            for photo in photos]


def _ranked_public_photos(event, matches) -> list:
    """The matched photos a runner may see, in the matches' order."""
    photos = {photo.pk: photo for photo in
              gallery.public_photos(event).filter(pk__in=[match.photo_id for match in matches])}
    return [photos[match.photo_id] for match in matches if match.photo_id in photos]


# The runner wearing a bib, as the start list names them (services.runner_label).
runner_label = services.runner_label


def face_search_status(event) -> dict:
    return {"face_search": event.face_search,
            "selfie_allowed": event.face_search != Event.FaceSearch.OFF}


def _processing_message(event) -> str:
    left = gallery.photos_left_to_process(event)
    if not left:
        return ""
    return ngettext("Photos are still being processed: %(count)d left.",
                    "Photos are still being processed: %(count)d left.", left) % {"count": left}


def bib_search(event, raw_bib: str, start: int = 0) -> dict:
    """The context of a bib search: the runner's name, one page of photos, or what went wrong."""
    context = {"searched": "bib", "bib_query": raw_bib}
    try:
        matches = services.photos_by_bib(event, raw_bib)
    except services.SearchError as error:
        return {**context, "search_error": str(error)}
    bib = canonical(raw_bib)
    photos = _ranked_public_photos(event, matches)
    shown = photos[start:start + gallery.PAGE_SIZE]
    more_url = ""
    if start + gallery.PAGE_SIZE < len(photos):
        more_url = _list_url(event, {"bib": bib, "start": start + gallery.PAGE_SIZE})
    return {
        **context,
        "bib": bib,
        "runner": runner_label(event, bib),
        "total": len(photos),
        "tiles": _tiles(event, shown, matches, {"bib": bib}),
        "more_url": more_url,
        "processing": "" if photos else _processing_message(event),
    }


def _list_url(event, query) -> str:
    return f"{reverse('search:photos', kwargs={'slug': event.slug})}?{urlencode(query)}"


def _gallery(event, cursor: str = "") -> dict:
    page = gallery.gallery_page(event, cursor)
    return {
        "searched": "",
        "tiles": _tiles(event, page.photos),
        "more_url": _list_url(event, {"after": page.next_cursor}) if page.next_cursor else "",
    }


def _start(request) -> int:
    value = request.GET.get("start", "0")
    if not value.isdigit():
        raise Http404("bad start")
    return int(value)


def event_search_context(request, event) -> dict:
    """What the event page's search panel and photo grid need: a bib search's results when
    the address asks for one (?bib=, shareable), else the first page of the gallery."""
    context = face_search_status(event)
    raw_bib = request.GET.get("bib", "").strip()
    raw_outfit = request.GET.get("outfit", "").strip()
    if raw_outfit:  # alone or with a bib (search/outfit.py)
        return {**context, **outfit_search.search_context(event, raw_outfit, raw_bib)}
    if raw_bib:
        return {**context, **bib_search(event, raw_bib)}
    return {**context, **_gallery(event)}


def _published_event(slug):
    return get_object_or_404(Event, slug=slug, is_published=True)


@require_GET
def event_photos(request, slug):
    """More of the event's photos: the gallery after a cursor, or a bib search from a rank.

    htmx asks for the grid items alone (they replace the "more" link); without
    JavaScript the link opens this page in full.
    """
    event = _published_event(slug)
    raw_bib = request.GET.get("bib", "").strip()
    raw_outfit = request.GET.get("outfit", "").strip()
    if raw_outfit:
        context = outfit_search.search_context(event, raw_outfit, raw_bib, _start(request))
    elif raw_bib:
        context = bib_search(event, raw_bib, _start(request))
    else:
        context = _gallery(event, request.GET.get("after", ""))
    context.update(face_search_status(event), event=event)
    if request.htmx:
        return render(request, "search/_tiles.html", context)
    return render(request, "search/photos.html", context)


def _timeline_url(event, query) -> str:
    return f"{reverse('search:timeline', kwargs={'slug': event.slug})}?{urlencode(query)}"


@require_GET
def timeline(request, slug):
    """The whole event by time, oldest first ("Lost & Found"): for runners whose bib nobody
    read. ?at=10:45 jumps to a time of day; the "later" link carries a cursor (?after=)."""
    event = _published_event(slug)
    at_value = request.GET.get("at", "").strip()[:40]
    cursor = request.GET.get("after", "")
    at, time_error, status = None, "", 200
    if at_value and not cursor:
        try:
            at = gallery.parse_time_of_day(event, at_value)
        except ValueError:
            time_error = _("“%(value)s” is not a time of day: give hours and minutes, "
                           "e.g. 10:45.") % {"value": at_value}
            status = 400
    page = gallery.timeline_page(event, at, cursor)
    context = {
        "event": event,
        "searched": "",
        "tiles": _tiles(event, page.photos, query={"from": FROM_TIMELINE}),
        "more_url": _timeline_url(event, {"after": page.next_cursor}) if page.next_cursor else "",
        "more_label": _("Later photos"),
    }
    if request.htmx and cursor:
        return render(request, "search/_tiles.html", context)
    slots = gallery.time_slots(event)
    chosen = gallery.slot_value(event, at) if at else ""
    context.update(
        time_error=time_error, chosen=chosen,
        slots=[{"value": gallery.slot_value(event, slot.start), "start": slot.start,
                "count": slot.count} for slot in slots],
        processing="" if slots else _processing_message(event),
        # Where this page starts: the time asked for, or (a "later" link opened without
        # JavaScript) its first photo's.
        starts_at=at or (page.photos[0].taken_at if cursor and page.photos else None),
        # The language switch keeps the chosen time.
        alternates=event_views._language_alternates(request, request.get_full_path()),
    )
    return render(request, "search/timeline.html", context, status=status)


class PageSelfieThrottle(SelfieThrottle):
    """The API's selfie throttle, sharing its counter; it counts signed-in runners too
    (the API has no sign-in, a page has)."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


@csrf_exempt
def selfie_search(request, slug):
    """POST a selfie from the event page's panel (field "selfie"): the photos with a face
    like it, on a page of their own (a selfie search has no address to share)."""
    if request.method != "POST":
        # A reload or a bookmark of the results: the selfie is gone, start again.
        return HttpResponseRedirect(reverse("events:detail", kwargs={"slug": slug}) + "#search")
    # Before anything reads the body, the CSRF check included: never spooled to a file.
    request.upload_handlers = [SelfieInMemory(request)]
    return _selfie_search(request, slug)


def _selfie_search(request, slug):
    response = _selfie_search_checked(request, slug)
    # Which photos show this face is nobody else's business: no shared or disk cache.
    patch_cache_control(response, private=True, no_store=True)
    return response


@csrf_protect
def _selfie_search_checked(request, slug):
    event = _published_event(slug)
    context = {"event": event, **face_search_status(event), "searched": "selfie"}

    def answer(status, error):
        return render(request, "search/selfie_results.html", {**context, "search_error": error},
                      status=status)

    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        return answer(403, _("Face search is off for this event: search by bib number instead."))
    throttle = PageSelfieThrottle()
    if not throttle.allow_request(request, None):
        wait = max(1, round(throttle.wait() or 1))
        response = answer(429, ngettext(
            "Too many selfie searches from your connection: try again in %(seconds)d second.",
            "Too many selfie searches from your connection: try again in %(seconds)d seconds.",
            wait) % {"seconds": wait})
        response["Retry-After"] = str(wait)
        return response
    if int(request.META.get("CONTENT_LENGTH") or 0) > services.SELFIE_MAX_BYTES + _ENVELOPE_BYTES:
        return answer(413, _("The selfie is too large (at most %(mb)d MB).")
                      % {"mb": services.SELFIE_MAX_BYTES // (1024 * 1024)})
    selfies = [upload for upload in request.FILES.getlist("selfie") if upload.size]
    if not selfies:
        return answer(400, _("Take a selfie or choose a photo of your face first."))
    # The panel sends the bib searched on the page with the selfie: the results combine.
    raw_bib = request.POST.get("bib", "").strip()
    bib_matches = []
    if raw_bib:
        try:
            bib_matches = services.photos_by_bib(event, raw_bib)
        except services.SearchError as error:
            return answer(400, str(error))
        bib = canonical(raw_bib)
        context.update(searched="combined", bib=bib, bib_query=bib, runner=runner_label(event, bib))
    # Two inputs share the name (camera, or a photo from the phone): the last one chosen counts.
    selfie = selfies[-1]
    try:
        result = services.selfie_search(event, selfie)
    except services.SearchError as error:
        return answer(400, str(error))
    finally:
        for upload in selfies:
            upload.close()
    matches = services.combine(event, bib_matches, result) if raw_bib else result.matches
    photos = _ranked_public_photos(event, matches)
    shown = photos[:SELFIE_RESULTS_SHOWN]
    return render(request, "search/selfie_results.html", {
        **context,
        "faces_found": result.faces_found,
        "total": len(photos),
        "tiles": _tiles(event, shown, matches),
        "truncated": len(photos) > len(shown),
        "processing": "" if photos else _processing_message(event),
        "face_choices": [_face_choice(event, face, bib_matches if raw_bib else None)
                         for face in result.faces],
    })


def _face_choice(event, face, bib_matches=None) -> dict:
    """One face of a group selfie: its picture (the runner's own, inline: never a file)
    and its own results (with the bib's, when one was searched with it)."""
    matches = face.matches
    if bib_matches is not None:
        matches = services.combine(event, bib_matches,
                                   services.SelfieResult(face.matches, 1, (), face.clusters))
    photos = _ranked_public_photos(event, matches)
    shown = photos[:SELFIE_RESULTS_SHOWN]
    return {"crop": "data:image/jpeg;base64," + base64.b64encode(face.crop).decode("ascii"),
            "total": len(photos), "tiles": _tiles(event, shown, matches)}


#: ?from= of a photo page opened from the whole event by time (search/views.timeline)
FROM_TIMELINE = "by-time"


def _search_of(request) -> dict:
    """The search a photo page was opened from, as its address carries it: a bib, an outfit
    (with or without a bib) or the event by time; empty for the gallery."""
    query = {key: request.GET.get(key, "").strip() for key in ("bib", "outfit")}
    query = {key: value for key, value in query.items() if value}
    if not query and request.GET.get("from") == FROM_TIMELINE:
        query["from"] = FROM_TIMELINE
    return query


def _search_neighbours(event, photo, query):
    """Previous and next photo within the search ``query`` (a bib, an outfit or both), in
    the order its results are shown, or None when the photo is not in it."""
    try:
        if "outfit" in query:
            matches = outfit_search.search_matches(event, query["outfit"], query.get("bib", ""))
        else:
            matches = services.photos_by_bib(event, query["bib"])
    except services.SearchError:
        return None
    public = set(gallery.public_photos(event).filter(pk__in=[match.photo_id for match in matches])
                 .order_by().values_list("pk", flat=True))
    ids = list(dict.fromkeys(match.photo_id for match in matches if match.photo_id in public))
    if photo.pk not in ids:
        return None
    index = ids.index(photo.pk)
    return {"previous": ids[index - 1] if index else None,
            "next": ids[index + 1] if index + 1 < len(ids) else None,
            "position": index + 1, "total": len(ids)}


def _back_label(query) -> str:
    """The link back to the search a photo page was opened from."""
    if "outfit" in query and "bib" in query:
        return _("← Photos of bib %(bib)s and “%(outfit)s”") % query
    if "outfit" in query:
        return _("← Photos matching “%(outfit)s”") % query
    return _("← Photos of bib %(bib)s") % query


@require_GET
def photo_detail(request, slug, photo_id):
    """One photo's own page: the watermarked preview large, its confirmed bibs, previous and
    next within the search it was opened from (a bib, an outfit, both, or the event by
    time), else within the gallery. A selfie search cannot be followed: the selfie is gone."""
    event = _published_event(slug)
    photo = get_object_or_404(gallery.public_photos(event), pk=photo_id)
    context = {"event": event, "photo": photo, "sizes": gallery.derivative_sizes(photo),
               "bibs": gallery.confirmed_bibs(photo)}
    query = _search_of(request)
    if "bib" in query:
        query["bib"] = canonical(query["bib"])
    within = _search_neighbours(event, photo, query) if "bib" in query or "outfit" in query \
        else None
    if within:
        context.update(
            back_label=_back_label(query), position=within["position"], total=within["total"],
            previous_url=within["previous"] and _photo_url(event, within["previous"], query),
            next_url=within["next"] and _photo_url(event, within["next"], query),
            back_url=f"{event.get_absolute_url()}?{urlencode(query)}#results")
    elif query.get("from") == FROM_TIMELINE:
        # The event by time runs oldest first: previous is the earlier photo.
        newer, older = gallery.gallery_neighbours(photo)
        minute = photo.taken_at.replace(second=0, microsecond=0)
        context.update(
            back_label=_("← The event by time"),
            previous_url=older and _photo_url(event, older.pk, query),
            next_url=newer and _photo_url(event, newer.pk, query),
            back_url=_timeline_url(event, {"at": gallery.slot_value(event, minute)}))
    else:
        newer, older = gallery.gallery_neighbours(photo)
        context.update(previous_url=newer and _photo_url(event, newer.pk),
                       next_url=older and _photo_url(event, older.pk),
                       back_url=f"{event.get_absolute_url()}#results")
    # The same canonical and language links as the event pages (one rule for the site).
    context.update(event_views._seo_context(request, _photo_url(event, photo.pk)))
    context["og_image"] = request.build_absolute_uri(photo.preview.url)
    return render(request, "search/photo_detail.html", context)
