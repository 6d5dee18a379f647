"""Selfie search over the REST API: public, in memory only, within the event's privacy setting.

The selfie never touches the disk: Django would spool an upload above 2.5 MB
to a temporary file, so this endpoint takes uploads with an in-memory handler
only (a bigger body is dropped, not spooled), and it reads no session, so no
CSRF check parses the body before that handler is in place.
"""

from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    parser_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from accounts import privacy
from events.models import Event
from photos.models import Photo
from search import services

# Room for the multipart envelope around a selfie of the largest accepted size.
_ENVELOPE_BYTES = 64 * 1024


class SelfieInMemory(MemoryFileUploadHandler):
    """Holds the selfie in memory up to the selfie limit; above it, the file is dropped."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.activated = content_length <= services.SELFIE_MAX_BYTES + _ENVELOPE_BYTES


class SelfieThrottle(AnonRateThrottle):
    # A selfie search costs a face detection and an embedding: a cap per client address.
    scope = "selfie"


@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@parser_classes([MultiPartParser])
@throttle_classes([SelfieThrottle])
def selfie_search(request, slug):
    """POST a selfie (field "selfie"): the event's ready photos with a face like it."""
    # Before anything reads the body: the selfie must never be spooled to a file.
    request._request.upload_handlers = [SelfieInMemory(request._request)]
    event = get_object_or_404(Event, slug=slug, is_published=True)
    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        return Response({"detail": _("Face search is off for this event: search by bib "
                                     "number instead.")}, status=status.HTTP_403_FORBIDDEN)
    selfie = request.FILES.get("selfie")
    if selfie is None:
        return Response({"detail": _("Send one selfie (a JPEG, PNG or WebP photo) in a field "
                                     "named “selfie”.")}, status=status.HTTP_400_BAD_REQUEST)
    try:
        matches = services.photos_by_selfie(event, selfie)
    except services.SearchError as error:
        return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
    finally:
        selfie.close()
    photos = Photo.objects.in_bulk([match.photo_id for match in matches])
    results = []
    for match in matches:
        photo = photos.get(match.photo_id)
        if photo is None or photo.state != Photo.State.READY:
            continue
        results.append({
            "photo": photo.pk, "similarity": match.score,
            "thumbnail": _url(request, photo.thumbnail),
            "preview": _url(request, photo.preview),
        })
    return Response({"event": event.slug, "results": results})


def _url(request, file):
    return request.build_absolute_uri(file.url) if file else None
