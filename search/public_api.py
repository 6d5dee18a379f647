"""The runner's side of the REST API: search by bib, selfie, outfit description or any
combination of them, the event's photos, a photo.

The same rules as the pages (search/views.py): published events only, ready photos with
their public derivatives only (watermarked preview, thumbnail), face results within the
event's privacy setting and re-checked against the database. No sign-in: every call is
counted per client address, and a refusal says why in ``detail`` (with ``Retry-After``
on a 429). A selfie is parsed by the in-memory upload handler only, never stored or logged.
"""

from django.http import Http404
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, Throttled
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts import privacy
from events.models import Event
from search import gallery, services
from search import outfit as outfit_search
from search.api import _ENVELOPE_BYTES, SelfieInMemory, SelfieThrottle

# A search answers at most this many photos: far more than one runner's photos of one event.
RESULTS_LIMIT = services.FACE_CANDIDATES
PHOTOS_PAGE_SIZE = 50
#: the languages of ``lang``: the outfit parser's and the answer's
LANGUAGES = ("en", "fr")


class PublicThrottle(AnonRateThrottle):
    """Listing, photo detail and bib search: cheap database reads, a generous cap."""

    scope = "public_api"


class _Public(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [PublicThrottle]

    def throttled(self, request, wait):
        seconds = max(1, round(wait or 1))
        raise Throttled(wait=seconds, detail=ngettext(
            "Too many requests from your address: try again in %(seconds)d second.",
            "Too many requests from your address: try again in %(seconds)d seconds.",
            seconds) % {"seconds": seconds})


def _event(slug) -> Event:
    event = Event.objects.filter(slug=slug, is_published=True).first()
    if event is None:
        raise NotFound(_("There is no published event at this address."))
    return event


class _Error(Exception):
    def __init__(self, code, detail):
        super().__init__(detail)
        self.code, self.detail = code, detail


def _error(error: _Error) -> Response:
    return Response({"detail": error.detail}, status=error.code)


# --- Serialisation ----------------------------------------------------------------------


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="ocr, face-link, manual, cluster, face, "
                                           "selfie-cluster, probable, outfit:<garment>:<colour> "
                                           "(garment cap, shirt or legs) or outfit-clip")
    label = serializers.CharField()


class PublicPhotoSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    taken_at = serializers.DateTimeField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    thumbnail = serializers.URLField()
    preview = serializers.URLField(help_text="The watermarked preview; originals are never public.")
    page = serializers.URLField(help_text="The photo's own public page.")


class MatchSerializer(PublicPhotoSerializer):
    score = serializers.FloatField(help_text="Face similarity, the bib tag's confidence, or for "
                                             "an outfit alone how much of it one runner wears.")
    reasons = ReasonSerializer(many=True)


class PhotoDetailSerializer(PublicPhotoSerializer):
    bibs = serializers.ListField(child=serializers.CharField(),
                                 help_text="Bibs confirmed on the photo.")


def _photo_json(request, event, photo) -> dict:
    page = reverse("search:photo", kwargs={"slug": event.slug, "photo_id": photo.pk})
    return {"id": photo.pk, "taken_at": photo.taken_at, "width": photo.width,
            "height": photo.height, "thumbnail": request.build_absolute_uri(photo.thumbnail.url),
            "preview": request.build_absolute_uri(photo.preview.url),
            "page": request.build_absolute_uri(page)}


def _results(request, event, matches) -> dict:
    """The matches a runner may see (public photos), in the matches' order."""
    photos = {photo.pk: photo for photo in gallery.public_photos(event).filter(
        pk__in=[match.photo_id for match in matches])}
    labels = services.reason_labels()

    def label(code):
        return labels.get(code) or outfit_search.reason_label(code)

    results = []
    for match in matches:
        photo = photos.get(match.photo_id)
        if photo is None:
            continue
        results.append({**_photo_json(request, event, photo), "score": match.score,
                        "reasons": [{"code": code, "label": str(label(code))}
                                    for code in dict.fromkeys(match.reasons) if label(code)]})
    return {"event": event.slug, "total": len(results), "results": results[:RESULTS_LIMIT]}


_SEARCH_RESULTS = inline_serializer("SearchResults", {
    "event": serializers.CharField(),
    "total": serializers.IntegerField(),
    "bib": serializers.CharField(required=False),
    "runner": serializers.CharField(required=False, help_text="First name and initial, from "
                                                              "the start list."),
    "outfit": serializers.CharField(required=False, help_text="The outfit searched, as given."),
    "outfit_mode": serializers.ChoiceField(
        choices=[outfit_search.MODE_COLOURS, outfit_search.MODE_CLIP], required=False,
        help_text="How the outfit was searched: the colours read under each face, or CLIP."),
    "results": MatchSerializer(many=True),
})
_DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})


