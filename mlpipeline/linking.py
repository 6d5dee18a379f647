"""Bib <-> face linking: geometry within a photo, then face clusters across an event.

Pure functions on plain lists and arrays (no Django), so a service can call them
with Face rows and tests can call them with hand-made boxes:

1. :func:`assign_bibs_to_faces` pairs each bib read in a photo with the face of
   the runner wearing it (the face above the bib).
2. :func:`cluster_faces` groups an event's face embeddings into runners.
3. :func:`propagate_bibs` gives a cluster's bib to the photos of that runner where
   the bib itself was not read (turned away, covered, blurred): "face-link" tags.

Boxes are ``(x1, y1, x2, y2)`` in pixels of one photo, y growing downwards.
"""

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import hnswlib
import numpy as np
from scipy.optimize import linear_sum_assignment

from mlpipeline.vectors import normalised

Box = Sequence[float]

# Geometry of a runner, measured on the 177 labelled (bib, face) pairs of rbnr-dev,
# in units of the face width (the face height is about the same and less stable:
# MTCNN boxes and hand boxes disagree most on the chin and forehead).
#: bib centre below the face centre: median 3.45 face heights, 5-95 % 2.1-4.8
BIB_DROP_MEAN, BIB_DROP_SD, BIB_DROP_RANGE = 3.4, 0.9, (1.0, 7.0)
#: horizontal offset of the bib centre: median -0.04, 5-95 % -0.55..0.51 (turned torsos)
BIB_SHIFT_SD, BIB_SHIFT_MAX = 0.45, 1.6
#: bib width / face width: median 0.96, 5-95 % 0.72-1.24 (log-normal spread)
BIB_WIDTH_MEAN, BIB_WIDTH_LOG_SD, BIB_WIDTH_RANGE = 0.96, 0.3, (0.3, 3.5)
#: pairs below this are not a runner (about 2.5 standard deviations in all three at once)
MIN_GEOMETRY_CONFIDENCE = 0.01


class BibFaceMatch(NamedTuple):
    bib_index: int
    face_index: int
    confidence: float


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def pair_confidence(bib_box: Box, face_box: Box) -> float:
    """How plausible it is that ``face_box`` is the face of whoever wears ``bib_box`` (0..1)."""
    face_width = face_box[2] - face_box[0]
    bib_width = bib_box[2] - bib_box[0]
    if face_width <= 0 or bib_width <= 0:
        return 0.0
    (bib_x, bib_y), (face_x, face_y) = _centre(bib_box), _centre(face_box)
    drop = (bib_y - face_y) / face_width
    shift = (bib_x - face_x) / face_width
    ratio = bib_width / face_width
    if not (BIB_DROP_RANGE[0] <= drop <= BIB_DROP_RANGE[1] and abs(shift) <= BIB_SHIFT_MAX
            and BIB_WIDTH_RANGE[0] <= ratio <= BIB_WIDTH_RANGE[1]):
        return 0.0
    z2 = (((drop - BIB_DROP_MEAN) / BIB_DROP_SD) ** 2 + (shift / BIB_SHIFT_SD) ** 2
          + (math.log(ratio / BIB_WIDTH_MEAN) / BIB_WIDTH_LOG_SD) ** 2)
    return math.exp(-z2 / 2)


def assign_bibs_to_faces(bib_boxes: Sequence[Box], face_boxes: Sequence[Box],
                         min_confidence: float = MIN_GEOMETRY_CONFIDENCE) -> list[BibFaceMatch]:
    """One face per bib and one bib per face, maximising the joint plausibility.

    Returns ``(bib index, face index, confidence)`` triples sorted by bib index; a bib
    with no plausible face above it (its runner's face is hidden or out of frame) and
    a face with no bib (a spectator) are simply absent.
    """
    if not bib_boxes or not face_boxes:
        return []
    confidence = np.array([[pair_confidence(bib, face) for face in face_boxes]
                           for bib in bib_boxes])
    # Maximising the product of confidences = minimising the sum of -log; impossible
    # pairs get a cost no real pairing reaches, and are dropped after the assignment.
    impossible = 1e6
    cost = np.where(confidence >= min_confidence, -np.log(np.maximum(confidence, 1e-300)),
                    impossible)
    rows, cols = linear_sum_assignment(cost)
    return [BibFaceMatch(int(r), int(c), float(confidence[r, c]))
            for r, c in sorted(zip(rows, cols)) if confidence[r, c] >= min_confidence]


