"""How a worker process shares the machine: threads per model, memory handed back."""

import numpy as np
import torch

from mlpipeline import allocator, loaded, worker


def test_the_cores_are_shared_out_between_the_worker_processes(settings, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    settings.ML_TORCH_THREADS = 0
    settings.CELERY_WORKER_CONCURRENCY = 2
    assert loaded.model_threads() == 4
    settings.CELERY_WORKER_CONCURRENCY = 16
    assert loaded.model_threads() == 1
    settings.ML_TORCH_THREADS = 3
    assert loaded.model_threads() == 3


def test_configure_threads_applies_them_to_torch_and_opencv(settings):
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads()
    settings.ML_TORCH_THREADS = 1
    try:
        loaded.configure_threads()
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def test_free_heap_memory_is_handed_back_after_a_task():
    # Blocks below glibc's smallest mmap threshold (128 kB) come from the heap; one kept
    # at the end pins the heap's top, so only malloc_trim can give the rest back.
    blocks = [np.ones(8_000) for _ in range(25_000)]  # 64 kB each: 1.6 GB
    keep = np.ones(8_000)
    del blocks
    before = _rss_kib()
    worker.release_memory(sender=None)
    assert allocator.release_free_memory() is True
    assert _rss_kib() < before - 1_000_000  # most of the 1.6 GB is back with the system
    assert keep.sum() == 8_000