def _bib_matches(event, raw_bib) -> tuple[str, list]:
    try:
        bib = services.valid_bib(raw_bib)
        return bib, services.photos_by_bib(event, bib)
    except services.SearchError as error:
        raise _Error(status.HTTP_400_BAD_REQUEST, str(error)) from None


def _with_bib(payload, event, bib) -> dict:
    return {**payload, "bib": bib, "runner": services.runner_label(event, bib)}


def _outfit_matches(event, raw_outfit) -> list:
    try:
        return outfit_search.photos_by_outfit(event, raw_outfit)
    except services.SearchError as error:
        raise _Error(status.HTTP_400_BAD_REQUEST, str(error)) from None


def _with_outfit(payload, raw_outfit) -> dict:
    return {**payload, "outfit": raw_outfit, "outfit_mode": outfit_search.active_mode()}


def _language(request) -> str:
    """``lang`` (en or fr) when given, else the request's language (Accept-Language)."""
    # From the address, for a POST too: the body is not read before its size is checked.
    language = request.query_params.get("lang", "").strip().lower()
    if not language:
        return translation.get_language()
    if language not in LANGUAGES:
        raise _Error(status.HTTP_400_BAD_REQUEST, _(
            "The language “%(language)s” is not supported: give lang=en or lang=fr.")
            % {"language": language[:20]})
    return language


_OUTFIT_HELP = ("An outfit description in English or French (\"red shirt white cap\", "
                "\"maillot rouge casquette blanche\"), at most "
                f"{outfit_search.MAX_QUERY_LENGTH} characters.")
_LANG_HELP = ("The language of the messages and reason labels: en or fr (default: the "
              "Accept-Language header). Descriptions are read in both languages either way.")


# --- Search -----------------------------------------------------------------------------


