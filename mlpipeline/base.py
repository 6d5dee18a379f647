"""One small base class for every model the pipeline runs.

A wrapper knows its ``name`` and ``version`` (stored with what it produces, so
results of two models never mix), loads its weights once per process on
first use, and turns an input into a plain Python result in ``predict()``.
Weights are only ever read from disk: a missing or unreadable file raises
:class:`ModelUnavailable` with a sentence an operator can act on, and the
pipeline marks the photo for re-processing instead of faking a result.
"""

import logging
import threading
import time

logger = logging.getLogger(__name__)

# A model that failed to load is not tried again for this long: a corrupt
# multi-hundred-megabyte file would otherwise be re-read for every photo.
RETRY_LOAD_AFTER_SECONDS = 60.0


class ModelUnavailable(Exception):
    """The model cannot run here (weights missing or corrupt); ``str()`` says why."""


class ModelWrapper:
    #: what the model does: bib_ocr, face_detection, face_embedding, image_text_embedding
    job: str = ""
    #: stable identifier stored with every result (e.g. ``dlib-resnet-v1``)
    name: str = ""
    #: bumped when preprocessing or weights change, so old results can be found and redone
    version: str = "1"
    #: whether the weights are trained (False for the small random models of the tests)
    pretrained: bool = True

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded = False
        self.load_seconds: float | None = None
        self._failure: ModelUnavailable | None = None
        self._failed_at = 0.0

    @property
    def signature(self) -> str:
        """``name@version``: what a stored embedding records, and what an index is keyed by."""
        return f"{self.name}@{self.version}"

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
        return {"job": self.job, "name": self.name, "version": self.version,
                "pretrained": self.pretrained, "loaded": self._loaded,
                "error": str(self._failure) if self._failure else None,
                "load_seconds": round(self.load_seconds, 2) if self.load_seconds else None}
