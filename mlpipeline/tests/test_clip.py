"""CLIP code paths with a small real open_clip model built here (the ViT-B-32 weights are
not installable offline): same code, same file format, random weights."""

import numpy as np
import pytest
from PIL import Image

from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.clip import ClipEmbedder
from mlpipeline.tests.weights import TINY


def test_it_embeds_images_and_text_into_one_normalised_space(tiny_weights):
    clip = ClipEmbedder(TINY, weights_path=tiny_weights, pretrained=False)

    red = clip(Image.new("RGB", (120, 80), "red"))
    blue = clip.predict(Image.new("L", (50, 90), 40))  # grayscale is converted
    text = clip.embed_text("maillot rouge, casquette blanche")

    assert red.shape == blue.shape == text.shape == (32,)
    for vector in (red, blue, text):
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(red, blue)
    assert clip.signature == f"open_clip-{TINY}@1"
    assert clip.describe()["pretrained"] is False and clip.describe()["loaded"] is True


def test_it_gives_the_same_vector_for_the_same_image(tiny_weights):
    clip = ClipEmbedder(TINY, weights_path=tiny_weights, pretrained=False)
    image = Image.new("RGB", (64, 64), (10, 200, 30))

    assert np.allclose(clip(image), clip.embed_images([image, image])[1], atol=1e-5)


def test_it_says_clearly_that_the_weights_are_missing(tmp_path):
    clip = ClipEmbedder(weights_path=tmp_path / "absent.bin")

    with pytest.raises(ModelUnavailable, match="outfit and text search stay off"):
        clip.ensure_loaded()
    assert not clip.loaded
    assert "absent.bin" in clip.describe()["error"]


def test_it_refuses_a_corrupt_weights_file(tmp_path, tiny_weights):
    broken = tmp_path / "broken.bin"
    broken.write_bytes(tiny_weights.read_bytes()[:5000])

    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        ClipEmbedder(TINY, weights_path=broken).ensure_loaded()
