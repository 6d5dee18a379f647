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

from django.contrib import admin, messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from PIL import Image

from events import startlist_import
from events.models import Event
from mlpipeline.start_list import confirm_listed_readings
from photos import tagging
from photos.models import BibTag, Face, Photo, TagChange, TagSuggestion

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


# --- The tagging grid ------------------------------------------------------------------


def _findable():
    """Tags a runner's bib search finds (confirmed: read off the list, linked, manual)."""
    return BibTag.objects.filter(photo=OuterRef("pk"), confirmed=True)


def tagging_grid(request, event_id):
    event = managed_event(request, event_id)
    photos = Photo.objects.filter(event=event).select_related("photographer").order_by(
        "captured_at", "pk").prefetch_related("bib_tags")
    filters = {
        "photographer": request.GET.get("photographer", ""),
        "state": request.GET.get("state", ""),
        "nobib": request.GET.get("nobib") == "1",
        "unconfirmed": request.GET.get("unconfirmed") == "1",
        "faces": request.GET.get("faces") == "1",
    }
    if filters["photographer"].isdigit():
        photos = photos.filter(photographer_id=int(filters["photographer"]))
    if filters["state"] in Photo.State.values:
        photos = photos.filter(state=filters["state"])
    if filters["nobib"]:
        photos = photos.exclude(Exists(_findable()))
    if filters["unconfirmed"]:
        photos = photos.filter(Exists(BibTag.objects.filter(photo=OuterRef("pk"),
                                                            confirmed=False)))
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
        photographers=list(photographers), states=Photo.State.choices,
        query=query.urlencode(), next_url=request.get_full_path()))


# --- The review queue ------------------------------------------------------------------


def review_queue_tags(event):
    """Automatic tags a person should look at: readings off the start list (or of an event
    without one), unsure readings and links, and every face link."""
    return (BibTag.objects.filter(photo__event=event)
            .exclude(source=BibTag.Source.MANUAL)
            .filter(Q(confirmed=False) | Q(confidence__lt=LOW_CONFIDENCE)
                    | Q(source__in=[BibTag.Source.FACE_LINK, BibTag.Source.TIMING])))


def photos_with_faces_but_no_bib(event):
    return (Photo.objects.filter(event=event)
            .filter(Exists(Face.objects.filter(photo=OuterRef("pk"))))
            .exclude(Exists(_findable())))


def _queue_reason(tag) -> str:
    if tag.source == BibTag.Source.TIMING:
        return _("Timing: the only runner in front of the photographer then")
    if not tag.confirmed:
        return _("Not on the start list") if tag.photo.event.start_list.exists() else _(
            "Probable: the event has no start list")
    if tag.source == BibTag.Source.FACE_LINK:
        return _("Linked by face from another photo")
    return _("Low confidence")


def review_queue(request, event_id):
    event = managed_event(request, event_id)
    queue = review_queue_tags(event)
    total = queue.count()
    tags = list(queue.select_related("photo", "photo__event")
                .order_by("confirmed", "source", "confidence", "photo_id", "pk")[:QUEUE_PAGE_SIZE])
    items = [{"tag": tag, "photo": tag.photo, "crop": crop_style(tag, tag.photo),
              "reason": _queue_reason(tag), "label": _source_label(tag)} for tag in tags]
    return render(request, "admin/events/event/review.html", _context(
        request, event, _("Review queue"), items=items, total=total,
        faces_without_bib=photos_with_faces_but_no_bib(event).count(),
        suggestions=TagSuggestion.objects.filter(photo__event=event).still_open().count(),
        next_url=request.get_full_path()))


# --- The report ------------------------------------------------------------------------


def coverage(event) -> dict:
    photos = Photo.objects.filter(event=event)
    total = photos.count()
    findable = photos.filter(Exists(_findable())).count()
    by_source = []
    for source, label in BibTag.Source.choices:
        count = photos.filter(Exists(_findable().filter(source=source))).count()
        by_source.append({"label": str(label), "count": count,
                          "share": count / total * 100 if total else 0.0})
    per_photographer = list(photos.values("photographer__username").annotate(
        count=Count("pk"), findable=Count("pk", filter=Q(Exists(_findable())))).order_by(
        "photographer__username"))
    states = photos.state_counts()
    return {
        "total": total, "findable": findable, "untagged": total - findable,
        "share": findable / total * 100 if total else 0.0, "by_source": by_source,
        "states": [(label, states[value]) for value, label in Photo.State.choices],
        "per_photographer": per_photographer,
        "queue": review_queue_tags(event).count(),
        "faces_without_bib": photos_with_faces_but_no_bib(event).count(),
        "changes": TagChange.objects.filter(photo__event=event).count(),
    }


def report(request, event_id):
    event = managed_event(request, event_id)
    figures = coverage(event)
    if request.GET.get("format") == "csv":
        return _report_csv(event, figures)
    return render(request, "admin/events/event/report.html", _context(
        request, event, _("Tagging report"), figures=figures))


def _cell(value):
    """A user-chosen name cannot start a spreadsheet formula in the export."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _report_csv(event, figures):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{event.slug}-report.csv"'
    response.write("\ufeff")  # spreadsheets then read the accents right
    out = csv.writer(response, delimiter=";")
    out.writerow([_("Section"), _("Item"), _("Photos"), _("Share (%)")])
    out.writerow([_("Coverage"), _("All photos"), figures["total"], ""])
    out.writerow([_("Coverage"), _("With a bib a runner finds"), figures["findable"],
                  f"{figures['share']:.1f}"])
    out.writerow([_("Coverage"), _("Untagged"), figures["untagged"], ""])
    for row in figures["by_source"]:
        out.writerow([_("By source"), row["label"], row["count"], f"{row['share']:.1f}"])
    for label, count in figures["states"]:
        out.writerow([_("By state"), label, count, ""])
    for row in figures["per_photographer"]:
        out.writerow([_("By photographer"), _cell(row["photographer__username"] or _("unknown")),
                      row["count"], ""])
    out.writerow([_("Review"), _("Tags to review"), figures["queue"], ""])
    out.writerow([_("Review"), _("Photos with faces but no bib"), figures["faces_without_bib"], ""])
    return response
