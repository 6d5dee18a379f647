"""Every model the pipeline knows, in one place: the ones it runs, the face embedders
``FACE_EMBEDDER=auto`` tries (in order), and the face models it no longer produces but
whose stored vectors are still searched and linked.

Availability, ``manage.py fetch_models``, the model-status page, the match and link
thresholds and PostgreSQL's partial vector indexes all read from here. Adding a face
embedder is one class file and one line in ``FACE_EMBEDDERS`` (plus, for
``SEARCH_BACKEND=pgvector``, a migration creating its partial index: migrations are
frozen, so they never read this module).
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .base import ModelWrapper
from .bib_ocr import BibReader
from .clip import ClipEmbedder
from .dlib_resnet import DlibFaceEmbedder
from .facenet import FacenetFaceEmbedder
from .faces import FaceEmbedder
from .mtcnn import FaceDetector
from .outfit import OutfitReader
from .sface import SFaceEmbedder

FACE_DETECTOR = FaceDetector
#: FACE_EMBEDDER's choices, and the order ``auto`` tries them in, best first: SFace is
#: measured well ahead of dlib on race photos (bench/faces.py); FaceNet VGGFace2 was never
#: measured here; dlib ships offline and is the last resort.
FACE_EMBEDDERS: dict[str, type[FaceEmbedder]] = {
    "sface": SFaceEmbedder,
    "facenet": FacenetFaceEmbedder,
    "dlib": DlibFaceEmbedder,
}
BIB_READER = BibReader
#: outfit colours need no weights: outfit search works on every machine, and uses CLIP
#: instead when its weights are here (search/outfit.py)
OUTFIT_READER = OutfitReader
CLIP_EMBEDDER = ClipEmbedder


@dataclass(frozen=True)
class RetiredFaceModel:
    """A face model no longer produced: an event's faces keep its vectors (searched and
    clustered with its own threshold) until its photos are embedded again."""

    dimension: int
    match_threshold: float
    link_threshold: float | None = None


RETIRED_FACE_MODELS = {
    # one descriptor per face, without its mirror image (v2 averages both)
    "dlib-resnet-v1@1": RetiredFaceModel(dimension=128, match_threshold=0.95),
}


def check_face_embedder_setting() -> None:
    """Refuse to start with a FACE_EMBEDDER that names no embedder of the registry."""
    choices = ("auto", *FACE_EMBEDDERS)
    if settings.FACE_EMBEDDER not in choices:
        raise ImproperlyConfigured(f"FACE_EMBEDDER must be one of {', '.join(choices)}, "
                                   f"got {settings.FACE_EMBEDDER!r}.")


def chosen_face_embedder() -> type[FaceEmbedder]:
    """The embedder settings.FACE_EMBEDDER names; with "auto", the first one in
    ``FACE_EMBEDDERS`` whose weights are on this machine, else the last one (which then
    says that selfie search is off)."""
    if settings.FACE_EMBEDDER in FACE_EMBEDDERS:
        return FACE_EMBEDDERS[settings.FACE_EMBEDDER]
    embedders = list(FACE_EMBEDDERS.values())
    return next((embedder for embedder in embedders if embedder.find_weights()[0]), embedders[-1])


def active_models() -> list[type[ModelWrapper]]:
    """The model classes this installation runs, in pipeline order of their features."""
    return [BIB_READER, FACE_DETECTOR, chosen_face_embedder(), OUTFIT_READER, CLIP_EMBEDDER]


def downloadable_models() -> dict[str, type[ModelWrapper]]:
    """The models whose weights no package ships, by the file they read in MODELS_DIR."""
    models = [FACE_DETECTOR, *FACE_EMBEDDERS.values(), BIB_READER, CLIP_EMBEDDER]
    return {model.weights_file: model for model in models if model.download_url}


def _face_model(signature: str) -> type[FaceEmbedder] | RetiredFaceModel:
    for embedder in FACE_EMBEDDERS.values():
        if embedder.signature == signature:
            return embedder
    if signature in RETIRED_FACE_MODELS:
        return RETIRED_FACE_MODELS[signature]
    raise ValueError(f"No known face model {signature!r}.")


def match_threshold(signature: str) -> float:
    """The similarity above which two faces of ``signature`` are the same person."""
    return _face_model(signature).match_threshold


def link_threshold(signature: str) -> float:
    """The similarity above which event linking takes two faces of ``signature`` as one
    runner: the model's own linking threshold where it has one, else its match threshold."""
    model = _face_model(signature)
    return model.link_threshold or model.match_threshold


def face_vector_dimensions() -> dict[str, int]:
    """Face vectors PostgreSQL indexes (one partial HNSW index each), by signature."""
    current = {embedder.signature: embedder.dimension for embedder in FACE_EMBEDDERS.values()}
    retired = {signature: model.dimension for signature, model in RETIRED_FACE_MODELS.items()}
    return {**retired, **current}


def clip_vector_dimensions() -> dict[str, int]:
    """Image vectors PostgreSQL indexes, by signature."""
    return {CLIP_EMBEDDER.signature: CLIP_EMBEDDER.dimension}