# --- Neighbours ---------------------------------------------------------------------------

#: Neighbours each face asks for. A face with more than this many faces above the threshold
#: (a runner in more photos than that) still joins them: its nearest ones suffice to merge.
NEIGHBOURS = 20
# The k-NN graph's own HNSW parameters, chosen for building and querying the graph once per
# linking run (the selfie-search indexes in mlpipeline.indexes are tuned separately): on
# 100,000 synthetic faces they find > 99 % of the pairs above the linking threshold
# (bench/clustering.py). hnswlib needs ef >= k.
GRAPH_M, GRAPH_EF_CONSTRUCTION, GRAPH_EF = 16, 64, 40
#: Exact similarities (one matrix product per block) while they cost less than building a
#: graph: up to this many query x base pairs (small events), or up to this many queries
#: whatever the event's size (a burst of new faces): both costs grow with the event's size,
#: and at 100,000 faces 4,000 exact queries took 5.5 s of CPU, the graph's build about 20.
EXACT_PAIRS, EXACT_QUERIES = 25_000_000, 4_000
METHODS = ("auto", "exact", "hnsw")


class Neighbours:
    """The most similar rows of ``base`` (unit vectors) to query vectors.

    Exact matrix products while the work is small, else an HNSW graph built on first use
    (``method`` forces one or the other, for benchmarks and tests).
    """

    def __init__(self, base: np.ndarray, method: str = "auto"):
        if method not in METHODS:
            raise ValueError(f"Unknown neighbour method {method!r}; known: {METHODS}.")
        self.base = base
        self.method = method
        self._graph = None

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, similarities)``, each (len(queries), min(k, len(base))), most similar first."""
        k = min(k, len(self.base))
        if k <= 0 or not len(queries):
            return np.empty((len(queries), 0), np.int64), np.empty((len(queries), 0), np.float32)
        exact = self.method == "exact" or (self.method == "auto" and (
            len(queries) <= EXACT_QUERIES or len(queries) * len(self.base) <= EXACT_PAIRS))
        return self._exact(queries, k) if exact else self._approximate(queries, k)

    def _exact(self, queries, k):
        # Blocks of about 16 M similarities (64 MB), whatever the size of the event.
        block = max(1, (1 << 24) // len(self.base))
        indices = np.empty((len(queries), k), np.int64)
        similarities = np.empty((len(queries), k), np.float32)
        for start in range(0, len(queries), block):
            sims = queries[start:start + block] @ self.base.T
            top = (np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1]
                   else np.broadcast_to(np.arange(k), sims.shape).copy())
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            indices[start:start + block] = np.take_along_axis(top, order, axis=1)
            similarities[start:start + block] = np.take_along_axis(top_sims, order, axis=1)
        return indices, similarities

    def _approximate(self, queries, k):
        if self._graph is None:
            self._graph = hnswlib.Index(space="ip", dim=self.base.shape[1])
            self._graph.init_index(max_elements=len(self.base), M=GRAPH_M,
                                   ef_construction=GRAPH_EF_CONSTRUCTION)
            self._graph.add_items(self.base, np.arange(len(self.base)))
        self._graph.set_ef(max(GRAPH_EF, k))
        labels, distances = self._graph.knn_query(queries, k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)


def similar_pairs(vectors: np.ndarray, threshold: float, queries: Sequence[int] | None = None,
                  k: int = NEIGHBOURS, method: str = "auto"):
    """Pairs ``(i, j, similarity)`` with i < j and cosine similarity >= ``threshold``, among
    each query face's ``k`` nearest faces (every face when ``queries`` is None), most
    similar first, ties in (i, j) order: the k-NN graph's edges above the threshold."""
    queries = np.arange(len(vectors)) if queries is None else np.asarray(queries, np.int64)
    empty = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    if len(vectors) < 2 or not len(queries):
        return empty
    neighbours, sims = Neighbours(vectors, method).query(vectors[queries], k + 1)  # + itself
    rows = np.repeat(queries, neighbours.shape[1])
    cols = neighbours.ravel()
    keep = (sims.ravel() >= threshold) & (cols != rows) & (cols >= 0)
    low, high = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep]
    if not len(low):
        return empty
    key = np.unique(low * len(vectors) + high)  # a pair found from both ends counts once
    low, high = key // len(vectors), key % len(vectors)
    # Recomputed from the vectors: the order never depends on the index's arithmetic.
    similarity = np.einsum("ij,ij->i", vectors[low], vectors[high])
    keep = similarity >= threshold
    low, high, similarity = low[keep], high[keep], similarity[keep]
    order = np.lexsort((high, low, -similarity))
    return low[order], high[order], similarity[order]


