"""The organiser's timing pages in the admin, per event: import timing results (preview,
then one transaction), place each photographer (timing point, offset, window), set a
camera's clock from one photo of a known runner, and answer the suggestions the timing
and the bursts make (photos.timing, photos.sequences) in a queue beside the review queue.

Same rules as :mod:`photos.workspace`: the event comes from ``managed_by(user)`` (anyone
else gets the admin's 404), answers go through :mod:`photos.tagging` (locks, audit,
undo), and the pages work without JavaScript; ``static/js/organiser.js`` drives the
suggestion queue by keyboard like the review queue.
"""

import secrets
import time
import zoneinfo

from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.db.models import Count, Max, Min
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from events import startlist_import, timing_import
from events.models import PhotographerTiming, StartListEntry, TimingPoint
from photos import sequences, tagging, timing
from photos.models import BibTag, Photo, TagSuggestion
from photos.workspace import (
    IMPORT_PREVIEW_SECONDS,
    _context,
    _result_json,
    _wants_json,
    managed_event,
)

SUGGESTIONS_PAGE_SIZE = 50


def _timing_url(event) -> str:
    return reverse("admin:events_event_timing", args=[event.pk])


def _recomputed_message(outcome: timing.Outcome) -> str:
    return (ngettext("Timing: %(count)d photo tagged", "Timing: %(count)d photos tagged",
                     outcome.tags) % {"count": outcome.tags}
            + ngettext(", %(count)d suggestion to review.", ", %(count)d suggestions to review.",
                       outcome.suggestions) % {"count": outcome.suggestions})


