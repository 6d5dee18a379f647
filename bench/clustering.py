"""Face clustering at event scale: the k-NN graph against the all-pairs algorithm it replaced.

    python bench/clustering.py [--sizes 10000 50000 100000] [--old-up-to 10000]
                               [--burst 1000] [--seed 0]

Synthetic faces shaped like an event's SFace vectors (128-d): runners' centres share a
common "face" direction (different people at cosine ~0.1, as real embeddings), each
runner is in a few photos (1 + Poisson(7)), each face is its centre plus noise of a
spread drawn per face (sharp and blurred shots: same runner at cosine ~0.7-0.9), and
photos hold one to three runners. 40 % of faces carry their runner's bib (read by OCR).
Clustered at SFace's linking threshold (0.70), as ``event_linking.link_event`` does.

Each measurement runs in a fresh process, so its peak memory (ru_maxrss) is its own;
"data" is the process's peak before clustering (interpreter, numpy, the vectors). For
every size: the new algorithm (``mlpipeline.linking.cluster_faces``, HNSW k-NN graph
above the exact-work limit), pair precision/recall against the true runners, and an
incremental run that adds ``--burst`` new faces to the clustered event. Up to
``--old-up-to`` faces the all-pairs algorithm runs too, with the agreement of the two
partitions; beyond, its time is extrapolated from the largest size measured (its cost
is the n x n similarity scan: quadratic).

Wall times depend on the machine's load: report ``uptime`` with them.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlpipeline import linking  # noqa: E402
from mlpipeline.vectors import normalised  # noqa: E402

THRESHOLD = 0.70  # SFaceEmbedder.link_threshold
DIMENSION = 128


def synthetic_event(faces: int, seed: int = 0):
    """``(vectors, photo_ids, bibs, runners)`` of an event of about ``faces`` faces."""
    rng = np.random.default_rng(seed)
    photos_per_runner = 1 + rng.poisson(7, size=faces)  # more runners than needed
    runner_of = np.repeat(np.arange(faces), photos_per_runner)[:faces]
    runners = int(runner_of.max()) + 1
    common = rng.normal(size=DIMENSION)
    centres = normalised(rng.normal(size=(runners, DIMENSION)))
    centres = normalised(centres + 0.4 * common / np.linalg.norm(common))
    spread = rng.uniform(0.45, 0.75, size=(faces, 1)) / np.sqrt(DIMENSION)
    vectors = normalised(centres[runner_of] + spread * rng.normal(size=(faces, DIMENSION)))
    # Photos of one to three runners: faces in a random order, cut into groups.
    order = rng.permutation(faces)
    photo_ids = np.empty(faces, dtype=np.int64)
    photo, position = 0, 0
    while position < faces:
        size = int(rng.integers(1, 4))
        photo_ids[order[position:position + size]] = photo
        photo, position = photo + 1, position + size
    read = rng.random(faces) < 0.4
    # Faces in upload order: a runner's photos come at any time, so a burst holds new
    # photos of runners already seen as well as new runners.
    shuffled = rng.permutation(faces)
    runner_of, vectors, photo_ids, read = (runner_of[shuffled], vectors[shuffled],
                                           photo_ids[shuffled], read[shuffled])
    bibs = [str(1000 + runner) if was_read else None for runner, was_read in zip(runner_of, read)]
    return vectors, photo_ids.tolist(), bibs, runner_of


def all_pairs_cluster_faces(embeddings, photo_ids, bibs, threshold):
    """The clustering as it was before the k-NN graph (kept here to compare against):
    every pair above the threshold, found by an n x n similarity scan in blocks."""
    vectors = normalised(embeddings)
    count = len(vectors)
    bibs = list(bibs) if bibs is not None else [None] * count
    pairs = []
    for start in range(0, count, 2048):
        sims = vectors[start:start + 2048] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        keep = rows < cols
        for i, j in zip(rows[keep], cols[keep]):
            pairs.append((float(sims[i - start, j]), int(i), int(j)))
    pairs.sort(key=lambda pair: -pair[0])
    parent = list(range(count))
    sums = {i: vectors[i].astype(np.float64) for i in range(count)}
    sizes = {i: 1 for i in range(count)}
    photos = {i: {photo_ids[i]} for i in range(count)}
    cluster_bibs = {i: ({bibs[i]} if bibs[i] else set()) for i in range(count)}

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, i, j in pairs:
        a, b = root(i), root(j)
        if a == b or photos[a] & photos[b] or len(cluster_bibs[a] | cluster_bibs[b]) > 1:
            continue
        if float(sums[a] @ sums[b]) / (sizes[a] * sizes[b]) < threshold:
            continue
        if sizes[a] < sizes[b]:
            a, b = b, a
        parent[b] = a
        sums[a] += sums.pop(b)
        sizes[a] += sizes.pop(b)
        photos[a] |= photos.pop(b)
        cluster_bibs[a] |= cluster_bibs.pop(b)
    roots = [root(i) for i in range(count)]
    numbering = {}
    return np.array([numbering.setdefault(r, len(numbering)) for r in roots], dtype=np.int64)


def pair_scores(labels, truth) -> tuple[float, float]:
    """Pair precision and recall of a clustering against the true runners."""
    def pairs(counts):
        return float((counts * (counts - 1) // 2).sum())

    _, joint = np.unique(np.stack([labels, truth]), axis=1, return_counts=True)
    together = pairs(joint)
    predicted = pairs(np.unique(labels, return_counts=True)[1])
    true = pairs(np.unique(truth, return_counts=True)[1])
    return together / max(predicted, 1.0), together / max(true, 1.0)


def same_partition(a, b) -> float:
    """Share of faces whose cluster is exactly the same set of faces in both labellings
    (1.0 when there are no faces: two empty labellings agree)."""
    if not len(a):
        return 1.0
    size_a = dict(zip(*np.unique(a, return_counts=True)))
    size_b = dict(zip(*np.unique(b, return_counts=True)))
    combos, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    same = sum(int(count) for (x, y), count in zip(combos.T, counts)
               if size_a[x] == count == size_b[y])
    return same / len(a)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(algorithm: str, faces: int, seed: int, burst: int) -> dict:
    """One measurement, in this process (see ``--one``)."""
    vectors, photo_ids, bibs, runners = synthetic_event(faces + burst, seed)
    result = {"algorithm": algorithm, "faces": faces, "data_mb": _peak_mb()}
    events = vectors[:faces], photo_ids[:faces], bibs[:faces]
    cpu, started = time.process_time(), time.perf_counter()
    if algorithm == "old":
        labels = all_pairs_cluster_faces(*events, THRESHOLD)
    else:
        labels = linking.cluster_faces(*events, THRESHOLD)
    result.update(seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu,
                  peak_mb=_peak_mb(), clusters=int(len(set(labels.tolist()))))
    result["precision"], result["recall"] = pair_scores(labels, runners[:faces])
    np.save(_labels_file(algorithm, faces, seed), labels)
    if algorithm == "new" and burst:
        # A burst of new photos: the earlier faces keep their clusters, the new ones join.
        previous = list(linking.stable_labels(labels, [None] * faces)) + [None] * burst
        cpu, started = time.process_time(), time.perf_counter()
        grouped = linking.cluster_faces(vectors, photo_ids, bibs, THRESHOLD, clusters=previous)
        again = linking.stable_labels(grouped, previous)
        result["burst"] = burst
        result["burst_seconds"] = time.perf_counter() - started
        result["burst_cpu_seconds"] = time.process_time() - cpu
        result["burst_moved"] = int(sum(1 for before, after in zip(previous, again)
                                        if before is not None and before != after))
        result["burst_precision"], result["burst_recall"] = pair_scores(again, runners)
    return result


def _labels_file(algorithm: str, faces: int, seed: int) -> Path:
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"racephoto-clustering-{algorithm}-{faces}-{seed}.npy"


def _run_one(algorithm: str, faces: int, seed: int, burst: int) -> dict:
    output = subprocess.run([sys.executable, __file__, "--one", algorithm, str(faces),
                             "--seed", str(seed), "--burst", str(burst)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _line(row: dict) -> str:
    text = (f"{row['algorithm']:>3} {row['faces']:>7} faces: {row['seconds']:7.1f} s "
            f"(cpu {row['cpu_seconds']:6.1f} s), peak {row['peak_mb']:6.0f} MB "
            f"(data {row['data_mb']:4.0f} MB), {row['clusters']} clusters, "
            f"pair precision {row['precision']:.4f} recall {row['recall']:.4f}")
    if "burst" in row:
        text += (f"\n    + burst of {row['burst']} faces, incremental: {row['burst_seconds']:.1f} s "
                 f"(cpu {row.get('burst_cpu_seconds', float('nan')):.1f} s), "
                 f"{row['burst_moved']} earlier faces moved, precision {row['burst_precision']:.4f} "
                 f"recall {row['burst_recall']:.4f}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--old-up-to", type=int, default=10_000,
                        help="largest size the all-pairs algorithm runs at (default 10000)")
    parser.add_argument("--burst", type=int, default=1000,
                        help="new faces added to each clustered event, clustered incrementally")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("ALGORITHM", "FACES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.seed, args.burst)))
        return 0

    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} "
          f"{os.getloadavg()[2]:.1f} on {os.cpu_count()} CPUs", flush=True)
    old_rows = []
    for faces in sorted(args.sizes):
        new = _run_one("new", faces, args.seed, args.burst)
        print(_line(new), flush=True)
        if faces <= args.old_up_to:
            old = _run_one("old", faces, args.seed, args.burst)
            old_rows.append(old)
            print(_line(old), flush=True)
            agreement = same_partition(np.load(_labels_file("old", faces, args.seed)),
                                       np.load(_labels_file("new", faces, args.seed)))
            print(f"    same cluster in both: {agreement:.4f} of the faces", flush=True)
        elif old_rows:
            base = old_rows[-1]
            print(f"old {faces:>7} faces: ~{base['seconds'] * (faces / base['faces']) ** 2:.0f} s "
                  f"extrapolated (quadratic) from {base['faces']} faces, not run", flush=True)
        for algorithm in ("old", "new"):
            _labels_file(algorithm, faces, args.seed).unlink(missing_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
