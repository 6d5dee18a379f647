"""One small base class for every model the pipeline runs, holding that model's facts.

A model class says what it does (``job``, and the ``feature`` it makes possible),
what it stores with its results (``name`` and ``version``: results of two models
never mix), and where its weights are: files inside an installed Python package
(``weights_package`` + ``package_files``) or one file in ``MODELS_DIR``
(``weights_file``, fetched from ``download_url`` by ``manage.py fetch_models``).
Availability checks, ``fetch_models`` and the model-status page read these facts
from the class, so they cannot drift from what the model really loads.

An instance loads its weights once per process on first use and turns an input
into a plain Python result in ``predict()``. Weights are only ever read from
disk: a missing or unreadable file raises :class:`ModelUnavailable` with a
sentence an operator can act on, and the pipeline marks the photo for
re-processing instead of faking a result.
"""

import importlib.util
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

# A model that failed to load is not tried again for this long: a corrupt
# multi-hundred-megabyte file would otherwise be re-read for every photo.
RETRY_LOAD_AFTER_SECONDS = 60.0


class ModelUnavailable(Exception):
    """The model cannot run here (weights missing or corrupt); ``str()`` says why."""


@dataclass(frozen=True)
class ModelAvailability:
    """Whether a model's weights are on this machine; found without loading anything."""

    job: str
    name: str
    available: bool
    #: whether the weights found are trained ones; None while there are none to judge
    pretrained: bool | None
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


def find_package_files(module: str, relative: tuple[str, ...]) -> tuple[bool, str]:
    """Whether every file of ``relative`` is in the installed package ``module``, and
    where the first one is (or, when not, what is missing)."""
    base = package_dir(module)
    if base is None:
        return False, f"package {module} is not installed"
    missing = [name for name in relative if not (base / name).is_file()]
    if missing:
        return False, f"missing {', '.join(missing)} in {base}"
    return True, str(base / relative[0])


class _Signature:
    """``name@version`` of a model class or of one instance (whose name may differ)."""

    def __get__(self, instance, owner) -> str:
        model = owner if instance is None else instance
        return f"{model.name}@{model.version}"


class ModelWrapper:
    #: what the model does: bib_ocr, face_detection, face_embedding, image_text_embedding
    job: str = ""
    #: stable identifier stored with every result (e.g. ``dlib-resnet-v1``)
    name: str = ""
    #: bumped when preprocessing or weights change, so old results can be found and redone
    version: str = "1"
    #: whether the weights are trained (False for the small random models of the tests)
    pretrained: bool = True
    #: ``name@version``: what a stored result records, and what an index is keyed by
    signature = _Signature()

    #: what the model makes possible, as the model-status page names it
    feature = ""
    #: the status page's sentence when the weights are here, and when they are not
    on_detail = ""
    off_detail = ""
    #: weights shipped inside a Python package: its import name and files in it
    weights_package: str | None = None
    package_files: tuple[str, ...] = ()
    #: ... or weights that no package index ships: one file in MODELS_DIR, and where
    #: ``manage.py fetch_models`` downloads it from
    weights_file: str | None = None
    download_url: str | None = None

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded = False
        self.load_seconds: float | None = None
        self._failure: ModelUnavailable | None = None
        self._failed_at = 0.0

    # --- Where the weights are (no loading) ------------------------------------------

    @classmethod
    def models_dir_weights(cls) -> Path:
        return Path(settings.MODELS_DIR) / cls.weights_file

    @classmethod
    def find_weights(cls) -> tuple[bool, str]:
        """Whether the weights are on this machine, and where (or what is missing)."""
        if cls.weights_package:
            return find_package_files(cls.weights_package, cls.package_files)
        path = cls.models_dir_weights()
        return path.is_file(), str(path)

    @classmethod
    def availability(cls) -> ModelAvailability:
        found, where = cls.find_weights()
        return ModelAvailability(cls.job, cls.name, found, cls.pretrained if found else None,
                                 where, cls.on_detail if found else cls.off_detail)

    def packaged_weights(self) -> Path:
        """The folder of the weights package, or ModelUnavailable saying what is missing."""
        found, where = find_package_files(self.weights_package, self.package_files)
        if not found:
            raise ModelUnavailable(f"{self.name}: {where}; install (or reinstall) the Python package "
                                   f"{self.weights_package}")
        return package_dir(self.weights_package)

    # --- Loading and running ---------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded

    def ensure_loaded(self) -> "ModelWrapper":
        """Load once, even when threads race; later calls cost nothing."""
        if self._loaded:
            return self
        with self._lock:
            if not self._loaded:
                if self._failure and time.monotonic() - self._failed_at < RETRY_LOAD_AFTER_SECONDS:
                    raise self._failure
                started = time.monotonic()
                try:
                    self.load()
                except Exception as exc:  # a corrupt file surfaces as anything from torch/dlib
                    self._failure = exc if isinstance(exc, ModelUnavailable) else ModelUnavailable(
                        f"{self.name}: the weights could not be loaded ({type(exc).__name__}: {exc})")
                    self._failed_at = time.monotonic()
                    logger.error("model %s unavailable: %s", self.signature, self._failure)
                    raise self._failure from exc
                self._failure = None
                self.load_seconds = time.monotonic() - started
                self._loaded = True
                logger.info("model %s loaded in %.1f s", self.signature, self.load_seconds)
        return self

    def load(self) -> None:
        """Read the weights; raise :class:`ModelUnavailable` when they are not there."""
        raise NotImplementedError

    def predict(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.ensure_loaded().predict(*args, **kwargs)

    def describe(self) -> dict:
        # Whether the weights are trained is only known of weights that were loaded.
        return {"job": self.job, "name": self.name, "version": self.version,
                "pretrained": self.pretrained if self._loaded else None, "loaded": self._loaded,
                "error": str(self._failure) if self._failure else None,
                "load_seconds": round(self.load_seconds, 2) if self.load_seconds else None}
