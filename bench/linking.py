"""Bib <-> face linking on rbnr-dev: geometry, then clustering and bib propagation.

    python bench/linking.py ../shared/data/rbnr-dev [--ocr] [--drop 0.5] [--seed 0]
                            [--embedder sface|dlib] [--cache FILE] [--clustering new|old|both]

(a) Geometry: for every image, the labelled bib boxes and face boxes of boxes.csv
    go through ``assign_bibs_to_faces`` (faces shuffled, so the order of the rows
    cannot help); accuracy = bibs given their own runner's face. Then the same
    with the faces MTCNN really finds (spectators and unlabelled runners included);
    a match is right when the detected face overlaps the labelled face (IoU >= 0.3).
(b) Propagation: every photo's faces are detected and embedded (SFace or dlib); bibs come
    from the labelled bib boxes as a stand-in for OCR (or from
    ``mlpipeline.inference.bib_ocr.BibReader`` with --ocr). To stand for bibs OCR cannot read
    (turned away, covered), a fixed-seed share ``--drop`` of the readings is
    hidden. Faces are linked to the remaining bibs, clustered, and bibs
    propagated. Reported: photos that gain a correct (labelled) bib only through
    face linking, and face-link tags whose bib is not among the photo's labels
    ("wrong"; labels are partial, so a few may be unlabelled true runners).
    ``--clustering both`` (the default) runs it with the k-NN graph clustering
    (``cluster_faces``, exact and HNSW graphs) and with the all-pairs algorithm it
    replaced (``bench/clustering.py``), and says whether their clusters agree.
    ``--cache FILE`` keeps the detected faces, vectors and readings between runs.

Runs in-process without Django or a database.
"""

import argparse
import csv
import pickle
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.clustering import all_pairs_cluster_faces, same_partition  # noqa: E402
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder  # noqa: E402
from mlpipeline.inference.mtcnn import FaceDetector  # noqa: E402
from mlpipeline.inference.sface import SFaceEmbedder  # noqa: E402
from mlpipeline.linking import assign_bibs_to_faces, cluster_faces, propagate_bibs  # noqa: E402

CLUSTERINGS = {
    "new": lambda vectors, photos, bibs, threshold: cluster_faces(vectors, photos, bibs, threshold),
    "new-hnsw": lambda vectors, photos, bibs, threshold: cluster_faces(vectors, photos, bibs, threshold,
                                                                       method="hnsw"),
    "old": all_pairs_cluster_faces,
}


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _read_boxes(data: Path) -> dict[str, list[tuple[str, tuple, tuple]]]:
    runners = defaultdict(list)
    for row in csv.DictReader(open(data / "boxes.csv")):
        bib = tuple(float(row[k]) for k in ("bib_x1", "bib_y1", "bib_x2", "bib_y2"))
        face = tuple(float(row[k]) for k in ("face_x1", "face_y1", "face_x2", "face_y2"))
        runners[row["image"]].append((row["bib"], bib, face))
    return runners


def bench_geometry(runners, detected, seed: int) -> None:
    rng = random.Random(seed)
    right = total = crowded = crowded_right = 0
    for rows in runners.values():
        order = list(range(len(rows)))
        rng.shuffle(order)
        faces = [rows[i][2] for i in order]
        matches = {m.bib_index: order[m.face_index]
                   for m in assign_bibs_to_faces([row[1] for row in rows], faces)}
        good = sum(1 for bib_index, face_row in matches.items() if face_row == bib_index)
        right += good
        total += len(rows)
        if len(rows) > 1:
            crowded += len(rows)
            crowded_right += good
    print(f"(a) geometry, labelled boxes: {right}/{total} bibs linked to their own face "
          f"({right / total:.3f}); in images with 2+ labelled runners {crowded_right}/{crowded} "
          f"({crowded_right / max(1, crowded):.3f})")

    right = wrong = unmatched = 0
    for image, rows in runners.items():
        faces = [face.box for face in detected[image]]
        matched = {m.bib_index: m.face_index
                   for m in assign_bibs_to_faces([row[1] for row in rows], faces)}
        for index, (_bib, _box, truth) in enumerate(rows):
            if index not in matched:
                unmatched += 1
            elif _iou(faces[matched[index]], truth) >= 0.3:
                right += 1
            else:
                wrong += 1
    total = right + wrong + unmatched
    print(f"    geometry, MTCNN faces: {right}/{total} right ({right / total:.3f}), "
          f"{wrong} wrong face, {unmatched} bib left without a face")


