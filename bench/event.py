"""A whole event through the real stack: photos/s per stage, queue depth, and the time
from the last file dropped to every photo searchable.

    python bench/event.py ../shared/data/rbnr-dev --photos 1000 [500 ...]
                          [--mix rbnr:0.85,6:0.1,24:0.05] [--var DIR] [--sample 5]

For each ``--photos`` size, in turn:

1. An event of that many distinct photos is generated in a temporary folder (never in
   the repository), in the mix ``--mix`` (kind:share): ``rbnr`` is an rbnr-dev photo
   (0.2-0.8 MP) lightly varied (cropped by up to 8 % a side, exposure ±10 %, JPEG
   quality 85-95) so every file is new to the event; a number is a camera frame of
   that many megapixels from bench/crowd.py (rbnr-dev photos placed on a noisy
   background, runner faces 1-4 % of the frame's height) saved as bench/bigphotos.py
   does (sRGB, EXIF orientation 6 or Adobe RGB in turn). The order is shuffled.
2. The product is started as `make run` starts it, on a var dir of its own (``--var``,
   default a new temp dir, never the project's var/): ``manage.py run --no-demo``
   (embedded PostgreSQL and Valkey, gunicorn, the Celery worker with its
   WORKER_CONCURRENCY processes and every model this machine has), then the drop-folder
   watcher ``manage.py import_photos EVENT DROP --watch`` with the product's default
   scan interval and settle time. The clock starts once /healthz shows every worker
   process with its models loaded.
3. Every file is dropped at once (``--drop-rate`` spreads them out), as an FTP server
   writes: ``name.part``, renamed when complete, into one folder per camera.
4. Every ``--sample`` seconds the bench reads the database and the product's /metrics
   (queue depth) and prints a line; a short table of the queue over time is printed
   at the end.

A photo is *searchable* when a runner can find it by every way the product has:

- it is public: state ``ready`` with its preview and thumbnail (``search.gallery.public_photos``);
- its faces have joined a runner cluster (event linking has run since they were
  stored), so bib search reaches it through the runner's other photos and its face-link
  tags are written (linking writes both in one transaction);
- the event's face and CLIP indexes hold every searchable face and CLIP vector
  (``mlpipeline.indexes.check``: always true with SEARCH_BACKEND=pgvector).

The first two are counted per photo (column ``linked``), the third for the event
(``idx-`` = vectors missing from the indexes). *Every photo searchable* is the first
sample where ``linked`` equals the photos accepted, no vector is missing, and every
dropped file has been taken. Per stage: the photos through it, when the last one
came through (seconds after the first drop), photos/s since the first drop, and the
mean seconds a worker process spent on the step. CPU seconds are counted from /proc
for each part of the stack (the worker with its processes, the importer, gunicorn,
PostgreSQL, Valkey) from the first drop until every photo is searchable; divided by
the photos, they are what to compare between sizes on a shared machine (wall time
depends on what else runs). With several sizes a last table compares them.
"""

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bigphotos  # noqa: E402  (camera files: sRGB, EXIF orientation, Adobe RGB)
import crowd  # noqa: E402  (camera-sized frames of rbnr-dev runners)
import ingest  # noqa: E402  (a throwaway var dir's environment, PSS of a process)

DEFAULT_MIX = "rbnr:0.85,6:0.1,24:0.05"
#: cameras (one drop sub-folder each) the photos are shared between, as photographers' cards
CAMERAS = 4
#: how long the stack may take to start (initdb, migrations, models loaded in the worker)
START_TIMEOUT = 600
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAGES = ("ingested", "derivatives", "faces", "ocr", "outfit", "clip", "ready")


# --- The event's photos -------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """``rbnr:0.85,6:0.1,24:0.05`` -> {"rbnr": 0.85, "6": 0.1, "24": 0.05}, shares summing to 1."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        kind, _, share = part.strip().partition(":")
        try:
            value = float(share)
            if kind != "rbnr" and float(kind) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r}: each part is KIND:SHARE, KIND being rbnr or megapixels (6, 24...)"
            ) from None
        if value <= 0 or kind in mix:
            raise argparse.ArgumentTypeError(f"{part!r}: a share above 0, once per kind")
        mix[kind] = value
    total = sum(mix.values())
    return {kind: share / total for kind, share in mix.items()}


