"""CLIP image and text embeddings (open_clip), for outfit and free-text search.

The pretrained ViT-B-32 weights are not installable from a package index, so
they are read from ``MODELS_DIR`` (``manage.py fetch_models`` puts them there
on a machine that is online). Without them CLIP features are off and say so;
nothing is ever downloaded here.
"""

from pathlib import Path

import numpy as np
from django.utils.translation import gettext_lazy as _

from mlpipeline.vectors import normalised

from .base import ModelUnavailable, ModelWrapper


class ClipEmbedder(ModelWrapper):
    job = "image_text_embedding"
    architecture = "ViT-B-32"
    name = f"open_clip-{architecture}"
    version = "1"
    #: ViT-B-32's embedding length; another architecture's is known once it is loaded
    dimension: int | None = 512
    feature = _("Outfit and text search")
    on_detail = _("Outfit and text search are on.")
    off_detail = _("Outfit and text search are off: CLIP weights are not in MODELS_DIR (run "
                   "manage.py fetch_models on an online machine).")
    weights_file = "open_clip-ViT-B-32.bin"
    download_url = ("https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/"
                    "open_clip_pytorch_model.bin")

    def __init__(self, architecture: str | None = None, weights_path: Path | None = None,
                 pretrained: bool = True):
        """``architecture`` and ``weights_path``: another open_clip model (the tests' tiny
        one); by default ViT-B-32 from MODELS_DIR."""
        super().__init__()
        if architecture is not None and architecture != self.architecture:
            self.architecture = architecture
            self.name = f"open_clip-{architecture}"
            self.dimension = None
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.pretrained = pretrained

    def load(self) -> None:
        weights = self.weights_path or self.models_dir_weights()
        if not weights.is_file():
            raise ModelUnavailable(
                f"{self.name}: weights not found at {weights}; outfit and text search "
                "stay off until they are placed there (manage.py fetch_models on an online "
                "machine).")
        import open_clip
        import torch

        # A local file as "pretrained" is loaded as a checkpoint; weights_only
        # refuses pickled code in a tampered file.
        model, _train, preprocess = open_clip.create_model_and_transforms(
            self.architecture, pretrained=str(weights), device="cpu",
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
