"""Bib recall on crowd shots: small runners on large photos, by runner size.

    python bench/crowd.py ../shared/data/rbnr-dev [--frames 24] [--size 6000x4000]
                          [--runners 6] [--faces 22-120] [--seed 16] [--save DIR] [--explain]

The dev set is generated, never stored: each frame is a large photo (``--size``, a
24 MP camera frame by default) of a neutral, noisy background on which ``--runners``
rbnr-dev photos are placed side by side, each scaled so that its labelled runner's
face is ``--faces`` pixels high (log-uniform, drawn per placed photo), so the same
frame holds runners in front and far away. The labels come along (``labels.csv`` for
the bibs, ``boxes.csv`` for each labelled runner's face box), scaled into the frame.
The same seed always gives the same frames.

Each frame goes through what the product does to a photo (``analyse``: decode at the
analysis size, faces, bibs with the rbnr set's start list as the event's, the event's
rules), and a labelled bib counts as found when a tag of that bib lies in its placed
photo. Recall is printed by face height in the frame (pixels of the full-size photo),
with and without a start list, with the reader's time per frame.

"Legible" puts a number on "small runners whose bib is perfectly readable at full
resolution": a labelled bib the same reader finds when its rbnr-dev photo is read on
its own at the size it is placed at (faces found and bibs read on that photo alone).
Recall on legible bibs is what the crowd loses against reading each runner in its own
photo, the failure this bench is about; recall on all bibs is shown beside it.

``--explain`` says, for each labelled runner missed with the start list, where the chain
broke: no face found (neither MTCNN nor YuNet), the bib outside the torso region under
the face found, the torso left off every look's canvas (the pixel budget), no CRAFT box
on the bib, or a box read as something else (what the recogniser read is printed), and
whether the same bib is read from its rbnr-dev photo at that photo's own size (as
bench/bibs.py reads it): a bib missed there too is the reader's ceiling, not the crowd's.
The causes are then counted by face height.
"""

import argparse
import csv
import io
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: face height bins (pixels in the full-size frame) recall is reported by
BINS = (0, 24, 32, 48, 64, 96, 10_000)
TARGET_RECALL = 0.95
#: gap between placed photos, so two never touch
MARGIN = 24


@dataclass(frozen=True)
class Runner:
    bib: str
    face: tuple[float, float, float, float]  # in the source photo
    bib_box: tuple[float, float, float, float]  # in the source photo


@dataclass
class Source:
    name: str
    set: str
    runners: list[Runner]

    @property
    def face_height(self) -> float:
        return statistics.median(face[3] - face[1] for face in (r.face for r in self.runners))


@dataclass(frozen=True)
class Placed:
    """One labelled runner in a frame: face box in frame pixels, and where its photo is."""
    bib: str
    face: tuple[float, float, float, float]
    tile: tuple[int, int, int, int]
    source: str
    scale: float
    bib_box: tuple[float, float, float, float]

    @property
    def face_height(self) -> float:
        return self.face[3] - self.face[1]


@dataclass
class Frame:
    image: Image.Image
    runners: list[Placed] = field(default_factory=list)
    start_list: set[str] = field(default_factory=set)


def load_sources(dataset: Path) -> tuple[list[Source], dict[str, set[str]]]:
    """rbnr-dev photos with their labelled runners (boxes.csv), and each set's bibs."""
    sets = {row["image"]: row["set"] for row in _rows(dataset / "meta.csv")}
    runners = defaultdict(list)
    for row in _rows(dataset / "boxes.csv"):
        face = tuple(float(row[f"face_{key}"]) for key in ("x1", "y1", "x2", "y2"))
        bib_box = tuple(float(row[f"bib_{key}"]) for key in ("x1", "y1", "x2", "y2"))
        runners[row["image"]].append(Runner(row["bib"], face, bib_box))
    start_lists: dict[str, set[str]] = defaultdict(set)
    for row in _rows(dataset / "labels.csv"):
        start_lists[sets[row["image"]]].update(row["bibs"].split())
    sources = [Source(name, sets[name], found) for name, found in sorted(runners.items())]
    return sources, start_lists


