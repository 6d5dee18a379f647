"""The two nearest-neighbour structures an event's index file can hold (``mlpipeline.indexes``).

Both answer cosine similarity on normalised vectors, keep one vector per label (adding a
label again replaces its vector), and pickle into the index file.

- :class:`Graph`, an hnswlib graph, up to ``INVERTED_FROM`` vectors.
- :class:`Inverted`, past that: faiss's inverted file of 4-bit product-quantised codes scanned
  with SIMD ("fast scan"), whose best candidates are re-ranked on the exact vectors. On
  faces modelled on real SFace vectors (``bench/search.py ann``) a graph needs an ever longer
  candidate list as the event grows (1,000,000 faces: recall@10 0.890 at ef 150 in 0.92 ms,
  0.95 only past ef 300 in 1.8 ms), because the tenth nearest face is one of thousands of
  strangers at almost the same distance and each step of the walk waits on memory. Scanning a
  sixth of an inverted file's lists reads codes in order, 32 bytes a face, and finds 0.95 in
  under 1 ms; it is also built in about a minute where the graph took half an hour.
"""

import functools
import logging
import math

# faiss's loader logs at INFO every SIMD build it looks for before the one it loads.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

import faiss  # noqa: E402
import hnswlib  # noqa: E402
import numpy as np  # noqa: E402

from mlpipeline.vectors import normalised  # noqa: E402

#: an event's index changes from a graph to an inverted file when it reaches this many
#: vectors, and back when it falls under half of it (no flapping around one size)
INVERTED_FROM = 100_000

#: graph: links per vector: on faces modelled on real SFace vectors, 32 finds more of the
#: exact ten nearest than 16 in the same query time (200,000 faces: 0.969 at ef 150 against
#: 0.957 at ef 300), for a fifth more memory and twice the build time
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
#: graph: the candidate list of a query (hnswlib searches with max(ef, k))
HNSW_EF_SEARCH = 150

#: inverted file: lists per vector count, as 4 * sqrt(n) rounded to a power of two (4,096 lists
#: at 1,000,000); more lists find more per list scanned but each list costs a look-up table
LISTS_PER_ROOT = 4
#: inverted file: the share of lists a query scans (at 1,000,000 faces: a tenth finds 0.92 of
#: the exact ten nearest, a sixth 0.95)
PROBED_SHARE = 0.17
#: inverted file: candidates re-ranked on the exact vectors beyond the k asked for (the codes'
#: error is about the same score width whatever k, so this many more, not k times more:
#: 1,000,000 faces, k 10: 0.931 of the exact ten nearest with 90 more, 0.950 with 190)
RERANK_EXTRA = 200
#: inverted file: faiss's fast-scan kernel for one query at a time (its automatic choice
#: suits batches; this one answered 1,000,000 faces in 0.71 ms against 0.81 ms)
SINGLE_QUERY_SCAN = 10
#: inverted file: k-means is trained on at most this many vectors per list
TRAINING_PER_LIST = 64
#: inverted file: retrained when it has grown to this many times what it was trained on
REGROW_FACTOR = 2.0

# One thread per query: a web request or a worker task is one search, and the processes
# already use every core. Also keeps OpenMP from starting a thread pool before a fork.
faiss.omp_set_num_threads(1)


