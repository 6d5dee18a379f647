"""Photos per second through ingestion and derivatives, in-process, on a throwaway database.

    python bench/ingest.py DIR [--event-slug SLUG] [--limit N] [--full] [--processes N]
                           [--var-dir DIR] [--models-dir DIR]

Every JPEG, PNG or WebP under DIR is ingested (``ingest_file``: read, hash,
validate, decode, store the private original, create the Photo), then each
accepted photo is processed synchronously in this process: the ``derivatives``
step alone, or with ``--full`` every step registered (``process_photo``).
Both phases are timed separately and together.

With ``--full`` the photos are shared out between ``--processes`` forked processes
(default: the worker's ``WORKER_CONCURRENCY``), set up as the Celery worker's are:
this process loads the models, then forks the workers, which share the weights
and take their share of the cores (``worker.preload``); the clock starts once all
are ready, so the figure is the throughput of the product's worker on this
machine. Memory: each process's peak RSS, and the whole worker's peak PSS (the sum
over the main process and its workers of /proc/PID/smaps_rollup's Pss, sampled twice a
second), with each process's private and shared pages at that peak, and each worker's
private pages after each of its photos (what it keeps from one photo to the next). Model weights come
from ``--models-dir`` (default MODELS_DIR, else var/models).

The embedded PostgreSQL and Valkey run in a fresh temp dir (or --var-dir), never
the developer's var/, and are stopped at the end; a temp dir is deleted too.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="folder of photos (searched recursively)")
    parser.add_argument("--event-slug", default="bench-ingest",
                        help="slug of the event created for the run (default bench-ingest)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many files")
    parser.add_argument("--full", action="store_true",
                        help="run every registered processing step, not only derivatives")
    parser.add_argument("--processes", type=int, default=None,
                        help="with --full, worker processes sharing the photos (default: the "
                             "WORKER_CONCURRENCY setting, as the product's worker runs)")
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="data dir for the embedded servers (default: a new temp dir, "
                             "deleted afterwards); never point it at your real var/")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("MODELS_DIR") or ROOT / "var" / "models"),
                        help="model weights to use (default: MODELS_DIR, else var/models)")
    args = parser.parse_args(argv)

    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    files = sorted(path for path in args.directory.rglob("*")
                   if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())[:args.limit]
    if not files:
        parser.error(f"no JPEG, PNG or WebP file under {args.directory}")

    temp_root = None
    if args.var_dir is None:
        temp_root = Path(tempfile.mkdtemp(prefix="racephoto-bench-"))
        var_dir = temp_root / "var"
    else:
        var_dir = args.var_dir.resolve()
        if var_dir == (ROOT / "var").resolve():
            parser.error("--var-dir must not be the project's own var/")
    _isolate(var_dir, args.models_dir.resolve())

    try:
        return _bench(args, files, var_dir)
    finally:
        _stop_servers(var_dir)
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)


def _isolate(var_dir: Path, models_dir: Path) -> None:
    """Point settings at the throwaway data dir. Must run before django.setup()."""
    # Settings use DATABASE_URL/REDIS_URL when set: a bench must never write there.
    # MEDIA_ROOT and friends would send the files outside the throwaway dir.
    for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR"):
        os.environ.pop(key, None)
    # Model weights are read, never written: the bench uses the ones the product would
    # (MODELS_DIR, else the project's var/models), so CLIP and FaceNet run when present.
    os.environ.update(DEBUG="1", RACEPHOTO_VAR_DIR=str(var_dir), CELERY_TASK_ALWAYS_EAGER="0",
                      DJANGO_SETTINGS_MODULE="racephoto.settings",
                      MODELS_DIR=str(models_dir))
    sys.path.insert(0, str(ROOT))


def _stop_servers(var_dir: Path) -> None:
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()  # a fast shutdown would otherwise wait on nothing, but be tidy
    from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey

    EmbeddedPostgres(var_dir).stop()
    EmbeddedValkey(var_dir).stop()


def _bench(args, files: list[Path], var_dir: Path) -> int:
    import django

    django.setup()
    import datetime
    import logging

    from django.core.management import call_command

    from events.models import Event
    from photos import pipeline, services
    from photos.models import Photo

    call_command("migrate", interactive=False, verbosity=0)
    # One INFO line per photo and step would cost time and bury the figures.
    logging.getLogger("photos").setLevel(logging.WARNING)
    event = Event.objects.create(name=f"Bench {args.event_slug}", slug=args.event_slug,
                                 date=datetime.date.today())

    # ingest_file hands each new photo to enqueue_processing once its row is
    # committed, which would push a Celery message to the (throwaway) broker and
    # leave the work to a worker that is not running. The bench processes the
    # photos itself, in this process, to time that work on its own: so the hook
    # only collects the ids. Eager Celery is no substitute: it would run the
    # derivatives inside the ingest timing.
    enqueued: list[int] = []
    services.enqueue_processing = enqueued.append

    steps = [step.name for step in pipeline.STEPS]
    print(f"var dir: {var_dir}")
    print(f"registered processing steps: {', '.join(steps) or '(none)'}")
    print("timing: ingest_file, then "
          + ("process_photo (every registered step)" if args.full
             else "the derivatives step alone (run_step 'derivatives')"))

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    input_bytes = 0
    started = time.perf_counter()
    for path in files:
        with path.open("rb") as handle:
            result = services.ingest_file(event, handle,
                                          name=str(path.relative_to(args.directory)))
        counts[result.status] += 1
        input_bytes += path.stat().st_size
        if result.status == "rejected":
            print(f"  rejected {result.name}: {result.reason}")
    ingest_seconds = time.perf_counter() - started

    memory: dict = {}
    if args.full:
        from django.conf import settings

        processes = args.processes or settings.CELERY_WORKER_CONCURRENCY
        print(f"worker processes: {processes}")
        process_seconds, memory = _process_in_workers(enqueued, processes)
    else:
        started = time.perf_counter()
        for photo_id in enqueued:
            pipeline.run_step(photo_id, "derivatives")
        process_seconds = time.perf_counter() - started

    photos = Photo.objects.filter(event=event)
    states = {}
    for state in photos.values_list("state", flat=True):
        states[state] = states.get(state, 0) + 1
    sizes = [width * height for width, height in photos.values_list("width", "height")
             if width and height]
    processed = len(enqueued)
    total = ingest_seconds + process_seconds

    def rate(count, seconds):
        return f"{count / seconds:6.2f} photos/s" if seconds > 0 else "     - photos/s"

    print(f"files: {len(files)} ({input_bytes / len(files) / 1e6:.2f} MB mean)")
    print(f"accepted: {counts['accepted']}  duplicate: {counts['duplicate']}  "
          f"rejected: {counts['rejected']}")
    if sizes:
        mean = sum(sizes) / len(sizes)
        print(f"mean image size: {mean:,.0f} pixels ({mean / 1e6:.2f} megapixels)")
    print(f"photo states after: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}")
    # Ingest counts every file (a rejection is work too); the rest count the photos processed.
    print(f"ingest:              {ingest_seconds:7.2f} s  {rate(len(files), ingest_seconds)}")
    print(f"{'full pipeline:' if args.full else 'derivatives:':20} {process_seconds:7.2f} s  "
          f"{rate(processed, process_seconds)}")
    print(f"both:                {total:7.2f} s  {rate(processed, total)}")
    if args.full:
        _full_pipeline_figures(event, memory)
    return 0


def _process_in_workers(photo_ids: list[int], processes: int) -> tuple[float, dict]:
    """Seconds to run every step of every photo in ``processes`` worker processes, set
    up as the Celery worker's are: this process loads the models (``load_before_fork``)
    and forks the workers, which share the weights' pages. The clock starts once all are
    ready. Memory: each worker's peak RSS, and the peak of the whole worker's PSS (this
    process and its workers, sampled together twice a second), which counts a shared page once."""
    import multiprocessing
    import threading

    from django.db import connections

    from mlpipeline import worker

    started = time.perf_counter()
    worker.load_before_fork()
    print(f"models loaded before the fork in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{m['name']}@{m['version']} "
                      + ("loaded" if m["loaded"] else f"NOT loaded ({m['error']})")
                      for m in (model.describe() for model in worker.loaded.all_models())),
          flush=True)
    context = multiprocessing.get_context("fork")
    queue, results = context.Queue(), context.Queue()
    for photo_id in photo_ids:
        queue.put(photo_id)
    for _ in range(processes):
        queue.put(None)
    ready = context.Barrier(processes + 1)
    connections.close_all()  # each worker opens its own, never one shared across a fork
    workers = [context.Process(target=_worker, args=(queue, results, ready), daemon=True)
               for _ in range(processes)]
    for process in workers:
        process.start()
    peak, done = {"pss": 0, "processes": []}, threading.Event()

    def sample_pss():
        pids = [os.getpid()] + [process.pid for process in workers]
        while not done.wait(0.5):
            sample = [_memory_kib(pid) for pid in pids]
            if (pss := sum(process["Pss"] for process in sample)) > peak["pss"]:
                peak.update(pss=pss, processes=sample)

    sampler = threading.Thread(target=sample_pss, daemon=True)
    sampler.start()
    ready.wait()
    # Before the first photo: the models and the processes, what the worker costs idle.
    idle = [_memory_kib(pid) for pid in [os.getpid()] + [process.pid for process in workers]]
    started = time.perf_counter()
    peaks, after_each, step_cpu = zip(*(results.get() for _ in workers), strict=True)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    for process in workers:
        process.join()
    return seconds, {"rss": peaks, "pss": peak["pss"] / 1024**2, "at_peak": peak["processes"],
                     "idle": idle, "after_each": after_each,
                     "step_cpu": _summed(step_cpu)}


def _summed(per_process: tuple[dict, ...]) -> dict[str, tuple[float, int]]:
    """Each step's CPU seconds and runs, added up over the worker processes."""
    total: dict[str, tuple[float, int]] = {}
    for steps in per_process:
        for name, (seconds, runs) in steps.items():
            before = total.get(name, (0.0, 0))
            total[name] = (before[0] + seconds, before[1] + runs)
    return total


