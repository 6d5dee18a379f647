"""What every face model shares: the faces a detector finds, the embedder base class
with its thresholds, and the selfie embedding built from the two.

Every embedder turns the faces found by the detector into L2-normalised float32
vectors, so "same person" is one cosine-similarity comparison against the
embedder's ``match_threshold``. Thresholds come from ``bench/faces.py`` (real
race photos of rbnr-dev and the celebs verification set) and ``bench/linking.py``;
rerun them when the preprocessing changes and bump ``version``.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from .base import ModelWrapper


@dataclass(frozen=True)
class DetectedFace:
    """A face in image pixels of the image given to the detector (not of a resized copy)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    #: five (x, y) points from MTCNN: left eye, right eye, nose, mouth left, mouth right
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


class FaceEmbedder(ModelWrapper):
    job = "face_embedding"
    feature = _("Selfie search")
    #: length of the vectors, which PostgreSQL's partial index of the model casts to
    dimension: int = 0
    #: cosine similarity at or above which two faces are taken as one person
    match_threshold: float = 0.0
    #: similarity at or above which event linking clusters two faces as one runner
    #: (None: ``match_threshold``)
    link_threshold: float | None = None

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        raise NotImplementedError

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dimension), dtype=np.float32)


def embed_selfie(image: Image.Image, detector, embedder: FaceEmbedder) -> np.ndarray | None:
    """Embedding of the selfie's main face (the largest confident one), or None without a face.

    Works in memory only: selfies are never written anywhere.
    """
    faces = detector(image)
    if not faces:
        return None
    main = max(faces, key=lambda face: face.area)
    return embedder(image, [main])[0]