class EventSearch(_Public):
    """GET ``?bib=`` and/or ``?outfit=``: every photo of the runner wearing the bib, the
    photos of runners dressed like the description, or both (photos matching both first).
    POST (multipart): a ``selfie``, with or without a ``bib`` and an ``outfit``: the union,
    ranked, each with why it matched."""

    parser_classes = [MultiPartParser]

    def get_throttles(self):
        # A selfie costs a face detection and an embedding: it has the selfie cap too.
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(SelfieThrottle())
        return throttles

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            # Before anything reads the body: the selfie must never be spooled to a file.
            request._request.upload_handlers = [SelfieInMemory(request._request)]
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="search_by_bib_or_outfit",
        parameters=[
            OpenApiParameter("bib", OpenApiTypes.STR, required=False,
                             description="The bib number, digits only. Give a bib, an outfit "
                                         "or both."),
            OpenApiParameter("outfit", OpenApiTypes.STR, required=False,
                             description=_OUTFIT_HELP),
            OpenApiParameter("lang", OpenApiTypes.STR, required=False, enum=list(LANGUAGES),
                             description=_LANG_HELP)],
        responses={200: _SEARCH_RESULTS, 400: _DETAIL, 404: _DETAIL, 429: _DETAIL})
    def get(self, request, slug):
        try:
            language = _language(request)
        except _Error as error:
            return _error(error)
        with translation.override(language):
            return self._get(request, slug)

    def _get(self, request, slug):
        event = _event(slug)
        raw_bib = request.query_params.get("bib", "").strip()
        raw_outfit = request.query_params.get("outfit", "").strip()
        if not (raw_bib or raw_outfit):
            return Response({"detail": _("Give a bib number (?bib=1234), an outfit "
                                         "(?outfit=red+shirt) or both.")},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            bib, matches = _bib_matches(event, raw_bib) if raw_bib else ("", [])
            if raw_outfit:
                matches = outfit_search.combine(matches, _outfit_matches(event, raw_outfit)) \
                    if raw_bib else _outfit_matches(event, raw_outfit)
        except _Error as error:
            return _error(error)
        payload = _results(request, event, matches)
        if raw_outfit:
            payload = _with_outfit(payload, raw_outfit)
        return Response(_with_bib(payload, event, bib) if bib else payload)

    @extend_schema(
        operation_id="search_by_selfie",
        request={"multipart/form-data": inline_serializer("SelfieSearch", {
            "selfie": serializers.ImageField(help_text="A JPEG, PNG or WebP photo of your face."),
            "bib": serializers.CharField(required=False,
                                         help_text="Your bib: results combine both."),
            "outfit": serializers.CharField(required=False, help_text=_OUTFIT_HELP
                                            + " Results combine it with the selfie."),
        })},
        parameters=[OpenApiParameter("lang", OpenApiTypes.STR, required=False,
                                     enum=list(LANGUAGES), description=_LANG_HELP)],
        responses={200: _SEARCH_RESULTS, 400: _DETAIL, 403: _DETAIL, 404: _DETAIL,
                   413: _DETAIL, 429: _DETAIL})
    def post(self, request, slug):
        try:
            language = _language(request)
        except _Error as error:
            return _error(error)
        with translation.override(language):
            return self._post(request, slug)

    def _post(self, request, slug):
        event = _event(slug)
        try:
            privacy.check_face_search(event)
        except privacy.FaceSearchOff:
            return Response({"detail": _("Face search is off for this event: search by bib "
                                         "number instead.")}, status=status.HTTP_403_FORBIDDEN)
        if int(request.META.get("CONTENT_LENGTH") or 0) > \
                services.SELFIE_MAX_BYTES + _ENVELOPE_BYTES:
            return Response({"detail": _("The selfie is too large (at most %(mb)d MB).")
                             % {"mb": services.SELFIE_MAX_BYTES // (1024 * 1024)}},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        selfie = request.FILES.get("selfie")
        raw_bib = request.data.get("bib", "").strip()
        raw_outfit = request.data.get("outfit", "").strip()
        try:
            if selfie is None or not selfie.size:
                raise _Error(status.HTTP_400_BAD_REQUEST, _(
                    "Send one selfie (a JPEG, PNG or WebP photo) in a field named “selfie”, "
                    "with a “bib” and an “outfit” if you like."))
            # The cheap checks first: a bad bib or outfit costs no face detection.
            bib, bib_matches = _bib_matches(event, raw_bib) if raw_bib else ("", [])
            outfit_matches = _outfit_matches(event, raw_outfit) if raw_outfit else None
            try:
                result = services.selfie_search(event, selfie)
            except services.SearchError as error:
                raise _Error(status.HTTP_400_BAD_REQUEST, str(error)) from None
        except _Error as error:
            return _error(error)
        finally:
            if selfie is not None:
                selfie.close()
        matches = services.combine(event, bib_matches, result) if bib else result.matches
        if outfit_matches is not None:
            matches = outfit_search.combine(matches, outfit_matches)
        payload = _results(request, event, matches)
        if raw_outfit:
            payload = _with_outfit(payload, raw_outfit)
        return Response(_with_bib(payload, event, bib) if bib else payload)


# --- Photos -----------------------------------------------------------------------------


class EventPhotos(_Public):
    """The event's public photos, newest first, one page per call (``next`` continues)."""

    @extend_schema(
        operation_id="event_photos",
        parameters=[OpenApiParameter("cursor", OpenApiTypes.STR, required=False,
                                     description="The `next` of the previous page.")],
        responses={200: inline_serializer("PhotoPage", {
            "event": serializers.CharField(),
            "next": serializers.URLField(allow_null=True),
            "results": PublicPhotoSerializer(many=True),
        }), 400: _DETAIL, 404: _DETAIL, 429: _DETAIL})
    def get(self, request, slug):
        event = _event(slug)
        cursor = request.query_params.get("cursor", "")
        try:
            page = gallery.gallery_page(event, cursor, PHOTOS_PAGE_SIZE)
        except Http404:
            return Response({"detail": _("This cursor is not one a page of photos gave.")},
                            status=status.HTTP_400_BAD_REQUEST)
        next_url = None
        if page.next_cursor:
            next_url = request.build_absolute_uri(
                f"{request.path}?cursor={page.next_cursor}")
        return Response({"event": event.slug, "next": next_url,
                         "results": [_photo_json(request, event, photo) for photo in page.photos]})


class EventPhoto(_Public):
    """One public photo of the event, with its confirmed bibs."""

    @extend_schema(operation_id="event_photo",
                   responses={200: PhotoDetailSerializer, 404: _DETAIL, 429: _DETAIL})
    def get(self, request, slug, photo_id):
        event = _event(slug)
        photo = gallery.public_photos(event).filter(pk=photo_id).first()
        if photo is None:
            raise NotFound(_("This event has no public photo with this number."))
        return Response({**_photo_json(request, event, photo),
                         "bibs": gallery.confirmed_bibs(photo)})