# --- Clusters ------------------------------------------------------------------------------


def cluster_faces(embeddings, photo_ids: Sequence[Hashable],
                  bibs: Sequence[str | None] | None, threshold: float,
                  clusters: Sequence[int | None] | None = None, k: int = NEIGHBOURS,
                  method: str = "auto") -> np.ndarray:
    """Cluster one event's faces into runners; returns a label per face (0..n-1).

    Average-linkage agglomeration on cosine similarity: two clusters merge when the
    mean similarity of all their cross pairs is >= ``threshold``. Candidate merges are
    the edges of the faces' k-nearest-neighbour graph above the threshold
    (:func:`similar_pairs`), visited from the most similar pair down. Cannot-link
    constraints: two faces of one photo are two people, and two faces linked to
    different bibs are two people however alike they look, so such clusters never merge.

    ``bibs[i]`` is the bib linked to face i by geometry (None when none).

    ``clusters`` (a previous run's labels, None for a face not clustered yet) makes the
    run incremental: every previous cluster that still holds together is kept as it is,
    and only the other faces (new ones, and those of a cluster that no longer holds: two
    bibs or two faces of one photo since, or members left whose mean similarity fell
    under the threshold) look for neighbours and merge, into kept clusters or together.
    """
    vectors = normalised(embeddings)
    count = len(vectors)
    if len(photo_ids) != count or (bibs is not None and len(bibs) != count):
        raise ValueError("embeddings, photo_ids and bibs must have one entry per face")
    if clusters is not None and len(clusters) != count:
        raise ValueError("clusters must have one entry per face")
    bibs = list(bibs) if bibs is not None else [None] * count
    parent = list(range(count))
    # Unit vectors: the mean similarity of all cross pairs of A and B is sum(A)·sum(B)/(|A||B|),
    # so average linkage needs only each cluster's vector sum.
    sums = {i: vectors[i].astype(np.float64) for i in range(count)}
    sizes = {i: 1 for i in range(count)}
    photos = {i: {photo_ids[i]} for i in range(count)}
    cluster_bibs = {i: ({bibs[i]} if bibs[i] else set()) for i in range(count)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def merge(a: int, b: int) -> None:
        if sizes[a] < sizes[b]:
            a, b = b, a
        parent[b] = a
        sums[a] += sums.pop(b)
        sizes[a] += sizes.pop(b)
        photos[a] |= photos.pop(b)
        cluster_bibs[a] |= cluster_bibs.pop(b)

    queries = None
    if clusters is not None:
        loose = [i for i in range(count) if clusters[i] is None or clusters[i] < 0]
        members: dict[int, list[int]] = defaultdict(list)
        for i in range(count):
            if clusters[i] is not None and clusters[i] >= 0:
                members[int(clusters[i])].append(i)
        for indices in members.values():
            if _holds_together(vectors[indices], [photo_ids[i] for i in indices],
                               [bibs[i] for i in indices], threshold):
                for i in indices[1:]:
                    merge(root(indices[0]), i)
            else:
                loose += indices
        queries = sorted(loose)

    for i, j, _similarity in zip(*similar_pairs(vectors, threshold, queries, k, method)):
        a, b = root(int(i)), root(int(j))
        if a == b or photos[a] & photos[b] or len(cluster_bibs[a] | cluster_bibs[b]) > 1:
            continue
        if float(sums[a] @ sums[b]) / (sizes[a] * sizes[b]) < threshold:
            continue
        merge(a, b)

    roots = [root(i) for i in range(count)]
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(r, len(numbering)) for r in roots], dtype=np.int64)