def describe_mix(mix: dict[str, float]) -> str:
    return ", ".join(f"{share:.0%} " + ("rbnr-dev photos" if kind == "rbnr" else f"{kind} MP frames")
                     for kind, share in mix.items())


def kinds_for(mix: dict[str, float], count: int, rng: random.Random) -> list[str]:
    """``count`` kinds in the mix's proportions (largest remainders), shuffled."""
    exact = {kind: share * count for kind, share in mix.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    short = count - sum(counts.values())
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[:short]:
        counts[kind] += 1
    kinds = [kind for kind, number in counts.items() for _ in range(number)]
    rng.shuffle(kinds)
    return kinds


class Generator:
    """Distinct camera files of each kind, from the rbnr-dev photos."""

    def __init__(self, dataset: Path, seed: int, needs_frames: bool):
        self.dataset = dataset
        self.images = sorted(path for path in (dataset / "images").iterdir()
                             if path.suffix.lower() in ingest.IMAGE_SUFFIXES)
        if not self.images:
            raise SystemExit(f"no photo under {dataset / 'images'}")
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.sources, self.start_lists = crowd.load_sources(dataset) if needs_frames else ([], {})
        self.hashes: set[str] = set()
        self.frames = 0

    def photo(self, kind: str) -> bytes:
        while True:  # a repeat would be refused as a duplicate: draw again
            data = self._rbnr() if kind == "rbnr" else self._frame(float(kind))
            digest = hashlib.sha256(data).hexdigest()
            if digest not in self.hashes:
                self.hashes.add(digest)
                return data

    def _rbnr(self) -> bytes:
        with Image.open(self.rng.choice(self.images)) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        box = (round(width * self.rng.uniform(0, 0.08)), round(height * self.rng.uniform(0, 0.08)),
               round(width * (1 - self.rng.uniform(0, 0.08))),
               round(height * (1 - self.rng.uniform(0, 0.08))))
        image = ImageEnhance.Brightness(image.crop(box)).enhance(self.rng.uniform(0.9, 1.1))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=self.rng.randint(85, 95))
        return buffer.getvalue()

    def _frame(self, megapixels: float) -> bytes:
        size = bigphotos.frame_size(megapixels)
        faces = (0.01 * size[1], 0.04 * size[1])  # as bench/bigphotos.py: large and small runners
        frame = crowd.make_frame(self.dataset, self.sources, self.start_lists, self.np_rng,
                                 size, 6, faces)
        variant = bigphotos.VARIANTS[self.frames % len(bigphotos.VARIANTS)]
        self.frames += 1
        return bigphotos.camera_file(frame.image, variant)


