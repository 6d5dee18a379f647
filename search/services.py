"""Finding a runner's photos: by bib number, by a selfie.

A selfie is decoded and embedded in memory and dropped when the function
returns: it is never written to disk, to the database or to a log.
"""

import io
import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageOps

from accounts import privacy
from mlpipeline import indexes, loaded
from mlpipeline.base import ModelUnavailable
from mlpipeline.bibrules import canonical
from mlpipeline.faces import embed_selfie
from photos.models import BibTag, Face

logger = logging.getLogger(__name__)

SELFIE_MAX_BYTES = 15 * 1024 * 1024
SELFIE_MAX_PIXELS = 40_000_000
SELFIE_ANALYSIS_SIZE = 1024
# Faces looked at per selfie search: a runner rarely has more photos than this
# in one event, and every hit is then checked against the database.
FACE_CANDIDATES = 500


class SearchError(Exception):
    """The search cannot be done; ``str()`` is a sentence for the runner."""


# Why a photo matched, beside BibTag.Source's values (bib read, carried over by face, by hand).
REASON_FACE = "face"


@dataclass(frozen=True)
class Match:
    photo_id: int
    score: float  # cosine similarity of the best face, or the bib tag's confidence
    # Why it matched: BibTag.Source values for a bib search, REASON_FACE for a selfie.
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelfieResult:
    matches: list[Match]
    # How many faces the selfie showed; with several, the largest one was searched.
    faces_found: int


def photos_by_bib(event, bib: str) -> list[Match]:
    """The event's photos tagged with ``bib``: read, linked through the face, or by hand.

    Unconfirmed readings (numbers not on the start list) are left out: they are
    for staff to review, not a result to show a runner.
    """
    bib = canonical(bib)
    if not bib.isdigit():
        raise SearchError(_("A bib number is made of digits only."))
    tags = (BibTag.objects.filter(photo__event=event, bib=bib)
            .exclude(source=BibTag.Source.OCR, confirmed=False)
            .order_by("-confidence"))
    best: dict[int, float] = {}
    reasons: dict[int, list[str]] = {}
    for photo_id, confidence, source in tags.values_list("photo_id", "confidence", "source"):
        best.setdefault(photo_id, confidence)
        reasons.setdefault(photo_id, []).append(source)
    return [Match(photo_id, score, tuple(reasons[photo_id])) for photo_id, score in best.items()]


def _selfie_image(upload) -> Image.Image:
    data = upload.read(SELFIE_MAX_BYTES + 1)
    if len(data) > SELFIE_MAX_BYTES:
        raise SearchError(_("The selfie is too large (at most %(mb)d MB).")
                          % {"mb": SELFIE_MAX_BYTES // (1024 * 1024)})
    try:
        image = Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP"))
        if image.width * image.height > SELFIE_MAX_PIXELS:
            raise SearchError(_("The selfie has too many pixels."))
        image.draft("RGB", (SELFIE_ANALYSIS_SIZE, SELFIE_ANALYSIS_SIZE))
        image = ImageOps.exif_transpose(image).convert("RGB")
    except SearchError:
        raise
    except Exception:
        raise SearchError(_("The selfie could not be read: send a JPEG, PNG or WebP photo.")) \
            from None
    image.thumbnail((SELFIE_ANALYSIS_SIZE, SELFIE_ANALYSIS_SIZE))
    return image


class _FaceCounter:
    """Passes the detector's faces on and remembers how many the selfie showed."""

    def __init__(self, detector):
        self.detector = detector
        self.count = 0

    def __call__(self, image):
        faces = self.detector(image)
        self.count = len(faces)
        return faces


def photos_by_selfie(event, upload, limit: int = FACE_CANDIDATES) -> list[Match]:
    """The event's photos with a face like the one in the selfie, most similar first."""
    return selfie_search(event, upload, limit).matches


def selfie_search(event, upload, limit: int = FACE_CANDIDATES) -> SelfieResult:
    """:func:`photos_by_selfie`, with how many faces the selfie showed (pages say which
    one was searched)."""
    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        raise SearchError(_("The organiser of this event has turned face search off.")) from None
    image = _selfie_image(upload)
    detector, embedder = _FaceCounter(loaded.face_detector()), loaded.face_embedder()
    try:
        vector = embed_selfie(image, detector, embedder)
    except ModelUnavailable as exc:
        logger.error("selfie search unavailable: %s", exc)
        raise SearchError(_("Selfie search is not available at the moment.")) from None
    finally:
        image.close()
    if vector is None:
        raise SearchError(_("No face was found in the selfie: take it facing the camera, "
                            "in good light."))
    hits = [(face_id, similarity) for face_id, similarity
            in indexes.nearest(event.pk, indexes.FACES, embedder.signature, vector, limit)
            if similarity >= embedder.match_threshold]
    # The index may lag a commit by a few seconds; the database has the last word,
    # so an opted-out or erased face never comes back, even from a stale index.
    photo_of = dict(Face.objects.filter(pk__in=[face_id for face_id, _s in hits], event=event,
                                        searchable=True)
                    .values_list("pk", "photo_id"))
    best: dict[int, float] = {}
    for face_id, similarity in hits:
        photo_id = photo_of.get(face_id)
        if photo_id is not None and similarity > best.get(photo_id, -1.0):
            best[photo_id] = similarity
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return SelfieResult([Match(photo_id, round(score, 4), (REASON_FACE,))
                         for photo_id, score in ranked], detector.count)