MEMORY_FIELDS = ("Pss", "Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty")


def _memory_kib(pid: int) -> dict[str, int]:
    """A process's memory from /proc/PID/smaps_rollup, KiB: its proportional set size (its
    private pages plus its share of shared ones), and its private and shared pages."""
    memory = dict.fromkeys(MEMORY_FIELDS, 0)
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                name, _, value = line.partition(":")
                if name in memory:
                    memory[name] = int(value.split()[0])
    except OSError:  # the process has just ended
        pass
    return memory


def _worker(queue, results, ready) -> None:
    import resource

    from mlpipeline import worker
    from photos import pipeline

    worker.preload()  # as worker_process_init: this thread's model threads; models are loaded
    # CPU seconds of this process per step: on a shared machine the figure to compare,
    # where wall time depends on what else runs.
    step_cpu: dict[str, tuple[float, int]] = {}
    run_step = pipeline.run_step

    def timed_step(photo_id, step_name):
        started = time.process_time()
        try:
            return run_step(photo_id, step_name)
        finally:
            seconds, runs = step_cpu.get(step_name, (0.0, 0))
            step_cpu[step_name] = (seconds + time.process_time() - started, runs + 1)

    pipeline.run_step = timed_step
    ready.wait()
    after_each = []
    while (photo_id := queue.get()) is not None:
        pipeline.process_photo(photo_id)
        worker.release_memory()  # what the worker does after each task (task_postrun)
        after_each.append(_memory_kib(os.getpid()))
    # ru_maxrss is in KiB on Linux: the whole process, the shared weights included.
    results.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, after_each,
                 step_cpu))