def generate(generator: Generator, kinds: list[str], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    files = []
    for index, kind in enumerate(kinds):
        path = folder / f"cam{index % CAMERAS + 1}" / f"IMG_{index:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(generator.photo(kind))
        files.append(path)
    return files


# --- Processes and their CPU --------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its children it has waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
    return int(fields[1]), sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """``root`` and every live process below it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[0]
    tree, added = {root}, True
    while added:
        below = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= below
        added = bool(below)
    return sorted(pid for pid in tree if pid in parents)


def tree_cpu(root: int | None) -> float:
    """CPU seconds of a process tree: every live process, and the ended ones they reaped."""
    if root is None:
        return 0.0
    return sum(stat[1] for pid in process_tree(root) if (stat := _stat(pid)) is not None)


def tree_pss_gib(root: int | None) -> float:
    return sum(ingest._memory_kib(pid)["Pss"] for pid in process_tree(root)) / 1024**2 if root else 0.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The stack ----------------------------------------------------------------------------


class Stack:
    """``manage.py run`` on its own var dir, and the drop-folder watcher."""

    def __init__(self, var_dir: Path, models_dir: Path, web_workers: int, log_dir: Path):
        self.var_dir, self.log_dir = var_dir, log_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(16)
        self.web_workers = web_workers
        ingest._isolate(var_dir, models_dir)  # DATABASE_URL & co. dropped, this var dir used
        # LOCALSTRIPE_PORT: another checkout's `make run` may hold the default one.
        os.environ.update(HEALTH_TOKEN=self.token, METRICS_TOKEN=self.token,
                          LOCALSTRIPE_PORT=str(free_port()), PYTHONUNBUFFERED="1")
        os.environ.pop("EMBEDDED_VALKEY_DB", None)
        self.run: subprocess.Popen | None = None
        self.importer: subprocess.Popen | None = None

    def start(self) -> dict:
        self.run = self._spawn(["manage.py", "run", "--no-demo", "--host", "127.0.0.1",
                                "--port", str(self.port), "--web-workers", str(self.web_workers)],
                               "run.log")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.run.poll() is not None:
                raise SystemExit(f"manage.py run exited ({self.run.returncode}); see "
                                 f"{self.log_dir / 'run.log'}")
            health = self.get_json("/healthz")
            checks = (health or {}).get("checks", {})
            processes = [report for report in checks.get("models", {}).get("workers", [])
                         if "models" in report]
            if checks.get("workers", {}).get("ok") and len(processes) >= self.concurrency():
                return {"processes": processes, "status": health["status"]}
            time.sleep(1)
        raise SystemExit(f"the stack was not ready after {START_TIMEOUT} s; see {self.log_dir}")

    def watch(self, slug: str, drop: Path) -> None:
        self.importer = self._spawn(["manage.py", "import_photos", slug, str(drop), "--watch"],
                                    "import_photos.log")

    def concurrency(self) -> int:
        return int(os.environ.get("WORKER_CONCURRENCY") or 2)

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        with (self.log_dir / log).open("ab") as output:
            return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=os.environ.copy(),
                                    stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def get(self, path: str) -> bytes | None:
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            return error.read()  # /healthz answers its report with 503 while degraded
        except (urllib.error.URLError, OSError):
            return None

    def get_json(self, path: str):
        body = self.get(path)
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def queue_depth(self) -> int | None:
        """Tasks waiting, from the product's /metrics."""
        for line in (self.get("/metrics") or b"").decode().splitlines():
            if line.startswith("racephoto_queue_depth{"):
                return int(float(line.rsplit(" ", 1)[1]))
        return None

    def children(self) -> dict[str, int | None]:
        """The worker's and gunicorn's main pids, from what `run` records of its children."""
        try:
            pids = json.loads((self.var_dir / "run" / "stack.json").read_text())["children"]
        except (OSError, ValueError, KeyError):
            pids = []
        found = {"worker": None, "web": None}
        for pid in pids:
            command = _cmdline(pid)
            if "celery" in command:
                found["worker"] = pid
            elif "gunicorn" in command:
                found["web"] = pid
        return found

    def cpu(self) -> dict[str, float]:
        from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey

        children = self.children()
        return {"worker": tree_cpu(children["worker"]), "web": tree_cpu(children["web"]),
                "importer": tree_cpu(self.importer.pid if self.importer else None),
                "postgres": tree_cpu(EmbeddedPostgres(self.var_dir).postmaster_pid()),
                "valkey": tree_cpu(EmbeddedValkey(self.var_dir)._pid())}

    def stop(self) -> None:
        for process in (self.importer, self.run):  # the importer first: it uses the database
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)  # `run` stops its children, then the servers
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey

        # `run` stops the servers itself: this only catches a run that could not.
        if EmbeddedPostgres(self.var_dir).is_running() or EmbeddedValkey(self.var_dir).is_running():
            ingest._stop_servers(self.var_dir)


# --- One event ----------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    at: float  # seconds after the first drop
    dropped: int
    taken: int
    steps: dict[str, int]
    ready: int
    failed: int
    linked: int
    index_missing: int
    queue: int | None
    worker_cpu: float
    worker_pss: float
    load: float


