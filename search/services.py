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
from mlpipeline.bibrules import canonical
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.faces import embed_selfie
from photos.models import BibTag, Face

logger = logging.getLogger(__name__)

SELFIE_MAX_BYTES = 15 * 1024 * 1024
SELFIE_MAX_PIXELS = 40_000_000
SELFIE_ANALYSIS_SIZE = 1024
# Faces of one selfie offered to pick from (a group selfie): each costs an embedding and a search.
SELFIE_FACES_OFFERED = 4
SELFIE_CROP_SIZE = 160
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
class SelfieFace:
    """One more face of a selfie that showed several, for the runner to pick theirs."""

    # A small JPEG of the face, sent back to the runner who sent the selfie and never
    # stored: they cannot point at "the one on the left" otherwise.
    crop: bytes
    matches: list[Match]


@dataclass(frozen=True)
class SelfieResult:
    matches: list[Match]  # of the selfie's largest face
    # How many faces the selfie showed; with several, the largest one was searched.
    faces_found: int
    # With several faces: the largest first, then the next ones (up to SELFIE_FACES_OFFERED),
    # each searched too, so the runner can switch to theirs without sending it again.
    faces: tuple[SelfieFace, ...] = ()


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


class _FaceRecorder:
    """Passes the detector's faces on and remembers them (how many, and where)."""

    def __init__(self, detector):
        self.detector = detector
        self.faces = []

    def __call__(self, image):
        self.faces = list(self.detector(image))
        return self.faces


def _face_crop(image, face) -> bytes:
    """The face with a margin, small, as JPEG bytes in memory."""
    margin = 0.25 * max(face.width, face.height)
    box = (max(0, round(face.x1 - margin)), max(0, round(face.y1 - margin)),
           min(image.width, round(face.x2 + margin)), min(image.height, round(face.y2 + margin)))
    crop = image.crop(box)
    crop.thumbnail((SELFIE_CROP_SIZE, SELFIE_CROP_SIZE))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def photos_by_selfie(event, upload, limit: int = FACE_CANDIDATES) -> list[Match]:
    """The event's photos with a face like the one in the selfie, most similar first."""
    return selfie_search(event, upload, limit).matches


def selfie_search(event, upload, limit: int = FACE_CANDIDATES) -> SelfieResult:
    """:func:`photos_by_selfie`, with how many faces the selfie showed and, when it showed
    several, the next largest ones searched too (pages let the runner pick theirs)."""
    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        raise SearchError(_("The organiser of this event has turned face search off.")) from None
    image = _selfie_image(upload)
    detector, embedder = _FaceRecorder(loaded.face_detector()), loaded.face_embedder()
    crops, other_vectors = [], []
    try:
        vector = embed_selfie(image, detector, embedder)
        if vector is not None and len(detector.faces) > 1:
            # Largest first, as embed_selfie chose: the first crop is the face searched.
            offered = sorted(detector.faces, key=lambda face: face.area,
                             reverse=True)[:SELFIE_FACES_OFFERED]
            other_vectors = list(embedder(image, offered[1:]))
            crops = [_face_crop(image, face) for face in offered]
    except ModelUnavailable as exc:
        logger.error("selfie search unavailable: %s", exc)
        raise SearchError(_("Selfie search is not available at the moment.")) from None
    finally:
        image.close()
    if vector is None:
        raise SearchError(_("No face was found in the selfie: take it facing the camera, "
                            "in good light."))
    matches = _face_matches(event, embedder, vector, limit)
    faces = ()
    if crops:
        faces = (SelfieFace(crops[0], matches),) + tuple(
            SelfieFace(crop, _face_matches(event, embedder, other, limit))
            for crop, other in zip(crops[1:], other_vectors))
    return SelfieResult(matches, len(detector.faces), faces)


def _face_matches(event, embedder, vector, limit) -> list[Match]:
    """The event's photos with a face like ``vector``, most similar first."""
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
    return [Match(photo_id, round(score, 4), (REASON_FACE,)) for photo_id, score in ranked]
