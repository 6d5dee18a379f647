"""Face detection with MTCNN (facenet-pytorch's weights, shipped in its wheel)."""

from django.utils.translation import gettext_lazy as _
from PIL import Image

from photos.imaging import to_rgb

from .base import ModelWrapper
from .faces import DetectedFace


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
