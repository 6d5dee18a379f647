"""How a worker process shares the machine: threads per model, memory handed back."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mlpipeline import allocator, loaded, worker
from mlpipeline.inference.base import ModelWrapper

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_the_cores_are_shared_out_between_the_worker_processes(settings, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    settings.ML_TORCH_THREADS = 0
    settings.CELERY_WORKER_CONCURRENCY = 2
    assert loaded.model_threads() == 4
    settings.CELERY_WORKER_CONCURRENCY = 16
    assert loaded.model_threads() == 1
    settings.ML_TORCH_THREADS = 3
    assert loaded.model_threads() == 3


def test_configure_threads_applies_them_to_torch_and_opencv(settings, threads_restored):
    settings.ML_TORCH_THREADS = 1
    loaded.configure_threads()
    assert torch.get_num_threads() == 1
    assert cv2.getNumThreads() == 1
    loaded.configure_threads(2)
    assert torch.get_num_threads() == 2


def test_a_worker_process_sets_its_threads_in_the_thread_that_runs_the_tasks(
        settings, monkeypatch, threads_restored):
    # torch's count belongs to the thread that sets it: set from the model-loading
    # thread, it would leave the tasks on every core, two processes fighting for them.
    settings.ML_TORCH_THREADS = 1
    monkeypatch.setattr(loaded, "all_models", lambda: [])
    monkeypatch.setattr(worker, "publish", lambda: None)
    torch.set_num_threads(2)
    try:
        worker.start()  # worker_process_init, in the process's main thread
        assert torch.get_num_threads() == 1
    finally:
        worker._stop.set()


class ConvModel(ModelWrapper):
    """A small real torch model whose loading runs a parallel region when threads allow."""

    job, name, pretrained = "test", "conv", False

    def load(self) -> None:
        self.layer = torch.nn.Conv2d(32, 32, 3)
        self.run()

    def run(self) -> float:
        with torch.inference_mode():
            return float(self.layer(torch.ones(1, 32, 384, 384)).sum())


def _run_after_fork(model, results) -> None:
    loaded.configure_threads()  # as worker_process_init does
    model.run()
    results.put(torch.get_num_threads())


# Run in a new interpreter: this test process has run parallel regions already.
FORK_AFTER_LOADING = """
import multiprocessing, sys
import torch
from mlpipeline import loaded, worker
from mlpipeline.tests.test_worker_process import ConvModel, _run_after_fork

model = ConvModel()
loaded.all_models = lambda: [model]
torch.set_num_threads(2)  # what the main process has before the worker starts
worker.load_before_fork()
assert model.loaded
context = multiprocessing.get_context("fork")
results = context.Queue()
child = context.Process(target=_run_after_fork, args=(model, results))
child.start()
child.join(timeout=60)
if child.is_alive():
    child.kill()
    sys.exit("the forked process hung in its first parallel region")
print("threads in the child:", results.get(timeout=5))
"""


def test_processes_forked_after_the_models_loaded_run_them_on_several_threads():
    # GNU OpenMP hangs a child forked after its parent ran a parallel region on
    # several threads: the worker's main process must load the models on one.
    done = subprocess.run([sys.executable, "-c", FORK_AFTER_LOADING], cwd=ROOT,
                          env={**os.environ, "ML_TORCH_THREADS": "2"},
                          capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "threads in the child: 2" in done.stdout


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


def test_a_task_done_lets_its_photos_pixels_go(monkeypatch):
    # The photo's steps share one decode (a 24 MP photo's is 40 MB); the next task is another
    # photo or event-wide work, so once the task is over the decode must not stay behind.
    from celery.signals import task_postrun

    from photos import imaging
    from photos.tests.images import image_bytes

    data = image_bytes(size=(64, 48))
    decoded = imaging.decoded(("originals/a.jpg", "a"), lambda: data)
    decoded.image(32)
    trims = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: trims.append(True))

    task_postrun.send(sender=None, task_id="t", task=None, args=(1,), kwargs={},
                      retval=None, state="SUCCESS")

    assert imaging.decoded(("originals/a.jpg", "a"), lambda: data) is not decoded  # read again
    assert trims == [True]  # and the heap's free pages handed back after it
    imaging.forget_decoded()


def test_torch_keeps_no_compiled_kernel_per_input_shape():
    # Set when the models' module is imported, before torch runs its first kernel.
    done = subprocess.run([sys.executable, "-c", "import os, django; django.setup(); "
                "import mlpipeline.loaded; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"],
                          cwd=ROOT, env={key: value for key, value in os.environ.items()
                                         if key != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"},
                          capture_output=True, text=True, timeout=120)

    assert done.stdout.strip().splitlines()[-1] == "0", done.stderr[-2000:]
