"""FaceNet InceptionResnetV1 (512-d) trained on VGGFace2 (facenet-pytorch's release).

No package index ships these weights: ``manage.py fetch_models`` puts them in
MODELS_DIR, and nothing here downloads anything.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from mlpipeline.vectors import normalised
from photos.imaging import to_rgb

from .base import ModelUnavailable
from .faces import DetectedFace, FaceEmbedder


class FacenetFaceEmbedder(FaceEmbedder):
    """FaceNet InceptionResnetV1 (512-d) trained on VGGFace2, weights from MODELS_DIR only."""

    name = "facenet-vggface2"
    version = "1"
    dimension = 512
    on_detail = _("Selfie search uses FaceNet (VGGFace2).")
    off_detail = _("FaceNet is missing: its weights are not in MODELS_DIR.")
    weights_file = "facenet-vggface2.pt"
    download_url = ("https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
                    "20180402-114759-vggface2.pt")
    #: NOT measured here: the weights are not in this installation's MODELS_DIR. 0.6
    #: is the usual operating point of this model on aligned faces; run bench/faces.py
    #: --embedder facenet once the file is in place and replace it with the measured value.
    match_threshold = 0.6
    #: the network's input size, and the context kept around the detected box
    input_size = 160
    margin = 0.15

    def __init__(self, weights_path: Path | str | None = None, *, pretrained: bool = True):
        super().__init__()
        self.weights_path = Path(weights_path) if weights_path is not None else None
        self.pretrained = pretrained
        self._model = None

    def load(self) -> None:
        weights = self.weights_path or self.models_dir_weights()
        if not weights.is_file():
            raise ModelUnavailable(f"face embedding: FaceNet weights not found at {weights} "
                                   "(run manage.py fetch_models on an online machine)")
        import torch
        from facenet_pytorch import InceptionResnetV1

        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            # pretrained=None: random init, never the download path of pretrained="vggface2"
            model = InceptionResnetV1(pretrained=None, classify=False)
            model.load_state_dict(state)
        except Exception as exc:  # a truncated or foreign file raises from torch's loader
            raise ModelUnavailable(f"face embedding: FaceNet weights at {weights} are unreadable "
                                   f"({type(exc).__name__}: {exc})") from exc
        self._model = model.eval()

    def _crop(self, image: Image.Image, face: DetectedFace) -> np.ndarray:
        pad_x, pad_y = face.width * self.margin, face.height * self.margin
        crop = image.crop((int(face.x1 - pad_x), int(face.y1 - pad_y),
                           int(face.x2 + pad_x), int(face.y2 + pad_y)))
        crop = crop.resize((self.input_size, self.input_size), Image.BILINEAR)
        # the standardisation facenet_pytorch's MTCNN applies before this network
        return (np.asarray(crop, dtype=np.float32) - 127.5) / 128.0

    def predict(self, image: Image.Image, faces: Sequence[DetectedFace]) -> np.ndarray:
        if not faces:
            return self._empty()
        import torch

        image = to_rgb(image)
        batch = np.stack([self._crop(image, face) for face in faces]).transpose(0, 3, 1, 2)
        with torch.inference_mode():
            vectors = self._model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
        return normalised(vectors)
