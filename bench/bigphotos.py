"""Camera-sized photos through every step, in one process: time per step and peak memory.

    python bench/bigphotos.py ../shared/data/rbnr-dev [--sizes 0.4 6 24 45] [--photos 3]
                              [--runners 6] [--faces 0.01 0.04] [--threads 1] [--write DIR]

For each size (megapixels, 3:2), ``--photos`` JPEGs are generated (never stored in the
repository): a crowd frame of bench/crowd.py (rbnr-dev photos placed on a noisy
background, runner faces 1-4 % of the frame's height, so a large photo holds large and
small runners; ``--runners 1 --faces 0.05 0.09`` makes the more usual frame of one
group of runners in the foreground; a photo that does not fit is drawn again, so no
frame is left empty), saved as a camera does (quality 92), in turn plain sRGB, stored turned
a quarter with EXIF orientation 6, and in Adobe RGB (1998) with its ICC profile. Each
then goes through what the product runs, with the product's functions and every model
this machine has loaded (CLIP only when its weights are in MODELS_DIR):

- validation: ``photos.validation.inspect_image`` (hash, header, decode proving the file whole);
- derivatives: ``photos.derivatives.render`` (web copy, watermarked preview, thumbnail);
- faces: MTCNN + the face embedder on the analysis copy (``mlpipeline.steps.ANALYSIS_SIZE``);
- bibs: the small faces, then ``BibReader`` reading under every face, at the original's
  resolution for small ones (as ``mlpipeline.steps.read_bibs``);
- outfit: ``OutfitReader`` under the faces, the bibs masked;
- clip: the CLIP embedding of the web copy, when the weights are here.

One ``DecodedPhoto`` serves the derivatives and the analysis steps, as in the worker.
Printed per size: wall and CPU seconds of each step (mean over the photos), the file
size, and this process's peak RSS and peak PSS (sampled every 50 ms). The machine is
shared: CPU seconds are the figure to compare; the load average is printed with them.
``--write DIR`` keeps the generated photos, e.g. for ``bench/ingest.py DIR --full``
(the whole worker, two processes, under load).
"""

import argparse
import io
import math
import os
import resource
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import crowd  # noqa: E402  (bench/crowd.py: the frames)

from photos.tests.images import adobe_rgb_profile  # noqa: E402

STEPS = ("validation", "derivatives", "faces", "bibs", "outfit", "clip")
VARIANTS = ("sRGB", "EXIF orientation 6", "Adobe RGB")
#: photos drawn for each place in a frame: a close-up scaled to its face size may not fit
FRAME_ATTEMPTS = 20


def camera_file(frame: Image.Image, variant: str) -> bytes:
    """``frame`` saved as a camera would, in one of VARIANTS (the same picture upright)."""
    buffer = io.BytesIO()
    if variant == "EXIF orientation 6":
        exif = Image.Exif()
        exif[0x0112] = 6  # shown turned 90° clockwise: the pixels are stored turned back
        frame.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=92, exif=exif)
    elif variant == "Adobe RGB":
        profile = adobe_rgb_profile()
        transform = ImageCms.buildTransform(ImageCms.createProfile("sRGB"),
                                            ImageCms.ImageCmsProfile(io.BytesIO(profile)), "RGB", "RGB")
        ImageCms.applyTransform(frame, transform).save(buffer, "JPEG", quality=92, icc_profile=profile)
    else:
        frame.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def frame_size(megapixels: float) -> tuple[int, int]:
    height = math.sqrt(megapixels * 1e6 / 1.5)
    return round(height * 1.5), round(height)


class Peak:
    """This process's peak PSS, sampled in a thread (RSS counts shared pages whole).

    Reading smaps_rollup walks the process's page tables: with 2.5 GB mapped, the kernel
    spends a few ms of CPU per sample. ``cpu`` is what this thread has spent, so the
    steps' CPU seconds leave it out (it was 25-40 % of them).
    """

    def __init__(self):
        self.pss_kib = 0
        self.cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                with open("/proc/self/smaps_rollup") as rollup:
                    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
            except (OSError, StopIteration):
                continue
            self.pss_kib = max(self.pss_kib, pss)
            self.cpu = time.thread_time()

    def reset(self):
        self.pss_kib = 0

    def stop(self):
        self._stop.set()
        self._thread.join()


class Clock:
    """``with clock(step):`` adds the block's wall and CPU seconds to the step's lists
    (the process's CPU, less what the ``peak`` sampler spent meanwhile)."""

    def __init__(self, wall: dict[str, list[float]], cpu: dict[str, list[float]], peak: Peak):
        self.wall, self.cpu, self.peak = wall, cpu, peak

    @contextmanager
    def __call__(self, step: str):
        started, cpu, sampler = time.perf_counter(), time.process_time(), self.peak.cpu
        yield
        self.wall[step].append(time.perf_counter() - started)
        self.cpu[step].append(time.process_time() - cpu - (self.peak.cpu - sampler))


