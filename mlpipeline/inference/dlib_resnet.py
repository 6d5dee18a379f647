"""dlib's ResNet face descriptor (128-d), weights from the face_recognition_models wheel."""

import math
from collections.abc import Sequence

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from mlpipeline.vectors import normalised
from photos.imaging import to_rgb

from .faces import DetectedFace, FaceEmbedder

RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"

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


class DlibFaceEmbedder(FaceEmbedder):
    """The offline embedder of last resort (FACE_EMBEDDER=auto tries it after the others)."""

    name = "dlib-resnet-v1"
    #: 2: each face is the average of its own and its mirror image's descriptor, and
    #: small faces are aligned on MTCNN's eyes (``eye_alignment_below``)
    version = "2"
    dimension = 128
    on_detail = _("Selfie search uses the offline dlib model.")
    # dlib is the embedder of last resort (FACE_EMBEDDER=auto): without it there is none.
    off_detail = _("Selfie search is off: no face embedding weights.")
    weights_package = "face_recognition_models"
    package_files = (f"models/{RECOGNITION_FILE}", f"models/{LANDMARKS_FILE}")
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
        models = self.packaged_weights() / "models"
        import dlib

        self._landmarks = dlib.shape_predictor(str(models / LANDMARKS_FILE))
        self._recognition = dlib.face_recognition_model_v1(str(models / RECOGNITION_FILE))

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
        image = to_rgb(image)
        return normalised(np.stack([self._descriptor(image, face) for face in faces]))