class PlacementForm(forms.ModelForm):
    class Meta:
        model = PhotographerTiming
        fields = ("point", "position_seconds", "window_seconds", "clock_offset_seconds")
        widgets = {name: forms.NumberInput(attrs={"step": "0.1"}) for name in
                   ("position_seconds", "window_seconds", "clock_offset_seconds")}

    def __init__(self, *args, event, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["point"].queryset = TimingPoint.objects.filter(event=event)
        self.fields["point"].required = True
        self.fields["window_seconds"].min_value = 0.1
        self.fields["window_seconds"].widget.attrs["min"] = "0.1"

    def clean_window_seconds(self):
        window = self.cleaned_data["window_seconds"]
        if window is None or window <= 0:
            raise forms.ValidationError(_("The window is a number of seconds above 0."))
        return window


class ClockForm(forms.Form):
    photo = forms.CharField(label=gettext_lazy("This photo (file name)"), max_length=255)
    bib = forms.CharField(label=gettext_lazy("is bib"), max_length=20)


# --- The timing page ---------------------------------------------------------------------


def timing_page(request, event_id):
    event = managed_event(request, event_id)
    return _render_timing(request, event)


def _render_timing(request, event, bound=None, import_error=None):
    zone = zoneinfo.ZoneInfo(event.time_zone)
    points = list(TimingPoint.objects.filter(event=event).annotate(
        count=Count("results"), first=Min("results__passed_at"), last=Max("results__passed_at")))
    # Written out here: the template's time filters would show the server's zone.
    for point in points:
        point.first_local = point.first.astimezone(zone).strftime("%H:%M:%S") if point.first else ""
        point.last_local = point.last.astimezone(zone).strftime("%H:%M:%S") if point.last else ""
    rows = []
    for row in timing.photographers(event):
        pk = row["user"].pk
        form, clock = (bound or {}).get(pk, (None, None))
        rows.append({**row,
                     "form": form or PlacementForm(instance=row["placement"] or PhotographerTiming(
                         event=event, photographer=row["user"]), event=event,
                         prefix=f"p{pk}"),
                     "clock": clock or ClockForm(prefix=f"c{pk}")})
    return render(request, "admin/events/event/timing.html", _context(
        request, event, _("Timing"), points=points, photographers=rows,
        import_error=import_error, default_point=_("Finish"),
        timing_tags=BibTag.objects.filter(photo__event=event, source=BibTag.Source.TIMING).count(),
        suggestions=TagSuggestion.objects.filter(photo__event=event).still_open().count(),
        max_size_mb=startlist_import.MAX_FILE_BYTES // (1024 * 1024)))


def _import_key(request, event, token) -> str:
    return f"racephoto:timing-import:{request.user.pk}:{event.pk}:{token}"


def import_timing(request, event_id):
    event = managed_event(request, event_id)
    if request.method != "POST":
        return HttpResponseRedirect(_timing_url(event))
    if request.POST.get("token"):
        return _commit_import(request, event)
    upload = request.FILES.get("file")
    point_name = request.POST.get("point", "")
    if upload is None:
        return _render_timing(request, event, import_error=_("Choose the file to import."))
    if upload.size > startlist_import.MAX_FILE_BYTES:
        return _render_timing(request, event, import_error=_(
            "The file is larger than %(size)d MB: split it in parts.")
            % {"size": startlist_import.MAX_FILE_BYTES // (1024 * 1024)})
    data = upload.read()
    try:
        preview = timing_import.read(data, event, point_name)
    except timing_import.TimingFileError as exc:
        return _render_timing(request, event, import_error=str(exc))
    # The file waits server-side for the confirmation and is read again then.
    token = secrets.token_urlsafe(16)
    cache.set(_import_key(request, event, token), (data, point_name), IMPORT_PREVIEW_SECONDS)
    zone = zoneinfo.ZoneInfo(event.time_zone)
    shown = preview.problem_rows[:500]
    for row in shown:
        row.local = (row.passed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
                     if row.passed_at else "")
    return render(request, "admin/events/event/timing_import.html", _context(
        request, event, _("Import timing results"), preview=preview, token=token,
        shown_problems=shown,
        counts={status: preview.count(status) for status in
                ("new", "updated", "unchanged", "rejected")}))


def _commit_import(request, event):
    key = _import_key(request, event, request.POST["token"])
    stored = cache.get(key)
    if stored is None:
        messages.error(request, _("This preview has expired: import the file again."))
        return HttpResponseRedirect(_timing_url(event))
    data, point_name = stored
    try:
        preview = timing_import.read(data, event, point_name)
    except timing_import.TimingFileError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_timing_url(event))
    started = time.monotonic()
    result = timing_import.write(preview, event)
    placed = timing.place_photographers(event, result.points[0]) if result.points else 0
    outcome = timing.recompute(event.pk)
    cache.delete(key)
    message = _("Timing results imported in %(seconds).1f s: %(created)d new, %(updated)d "
                "updated, %(unchanged)d unchanged, %(rejected)d rows left out.") % {
        "seconds": time.monotonic() - started, "created": result.created,
        "updated": result.updated, "unchanged": result.unchanged, "rejected": result.rejected}
    if placed:
        message += " " + ngettext(
            "%(count)d photographer placed at %(point)s: set their position below.",
            "%(count)d photographers placed at %(point)s: set their positions below.",
            placed) % {"count": placed, "point": result.points[0].name}
    messages.success(request, f"{message} {_recomputed_message(outcome)}")
    return HttpResponseRedirect(_timing_url(event))


def place_photographer(request, event_id, photographer_id):
    event = managed_event(request, event_id)
    if request.method != "POST":
        return HttpResponseRedirect(_timing_url(event))
    row = next((row for row in timing.photographers(event) if row["user"].pk == photographer_id),
               None)
    if row is None:
        messages.error(request, _("This person took no photo of this event."))
        return HttpResponseRedirect(_timing_url(event))
    instance = row["placement"] or PhotographerTiming(event=event, photographer=row["user"])
    form = PlacementForm(request.POST, instance=instance, event=event, prefix=f"p{photographer_id}")
    if not form.is_valid():
        return _render_timing(request, event, bound={photographer_id: (form, None)})
    form.instance.clock_reference = (instance.clock_reference if "clock_offset_seconds"
                                     not in form.changed_data else "")
    form.save()
    outcome = timing.recompute(event.pk)
    messages.success(request, _("Position of %(name)s saved.") % {"name": row["user"].username}
                     + " " + _recomputed_message(outcome))
    return HttpResponseRedirect(_timing_url(event))


def set_clock(request, event_id, photographer_id):
    event = managed_event(request, event_id)
    if request.method != "POST":
        return HttpResponseRedirect(_timing_url(event))
    form = ClockForm(request.POST, prefix=f"c{photographer_id}")
    if form.is_valid():
        name = form.cleaned_data["photo"].strip()
        photo = (Photo.objects.filter(event=event, photographer_id=photographer_id,
                                      original_name__iexact=name).order_by("pk").first()
                 or (Photo.objects.filter(event=event, photographer_id=photographer_id,
                                          pk=int(name)).first() if name.isdigit() else None))
        if photo is None:
            form.add_error("photo", _("No photo of this photographer is called “%(name)s”.")
                           % {"name": name[:80]})
        else:
            try:
                placement = timing.set_clock_from_photo(request.user, event, photo,
                                                        form.cleaned_data["bib"])
            except (timing.TimingError, tagging.TaggingError) as exc:
                form.add_error(None, str(exc))
            else:
                outcome = timing.recompute(event.pk)
                messages.success(request, _(
                    "Clock of %(name)s set to %(offset)+.1f s from %(reference)s; the photo is "
                    "tagged with the bib.") % {"name": placement.photographer.username,
                                               "offset": placement.clock_offset_seconds,
                                               "reference": photo.original_name or photo.pk}
                    + " " + _recomputed_message(outcome))
                return HttpResponseRedirect(_timing_url(event))
    return _render_timing(request, event, bound={photographer_id: (None, form)})


def recompute_suggestions(request, event_id):
    """Run the timing and the bursts again now (they also run after each linking)."""
    event = managed_event(request, event_id)
    if request.method == "POST":
        outcome = timing.recompute(event.pk)
        bursts = sequences.recompute(event.pk)
        messages.success(request, _recomputed_message(outcome) + " " + ngettext(
            "%(count)d suggestion from bursts.", "%(count)d suggestions from bursts.", bursts)
            % {"count": bursts})
    return HttpResponseRedirect(reverse("admin:events_event_suggestions", args=[event.pk]))


# --- The suggestion queue -------------------------------------------------------------------


def _reason(suggestion, zone) -> str:
    seconds = f"{suggestion.seconds:.1f}"
    if suggestion.source == TagSuggestion.Source.TIMING:
        return _("Passed %(point)s at %(time)s, %(seconds)s s from this photo's moment") % {
            "point": suggestion.point, "time": suggestion.passed_at.astimezone(zone)
            .strftime("%H:%M:%S"), "seconds": seconds}
    name = suggestion.from_photo.original_name or suggestion.from_photo_id
    if suggestion.same_face:
        return _("Same face as on %(photo)s, where the bib is on, %(seconds)s s apart") % {
            "photo": name, "seconds": seconds}
    return _("Same burst as %(photo)s, where the bib is on, %(seconds)s s apart") % {
        "photo": name, "seconds": seconds}


def suggestions_queue(request, event_id):
    event = managed_event(request, event_id)
    zone = zoneinfo.ZoneInfo(event.time_zone)
    queue = TagSuggestion.objects.filter(photo__event=event).still_open()
    total = queue.count()
    items = list(queue.select_related("photo", "from_photo")
                 .order_by("-score", "photo_id", "bib")[:SUGGESTIONS_PAGE_SIZE])
    # The evidence shown large: the bib on the frame of the burst that shows it.
    evidence = {(tag.photo_id, tag.bib): tag for tag in BibTag.objects.filter(
        photo_id__in={item.from_photo_id for item in items if item.from_photo_id})}
    names = {entry.bib: f"{entry.first_name} {entry.last_name}".strip() for entry in
             StartListEntry.objects.filter(event=event, bib__in={item.bib for item in items})}
    rows, shown = [], set()
    for item in items:
        if (item.photo_id, item.bib) in shown:
            continue  # the timing and a burst agree: one answer does for both
        shown.add((item.photo_id, item.bib))
        tag = evidence.get((item.from_photo_id, item.bib))
        rows.append({"suggestion": item, "photo": item.photo, "reason": _reason(item, zone),
                     "passed": (item.passed_at.astimezone(zone).strftime("%H:%M:%S")
                                if item.passed_at else ""),
                     "runner": names.get(item.bib, ""), "evidence_tag": tag,
                     "label": item.get_source_display()})
    return render(request, "admin/events/event/suggestions.html", _context(
        request, event, _("Suggestions"), items=rows, total=total,
        next_url=request.get_full_path()))


def decide_suggestions(request, event_id):
    """Accept (a tag by hand) or reject (never offered again) suggestions; JSON for the script."""
    event = managed_event(request, event_id)
    back = reverse("admin:events_event_suggestions", args=[event.pk])
    if request.method != "POST":
        return HttpResponseRedirect(back)
    action = request.POST.get("action", "")
    try:
        ids = [int(pk) for pk in request.POST.getlist("suggestion")]
    except ValueError:
        ids = []
    targets = list(TagSuggestion.objects.filter(pk__in=ids, photo__event=event)
                   .values_list("photo_id", "bib"))
    try:
        if not targets or len(targets) != len(set(ids)):
            raise tagging.TaggingError(_(
                "This suggestion was replaced since the page was loaded: reload the page."))
        if action == "confirm":
            result = tagging.accept_suggested(request.user, event, targets)
            message = ngettext("%(count)d suggestion accepted: tagged by hand.",
                               "%(count)d suggestions accepted: tagged by hand.",
                               result.changed) % {"count": result.changed}
        elif action == "reject":
            result = tagging.reject_suggested(request.user, event, targets)
            message = ngettext("%(count)d suggestion rejected: it will not come back.",
                               "%(count)d suggestions rejected: they will not come back.",
                               result.changed) % {"count": result.changed}
        else:
            raise tagging.TaggingError(_("Unknown change."))
    except tagging.TaggingError as exc:
        if _wants_json(request):
            return JsonResponse({"message": str(exc), "level": "error", "conflicts": [],
                                 "changed": 0, "tags": {}}, status=400)
        messages.error(request, str(exc))
        return HttpResponseRedirect(back)
    if _wants_json(request):
        return _result_json(request, event, result, message)
    messages.success(request, message)
    return HttpResponseRedirect(back)

