"""Staff pages for getting photos in: the upload page, its upload endpoint, live processing status."""

import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from events.models import Event
from photos import pipeline, services
from photos.admin import off_start_list_url
from photos.models import BibTag, Photo

logger = logging.getLogger(__name__)

def _event_for_upload(request, slug) -> Event:
    event = get_object_or_404(Event, slug=slug)
    if not event.can_upload(request.user):
        # 404 rather than 403 would hide that the event exists, but unpublished
        # events are already hidden publicly; staff deserve a clear answer.
        raise PermissionDenied(_("You are not a photographer or organiser of this event."))
    return event


@login_required
@require_GET
def upload_page(request, slug):
    event = _event_for_upload(request, slug)
    return render(request, "photos/upload.html", {
        "event": event,
        "can_manage": event.can_manage(request.user),
        "upload_messages": _upload_messages(),
        **_status_context(event, request.user),
    })


def _plural_forms(translate) -> dict:
    """Both forms of a counted message, for the script to choose from by the count.

    The script picks with Intl.PluralRules, whose categories for French and English are
    "one" and "other": the two forms their catalogues have (0 is "one" in French).
    """
    return {"one": translate(1), "other": translate(2)}


def _upload_messages() -> dict:
    """Words the upload script shows, translated here so the script needs no catalogue."""
    return {
        "waiting": _("waiting"),
        "uploading": _("uploading"),
        "accepted": _("accepted"),
        "duplicate": _("duplicate"),
        "rejected": _("rejected"),
        "error": _("upload failed"),
        "retrying": _("retrying"),
        "login": _("Your session has ended: reload the page, log in again and send the "
                   "files that failed once more."),
        # A file's state and why, e.g. "rejected: not an image".
        "status_reason": _("%(status)s: %(reason)s"),
        # "3 of 4 files sent (1 ZIP archive, 9 photos): 8 accepted, 1 rejected."
        "summary": _("%(files)s: %(outcomes)s."),
        "summary_with_contents": _("%(files)s (%(contents)s): %(outcomes)s."),
        "plurals": {
            "files_sent": _plural_forms(lambda n: ngettext(
                "%(done)s of %(total)s file sent", "%(done)s of %(total)s files sent", n)),
            "zip_archives": _plural_forms(lambda n: ngettext(
                "%(count)s ZIP archive", "%(count)s ZIP archives", n)),
            "photos": _plural_forms(lambda n: ngettext("%(count)s photo", "%(count)s photos", n)),
            "accepted": _plural_forms(lambda n: ngettext(
                "%(count)s accepted", "%(count)s accepted", n)),
            "duplicate": _plural_forms(lambda n: ngettext(
                "%(count)s duplicate", "%(count)s duplicates", n)),
            "rejected": _plural_forms(lambda n: ngettext(
                "%(count)s rejected", "%(count)s rejected", n)),
            "failed": _plural_forms(lambda n: ngettext(
                "%(count)s upload failed", "%(count)s uploads failed", n)),
        },
    }


@login_required
@require_POST
def upload_file(request, slug):
    """One file per request (the page sends several in parallel): an image or a ZIP of images."""
    event = _event_for_upload(request, slug)
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": _("No file was sent (expected a form field named “file”).")},
                            status=400)
    results = services.ingest_upload(event, upload, photographer=request.user)
    return JsonResponse({"results": [result.as_json() for result in results]})


def _status_context(event, user) -> dict:
    # A photographer follows their own photos only; organisers and admins the whole event.
    photos = Photo.objects.visible_to(user).filter(event=event)
    counts = photos.state_counts()
    failures = photos.filter(state=Photo.State.FAILED).order_by("-updated_at")[:50]
    total = sum(counts.values())
    # Bibs read that are not on the start list: often a runner missing from it.
    off_start_list = (BibTag.objects.filter(photo__event=event).off_start_list().count()
                      if event.can_manage(user) else 0)
    return {
        "off_start_list": off_start_list,
        "off_start_list_url": off_start_list_url(event) if off_start_list else "",
        "state_counts": [(state, label, counts.get(state, 0)) for state, label in Photo.State.choices],
        "total": total,
        "ready": counts.get(Photo.State.READY, 0),
        "failed": counts.get(Photo.State.FAILED, 0),
        "in_progress": total - counts.get(Photo.State.READY, 0) - counts.get(Photo.State.FAILED, 0),
        "failures": failures,
    }


@login_required
@require_GET
def processing_status(request, slug):
    """The live counts panel; the upload page polls it with htmx."""
    event = _event_for_upload(request, slug)
    return render(request, "photos/_processing_status.html", {
        "event": event, "can_manage": event.can_manage(request.user),
        **_status_context(event, request.user),
    })


@login_required
@require_POST
def retry_failed(request, slug):
    event = get_object_or_404(Event, slug=slug)
    if not event.can_manage(request.user):
        raise PermissionDenied(_("Only the event's organisers can retry processing."))
    failed = list(Photo.objects.filter(event=event, state=Photo.State.FAILED).values_list("pk", flat=True))
    for photo_id in failed:
        pipeline.reset_failed(photo_id)
        services.enqueue_processing(photo_id)
    logger.info("retrying failed photos", extra={"event_id": event.pk, "count": len(failed)})
    return render(request, "photos/_processing_status.html", {
        "event": event, "can_manage": True, "retried": len(failed),
        **_status_context(event, request.user),
    })