def _holds_together(vectors: np.ndarray, photo_ids, bibs, threshold: float) -> bool:
    """Whether a previous cluster still obeys the rules it was built by: one face per photo,
    one bib at most, and a mean similarity over its pairs >= threshold (true of every
    cluster average linkage builds: a merge of two such clusters at a mean cross
    similarity >= threshold keeps it)."""
    if len(set(photo_ids)) < len(photo_ids) or len({bib for bib in bibs if bib}) > 1:
        return False
    size = len(vectors)
    if size < 2:
        return True
    total = vectors.astype(np.float64).sum(axis=0)
    mean = (float(total @ total) - size) / (size * (size - 1))
    return mean >= threshold - 1e-6  # float32 vectors: the rounding of the merges' own test


def stable_labels(groups: Sequence[int], previous: Sequence[int | None], first_free: int = 0
                  ) -> np.ndarray:
    """Cluster numbers for ``groups`` that keep each previous number where its faces still are.

    Each previous number goes to the group that holds most of its faces (ties: the lower
    group), each group keeps at most one previous number (the one of most of its faces),
    and groups left without one get new numbers from ``first_free`` up (at least above every
    previous number), so a re-run writes only the faces whose runner changed.
    """
    if len(groups) != len(previous):
        raise ValueError("groups and previous must have one entry per face")
    overlap: dict[tuple[int, int], int] = defaultdict(int)
    for group, number in zip(groups, previous):
        if number is not None and number >= 0:
            overlap[(int(group), int(number))] += 1
    given: dict[int, int] = {}
    used: set[int] = set()
    for (group, number), _faces in sorted(overlap.items(), key=lambda item: (-item[1], item[0])):
        if group not in given and number not in used:
            given[group] = number
            used.add(number)
    fresh = max([first_free - 1, *used, *(n for n in previous if n is not None)]) + 1
    labels = np.empty(len(groups), dtype=np.int64)
    for index, group in enumerate(groups):
        group = int(group)
        if group not in given:
            given[group] = fresh
            fresh += 1
        labels[index] = given[group]
    return labels


@dataclass(frozen=True)
class FaceLink:
    """A bib given to a face because the face clusters with faces where that bib was read."""

    photo_id: Hashable
    face_id: Hashable
    bib: str
    #: highest cosine similarity of this face to a face of the cluster that carries the bib
    confidence: float
    cluster: int