@dataclasses.dataclass
class Outcome:
    photos: int
    wall: float | None  # first drop -> every photo searchable
    after_last_drop: float | None
    drop_seconds: float
    cpu: dict[str, float]
    stages: dict[str, tuple[int, float | None, float | None]] = dataclasses.field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    peak_pss: float = 0.0


class Progress:
    """What the database says of the event's photos, read as the product's pages read it."""

    def __init__(self, event):
        self.event = event

    def sample(self) -> dict:
        from django.db.models import Count, Q

        from mlpipeline import indexes
        from photos.models import DropFolderFile, Face, Photo, PhotoStep
        from search.gallery import public_photos

        passed = [PhotoStep.Status.DONE, PhotoStep.Status.UNAVAILABLE]
        steps = dict(PhotoStep.objects.filter(photo__event=self.event, status__in=passed)
                     .values_list("step").annotate(count=Count("pk")))
        states = dict(Photo.objects.filter(event=self.event).values_list("state")
                      .annotate(count=Count("pk")))
        model = self._face_model()
        waiting = set(Face.objects.filter(event=self.event, model=model, embedding__isnull=False,
                                          cluster__isnull=True).values_list("photo_id", flat=True))
        public = set(public_photos(self.event).values_list("pk", flat=True))
        missing = sum(problem.missing for problem in indexes.check(self.event.pk, vectors=False))
        return {"taken": DropFolderFile.objects.filter(event=self.event).count(),
                "accepted": Photo.objects.filter(event=self.event).count(),
                "rejected": DropFolderFile.objects.filter(event=self.event)
                .filter(~Q(status="accepted")).count(),
                "steps": steps, "ready": states.get(Photo.State.READY, 0),
                "failed": states.get(Photo.State.FAILED, 0), "linked": len(public - waiting),
                "index_missing": missing}

    def _face_model(self):
        from django.db.models import Count

        from photos.models import Face

        # As event linking: only the event's main face model is clustered.
        return (Face.objects.filter(event=self.event).order_by().values("model")
                .annotate(count=Count("pk")).order_by("-count").values_list("model", flat=True)
                .first())

    def stages(self, first_drop: float) -> dict[str, tuple[int, float | None, float | None]]:
        """Per stage: photos through it, seconds after the first drop when the last came
        through, and the mean seconds of the step in a worker process."""
        from django.db.models import Max

        from photos.models import DropFolderFile, Photo, PhotoStep

        def since(moment):
            return moment.timestamp() - first_drop if moment else None

        taken = DropFolderFile.objects.filter(event=self.event).aggregate(last=Max("imported_at"))
        result = {"ingested": (DropFolderFile.objects.filter(event=self.event).count(),
                               since(taken["last"]), None)}
        passed = [PhotoStep.Status.DONE, PhotoStep.Status.UNAVAILABLE]
        rows = PhotoStep.objects.filter(photo__event=self.event, status__in=passed)
        for step in STAGES[1:-1]:
            spans = [(done - begun).total_seconds() for begun, done in
                     rows.filter(step=step).values_list("started_at", "finished_at") if begun and done]
            last = rows.filter(step=step).aggregate(last=Max("finished_at"))["last"]
            result[step] = (len(spans), since(last), sum(spans) / len(spans) if spans else None)
        ready = Photo.objects.filter(event=self.event, state=Photo.State.READY)
        last = rows.filter(photo__in=ready).aggregate(last=Max("finished_at"))["last"]
        result["ready"] = (ready.count(), since(last), None)
        return result


