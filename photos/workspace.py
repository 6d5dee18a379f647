"""The organiser's workspace in the admin, per event: start-list import, the tagging grid,
the review queue and the coverage report.

The pages hang off the event's admin (``EventAdmin.get_urls``) and open to the
event's organisers and platform admins only: the event is fetched from
``Event.objects.managed_by(user)``, so anyone else gets the admin's 404, exactly as
for an event they cannot see. Changes go through :mod:`photos.tagging` (locks,
audit, undo); pages work without JavaScript, and ``static/js/organiser.js`` adds the
keyboard and in-place updates (the same POSTs, answered as JSON).
"""

import csv
import io
import secrets
import time
from datetime import datetime, timedelta

from django.contrib import admin, messages
from django.core import signing
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from PIL import Image

from events import startlist_import
from events.models import Event
from mlpipeline.start_list import confirm_listed_readings
from photos import tagging
from photos.models import BibTag, Face, Photo, TagChange, TagSuggestion
from photos.tags import shown_tags

GRID_PAGE_SIZE = 60
QUEUE_PAGE_SIZE = 50
#: an automatic tag less sure than this is shown to a person before runners rely on it
LOW_CONFIDENCE = 0.5
#: how long an uploaded start list waits for the organiser to confirm its preview
IMPORT_PREVIEW_SECONDS = 3600


def managed_event(request, event_id) -> Event:
    return get_object_or_404(Event.objects.managed_by(request.user), pk=event_id)


def _context(request, event, title, **extra):
    return {**admin.site.each_context(request), "title": title, "event": event,
            "opts": Event._meta, **extra}


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


# --- Start-list import ---------------------------------------------------------------


def _import_key(request, event, token) -> str:
    return f"racephoto:start-list-import:{request.user.pk}:{event.pk}:{token}"