class Pipeline:
    """The product's steps on one photo's bytes, models loaded once."""

    def __init__(self):
        from mlpipeline import loaded

        self.detector = loaded.face_detector().ensure_loaded()
        self.embedder = loaded.face_embedder().ensure_loaded()
        self.reader = loaded.bib_reader().ensure_loaded()
        self.outfit = loaded.outfit_reader().ensure_loaded()
        self.clip = loaded.clip_embedder()
        try:
            self.clip.ensure_loaded()
        except Exception as exc:  # ModelUnavailable: no weights in MODELS_DIR
            print(f"CLIP not loaded: {exc}")
            self.clip = None
        self.detector.small_faces(Image.new("RGB", (64, 64)), 2.0)  # YuNet loads on first use

    def run(self, data: bytes, clock) -> None:
        from mlpipeline import steps
        from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules
        from photos import derivatives, imaging, validation

        with clock("validation"):
            validation.inspect_image(io.BytesIO(data), "photo.jpg")
        with clock("derivatives"):
            decoded = imaging.DecodedPhoto(data)
            rendered = derivatives.render(decoded, "RacePhoto bench")
        with clock("faces"):
            image = decoded.image(steps.ANALYSIS_SIZE)
            scale = decoded.size[0] / image.width
            found = self.detector.photo_faces(image)
            if found:
                self.embedder.predict(image, found)
        with clock("bibs"):
            boxes = [face.box for face in found]
            small = steps.small_faces(decoded, image, boxes)
            rules = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE)
            readings = self.reader.predict(image, faces=boxes + small, keeps=rules.keeps,
                                           detail=decoded.detail, original_scale=scale)
            decoded.forget_detail()
            bibs = [bib.box for bib in rules.accept(readings)]
        with clock("outfit"):
            if boxes:
                self.outfit.predict(image, boxes, bibs)
        if self.clip is not None:
            with clock("clip"):
                web, _size = imaging.decode_upright(rendered.web, steps.CLIP_DECODE_SIZE)
                self.clip.predict(web)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="rbnr-dev (the runners placed in the frames)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.4, 6, 24, 45],
                        help="megapixels (default 0.4 6 24 45)")
    parser.add_argument("--photos", type=int, default=3, help="photos per size (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="model threads (default 1: each of the worker's 2 processes here)")
    parser.add_argument("--runners", type=int, default=6,
                        help="rbnr-dev photos placed per frame (default 6: a crowd; 1: a typical frame)")
    parser.add_argument("--faces", type=float, nargs=2, default=[0.01, 0.04], metavar=("LOW", "HIGH"),
                        help="runner face heights, share of the frame's height (default 0.01 0.04: "
                             "large and small runners; 0.05 0.09: one group in the foreground)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--write", type=Path, default=None, help="keep the generated photos here")
    args = parser.parse_args(argv)

    crowd.setup_django()
    from mlpipeline import loaded

    loaded.configure_threads(args.threads)
    sources, start_lists = crowd.load_sources(args.dataset)
    pipeline = Pipeline()
    peak = Peak()
    rng = np.random.default_rng(args.seed)
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
    print(f"{args.runners} rbnr-dev photos a frame, faces {args.faces[0]:g}-{args.faces[1]:g} of its "
          f"height; threads {args.threads}; load average at the start "
          f"{', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"{'MP':>5} {'size':>10} {'MB':>5} " + " ".join(f"{step:>17}" for step in STEPS)
          + f" {'total':>13} {'peak PSS':>9} {'load':>5}")
    print(f"{'':23}" + " ".join(f"{'wall/CPU s':>17}" for _ in STEPS) + f" {'CPU s':>13}")
    for megapixels in args.sizes:
        size = frame_size(megapixels)
        faces = (args.faces[0] * size[1], args.faces[1] * size[1])
        wall: dict[str, list[float]] = {step: [] for step in STEPS}
        cpu: dict[str, list[float]] = {step: [] for step in STEPS}
        file_sizes = []
        peak.reset()
        for index in range(args.photos):
            frame = crowd.make_frame(args.dataset, sources, start_lists, rng, size, args.runners, faces,
                                     attempts=FRAME_ATTEMPTS)
            data = camera_file(frame.image, VARIANTS[index % len(VARIANTS)])
            del frame
            file_sizes.append(len(data))
            if args.write:
                (args.write / f"big_{megapixels:g}mp_{index:02d}.jpg").write_bytes(data)

            pipeline.run(data, Clock(wall, cpu, peak))
        cells = []
        for step in STEPS:
            cells.append(f"{statistics.mean(wall[step]):7.2f}/{statistics.mean(cpu[step]):<6.2f}"
                         if wall[step] else f"{'-':>14}")
        total = sum(statistics.mean(cpu[step]) for step in STEPS if cpu[step])
        print(f"{megapixels:5g} {size[0]:>5}x{size[1]:<4} {statistics.mean(file_sizes) / 1e6:5.1f} "
              + " ".join(f"{cell:>17}" for cell in cells)
              + f" {total:13.2f} {peak.pss_kib / 1024**2:7.2f} G {os.getloadavg()[0]:5.1f}", flush=True)
    peak.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS of this process (models + one photo at a time): {rss:.2f} GiB; photo "
          f"variants in turn: {', '.join(VARIANTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