def run_event(args, count: int, mix: dict[str, float], work: Path) -> Outcome:
    kinds = kinds_for(mix, count, random.Random(args.seed))
    generator = Generator(args.dataset, args.seed, needs_frames=any(k != "rbnr" for k in kinds))
    started = time.monotonic()
    files = generate(generator, kinds, work / "photos")
    size = sum(path.stat().st_size for path in files)
    print(f"\n=== {count} photos: {describe_mix(mix)}; generated in {time.monotonic() - started:.0f} s, "
          f"{size / 1e6:.0f} MB ({size / count / 1e6:.2f} MB mean)", flush=True)

    var_dir = args.var.resolve() if args.var else work / "var"
    if var_dir == (ROOT / "var").resolve():
        raise SystemExit("--var must not be the project's own var/")
    (work / "logs").mkdir(exist_ok=True)
    stack = Stack(var_dir, args.models_dir.resolve(), args.web_workers, work / "logs")
    started = time.monotonic()
    try:
        ready = stack.start()
        print(f"stack up in {time.monotonic() - started:.0f} s on {stack.base} (var dir {var_dir}; "
              f"health {ready['status']}); worker processes: {len(ready['processes'])}, models: "
              + ", ".join(f"{m['name']}" + ("" if m["loaded"] else " (not loaded)")
                          for m in ready["processes"][0]["models"]), flush=True)
        return _measure(args, stack, files, work)
    finally:
        stack.stop()


def _measure(args, stack: Stack, files: list[Path], work: Path) -> Outcome:
    import django

    django.setup()  # the servers `run` started, on the same var dir
    from events.models import Event

    event = Event.objects.create(name="Bench event", slug="bench-event", date=datetime.date.today(),
                                 is_published=True, face_search=Event.FaceSearch.ON)
    progress = Progress(event)
    drop = work / "drop"
    drop.mkdir()
    stack.watch(event.slug, drop)
    time.sleep(2)  # the watcher's first (empty) scan; it would otherwise see half the drop

    cpu_before = stack.cpu()
    first_drop = time.time()
    clock = time.monotonic()
    samples: list[Sample] = []
    loads: list[float] = []
    dropped, last_drop, next_sample = 0, None, 0.0
    print(f"{'t s':>6} {'dropped':>7} {'taken':>6} " + " ".join(f"{s[:7]:>7}" for s in STAGES[1:])
          + f" {'linked':>6} {'idx-':>5} {'queue':>5} {'wCPU s':>7} {'wPSS G':>6} {'load':>5}",
          flush=True)
    deadline = None
    while True:
        now = time.monotonic() - clock
        while dropped < len(files) and (args.drop_rate <= 0 or dropped < now * args.drop_rate):
            source = files[dropped]
            target = drop / source.parent.name / source.name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target.with_suffix(".part"))  # as an FTP upload writes
            target.with_suffix(".part").rename(target)
            dropped += 1
            if dropped == len(files):
                last_drop = time.monotonic() - clock
                deadline = time.monotonic() + args.timeout
        if time.monotonic() - clock < next_sample:
            time.sleep(0.2)
            continue
        next_sample += args.sample
        figures = progress.sample()
        children = stack.children()
        loads.append(os.getloadavg()[0])
        sample = Sample(time.monotonic() - clock, dropped, figures["taken"], figures["steps"],
                        figures["ready"], figures["failed"], figures["linked"],
                        figures["index_missing"], stack.queue_depth(),
                        tree_cpu(children["worker"]) - cpu_before["worker"],
                        tree_pss_gib(children["worker"]), loads[-1])
        samples.append(sample)
        print(_row(sample), flush=True)
        taken_all = dropped == len(files) and figures["taken"] >= len(files)
        settled = figures["ready"] + figures["failed"] >= figures["accepted"]
        if taken_all and settled and figures["linked"] >= figures["ready"] \
                and figures["index_missing"] == 0 and figures["accepted"] > 0:
            break
        if deadline is not None and time.monotonic() > deadline:
            print(f"TIMEOUT: not every photo searchable {args.timeout:.0f} s after the last drop")
            break
        if stack.run.poll() is not None or stack.importer.poll() is not None:
            print("the stack stopped before every photo was searchable; logs in " + str(work / "logs"))
            break

    searchable = sample.linked == figures["accepted"] and sample.index_missing == 0 and taken_all
    wall = sample.at if searchable else None
    cpu_after = stack.cpu()
    outcome = Outcome(
        photos=figures["accepted"], wall=wall,
        after_last_drop=(wall - last_drop) if wall is not None and last_drop is not None else None,
        drop_seconds=last_drop or 0.0,
        cpu={part: cpu_after[part] - cpu_before[part] for part in cpu_after},
        stages=progress.stages(first_drop),
        load=(min(loads), max(loads)), peak_pss=max(s.worker_pss for s in samples))
    _report(outcome, samples, figures, args.sample)
    _web_check(stack, event)
    return outcome


