"""Small real models built in the tests (real weights are not installable offline): the
same code paths and file formats as the real ones, with random weights."""

import json
from pathlib import Path

TINY = "RacePhoto-test-tiny"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def build_tiny_clip(folder: Path) -> Path:
    """Register the tiny open_clip model and save random weights for it; their path."""
    import open_clip
    import torch

    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    torch.save(model.state_dict(), folder / "tiny.bin")
    return folder / "tiny.bin"


def build_facenet(folder: Path) -> Path:
    """A FaceNet (InceptionResnetV1) state dict with random weights; its path."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    path = folder / "facenet-vggface2.pt"
    torch.save(InceptionResnetV1(pretrained=None).eval().state_dict(), path)
    return path
