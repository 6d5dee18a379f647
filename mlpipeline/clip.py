"""CLIP image and text embeddings (open_clip), for outfit and free-text search.

The pretrained ViT-B-32 weights are not installable from a package index, so
they are read from ``MODELS_DIR`` (``manage.py fetch_models`` puts them there
on a machine that is online). Without them CLIP features are off and say so;
nothing is ever downloaded here.
"""

from pathlib import Path

import numpy as np
from django.conf import settings

from mlpipeline.availability import CLIP_VIT_B32_FILE
from mlpipeline.base import ModelUnavailable, ModelWrapper
from mlpipeline.vectors import normalised


class ClipEmbedder(ModelWrapper):
    job = "image_text_embedding"
    version = "1"

    def __init__(self, architecture: str = "ViT-B-32", weights_path: Path | None = None,
                 pretrained: bool = True):
        super().__init__()
        self.architecture = architecture
        self.name = f"open_clip-{architecture}"
        self.weights_path = Path(weights_path or Path(settings.MODELS_DIR) / CLIP_VIT_B32_FILE)
        self.pretrained = pretrained
        self.dimension: int | None = None

    def load(self) -> None:
        if not self.weights_path.is_file():
            raise ModelUnavailable(
                f"{self.name}: weights not found at {self.weights_path}; outfit and text search "
                "stay off until they are placed there (manage.py fetch_models on an online "
                "machine).")
        import open_clip
        import torch

        # A local file as "pretrained" is loaded as a checkpoint; weights_only
        # refuses pickled code in a tampered file.
        model, _train, preprocess = open_clip.create_model_and_transforms(
            self.architecture, pretrained=str(self.weights_path), device="cpu",
            weights_only=True)
        model.eval()
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(self.architecture)
        self._torch = torch
        self.dimension = int(model.text_projection.shape[1]
                             if getattr(model, "text_projection", None) is not None
                             else model.visual.output_dim)

    def predict(self, image) -> np.ndarray:
        """The L2-normalised embedding of one PIL image."""
        return self.embed_images([image])[0]

    def embed_images(self, images) -> np.ndarray:
        self.ensure_loaded()
        batch = self._torch.stack([self._preprocess(image.convert("RGB")) for image in images])
        with self._torch.inference_mode():
            features = self._model.encode_image(batch)
        return normalised(features.numpy())

    def embed_text(self, text: str) -> np.ndarray:
        self.ensure_loaded()
        tokens = self._tokenizer([text])
        with self._torch.inference_mode():
            features = self._model.encode_text(tokens)
        return normalised(features.numpy())[0]