def _row(sample: Sample) -> str:
    return (f"{sample.at:6.0f} {sample.dropped:7} {sample.taken:6} "
            + " ".join(f"{sample.steps.get(step, 0) if step != 'ready' else sample.ready:7}"
                       for step in STAGES[1:])
            + f" {sample.linked:6} {sample.index_missing:5} "
            + f"{'-' if sample.queue is None else sample.queue:>5} {sample.worker_cpu:7.0f} "
            + f"{sample.worker_pss:6.2f} {sample.load:5.1f}")


def _report(outcome: Outcome, samples: list[Sample], figures: dict, every: float) -> None:
    print(f"\nqueue over time (of {len(samples)} samples, one every {every:g} s):")
    print(f"{'t s':>6} {'queue':>5} {'taken':>6} {'ready':>6} {'linked':>6}")
    step = max(1, len(samples) // 15)
    for sample in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"{sample.at:6.0f} {'-' if sample.queue is None else sample.queue:>5} "
              f"{sample.taken:6} {sample.ready:6} {sample.linked:6}")
    print(f"photos accepted {figures['accepted']}, files refused or duplicate {figures['rejected']}, "
          f"failed {figures['failed']}")
    print(f"{'stage':12} {'photos':>6} {'last at s':>9} {'photos/s':>8} {'s/photo in step':>16}")
    for stage, (done, last, mean) in outcome.stages.items():
        rate = f"{done / last:8.2f}" if last else f"{'-':>8}"
        print(f"{stage:12} {done:6} {'-' if last is None else f'{last:9.0f}':>9} {rate} "
              f"{'-' if mean is None else f'{mean:16.2f}':>16}")
    if outcome.wall is None:
        print("every photo searchable: NOT reached")
    else:
        print(f"{'searchable':12} {outcome.photos:6} {outcome.wall:9.0f} "
              f"{outcome.photos / outcome.wall:8.2f}")
        print(f"every photo searchable {outcome.wall:.0f} s after the first drop, "
              f"{outcome.after_last_drop:.0f} s after the last (all dropped in {outcome.drop_seconds:.1f} s)")
    per = max(outcome.photos, 1)
    print("CPU s from the first drop: " + ", ".join(
        f"{part} {seconds:.0f} ({seconds / per:.2f}/photo)" for part, seconds in outcome.cpu.items()))
    print(f"worker peak PSS {outcome.peak_pss:.2f} GiB; load average (1 min) during the run "
          f"{outcome.load[0]:.1f}-{outcome.load[1]:.1f} on {os.cpu_count()} cores", flush=True)


def _web_check(stack: Stack, event) -> None:
    """A bib search through the web server, as a runner's app asks it (the public API)."""
    from django.db.models import Count

    from photos.tags import shown_tags

    top = (shown_tags(event.pk).values("bib").annotate(count=Count("photo", distinct=True))
           .order_by("-count", "bib").first())
    if top is None:
        print("web check: no bib shown to runners in this event")
        return
    answer = stack.get_json(f"/api/v1/events/{event.slug}/search/?bib={top['bib']}") or {}
    print(f"web check: bib {top['bib']} is tagged on {top['count']} photos; the web server's "
          f"search answers {answer.get('total', 'nothing')} (with its runner's other photos)")