def _full_pipeline_figures(event, memory: dict) -> None:
    import resource

    from mlpipeline import event_linking, indexes
    from photos.models import BibTag, Face, PhotoStep

    print("per step (mean s/photo over photos that ran it: wall, and CPU of its process):")
    for name in dict.fromkeys(PhotoStep.objects.filter(photo__event=event)
                              .values_list("step", flat=True)):
        spans = [(done - begun).total_seconds() for begun, done in PhotoStep.objects.filter(
            photo__event=event, step=name, status=PhotoStep.Status.DONE)
            .values_list("started_at", "finished_at") if begun and done]
        unavailable = PhotoStep.objects.filter(photo__event=event, step=name,
                                               status=PhotoStep.Status.UNAVAILABLE).count()
        mean = sum(spans) / len(spans) if spans else 0.0
        cpu, runs = memory["step_cpu"].get(name, (0.0, 0))
        print(f"  {name:12} {mean:6.3f} s  CPU {cpu / runs if runs else 0.0:6.3f} s  "
              f"({len(spans)} done, {unavailable} model unavailable)")
    started = time.perf_counter()
    linked = event_linking.link_event(event.pk)
    link_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for kind in indexes.KINDS:
        indexes.sync(event.pk, kind)
    index_seconds = time.perf_counter() - started
    print(f"event linking: {link_seconds:.2f} s ({linked.clusters} runner clusters, "
          f"{linked.face_link_tags} face-link tags); index build {index_seconds:.2f} s")
    print(f"faces: {Face.objects.filter(event=event).count()}  bib tags: "
          f"{BibTag.objects.filter(photo__event=event).count()}")
    # This process loaded the models and forked the workers, as the Celery worker's main
    # process does. RSS counts a page shared by several processes in each of them.
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"worker memory: main process (models loaded) peak RSS {parent:.2f} GiB, worker "
          f"processes peak RSS {', '.join(f'{peak:.2f}' for peak in memory['rss'])} GiB; "
          f"whole worker's peak PSS (shared pages counted once) {memory['pss']:.2f} GiB "
          f"({memory['pss'] * 1024**3 / 1e9:.2f} GB)")
    # What makes the peak: each process's own pages (a photo's buffers, torch's and the
    # allocator's arenas; the main process's model weights until a child shares them) and
    # its share of the pages the worker processes share with the main one (the weights).
    roles = ["main process"] + [f"worker process {n}" for n in range(1, len(memory["idle"]))]
    for moment in ("idle", "at_peak"):
        processes = memory[moment]
        if moment == "idle":
            print(f"  idle, once all were ready (before the first photo): whole worker's PSS "
                  f"{sum(process['Pss'] for process in processes) / 1024**2:.2f} GiB")
        for role, process in zip(roles, processes, strict=True):
            private = (process["Private_Clean"] + process["Private_Dirty"]) / 1024**2
            shared = (process["Shared_Clean"] + process["Shared_Dirty"]) / 1024**2
            print(f"  {'idle' if moment == 'idle' else 'at the peak'}, {role}: PSS "
                  f"{process['Pss'] / 1024**2:.2f} GiB, private {private:.2f} GiB, shared with "
                  f"others {shared:.2f} GiB (counted in full)")
    # What a process keeps from one photo to the next: flat unless something accumulates.
    print("  private memory of each worker process after each of its photos (GiB):")
    for number, samples in enumerate(memory["after_each"], start=1):
        print(f"    worker process {number}: " + " ".join(
            f"{(sample['Private_Clean'] + sample['Private_Dirty']) / 1024**2:.2f}"
            for sample in samples))

if __name__ == "__main__":
    sys.exit(main())
