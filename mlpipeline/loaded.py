"""The models of this process: built on first use, loaded once, shared by every task.

A Celery worker process keeps them for its lifetime, so a photo costs only its
own inference. Which face embedder is used is decided once per process (see
``FACE_EMBEDDER``): embeddings of two models never meet in one index anyway,
because every vector is stored with its model's signature.
"""

import functools
import os

from django.conf import settings

from mlpipeline.inference import registry

# oneDNN, torch's CPU kernels, keeps up to 1,024 compiled kernels, one per layer and input
# shape it has seen. The bib reader's canvases and line batches take a new shape nearly every
# photo, so the cache only grows (6.5 MB a 24 MP photo, every worker process, until full) and
# hardly ever hits; without it a conv costs no measurable CPU more (CRAFT and MTCNN on fixed
# shapes, where every call would hit). Read once, when torch first runs a kernel: an
# operator's own value wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")


def model_threads() -> int:
    """CPU threads each worker process gives its models: ``ML_TORCH_THREADS``, or the
    cores shared out between the worker's processes. A photo's inputs are small, so a
    second thread on one photo gains little, while a second process working on another
    photo nearly doubles the throughput (bench/ingest.py --processes)."""
    if settings.ML_TORCH_THREADS:
        return settings.ML_TORCH_THREADS
    return max(1, (os.cpu_count() or 1) // settings.CELERY_WORKER_CONCURRENCY)


def configure_threads(threads: int | None = None) -> None:
    """torch and OpenCV (SFace runs in cv2.dnn) both take ``threads`` (default
    ``model_threads()``).

    Call it from the thread that runs the models: torch's count is OpenMP's, which
    belongs to the calling thread, so a count set from a helper thread leaves the
    task thread on every core (measured: set in a thread, torch in the main thread
    still ran 2 threads while OpenCV's count, process-wide, had changed).
    """
    import cv2
    import torch

    threads = threads or model_threads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


@functools.cache
def face_detector():
    return registry.FACE_DETECTOR()


@functools.cache
def face_embedder():
    # settings.FACE_EMBEDDER ("auto": the first of the registry's embedders whose
    # weights are here)
    return registry.chosen_face_embedder()()


@functools.cache
def bib_reader():
    return registry.BIB_READER()


@functools.cache
def outfit_reader():
    return registry.OUTFIT_READER()


@functools.cache
def clip_embedder():
    return registry.CLIP_EMBEDDER()


def all_models() -> list:
    return [face_detector(), face_embedder(), bib_reader(), outfit_reader(), clip_embedder()]


_GETTERS = (face_detector, face_embedder, bib_reader, outfit_reader, clip_embedder)


def forget() -> None:
    """Drop every cached model (tests; a worker picks up new weights on restart)."""
    for getter in _GETTERS:  # the originals, even while a test has replaced one
        getter.cache_clear()