# --- Sizes --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="rbnr-dev (images/, and for camera frames "
                                                   "boxes.csv, labels.csv, meta.csv)")
    parser.add_argument("--photos", type=int, nargs="+", default=[1000],
                        help="event sizes, each run on a fresh stack (default 1000)")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX),
                        help=f"kind:share of the photos, rbnr or megapixels (default {DEFAULT_MIX})")
    parser.add_argument("--var", type=Path, default=None,
                        help="var dir of the stack (default: a new temp dir per size, deleted "
                             "afterwards); never the project's own var/")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the photos, drop folder and logs go (default: a temp dir, deleted)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("MODELS_DIR") or ROOT / "var" / "models"),
                        help="model weights (default: MODELS_DIR, else var/models)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--drop-rate", type=float, default=0,
                        help="files dropped per second (default 0: all at once)")
    parser.add_argument("--timeout", type=float, default=7200,
                        help="seconds after the last drop before giving up (default 7200)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--summary-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (args.dataset / "images").is_dir():
        parser.error(f"{args.dataset / 'images'} is not a directory")
    if any(count < 1 for count in args.photos):
        parser.error("--photos: at least 1")
    if args.var and len(args.photos) > 1:
        parser.error("--var holds one event's database: give one --photos size with it")
    if args.sample <= 0:
        parser.error("--sample must be above 0")
    if not args.summary_json:  # else the process running every size has said it
        print(f"mix: {describe_mix(args.mix)}; load average at the start "
              f"{', '.join(f'{load:.1f}' for load in os.getloadavg())} on {os.cpu_count()} cores")

    if len(args.photos) > 1:
        return _sizes(args, list(sys.argv[1:] if argv is None else argv))
    base = args.work_dir.resolve() if args.work_dir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"racephoto-event-{args.photos[0]}-", dir=base))
    try:
        outcome = run_event(args, args.photos[0], args.mix, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.summary_json:
        print("SUMMARY " + json.dumps(dataclasses.asdict(outcome)), flush=True)
    return 0 if outcome.wall is not None else 1


def _sizes(args, argv: list[str]) -> int:
    """Each size in a process of its own (Django's settings name one database and var
    dir), its lines passed through as they come, then the comparison of all of them."""
    outcomes = []
    for count in args.photos:
        child = subprocess.Popen([sys.executable, __file__, *_without_photos(argv),
                                  "--photos", str(count), "--summary-json"],
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for line in child.stdout:
            if line.startswith("SUMMARY "):
                outcomes.append(Outcome(**json.loads(line[len("SUMMARY "):])))
            else:
                print(line, end="", flush=True)
        if child.wait() != 0 and (not outcomes or outcomes[-1].photos != count):
            print(f"the {count}-photo run gave no figures (exit {child.returncode})")
    _compare(outcomes)
    return 0 if len(outcomes) == len(args.photos) and all(o.wall is not None for o in outcomes) else 1


def _without_photos(argv: list[str]) -> list[str]:
    kept, skipping = [], False
    for item in argv:
        if item == "--photos" or item.startswith("--photos="):
            skipping = item == "--photos"
            continue
        if skipping and item.lstrip("-").isdigit() and not item.startswith("-"):
            continue
        skipping = False
        kept.append(item)
    return kept


def _compare(outcomes: list[Outcome]) -> None:
    print("\nhow the cost grows (CPU s per photo: what a shared machine does not change much):")
    print(f"{'photos':>6} {'wall s':>7} {'photos/s':>8} {'after last drop s':>17} "
          f"{'worker CPU s/photo':>18} {'all CPU s/photo':>15} {'load':>9}")
    base = None
    for outcome in outcomes:
        per = outcome.cpu["worker"] / outcome.photos
        total = sum(outcome.cpu.values()) / outcome.photos
        base = base or per
        wall = f"{outcome.wall:7.0f}" if outcome.wall else f"{'-':>7}"
        rate = f"{outcome.photos / outcome.wall:8.2f}" if outcome.wall else f"{'-':>8}"
        after = f"{outcome.after_last_drop:17.0f}" if outcome.after_last_drop is not None else f"{'-':>17}"
        print(f"{outcome.photos:6} {wall} {rate} {after} {per:12.2f} (x{per / base:.2f}) "
              f"{total:15.2f} {outcome.load[0]:4.1f}-{outcome.load[1]:<4.1f}")


if __name__ == "__main__":
    sys.exit(main())
