import pytest

from mlpipeline.tests.weights import build_facenet, build_tiny_clip


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Weights of the tiny CLIP model (``weights.TINY``)."""
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def facenet_weights(tmp_path_factory):
    """A FaceNet weights file, random but in the real file format."""
    return build_facenet(tmp_path_factory.mktemp("facenet"))