def build(labels: np.ndarray, vectors: np.ndarray):
    """The structure that suits this many vectors, holding them."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) >= INVERTED_FROM:
        return Inverted(labels, vectors)
    structure = Graph(np.shape(vectors)[1], len(labels) * 2)
    structure.add(labels, vectors)
    return structure


def suits(structure, count: int) -> bool:
    """Whether ``structure`` is still the right one for ``count`` vectors."""
    if isinstance(structure, Inverted):
        return INVERTED_FROM / 2 <= count <= REGROW_FACTOR * structure.trained_on
    return count < INVERTED_FROM


class Graph:
    """An hnswlib graph; removed labels are marked deleted and skipped by queries."""

    def __init__(self, dimension: int, capacity: int):
        self.dimension = dimension
        self.index = hnswlib.Index(space="cosine", dim=dimension)
        self.index.init_index(max_elements=max(capacity, 16), ef_construction=HNSW_EF_CONSTRUCTION,
                              M=HNSW_M)
        self.index.set_ef(HNSW_EF_SEARCH)

    @classmethod
    def wrapping(cls, index: hnswlib.Index) -> "Graph":
        """A graph around an index read from a file of the first format."""
        graph = cls.__new__(cls)
        graph.dimension, graph.index = index.dim, index
        index.set_ef(HNSW_EF_SEARCH)
        return graph

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.index.set_ef(HNSW_EF_SEARCH)  # not kept by hnswlib's own pickling

    @property
    def stored(self) -> int:
        """Entries held, removed ones included."""
        return self.index.get_current_count()

    def add(self, labels, vectors) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        needed = self.index.get_current_count() + len(labels)
        if needed > self.index.get_max_elements():
            self.index.resize_index(max(needed, self.index.get_max_elements() * 2))
        for label in set(labels.tolist()) & set(self.index.get_ids_list()):
            self.index.unmark_deleted(label)  # a row that left and came back (opt-out undone)
        self.index.add_items(vectors, labels)  # the cosine space normalises them itself

    def remove(self, labels) -> None:
        for label in labels:
            self.index.mark_deleted(int(label))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        found, distances = self.index.knn_query(query.reshape(1, -1), k=k)
        return [(int(label), float(1.0 - distance)) for label, distance in zip(found[0], distances[0])]

    def vectors(self, labels) -> np.ndarray:
        return np.asarray(self.index.get_items(list(labels)), dtype=np.float32)


@functools.cache
def _scanning(probes: int) -> faiss.SearchParametersIVF:
    # Made once: a new parameters object costs a tenth of a query.
    return faiss.SearchParametersIVF(nprobe=probes)


class Inverted:
    """faiss's inverted file of fast-scan PQ codes, with the exact vectors beside it.

    faiss numbers entries by row (position of insertion); ``_labels[row]`` is the database id
    and ``_alive[row]`` whether it still counts. A removed or replaced label only clears its
    row: the index is rebuilt when dead rows pass a share (``mlpipeline.indexes``).
    """

    def __init__(self, labels: np.ndarray, vectors: np.ndarray):
        count, self.dimension = vectors.shape
        lists = max(1, min(2 ** round(math.log2(LISTS_PER_ROOT * math.sqrt(count))),
                           count // 39))  # k-means wants 39 points per centroid
        subquantisers = self.dimension // 2 if self.dimension % 2 == 0 else self.dimension
        self.codes = faiss.index_factory(self.dimension, f"IVF{lists},PQ{subquantisers}x4fs",
                                         faiss.METRIC_INNER_PRODUCT)
        self.codes.implem = SINGLE_QUERY_SCAN
        vectors = normalised(vectors)
        training = np.random.default_rng(0).choice(count, min(count, TRAINING_PER_LIST * lists),
                                                   replace=False)
        self.codes.train(vectors[np.sort(training)])
        self._centroids = self.codes.quantizer.reconstruct_n(0, lists)
        self.trained_on = count
        self._exact = np.empty((0, self.dimension), dtype=np.float32)
        self._labels = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._size = self._live = 0
        self._rows: dict[int, int] | None = {}
        self._append(np.asarray(labels, dtype=np.int64), vectors)

    @property
    def lists(self) -> int:
        return self.codes.nlist

    @property
    def stored(self) -> int:
        return self._size

    @property
    def _row_of(self) -> dict[int, int]:
        """Each live label's row. Made when first needed: a search does not need it, and for
        a million vectors it is a second of work and a hundred megabytes."""
        if self._rows is None:
            alive = np.flatnonzero(self._alive[: self._size])
            self._rows = dict(zip(self._labels[alive].tolist(), alive.tolist()))
        return self._rows

    def __getstate__(self):
        state = {name: value for name, value in self.__dict__.items()
                 if name not in ("codes", "_rows", "_centroids")}
        for name in ("_exact", "_labels", "_alive"):
            state[name] = state[name][: self._size]  # not the spare capacity
        state["codes"] = faiss.serialize_index(self.codes)
        return state

    def __setstate__(self, state):
        state["codes"] = faiss.deserialize_index(state["codes"])
        state["codes"].implem = SINGLE_QUERY_SCAN  # a search setting, not kept in the file
        self.__dict__.update(state)
        self._rows = None
        self._centroids = self.codes.quantizer.reconstruct_n(0, self.codes.nlist)

    def _reserve(self, count: int) -> None:
        """Room for ``count`` more rows, doubling so that bursts of additions copy little."""
        needed = self._size + count
        if needed <= len(self._labels):
            return
        capacity = max(needed, 2 * len(self._labels))
        for name in ("_exact", "_labels", "_alive"):
            old = getattr(self, name)
            grown = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            grown[: self._size] = old[: self._size]
            setattr(self, name, grown)

    def add(self, labels, vectors) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels):
            self._append(labels, normalised(vectors))

    def _append(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """New rows for ``labels`` and their unit ``vectors``; a label's old row dies."""
        self.remove(labels.tolist())
        self._reserve(len(labels))
        rows = np.arange(self._size, self._size + len(labels))
        self._exact[rows], self._labels[rows], self._alive[rows] = vectors, labels, True
        self.codes.add_with_ids(vectors, rows)
        self._size += len(labels)
        self._live += len(labels)
        self._row_of.update(zip(labels.tolist(), rows.tolist()))

    def remove(self, labels) -> None:
        for label in labels:
            row = self._row_of.pop(int(label), None)
            if row is not None:
                self._alive[row] = False
                self._live -= 1

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        query = normalised(np.reshape(query, (1, -1)))  # cosine, as hnswlib's space is
        live = self._live
        k = min(k, live)
        if k <= 0:
            return []
        # Dead rows come back from the scan too: ask for enough that k live ones remain.
        asked = min(self._size, math.ceil((k + RERANK_EXTRA) * self._size / live))
        lists = self.codes.nlist
        probes = max(1, min(lists, round(PROBED_SHARE * lists)))
        # The lists nearest the query, found here: numpy's product over the centroids and a
        # partial sort take 0.03 ms where faiss's own coarse search (a heap of the probes)
        # took 0.15 ms, a seventh of the query at 1,000,000 faces.
        closeness = self._centroids @ query[0]
        while True:
            nearest = (np.argpartition(-closeness, probes - 1)[:probes] if probes < lists
                       else np.arange(lists)).astype(np.int64)
            rows = self._scan(query, asked, nearest, closeness[nearest])
            if rows[-1] < 0:  # fewer than asked: faiss pads with -1
                rows = rows[rows >= 0]
            if self._live < self._size:
                rows = rows[self._alive[rows]]
            # The lists scanned may hold fewer than k live vectors (a big k, a small event):
            # scan more rather than answer with fewer than there are.
            if len(rows) >= k or probes == lists:
                break
            probes = min(lists, 2 * probes)
        exact = self._exact[rows] @ query[0]
        best = np.argpartition(-exact, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
        best = best[np.argsort(-exact[best])]
        return list(zip(self._labels[rows[best]].tolist(), exact[best].tolist()))

    def _scan(self, query, asked: int, lists: np.ndarray, closeness: np.ndarray) -> np.ndarray:
        """The rows of the ``asked`` best codes in ``lists`` (faiss pads a short answer with -1)."""
        scores = np.empty((1, asked), dtype=np.float32)
        rows = np.empty((1, asked), dtype=np.int64)
        closeness = np.ascontiguousarray(closeness, dtype=np.float32)
        # The C++ call itself: faiss's Python wrapper takes the number of lists from the index
        # (shared by concurrent searches), this one from the search's own parameters.
        self.codes.search_preassigned_c(1, faiss.swig_ptr(query), asked, faiss.swig_ptr(lists),
                                        faiss.swig_ptr(closeness), faiss.swig_ptr(scores),
                                        faiss.swig_ptr(rows), False, _scanning(len(lists)))
        return rows[0]

    def vectors(self, labels) -> np.ndarray:
        rows = [self._row_of[int(label)] for label in labels]
        return self._exact[rows].copy()
