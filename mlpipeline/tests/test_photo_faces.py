"""FaceDetector.photo_faces: a race photo's faces, proposed by YuNet and confirmed by MTCNN's
R-net and O-net, against the whole of MTCNN (``predict``, a selfie's) on a real face."""

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from mlpipeline.inference.mtcnn import FaceDetector

ASTRONAUT = Image.fromarray(skimage_data.astronaut())  # public domain (NASA)


def race_photo(size=(1800, 1200), at=(700, 300), head_size=(420, 520)) -> Image.Image:
    """A plain scene with the astronaut's head in it."""
    picture = Image.new("RGB", size, (96, 130, 84))
    picture.paste(ASTRONAUT.crop((120, 0, 330, 260)).resize(head_size), at)
    return picture


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector().ensure_loaded()


def test_it_finds_the_face_mtcnn_finds_with_its_box_and_landmarks(detector):
    photo = race_photo()

    found, whole = detector.photo_faces(photo), detector.predict(photo)

    assert len(found) == len(whole) == 1
    face, reference = found[0], whole[0]
    assert iou(face.box, reference.box) > 0.8
    assert face.score >= detector.min_score
    # The embedder aligns on these: within a few pixels of MTCNN's own on a 200 px face.
    shift = np.abs(np.array(face.landmarks) - np.array(reference.landmarks)).max()
    assert shift < 0.05 * reference.height


def test_it_never_runs_mtcnns_image_pyramid(detector, monkeypatch):
    def pyramid(*args, **kwargs):
        raise AssertionError("P-net ran")

    monkeypatch.setattr(detector._mtcnn, "detect", pyramid)
    monkeypatch.setattr(detector._mtcnn.pnet, "forward", pyramid)

    assert len(detector.photo_faces(race_photo())) == 1


def test_it_looks_at_the_reduced_copy_and_answers_in_the_photos_pixels(detector):
    small, large = race_photo(), race_photo((5400, 3600), (2100, 900), (1260, 1560))

    face, = detector.photo_faces(small)
    big, = detector.photo_faces(large)

    assert iou([value * 3 for value in face.box], big.box) > 0.8
    assert np.abs(np.array(face.landmarks) * 3 - np.array(big.landmarks)).max() < 0.05 * big.height


def test_a_box_yunet_proposes_that_r_and_o_net_reject_is_no_face(detector):
    class ProposesGrass:  # YuNet's row: x, y, w, h, five landmarks, score
        def setScoreThreshold(self, score):  # noqa: N802  (OpenCV's names)
            pass

        def setInputSize(self, size):  # noqa: N802
            pass

        def detect(self, image):
            return 1, np.array([[100, 100, 80, 90, *([140, 145] * 5), 0.9]], dtype=np.float32)

    detector_with = FaceDetector()
    detector_with._mtcnn = detector._mtcnn
    detector_with._new_yunet = ProposesGrass

    assert detector_with.photo_faces(Image.new("RGB", (800, 600), (96, 130, 84))) == []


def test_nothing_is_proposed_on_a_plain_image_or_a_tiny_one(detector):
    assert detector.photo_faces(Image.new("RGB", (640, 480), (30, 160, 60))) == []
    assert detector.photo_faces(Image.new("RGB", (8, 6), (200, 200, 200))) == []


def test_without_yunet_weights_mtcnn_alone_finds_the_photos_faces(detector, monkeypatch, caplog):
    monkeypatch.setattr(FaceDetector, "small_face_file", "models/missing.onnx")
    alone = FaceDetector()
    alone._mtcnn = detector._mtcnn
    photo = race_photo()

    assert alone.photo_faces(photo) == detector.predict(photo)
    assert "MTCNN alone finds a photo's faces" in caplog.text


def test_a_face_r_and_o_net_doubt_is_looked_for_by_mtcnn_around_yunets_box(detector,
                                                                           monkeypatch):
    from mlpipeline.inference import mtcnn

    photo = race_photo()
    reference, = detector.predict(photo)
    monkeypatch.setattr(mtcnn, "_confirmed", lambda *args: (np.empty((0, 4)), np.empty(0),
                                                            np.empty((0, 5, 2))))
    looked_at, real_detect = [], detector._mtcnn.detect

    def recording_detect(image, landmarks=True):
        looked_at.append(image.size)
        return real_detect(image, landmarks=landmarks)

    monkeypatch.setattr(detector._mtcnn, "detect", recording_detect)

    face, = detector.photo_faces(photo)

    assert iou(face.box, reference.box) > 0.9
    # Only the region around the head, not the photo (1800 x 1200).
    assert len(looked_at) == 1 and looked_at[0][0] * looked_at[0][1] < 1800 * 1200 / 4


def test_regions_around_doubtful_boxes_merge_where_they_overlap():
    def row(x, y, side):
        return np.array([x, y, side, side, *([0] * 10), 0.8])

    regions = FaceDetector()._regions([row(100, 100, 40), row(150, 100, 40), row(145, 170, 40),
                                       row(600, 400, 30)], (800, 600))

    assert sorted(regions) == [(80, 80, 210, 230), (585, 385, 645, 445)]