def import_start_list(request, event_id):
    event = managed_event(request, event_id)
    title = _("Import a start list")
    if request.method == "POST" and request.POST.get("token"):
        return _commit_import(request, event)
    preview = error = None
    token = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            error = _("Choose the file to import.")
        elif upload.size > startlist_import.MAX_FILE_BYTES:
            error = _("The file is larger than %(size)d MB: split it in parts.") % {
                "size": startlist_import.MAX_FILE_BYTES // (1024 * 1024)}
        else:
            data = upload.read()
            try:
                preview = startlist_import.read(data, event)
            except startlist_import.StartListFileError as exc:
                error = str(exc)
            else:
                # The file waits server-side for the confirmation; it is read again then,
                # against the start list as it is at that moment.
                token = secrets.token_urlsafe(16)
                cache.set(_import_key(request, event, token), data, IMPORT_PREVIEW_SECONDS)
    return render(request, "admin/events/event/import_start_list.html", _context(
        request, event, title, preview=preview, error=error, token=token,
        shown_problems=preview.problem_rows[:500] if preview else [],
        counts={status: preview.count(status) for status in
                ("new", "updated", "unchanged", "rejected")} if preview else {},
        max_size_mb=startlist_import.MAX_FILE_BYTES // (1024 * 1024)))


def _commit_import(request, event):
    key = _import_key(request, event, request.POST["token"])
    data = cache.get(key)
    back = reverse("admin:events_event_import_start_list", args=[event.pk])
    if data is None:
        messages.error(request, _("This preview has expired: import the file again."))
        return HttpResponseRedirect(back)
    try:
        preview = startlist_import.read(data, event)
    except startlist_import.StartListFileError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    started = time.monotonic()
    result = startlist_import.write(preview, event)
    confirmed = confirm_listed_readings(event.pk)
    cache.delete(key)
    messages.success(request, _(
        "Start list imported in %(seconds).1f s: %(created)d new, %(updated)d updated, "
        "%(unchanged)d unchanged, %(rejected)d rows left out. %(confirmed)d readings "
        "already on photos are now confirmed.") % {
        "seconds": time.monotonic() - started, "created": result.created,
        "updated": result.updated, "unchanged": result.unchanged, "rejected": result.rejected,
        "confirmed": confirmed})
    return HttpResponseRedirect(reverse("admin:events_event_change", args=[event.pk]))


# --- Tags as the pages show them --------------------------------------------------------


def crop_style(tag, photo) -> str:
    """CSS that shows the tag's box out of the public preview, at any size: the preview's
    width and offsets as percentages of the box's width (margins are relative to width)."""
    if not (tag.box and photo.width and photo.height and photo.preview):
        return ""
    x1, y1, x2, y2 = (float(value) for value in tag.box)
    # A little room around the digits: a tight box hides a cut-off digit.
    pad_x, pad_y = (x2 - x1) * 0.15, (y2 - y1) * 0.15
    x1, y1 = max(0.0, x1 - pad_x), max(0.0, y1 - pad_y)
    x2, y2 = min(float(photo.width), x2 + pad_x), min(float(photo.height), y2 + pad_y)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    return (f"--crop-ratio:{width / height:.4f};--crop-width:{photo.width / width * 100:.3f}%;"
            f"--crop-left:{-x1 / width * 100:.3f}%;--crop-top:{-y1 / width * 100:.3f}%")


#: the crop is drawn this wide: large enough to read a digit a reader got wrong
CROP_WIDTH = 480


def bib_crop(request, event_id, tag_id):
    """The tag's box cut out of the private web version (no watermark over the digits),
    for the event's organisers only; never cached outside the browser."""
    event = managed_event(request, event_id)
    tag = get_object_or_404(BibTag.objects.select_related("photo"), pk=tag_id,
                            photo__event=event)
    photo = tag.photo
    if not (tag.box and photo.web and photo.width):
        raise Http404
    try:
        with photo.web.open("rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            image.load()
    except (OSError, Image.UnidentifiedImageError) as exc:
        raise Http404 from exc
    scale = image.width / photo.width
    x1, y1, x2, y2 = (float(value) for value in tag.box)
    pad_x, pad_y = (x2 - x1) * 0.15, (y2 - y1) * 0.15
    box = (max(0, int((x1 - pad_x) * scale)), max(0, int((y1 - pad_y) * scale)),
           min(image.width, int((x2 + pad_x) * scale) + 1),
           min(image.height, int((y2 + pad_y) * scale) + 1))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise Http404
    crop = image.convert("RGB").crop(box)
    crop = crop.resize((CROP_WIDTH, max(1, round(crop.height * CROP_WIDTH / crop.width))),
                       Image.Resampling.LANCZOS)
    output = io.BytesIO()
    crop.save(output, "JPEG", quality=88)
    response = HttpResponse(output.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _source_label(tag) -> str:
    if tag.source == BibTag.Source.OCR:
        if tag.read_as:
            return (_("read %(read)s, corrected") if tag.confirmed
                    else _("read %(read)s, corrected: probable")) % {"read": tag.read_as}
        return _("read") if tag.confirmed else _("read, not confirmed")
    if tag.source == BibTag.Source.FACE_LINK:
        return _("face-linked")
    if tag.source == BibTag.Source.TIMING:
        return _("timing")
    return _("manual")


def _tags_html(photo, request) -> str:
    tags = [{"tag": tag, "label": _source_label(tag)} for tag in photo.bib_tags.all()]
    return render_to_string("admin/events/event/_photo_tags.html",
                            {"photo": photo, "tags": tags}, request=request)


def _result_json(request, event, result, message, level="success"):
    photos = (Photo.objects.filter(event=event, pk__in=result.photo_ids)
              .prefetch_related("bib_tags"))
    return JsonResponse({"message": message, "level": level, "conflicts": result.conflicts,
                         "changed": result.changed,
                         "tags": {str(photo.pk): _tags_html(photo, request) for photo in photos}})


def _message_for(result, verb_done, already) -> str:
    text = verb_done(result.changed)
    if result.unchanged:
        text += " " + already(result.unchanged) % {"count": result.unchanged}
    return text


def change_tags(request, event_id):
    """One POST for every change of the grid and the queue: ``action`` says which."""
    event = managed_event(request, event_id)
    if request.method != "POST":
        return HttpResponseRedirect(reverse("admin:events_event_tagging", args=[event.pk]))
    action = request.POST.get("action", "")
    back = request.POST.get("next") or reverse("admin:events_event_tagging", args=[event.pk])
    if not back.startswith("/admin/"):
        back = reverse("admin:events_event_tagging", args=[event.pk])
    try:
        photo_ids = [int(pk) for pk in request.POST.getlist("photo")]
        tag_ids = [int(pk) for pk in request.POST.getlist("tag")]
    except ValueError:
        photo_ids, tag_ids, action = [], [], "invalid"
    bib = request.POST.get("bib", "")
    if request.POST.get("remove_tag"):
        # A tag chip's own button: "photo id:bib".
        photo_id, _sep, bib = request.POST["remove_tag"].partition(":")
        photo_ids, action = ([int(photo_id)] if photo_id.isdigit() else []), "remove"
    user = request.user
    try:
        if action == "add":
            result = tagging.add_bib(user, event, photo_ids, bib)
            message = _message_for(result, lambda n: ngettext(
                "Bib %(bib)s added to %(count)d photo.", "Bib %(bib)s added to %(count)d photos.",
                n) % {"bib": tagging.clean_bib(bib), "count": n}, lambda n: ngettext(
                "%(count)d photo already had it.", "%(count)d photos already had it.", n))
        elif action == "remove":
            result = tagging.remove_bib(user, event, photo_ids, bib)
            message = _message_for(result, lambda n: ngettext(
                "Bib %(bib)s removed from %(count)d photo.",
                "Bib %(bib)s removed from %(count)d photos.", n)
                % {"bib": tagging.clean_bib(bib), "count": n}, lambda n: ngettext(
                "%(count)d photo did not have it.", "%(count)d photos did not have it.", n))
        elif action == "confirm":
            result = tagging.confirm(user, event, tag_ids)
            message = ngettext("%(count)d tag confirmed.", "%(count)d tags confirmed.",
                               result.changed) % {"count": result.changed}
        elif action == "reject":
            result = tagging.reject(user, event, tag_ids)
            message = ngettext("%(count)d tag rejected: it will not come back on that photo.",
                               "%(count)d tags rejected: they will not come back on those photos.",
                               result.changed) % {"count": result.changed}
        elif action in ("feature", "unfeature"):
            result = _set_featured(event, photo_ids, action == "feature")
            message = (ngettext("%(count)d photo now featured on the event page.",
                                "%(count)d photos now featured on the event page.",
                                result.changed) if action == "feature" else
                       ngettext("%(count)d photo no longer featured.",
                                "%(count)d photos no longer featured.", result.changed)) % {
                "count": result.changed}
        elif action == "undo":
            result = tagging.undo_last(user, event)
            message = ngettext("Last change undone on %(count)d photo.",
                               "Last change undone on %(count)d photos.",
                               result.changed) % {"count": result.changed}
        else:
            raise tagging.TaggingError(_("Unknown change."))
    except tagging.TaggingError as exc:
        if _wants_json(request):
            return JsonResponse({"message": str(exc), "level": "error", "conflicts": [],
                                 "changed": 0, "tags": {}}, status=400)
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    level = "warning" if result.conflicts else "success"
    if result.conflicts:
        message = " ".join([message, *result.conflicts]) if result.changed else " ".join(
            result.conflicts)
    if _wants_json(request):
        return _result_json(request, event, result, message, level)
    messages.add_message(request, messages.WARNING if result.conflicts else messages.SUCCESS,
                         message)
    return HttpResponseRedirect(back)


def _set_featured(event, photo_ids, featured: bool) -> tagging.ChangeResult:
    """Pick photos for the event page (or take them off it); not a tag, so not undone."""
    ids = set(photo_ids)
    if not ids:
        raise tagging.TaggingError(_("Select at least one photo."))
    photos = Photo.objects.filter(event=event, pk__in=ids)
    if photos.count() != len(ids):
        raise tagging.TaggingError(_("Some of these photos are not photos of this event."))
    to_change = photos.exclude(featured=featured)
    changed = set(to_change.values_list("pk", flat=True))
    to_change.update(featured=featured)
    return tagging.ChangeResult(changed=len(changed), unchanged=len(ids) - len(changed),
                                photo_ids=changed)


# --- The tagging grid ------------------------------------------------------------------


def _findable(event):
    """Tags of the outer photo a runner's bib search finds: confirmed ones (read on the
    list, linked, manual) and probable ones (photos.tags.shown_tags)."""
    return shown_tags(event.pk).filter(photo=OuterRef("pk"))


def tagging_grid(request, event_id):
    event = managed_event(request, event_id)
    photos = Photo.objects.filter(event=event).select_related("photographer").order_by(
        "captured_at", "pk").prefetch_related("bib_tags")
    filters = {
        "photographer": request.GET.get("photographer", ""),
        "state": request.GET.get("state", ""),
        "nobib": request.GET.get("nobib") == "1",
        "unconfirmed": request.GET.get("unconfirmed") == "1",
        "probable": request.GET.get("probable") == "1",
        "faces": request.GET.get("faces") == "1",
        "featured": request.GET.get("featured") == "1",
        "taken_from": request.GET.get("taken_from", "")[:40],
        "taken_to": request.GET.get("taken_to", "")[:40],
    }
    errors = []
    taken_from = _capture_time(filters["taken_from"], _("Taken from"), errors)
    taken_to = _capture_time(filters["taken_to"], _("Taken until"), errors)
    if taken_from and taken_to and taken_from > taken_to:
        errors.append(_("“Taken from” is after “Taken until”: swap them."))
        taken_from = taken_to = None
    if taken_from:
        photos = photos.filter(captured_at__gte=taken_from)
    if taken_to:
        # The whole minute typed: "until 10:15" keeps a photo taken at 10:15:40.
        photos = photos.filter(captured_at__lt=taken_to + timedelta(minutes=1))
    if filters["probable"]:
        photos = photos.filter(Exists(shown_tags(event.pk).filter(photo=OuterRef("pk"),
                                                                  confirmed=False)))
    if filters["photographer"].isdigit():
        photos = photos.filter(photographer_id=int(filters["photographer"]))
    if filters["state"] in Photo.State.values:
        photos = photos.filter(state=filters["state"])
    if filters["nobib"]:
        photos = photos.exclude(Exists(_findable(event)))
    if filters["unconfirmed"]:
        photos = photos.filter(Exists(BibTag.objects.filter(photo=OuterRef("pk"),
                                                            confirmed=False)))
    if filters["featured"]:
        photos = photos.filter(featured=True)
    if filters["faces"]:
        photos = photos.filter(Exists(Face.objects.filter(photo=OuterRef("pk"))))
    page = Paginator(photos, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    cards = [{"photo": photo, "tags_html": _tags_html(photo, request)} for photo in page]
    photographers = (event.photos.exclude(photographer=None).values_list(
        "photographer_id", "photographer__username").distinct().order_by("photographer__username"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "admin/events/event/tagging.html", _context(
        request, event, _("Tag photos"), page=page, cards=cards, filters=filters,
        photographers=list(photographers), states=Photo.State.choices, filter_errors=errors,
        query=query.urlencode(), next_url=request.get_full_path()))


def _capture_time(text: str, label: str, errors: list):
    """A ``datetime-local`` value of the grid's time range, in the site's time zone (the
    one capture times are shown in), or None; a value that is no time adds an error."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(_("%(field)s: “%(value)s” is not a date and time, e.g. 2026-09-14 10:30.")
                      % {"field": label, "value": text})
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.replace(second=0, microsecond=0)


# --- The review queue ------------------------------------------------------------------


def review_queue_tags(event):
    """Automatic tags a person should look at: readings off the start list (or of an event
    without one), readings the bib rules corrected onto a listed bib and nothing confirmed
    yet (``read_as``), unsure readings and links, and every face link."""
    return (BibTag.objects.filter(photo__event=event)
            .exclude(source=BibTag.Source.MANUAL)
            .filter(Q(confirmed=False) | Q(confidence__lt=LOW_CONFIDENCE)
                    | Q(source__in=[BibTag.Source.FACE_LINK, BibTag.Source.TIMING])))


def photos_with_faces_but_no_bib(event):
    return (Photo.objects.filter(event=event)
            .filter(Exists(Face.objects.filter(photo=OuterRef("pk"))))
            .exclude(Exists(_findable(event))))


def _queue_reason(tag, has_start_list: bool) -> str:
    if tag.source == BibTag.Source.TIMING:
        return _("Timing: the only runner in front of the photographer then")
    if tag.read_as and not tag.confirmed:
        return _("Read %(read)s, corrected to %(bib)s: probable until confirmed") % {
            "read": tag.read_as, "bib": tag.bib}
    if not tag.confirmed:
        return _("Not on the start list") if has_start_list else _(
            "Probable: the event has no start list")
    if tag.source == BibTag.Source.FACE_LINK:
        return _("Linked by face from another photo")
    return _("Low confidence")


#: the queue's order, and the key its pages continue from (a keyset: deciding items on one
#: page never makes the next page skip any, as an offset would)
QUEUE_ORDER = ("confirmed", "source", "confidence", "photo_id", "pk")
_QUEUE_CURSOR_SALT = "photos.workspace.review-queue"


def _after(values) -> Q:
    """Rows strictly after ``values`` in QUEUE_ORDER (all ascending)."""
    condition = Q()
    for depth in range(len(QUEUE_ORDER) - 1, -1, -1):
        field = QUEUE_ORDER[depth]
        step = Q(**{f"{field}__gt": values[depth]})
        if depth < len(QUEUE_ORDER) - 1:
            step |= Q(**{field: values[depth]}) & condition
        condition = step
    return condition


def _queue_cursor(tag) -> str:
    return signing.dumps([getattr(tag, field) for field in QUEUE_ORDER], salt=_QUEUE_CURSOR_SALT,
                         compress=True)


def _read_queue_cursor(text: str):
    try:
        values = signing.loads(text, salt=_QUEUE_CURSOR_SALT)
    except signing.BadSignature:
        return None
    if not (isinstance(values, list) and len(values) == len(QUEUE_ORDER)):
        return None
    return values


def review_queue(request, event_id):
    event = managed_event(request, event_id)
    queue = review_queue_tags(event)
    total = queue.count()
    page = queue.select_related("photo").order_by(*QUEUE_ORDER)
    cursor = request.GET.get("after", "")
    if cursor:
        values = _read_queue_cursor(cursor)
        if values is None:
            messages.warning(request, _("This page link is not valid any more: here is the "
                                        "start of the queue."))
        else:
            page = page.filter(_after(values))
    tags = list(page[:QUEUE_PAGE_SIZE + 1])
    more = len(tags) > QUEUE_PAGE_SIZE
    tags = tags[:QUEUE_PAGE_SIZE]
    has_start_list = event.start_list.exists()
    items = [{"tag": tag, "photo": tag.photo, "crop": crop_style(tag, tag.photo),
              "reason": _queue_reason(tag, has_start_list),
              # A correction's reason already says it was read and corrected.
              "label": "" if tag.read_as and not tag.confirmed else _source_label(tag)}
             for tag in tags]
    return render(request, "admin/events/event/review.html", _context(
        request, event, _("Review queue"), items=items, total=total,
        next_cursor=_queue_cursor(tags[-1]) if more else "", paged=bool(cursor),
        faces_without_bib=photos_with_faces_but_no_bib(event).count(),
        suggestions=TagSuggestion.objects.filter(photo__event=event).still_open().count(),
        next_url=request.get_full_path()))


# --- The report ------------------------------------------------------------------------


def coverage(event) -> dict:
    photos = Photo.objects.filter(event=event)
    total = photos.count()
    findable = photos.filter(Exists(_findable(event))).count()
    by_source = []
    for source, label in BibTag.Source.choices:
        count = photos.filter(Exists(_findable(event).filter(source=source))).count()
        by_source.append({"label": str(label), "count": count,
                          "share": count / total * 100 if total else 0.0})
    # Found, but only through probable tags: what a start list or a review would firm up.
    probable_only = (photos.filter(Exists(_findable(event)))
                     .exclude(Exists(_findable(event).filter(confirmed=True))).count())
    per_photographer = list(photos.values("photographer__username").annotate(
        count=Count("pk"), findable=Count("pk", filter=Q(Exists(_findable(event))))).order_by(
        "photographer__username"))
    states = photos.state_counts()
    return {
        "total": total, "findable": findable, "untagged": total - findable,
        "share": findable / total * 100 if total else 0.0, "by_source": by_source,
        "probable_only": probable_only,
        "states": [(label, states[value]) for value, label in Photo.State.choices],
        "per_photographer": per_photographer,
        "queue": review_queue_tags(event).count(),
        "faces_without_bib": photos_with_faces_but_no_bib(event).count(),
        "changes": TagChange.objects.filter(photo__event=event).count(),
    }


def report(request, event_id):
    event = managed_event(request, event_id)
    if request.GET.get("format") == "csv":
        section = request.GET.get("section", "summary")
        if section not in REPORT_CSV:
            raise Http404
        return _csv_response(f"{event.slug}-{section}.csv", REPORT_CSV[section](event))
    figures = coverage(event)
    return render(request, "admin/events/event/report.html", _context(
        request, event, _("Tagging report"), figures=figures, csv_sections=_csv_sections()))


# --- The report's CSV files --------------------------------------------------------------


#: cells a spreadsheet would take for a formula (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value):
    """A cell as written: numbers as they are, and text that could start a spreadsheet
    formula (a photographer's name, a file name) behind an apostrophe, shown as text."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


def _csv_response(filename: str, rows):
    """``rows`` (header first) as a streamed CSV that spreadsheets open right: UTF-8 with a
    byte order mark (Excel reads accents right then), ``;``-separated (French Excel's list
    separator), every text cell safe from formula injection."""
    writer = csv.writer(_Echo(), delimiter=";")

    def lines():
        yield "\ufeff"
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _share(count: int, total: int) -> str:
    return formats.number_format(count / total * 100 if total else 0.0, 1)


def _summary_rows(event):
    figures = coverage(event)
    yield [_("Section"), _("Item"), _("Photos"), _("Share (%)")]
    yield from _coverage_rows(event, figures, header=False)
    for label, count in figures["states"]:
        yield [_("By state"), label, count, ""]
    for row in figures["per_photographer"]:
        yield [_("By photographer"), row["photographer__username"] or _("unknown"), row["count"],
               ""]
    yield [_("Review"), _("Tags to review"), figures["queue"], ""]
    yield [_("Review"), _("Photos with faces but no bib"), figures["faces_without_bib"], ""]


def _coverage_rows(event, figures=None, header=True):
    figures = figures or coverage(event)
    total = figures["total"]
    if header:
        yield [_("Section"), _("Item"), _("Photos"), _("Share (%)")]
    yield [_("Coverage"), _("All photos"), total, ""]
    yield [_("Coverage"), _("With a bib a runner finds"), figures["findable"],
           _share(figures["findable"], total)]
    yield [_("Coverage"), _("Found through probable tags only"), figures["probable_only"],
           _share(figures["probable_only"], total)]
    yield [_("Coverage"), _("Untagged"), figures["untagged"], _share(figures["untagged"], total)]
    for row in figures["by_source"]:
        yield [_("By source"), row["label"], row["count"], _share(row["count"], total)]


def _state_rows(event):
    states = Photo.objects.filter(event=event).state_counts()
    yield [_("State"), _("Photos")]
    for value, label in Photo.State.choices:
        yield [label, states[value]]


def _photographer_rows(event):
    figures = coverage(event)
    yield [_("Photographer"), _("Photos"), _("With a bib a runner finds"), _("Share (%)")]
    for row in figures["per_photographer"]:
        yield [row["photographer__username"] or _("unknown"), row["count"], row["findable"],
               _share(row["findable"], row["count"])]


def _local_time(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _untagged_rows(event):
    yield [_("Photo"), _("File name"), _("Photographer"), _("Taken at"), _("State"),
           _("Faces")]
    photos = (Photo.objects.filter(event=event).exclude(Exists(_findable(event)))
              .annotate(face_count=Count("faces")).select_related("photographer")
              .order_by("captured_at", "pk"))
    states = dict(Photo.State.choices)
    for photo in photos.iterator(chunk_size=2000):
        yield [photo.pk, photo.original_name,
               photo.photographer.username if photo.photographer else "",
               _local_time(photo.captured_at), states.get(photo.state, photo.state),
               photo.face_count]


def _queue_rows(event):
    yield [_("Tag"), _("Photo"), _("File name"), _("Bib"), _("Read as"), _("Why"),
           _("Source"), _("Confidence")]
    has_start_list = event.start_list.exists()
    tags = review_queue_tags(event).select_related("photo").order_by(*QUEUE_ORDER)
    for tag in tags.iterator(chunk_size=2000):
        yield [tag.pk, tag.photo_id, tag.photo.original_name, tag.bib, tag.read_as,
               _queue_reason(tag, has_start_list), _source_label(tag),
               formats.number_format(tag.confidence, 2)]


#: each CSV of the report (?format=csv&section=...). The commerce app's sales and downloads
#: figures belong here as one more section (and one more table on the report page).
REPORT_CSV = {
    "summary": _summary_rows,
    "coverage": _coverage_rows,
    "states": _state_rows,
    "photographers": _photographer_rows,
    "untagged": _untagged_rows,
    "queue": _queue_rows,
}


def _csv_sections():
    return {key: f"?format=csv&section={key}" for key in REPORT_CSV}
