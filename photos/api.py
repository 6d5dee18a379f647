"""Staff part of the REST API: an event's photos, uploads into an event, processing progress.

The same rules as the staff pages (Event.can_upload, Photo.visible_to): a
photographer sees and counts only their own photos, an organiser the whole
event. An event the caller has nothing to do with answers 404 while it is
unpublished (its slug is not public yet) and 403 once it is public.
"""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, permission_classes
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from events.models import Event
from photos import services
from photos.models import Photo


class PhotoSerializer(serializers.ModelSerializer):
    event = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    photographer = serializers.SlugRelatedField(slug_field="username", read_only=True)
    # Only the public, watermarked files: the API never hands out originals.
    preview = serializers.FileField(read_only=True, use_url=True)
    thumbnail = serializers.FileField(read_only=True, use_url=True)

    class Meta:
        model = Photo
        fields = ("id", "event", "photographer", "original_name", "state", "failure_reason",
                  "width", "height", "captured_at", "preview", "thumbnail", "created_at")


def _staff_event(request, slug) -> Event:
    event = Event.objects.filter(slug=slug).first()
    if event is None:
        raise NotFound()
    if not event.can_upload(request.user):
        if not event.is_published:
            raise NotFound()
        raise PermissionDenied(_("You are not a photographer or organiser of this event."))
    return event


@api_view(["GET", "POST"])
@permission_classes([IsAuthenticated])
@parser_classes([MultiPartParser, FormParser])
def event_photos(request, slug):
    """GET: the photos of the event the caller may see. POST: upload one file (field "file")."""
    event = _staff_event(request, slug)
    if request.method == "POST":
        return _upload(request, event)
    photos = (Photo.objects.visible_to(request.user).filter(event=event)
              .select_related("event", "photographer").order_by("created_at", "pk"))
    state = request.query_params.get("state")
    if state:
        photos = photos.filter(state=state)
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(photos, request)
    return paginator.get_paginated_response(
        PhotoSerializer(page, many=True, context={"request": request}).data)


def _upload(request, event):
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationError({"file": _("No file was sent (expected a form field named “file”).")})
    results = services.ingest_upload(event, upload, photographer=request.user)
    statuses = {result.status for result in results}
    if services.IngestStatus.ACCEPTED in statuses:
        code = status.HTTP_201_CREATED
    elif statuses == {services.IngestStatus.REJECTED}:
        code = status.HTTP_400_BAD_REQUEST
    else:
        code = status.HTTP_200_OK  # duplicates: nothing new, nothing wrong
    return Response({"results": [result.as_json() for result in results]}, status=code)


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def event_processing(request, slug):
    """How many of the caller's visible photos of the event are in each processing state."""
    event = _staff_event(request, slug)
    counts = Photo.objects.visible_to(request.user).filter(event=event).state_counts()
    return Response({"event": event.slug, "total": sum(counts.values()), "states": counts})


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def photo_detail(request, pk):
    # Someone else's photo is a 404, exactly like a photo that does not exist.
    photo = get_object_or_404(Photo.objects.visible_to(request.user)
                              .select_related("event", "photographer"), pk=pk)
    return Response(PhotoSerializer(photo, context={"request": request}).data)
