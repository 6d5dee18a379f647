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
# Faces looked at per selfie search: a runner rarely has more photos than this
# in one event, and every hit is then checked against the database.
FACE_CANDIDATES = 500


class SearchError(Exception):
    """The search cannot be done; ``str()`` is a sentence for the runner."""


@dataclass(frozen=True)
class Match:
    photo_id: int
    score: float  # cosine similarity of the best face, or the bib tag's confidence


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
    for photo_id, confidence in tags.values_list("photo_id", "confidence"):
        best.setdefault(photo_id, confidence)
    return [Match(photo_id, score) for photo_id, score in best.items()]


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


def photos_by_selfie(event, upload, limit: int = FACE_CANDIDATES) -> list[Match]:
    """The event's photos with a face like the one in the selfie, most similar first."""
    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        raise SearchError(_("The organiser of this event has turned face search off.")) from None
    image = _selfie_image(upload)
    detector, embedder = loaded.face_detector(), loaded.face_embedder()
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
    return [Match(photo_id, round(score, 4)) for photo_id, score in ranked]