def background(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A neutral scene with camera-like noise (a noise-free frame would make files
    unrealistically small and JPEG decoding unrealistically fast)."""
    width, height = size
    small = rng.integers(70, 170, (max(2, height // 400), max(2, width // 400), 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC), dtype=np.int16)
    noise = rng.normal(0, 7, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(scene + noise, 0, 255).astype(np.uint8))


def make_frame(dataset: Path, sources: list[Source], start_lists: dict[str, set[str]],
               rng: np.random.Generator, size: tuple[int, int], count: int,
               faces: tuple[float, float], attempts: int = 1) -> Frame:
    """One frame with ``count`` rbnr-dev photos placed where they fit, none overlapping.

    A photo drawn that does not fit (scaled to its face size, a close-up is larger than
    the frame) is left out; with ``attempts`` > 1 up to that many photos are drawn for
    each place, so a frame of one group is not left empty. The default, one draw a
    place, keeps the seeded frames of bench/crowd.py's dev set as they were measured.
    """
    frame = Frame(background(size, rng))
    taken: list[tuple[int, int, int, int]] = []
    low, high = math.log(faces[0]), math.log(faces[1])
    for _ in range(count):
        for _attempt in range(attempts):
            placed = _draw(dataset, sources, rng, size, taken, low, high)
            if placed is not None:
                break
        else:
            continue
        source, photo, scale, (left, top), placed_size = placed
        tile = (left, top, left + placed_size[0], top + placed_size[1])
        taken.append(tile)
        frame.image.paste(photo.resize(placed_size, Image.LANCZOS), (left, top))
        frame.start_list |= start_lists[source.set]
        for runner in source.runners:
            frame.runners.append(Placed(runner.bib, _placed(runner.face, left, top, scale), tile,
                                        source.name, scale, _placed(runner.bib_box, left, top, scale)))
    return frame


def _draw(dataset: Path, sources: list[Source], rng: np.random.Generator, size, taken, low, high):
    """A photo drawn, its scale and a free spot for it; None when it does not fit."""
    source = sources[int(rng.integers(len(sources)))]
    with Image.open(dataset / "images" / source.name) as opened:
        photo = opened.convert("RGB")
    scale = math.exp(rng.uniform(low, high)) / source.face_height
    placed_size = (max(8, round(photo.width * scale)), max(8, round(photo.height * scale)))
    if placed_size[0] > size[0] - 2 * MARGIN or placed_size[1] > size[1] - 2 * MARGIN:
        return None
    spot = _free_spot(rng, size, placed_size, taken)
    if spot is None:
        return None
    return source, photo, scale, spot, placed_size


def _placed(box, left: int, top: int, scale: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return left + x1 * scale, top + y1 * scale, left + x2 * scale, top + y2 * scale


def _free_spot(rng, size, placed_size, taken, tries: int = 200):
    for _ in range(tries):
        left = int(rng.integers(MARGIN, size[0] - placed_size[0] - MARGIN + 1))
        top = int(rng.integers(MARGIN, size[1] - placed_size[1] - MARGIN + 1))
        box = (left, top, left + placed_size[0], top + placed_size[1])
        if all(box[2] + MARGIN <= other[0] or other[2] + MARGIN <= box[0]
               or box[3] + MARGIN <= other[1] or other[3] + MARGIN <= box[1] for other in taken):
            return left, top
    return None


def jpeg_bytes(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


class Product:
    """What the product's faces and bibs steps do to a photo's bytes, models loaded once."""

    def __init__(self):
        from mlpipeline.inference.bib_ocr import BibReader
        from mlpipeline.inference.mtcnn import FaceDetector

        self.detector = FaceDetector().ensure_loaded()
        self.reader = BibReader().ensure_loaded()

    def analyse(self, data: bytes, rules, trace: "ReaderTrace | None" = None) -> tuple[list, list, float]:
        """(accepted bibs in photo pixels, face boxes in photo pixels, (wall, CPU) seconds).
        ``trace`` is given the faces found by each detector, in photo pixels."""
        from mlpipeline import steps
        from photos import imaging

        started, cpu = time.perf_counter(), time.process_time()
        # As the faces and bibs steps do (mlpipeline/steps.py): one decode at analysis
        # size, the stored faces, the small ones, torsos read at the original's resolution.
        decoded = imaging.DecodedPhoto(data)
        image = decoded.image(steps.ANALYSIS_SIZE)
        scale = decoded.size[0] / image.width
        faces = [face.box for face in self.detector.photo_faces(image)]
        small = steps.small_faces(decoded, image, faces)
        readings = self.reader.predict(image, faces=faces + small, keeps=rules.keeps,
                                       detail=decoded.detail, original_scale=scale)
        decoded.forget_detail()
        if trace is not None:
            trace.faces = {"MTCNN": [tuple(v * scale for v in box) for box in faces],
                           "YuNet": [tuple(v * scale for v in box) for box in small]}
        faces += small
        accepted = rules.accept(readings)
        spent = (time.perf_counter() - started, time.process_time() - cpu)
        return ([(bib.text, tuple(v * scale for v in bib.box)) for bib in accepted],
                [tuple(v * scale for v in box) for box in faces], spent)


def legible(product: Product, dataset: Path, placed: list[Placed], start_list) -> set:
    """(source, bib, scale) of the runners the reader finds in their own photo, read alone
    at the size they are placed at: the bibs a full-resolution look can read."""
    from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules

    rules = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE, start_list=frozenset(start_list))
    found = set()
    for source, scale in {(runner.source, runner.scale) for runner in placed}:
        with Image.open(dataset / "images" / source) as opened:
            photo = opened.convert("RGB")
        photo = photo.resize((max(8, round(photo.width * scale)), max(8, round(photo.height * scale))),
                             Image.LANCZOS)
        faces = [face.box for face in product.detector.photo_faces(photo)]
        readings = product.reader.predict(photo, faces=faces, keeps=rules.keeps)
        found |= {(source, bib.text, scale) for bib in rules.accept(readings)}
    return found


class ReaderTrace:
    """What the bib reader did with one frame, in frame pixels: the torso regions each look
    laid on its canvas, the text boxes CRAFT found and what the recogniser read in them.
    Installed around the reader's own functions while the frame is read (``with``)."""

    def __init__(self, reader, frame_width: int):
        self.reader, self.frame_width = reader, frame_width
        self.faces: dict[str, list] = {}
        self.looks: list[tuple[int, list]] = []  # (face height, torso regions)
        self.boxes: list[tuple[float, float, float, float]] = []
        self.readings: list[tuple[tuple[float, float, float, float], tuple]] = []

    def _to_frame(self, shape) -> float:
        return self.frame_width / shape[1]

    def __enter__(self):
        from mlpipeline.inference import bib_ocr

        self._module, self._tiles, self._read = bib_ocr, bib_ocr._torso_tiles, self.reader._read

        def torso_tiles(rgb, faces, face_height, budget, **options):
            tiles = self._tiles(rgb, faces, face_height, budget, **options)
            factor = self._to_frame(rgb.shape)
            self.looks.append((face_height, [
                tuple(value * factor for value in (tile.x0, tile.y0, tile.x0 + tile.width / tile.scale,
                                                   tile.y0 + tile.height / tile.scale))
                for tile, _crop in tiles]))
            return tiles

        def read(rgb, boxes):
            readings = self._read(rgb, boxes)
            factor = self._to_frame(rgb.shape)
            self.boxes += [(x1 * factor, y1 * factor, x2 * factor, y2 * factor) for x1, x2, y1, y2 in boxes]
            self.readings += [(tuple(value * factor for value in reading.box), reading.candidates())
                              for reading in readings]
            return readings

        bib_ocr._torso_tiles, self.reader._read = torso_tiles, read
        return self

    def __exit__(self, *exc):
        self._module._torso_tiles = self._tiles
        del self.reader._read  # the instance attribute goes, the class's method is back

    def explain(self, runner: Placed, found: bool, frame_size) -> dict:
        """Why ``runner``'s bib was (not) read: the first link of the chain that broke."""
        from mlpipeline.inference.bib_ocr import _torso

        matched = [(name, box) for name, boxes in self.faces.items() for box in boxes
                   if _iou(box, runner.face) >= 0.3]
        detector, face = matched[0] if matched else ("-", None)
        torso = _torso(face, (frame_size[1], frame_size[0])) if face else None
        covered = _share_inside(runner.bib_box, torso) if torso else 0.0
        looked = [height for height, regions in self.looks
                  if any(_share_inside(runner.bib_box, region) >= 0.5 for region in regions)]
        def on_bib(box) -> bool:  # a text box over a good part of the bib, or mostly on it
            return _share_inside(runner.bib_box, box) >= 0.3 or _share_inside(box, runner.bib_box) >= 0.5

        boxes = [box for box in self.boxes if on_bib(box)]
        read = sorted({text for box, candidates in self.readings if on_bib(box)
                       for text, _confidence in candidates})
        if found:
            cause = "read"
        elif face is None:
            cause = "no face found"
        elif covered < 0.5:
            cause = "torso misses bib"
        elif not looked:
            cause = "torso not looked at"
        elif not boxes:
            cause = "no text box"
        elif runner.bib in read:
            cause = "read, not kept"
        else:
            cause = "misread"
        return {"cause": cause, "detector": detector, "covered": covered, "looks": looked,
                "boxes": len(boxes), "read": read}


def _iou(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def _share_inside(box, region) -> float:
    """The share of ``box``'s area that lies inside ``region`` (both x1, y1, x2, y2)."""
    width = min(box[2], region[2]) - max(box[0], region[0])
    height = min(box[3], region[3]) - max(box[1], region[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return max(0.0, width) * max(0.0, height) / area if area > 0 else 0.0


def read_alone(product: Product, dataset: Path, source: str, start_list) -> set[str]:
    """The bibs the reader keeps from the rbnr-dev photo itself, at its own size (as
    bench/bibs.py reads it): a bib missed there is the reader's ceiling, not the crowd's."""
    from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules

    rules = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE, start_list=frozenset(start_list))
    with Image.open(dataset / "images" / source) as opened:
        photo = opened.convert("RGB")
    faces = [face.box for face in product.detector.predict(photo)]
    return {bib.text for bib in rules.accept(product.reader.predict(photo, faces=faces, keeps=rules.keeps))}


def print_explained(explained: list[tuple[int, Placed, dict, bool]]) -> None:
    """Each missed runner's chain, then the causes counted by face height."""
    print("\nmissed runners (start list): frame, bib, face px, face found by, share of the bib in "
          "its torso, looks whose canvas held it, CRAFT boxes on the bib, read there, cause, "
          "read in its own rbnr-dev photo")
    for index, runner, why, alone in explained:
        if why["cause"] == "read":
            continue
        looks = ",".join(str(height) for height in why["looks"]) or "-"
        print(f"  {index + 1:>3} {runner.bib:>6} {runner.face_height:6.1f} {why['detector']:>6} "
              f"{why['covered']:5.2f} {looks:>6} {why['boxes']:>3} {' '.join(why['read'])[:40]:<40} "
              f"{why['cause']:<20} {'yes' if alone else 'NO (reader ceiling)'}")
    causes = sorted({why["cause"] for _i, _r, why, _a in explained} - {"read"})
    print("\ncauses of misses by face height (start list; 'ceiling' = also missed in its own photo)")
    print("face height px".ljust(16) + "".join(f"{cause:>22}" for cause in causes) + f"{'ceiling':>10}")
    rows = [(f"{BINS[i]}-{BINS[i + 1] if BINS[i + 1] < 10_000 else ''}", i) for i in range(len(BINS) - 1)]
    for label, index in [*rows, ("all", None)]:
        chosen = [(why, alone) for _i, runner, why, alone in explained
                  if index is None or bin_of(runner.face_height) == index]
        cells = [sum(why["cause"] == cause for why, _alone in chosen) for cause in causes]
        ceiling = sum(why["cause"] != "read" and not alone for why, alone in chosen)
        print(label.ljust(16) + "".join(f"{cell:>22}" for cell in cells) + f"{ceiling:>10}")


def found_in_tile(runner: Placed, tags) -> bool:
    x1, y1, x2, y2 = runner.tile
    return any(text == runner.bib and x1 <= (box[0] + box[2]) / 2 <= x2
               and y1 <= (box[1] + box[3]) / 2 <= y2 for text, box in tags)


def bin_of(height: float) -> int:
    return next(index for index in range(len(BINS) - 1) if height < BINS[index + 1])


def setup_django() -> None:
    """Django's apps, for the product's modules; no database is ever opened here (a
    throwaway var dir, so nothing is written in the developer's)."""
    import atexit
    import shutil
    import tempfile

    import django

    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    var_dir = Path(tempfile.mkdtemp(prefix="racephoto-bench-"))
    os.environ.update(DEBUG="1", DJANGO_SETTINGS_MODULE="racephoto.settings",
                      RACEPHOTO_VAR_DIR=str(var_dir))
    django.setup()
    # Django's start-up may still start the embedded servers on that dir (a check, a
    # cache): stopped at exit, so runs never leave PostgreSQL and Valkey behind.
    from bench.ingest import _stop_servers

    atexit.register(shutil.rmtree, var_dir, ignore_errors=True)
    atexit.register(_stop_servers, var_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="rbnr-dev: images/, labels.csv, boxes.csv, meta.csv")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="6000x4000", help="frame size WxH (default 6000x4000)")
    parser.add_argument("--runners", type=int, default=6, help="rbnr-dev photos placed per frame")
    parser.add_argument("--faces", default="22-120",
                        help="range of the placed runners' face heights, px (default 22-120)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as "
                        "each of the worker's two processes on this machine)")
    parser.add_argument("--no-legible", action="store_true",
                        help="skip reading each placed photo alone (the 'legible' reference)")
    parser.add_argument("--look-pixels", type=int, default=None,
                        help="CRAFT's pixels for a look at a photo's torsos (bib_ocr.LOOK_PIXELS, "
                             "about 20,000 a runner: a trade-off of recall on crowds against time)")
    parser.add_argument("--save", type=Path, default=None, help="write the frames here (JPEG)")
    parser.add_argument("--explain", action="store_true",
                        help="say why each missed bib was missed (face found? torso over the bib? "
                             "text box? what was read? read in its own rbnr-dev photo?)")
    args = parser.parse_args(argv)
    size = tuple(int(part) for part in args.size.lower().split("x"))
    faces = tuple(float(part) for part in args.faces.split("-"))

    setup_django()
    import torch

    from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules

    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    sources, start_lists = load_sources(args.dataset)
    if args.look_pixels:
        from mlpipeline.inference import bib_ocr

        bib_ocr.LOOK_PIXELS = args.look_pixels
    product = Product()
    rng = np.random.default_rng(args.seed)
    modes = ("start list", "no start list")
    hits = {mode: defaultdict(lambda: [0, 0]) for mode in modes}  # bin -> [found, total]
    legible_hits = defaultdict(lambda: [0, 0])
    explained, alone = [], {}  # --explain: (frame, runner, why, read alone); source -> bibs read
    seconds, cpu_seconds, decode_sizes, face_counts = [], [], [], []
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    for index in range(args.frames):
        frame = make_frame(args.dataset, sources, start_lists, rng, size, args.runners, faces)
        data = jpeg_bytes(frame.image)
        if args.save:
            (args.save / f"crowd_{index:03d}.jpg").write_bytes(data)
        reference = set() if args.no_legible else legible(product, args.dataset, frame.runners,
                                                           frame.start_list)
        for mode in modes:
            rules = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE,
                             start_list=frozenset(frame.start_list) if mode == "start list" else None)
            if args.explain and mode == "start list":
                with ReaderTrace(product.reader, size[0]) as trace:
                    tags, found_faces, spent = product.analyse(data, rules, trace)
                for runner in frame.runners:
                    if runner.source not in alone:
                        alone[runner.source] = read_alone(product, args.dataset, runner.source,
                                                          frame.start_list)
                    explained.append((index, runner, trace.explain(runner, found_in_tile(runner, tags), size),
                                      runner.bib in alone[runner.source]))
            else:
                tags, found_faces, spent = product.analyse(data, rules)
            if mode == "start list":
                seconds.append(spent[0])
                cpu_seconds.append(spent[1])
                face_counts.append(len(found_faces))
                decode_sizes.append(len(data))
            for runner in frame.runners:
                hit = found_in_tile(runner, tags)
                counts = hits[mode][bin_of(runner.face_height)]
                counts[0] += hit
                counts[1] += 1
                if mode == "start list" and (runner.source, runner.bib, runner.scale) in reference:
                    counts = legible_hits[bin_of(runner.face_height)]
                    counts[0] += hit
                    counts[1] += 1
        print(f"frame {index + 1}/{args.frames}: {len(frame.runners)} labelled runners, "
              f"{face_counts[-1]} faces found, {seconds[-1]:.2f} s wall, {cpu_seconds[-1]:.2f} s CPU",
              flush=True)

    print(f"\n{args.frames} frames of {size[0]}x{size[1]} ({statistics.mean(decode_sizes) / 1e6:.1f} MB "
          f"mean JPEG), {args.runners} rbnr-dev photos placed per frame, runner faces "
          f"{faces[0]:g}-{faces[1]:g} px, seed {args.seed}, torch threads {args.threads}")
    header = "face height px".ljust(16) + "".join(f"{label:>18}" for label in
                                                  ("start list", "no start list", "legible (list)"))
    print(header)
    rows = [(f"{BINS[i]}-{BINS[i + 1] if BINS[i + 1] < 10_000 else ''}", i) for i in range(len(BINS) - 1)]
    for label, index in [*rows, ("all", None)]:
        cells = []
        for table in (hits["start list"], hits["no start list"], legible_hits):
            found, total = ([table[index][0], table[index][1]] if index is not None else
                            [sum(v[0] for v in table.values()), sum(v[1] for v in table.values())])
            cells.append(f"{found:>4}/{total:<4} {found / total:5.3f}" if total else f"{'-':>14}")
        print(label.ljust(16) + "".join(f"{cell:>18}" for cell in cells))
    found = sum(v[0] for v in legible_hits.values())
    total = sum(v[1] for v in legible_hits.values())
    if total:
        recall = found / total
        print(f"recall on legible bibs (start list) {recall:.3f} (target >= {TARGET_RECALL}: "
              f"{'met' if recall >= TARGET_RECALL else 'MISSED'})")
    print(f"faces + bibs per frame (decode at analysis size, detect, read), start list: mean "
          f"{statistics.mean(seconds):.2f} s, p50 {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s; process CPU mean {statistics.mean(cpu_seconds):.2f} s, p50 "
          f"{statistics.median(cpu_seconds):.2f} s; faces found per frame: mean "
          f"{statistics.mean(face_counts):.1f}")
    if args.explain:
        print_explained(explained)
    print(f"load average at the end: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    return 0


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


if __name__ == "__main__":
    sys.exit(main())
