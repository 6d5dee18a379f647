"""Real MTCNN and dlib weights on small synthetic images (no faces of real people here)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from mlpipeline import faces as faces_module
from mlpipeline.base import ModelUnavailable
from mlpipeline.faces import (DetectedFace, DlibFaceEmbedder, FaceDetector, FacenetFaceEmbedder,
                              default_face_embedder, dlib_points_from_eyes, embed_selfie)


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


def test_it_accepts_grayscale_and_rgba_images(detector):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (120, 160), dtype=np.uint8)
    gray = Image.fromarray(noise, mode="L")
    rgba = Image.fromarray(np.dstack([noise] * 3 + [np.full_like(noise, 128)]), mode="RGBA")
    for image in (gray, rgba):
        found = detector(image)
        assert isinstance(found, list)
        assert all(isinstance(face, DetectedFace) for face in found)


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
    monkeypatch.setattr(faces_module, "dlib_models_dir", lambda: tmp_path)
    with pytest.raises(ModelUnavailable, match="dlib weights missing"):
        DlibFaceEmbedder().ensure_loaded()


def test_it_reports_missing_mtcnn_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(faces_module, "mtcnn_weights_dir", lambda: tmp_path)
    with pytest.raises(ModelUnavailable, match="MTCNN weights missing"):
        FaceDetector().ensure_loaded()


@pytest.fixture(scope="module")
def facenet_weights(tmp_path_factory) -> Path:
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("facenet") / "facenet-vggface2.pt"
    torch.save(InceptionResnetV1(pretrained=None).eval().state_dict(), path)
    return path


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
    assert isinstance(default_face_embedder(), DlibFaceEmbedder)
    (tmp_path / "facenet-vggface2.pt").write_bytes(facenet_weights.read_bytes())
    chosen = default_face_embedder()
    assert isinstance(chosen, FacenetFaceEmbedder)
    assert chosen.ensure_loaded().loaded