def bench_propagation(data: Path, detected, vectors, readings, drop: float,
                      seed: int, threshold: float, clustering: str = "new") -> np.ndarray:
    labels = {row["image"]: set(row["bibs"].split())
              for row in csv.DictReader(open(data / "labels.csv"))}
    rng = random.Random(seed)
    kept_readings = {image: [r for r in found if rng.random() >= drop]
                     for image, found in sorted(readings.items())}

    photo_ids, face_ids, bibs, embeddings = [], [], [], []
    read_in_photo = defaultdict(set)
    for image in sorted(detected):
        faces = detected[image]
        found = kept_readings.get(image, [])
        read_in_photo[image] |= {text for text, _box in found}
        matched = {m.face_index: found[m.bib_index][0]
                   for m in assign_bibs_to_faces([box for _t, box in found],
                                                 [face.box for face in faces])}
        for index in range(len(faces)):
            photo_ids.append(image)
            face_ids.append(index)
            bibs.append(matched.get(index))
        embeddings.append(vectors[image])
    # One set is one event: the same bib in the other set is another person.
    links, all_labels, clusters_made = [], [], 0
    started = time.perf_counter()
    for event in sorted({image.split("_")[0] for image in photo_ids}):
        chosen = [i for i, image in enumerate(photo_ids) if image.startswith(event + "_")]
        event_vectors = np.concatenate(embeddings)[chosen]
        event_photos = [photo_ids[i] for i in chosen]
        event_bibs = [bibs[i] for i in chosen]
        clusters = CLUSTERINGS[clustering](event_vectors, event_photos, event_bibs, threshold)
        all_labels += [(event, int(label)) for label in clusters]
        clusters_made += len(set(clusters.tolist()))
        links += propagate_bibs(clusters, event_photos, [face_ids[i] for i in chosen], event_bibs,
                                event_vectors, {p: read_in_photo[p] for p in set(event_photos)})
    elapsed = time.perf_counter() - started

    read_right = sum(len(read_in_photo[image] & labels.get(image, set())) for image in read_in_photo)
    gained = {(link.photo_id, link.bib) for link in links
              if link.bib in labels.get(link.photo_id, set())}
    wrong = [link for link in links if link.bib not in labels.get(link.photo_id, set())]
    hidden = sum(len(labels.get(image, set()) - read_in_photo[image]) for image in labels)
    print(f"(b) propagation at threshold {threshold} with {drop:.0%} of readings hidden "
          f"(seed {seed}), {clustering} clustering: {sum(1 for b in bibs if b)} faces carry a read "
          f"bib, {clusters_made} clusters, "
          f"{len(links)} face-link tags ({elapsed:.2f} s to cluster + propagate)")
    print(f"    labelled bibs read directly: {read_right}; labelled bibs not read: {hidden}")
    print(f"    correct bibs gained only through face linking: {len(gained)} "
          f"(in {len({photo for photo, _ in gained})} photos)")
    print(f"    face-link tags not in the photo's labels (wrong or unlabelled): {len(wrong)}")
    for link in wrong[:10]:
        print(f"      {link.photo_id} face {link.face_id}: bib {link.bib} "
              f"(labels {' '.join(sorted(labels.get(link.photo_id, ()))) or '-'}, "
              f"similarity {link.confidence:.3f})")
    # One number per (event, cluster), comparable between clusterings of the same faces.
    numbers: dict = {}
    return np.array([numbers.setdefault(label, len(numbers)) for label in all_labels])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="rbnr-dev folder (images/, labels.csv, boxes.csv)")
    parser.add_argument("--ocr", action="store_true",
                        help="read bibs with the product's BibReader instead of the labelled boxes")
    parser.add_argument("--drop", type=float, default=0.5,
                        help="share of bib readings hidden to stand for unreadable bibs (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=None,
                        help="clustering threshold (default: the embedder's link_threshold, "
                             "else its match_threshold, as link_event uses)")
    parser.add_argument("--embedder", choices=("sface", "dlib"), default="sface")
    parser.add_argument("--cache", type=Path,
                        help="file keeping the detected faces, vectors and readings between runs")
    parser.add_argument("--clustering", choices=("new", "old", "both"), default="both",
                        help="k-NN graph clustering, the all-pairs one it replaced, or both")
    args = parser.parse_args(argv)

    runners = _read_boxes(args.data)
    cached = None
    if args.cache and args.cache.exists():
        with open(args.cache, "rb") as handle:  # a file this script wrote
            cached = pickle.load(handle)
    if cached and cached["key"] == (args.embedder, args.ocr):
        detected, vectors, readings = cached["detected"], cached["vectors"], cached["readings"]
        threshold = args.threshold if args.threshold is not None else cached["threshold"]
        print(f"{len(detected)} photos, {sum(len(f) for f in detected.values())} faces "
              f"(detections and vectors from {args.cache})")
    else:
        detected, vectors, readings, threshold = _detect(args, runners)
        if args.cache:
            with open(args.cache, "wb") as handle:
                pickle.dump({"key": (args.embedder, args.ocr), "detected": detected,
                             "vectors": vectors, "readings": readings,
                             "threshold": threshold}, handle)

    bench_geometry(runners, detected, args.seed)
    clusterings = ["old", "new", "new-hnsw"] if args.clustering == "both" else [args.clustering]
    for drop in sorted({0.0, args.drop}):
        labels = {name: bench_propagation(args.data, detected, vectors, readings, drop, args.seed,
                                          threshold, name) for name in clusterings}
        for name in clusterings[1:]:
            print(f"    {name} clustering vs old: {same_partition(labels['old'], labels[name]):.4f} "
                  f"of the faces in exactly the same cluster")
    return 0