def propagate_bibs(labels: Sequence[int], photo_ids: Sequence[Hashable],
                   face_ids: Sequence[Hashable], bibs: Sequence[str | None], embeddings,
                   photo_bibs: dict[Hashable, set[str]] | None = None) -> list[FaceLink]:
    """Face-link tags: a cluster's single bib, given to its faces whose photo lacks that bib.

    ``bibs[i]`` is the bib geometry linked to face i (None when none). ``photo_bibs``
    maps a photo to every bib read in it, linked to a face or not; a photo that
    already has the bib gets nothing. A cluster holding two different bibs is ambiguous
    and propagates nothing. Within one photo a bib goes to one face at most (the
    most similar one), since one runner appears once per photo.
    """
    vectors = normalised(embeddings)
    count = len(vectors)
    if not (len(labels) == len(photo_ids) == len(face_ids) == len(bibs) == count):
        raise ValueError("labels, photo_ids, face_ids, bibs and embeddings must align")
    photo_bibs = photo_bibs or {}
    already: dict[Hashable, set[str]] = defaultdict(set)
    for photo, found in photo_bibs.items():
        already[photo] |= {bib for bib in found if bib}
    for photo, bib in zip(photo_ids, bibs):
        if bib:
            already[photo].add(bib)

    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        members[int(label)].append(index)

    # best candidate per (photo, bib), across clusters too
    best: dict[tuple[Hashable, str], FaceLink] = {}
    for label, indices in members.items():
        carried = {bibs[i] for i in indices if bibs[i]}
        if len(carried) != 1:
            continue
        bib = next(iter(carried))
        sources = vectors[[i for i in indices if bibs[i] == bib]]
        for i in indices:
            if bibs[i] or bib in already[photo_ids[i]]:
                continue
            confidence = float(np.max(sources @ vectors[i]))
            key = (photo_ids[i], bib)
            if key not in best or confidence > best[key].confidence:
                best[key] = FaceLink(photo_ids[i], face_ids[i], bib, confidence, label)

    # A face can carry one bib only: if two clusters would tag the same face (cannot
    # happen with cluster_faces labels, but labels may come from elsewhere) keep the best.
    per_face: dict[tuple[Hashable, Hashable], FaceLink] = {}
    for link in best.values():
        key = (link.photo_id, link.face_id)
        if key not in per_face or link.confidence > per_face[key].confidence:
            per_face[key] = link
    return sorted(per_face.values(), key=lambda link: (str(link.photo_id), str(link.face_id)))


def drop_ambiguous(links: Sequence[FaceLink], face_ids: Sequence[Hashable],
                   bibs: Sequence[str | None], embeddings, threshold: float,
                   method: str = "auto") -> list[FaceLink]:
    """The links whose face does not look as much like a face linked to another bib.

    Clustering puts a face with its nearest runner; when two runners look alike (twins,
    a team in one kit), "nearest" is a coin toss, and a wrong bib sends photos to the
    wrong person: no tag is better. A rival is any face with another bib (``bibs``: every
    reading linked to a face, the face's own included) at similarity >= ``threshold``.
    Each link's face asks for its nearest faces with a bib, more of them while all it got
    are above the threshold and carry its own bib (a runner read in many photos).
    """
    vectors = normalised(embeddings)
    if not (len(face_ids) == len(bibs) == len(vectors)):
        raise ValueError("face_ids, bibs and embeddings must align")
    linked = np.array([index for index, bib in enumerate(bibs) if bib], dtype=np.int64)
    if not links or not len(linked):
        return list(links)
    position = {face_id: index for index, face_id in enumerate(face_ids)}
    linked_bibs = np.array([bibs[index] for index in linked], dtype=object)
    search = Neighbours(vectors[linked], method)
    undecided = np.arange(len(links))
    ambiguous = np.zeros(len(links), dtype=bool)
    k = NEIGHBOURS
    while len(undecided):
        queries = vectors[[position[links[i].face_id] for i in undecided]]
        neighbours, sims = search.query(queries, k)
        above = sims >= threshold
        own = np.array([links[i].bib for i in undecided], dtype=object)[:, None]
        ambiguous[undecided] = (above & (linked_bibs[neighbours] != own)).any(axis=1)
        if k >= len(linked):
            break
        # Every neighbour above the threshold and none a rival: one may lie further out.
        undecided = undecided[~ambiguous[undecided] & above[:, -1]]
        k *= 4
    return [link for link, drop in zip(links, ambiguous) if not drop]
