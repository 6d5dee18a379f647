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


def _candidate_pairs(vectors: np.ndarray, threshold: float, block: int = 2048):
    """Pairs (i < j) with cosine similarity >= threshold, best first; blockwise so an
    event of tens of thousands of faces never holds the full n x n matrix."""
    pairs = []
    for start in range(0, len(vectors), block):
        sims = vectors[start:start + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        keep = rows < cols
        for i, j in zip(rows[keep], cols[keep]):
            pairs.append((float(sims[i - start, j]), int(i), int(j)))
    pairs.sort(key=lambda pair: -pair[0])
    return pairs


def cluster_faces(embeddings, photo_ids: Sequence[Hashable],
                  bibs: Sequence[str | None] | None, threshold: float) -> np.ndarray:
    """Cluster one event's faces into runners; returns a label per face (0..k-1).

    Average-linkage agglomeration on cosine similarity: two clusters merge when the
    mean similarity of all their cross pairs is >= ``threshold``. Candidate merges
    are visited from the most similar face pair down. Cannot-link constraints: two
    faces of one photo are two people, and two faces linked to different bibs are
    two people however alike they look, so such clusters never merge.

    ``bibs[i]`` is the bib linked to face i by geometry (None when none).
    """
    vectors = normalised(embeddings)
    count = len(vectors)
    if len(photo_ids) != count or (bibs is not None and len(bibs) != count):
        raise ValueError("embeddings, photo_ids and bibs must have one entry per face")
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

    for _, i, j in _candidate_pairs(vectors, threshold):
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
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(r, len(numbering)) for r in roots], dtype=np.int64)


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