class _Face:
    """A detected face as cached: only its box is used here."""

    def __init__(self, box):
        self.box = box


def _detect(args, runners):
    detector = FaceDetector().ensure_loaded()
    embedder = SFaceEmbedder() if args.embedder == "sface" else DlibFaceEmbedder()
    embedder.ensure_loaded()
    threshold = (args.threshold if args.threshold is not None
                 else embedder.link_threshold or embedder.match_threshold)
    reader = None
    if args.ocr:
        from mlpipeline.inference.bib_ocr import BibReader

        reader = BibReader().ensure_loaded()

    images = sorted(path for path in (args.data / "images").iterdir()
                    if path.suffix.lower() in (".jpg", ".jpeg"))
    detected, vectors, readings = {}, {}, {}
    started = time.perf_counter()
    for path in images:
        image = Image.open(path).convert("RGB")
        faces = detector(image)
        detected[path.name] = [_Face(tuple(float(v) for v in face.box)) for face in faces]
        vectors[path.name] = embedder(image, faces)
        if reader is not None:
            readings[path.name] = [(r.text, r.box) for r in
                                   reader(image, faces=[face.box for face in faces])]
        else:
            readings[path.name] = [(bib, box) for bib, box, _face in runners.get(path.name, [])]
    print(f"{len(images)} photos, {sum(len(f) for f in detected.values())} faces, "
          f"bibs from {'BibReader' if reader else 'labelled boxes'} "
          f"({time.perf_counter() - started:.0f} s to detect, embed"
          f"{' and read' if reader else ''})")
    return detected, vectors, readings, threshold


if __name__ == "__main__":
    sys.exit(main())
