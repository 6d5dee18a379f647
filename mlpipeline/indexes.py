"""Approximate nearest-neighbour indexes over the embeddings in PostgreSQL.

The database is the source of truth. With ``SEARCH_BACKEND=hnswlib`` (one
machine, the default) each event has one index per embedding kind and model, in a
file under ``INDEX_DIR``: an hnswlib graph, or past a hundred thousand vectors an
inverted file of quantised vectors (``mlpipeline.ann`` says why); with
``SEARCH_BACKEND=pgvector`` the
partial HNSW indexes PostgreSQL keeps itself answer the same queries, for
deployments where several machines serve search.

Keeping the files in step: saving or deleting a ``Face``, or a photo's CLIP
embedding, schedules :func:`sync` for that event and kind once the transaction
commits (see ``mlpipeline.signals``). A sync compares the ids in the file with
the ids in the database and applies the difference, so it is idempotent,
order-independent and never loses a change: a burst of a thousand photos costs
one sync, not a thousand. Files are replaced atomically (write, fsync, rename),
so a crash leaves the previous index, never a torn one.

Searches re-check their hits against the database (``searchable``), so a
runner who opts out disappears from results at once, before the next sync.
"""

import fcntl
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Func
from pgvector.django import CosineDistance, VectorField

from events.models import Event
from mlpipeline import ann
from mlpipeline.inference import registry
from mlpipeline.vectors import normalised
from photos.models import Face, Photo

logger = logging.getLogger(__name__)

FACES = "faces"
CLIP = "clip"
KINDS = (FACES, CLIP)

# Marked-deleted entries still cost memory and search time; past this share the
# index is rebuilt from the database instead of patched.
REBUILD_WHEN_DELETED_SHARE = 0.25
#: the candidate list of PostgreSQL's HNSW indexes (m = 16, photos/migrations/_hnsw.py): the
#: length hnswlib's graphs needed at M = 16 (``ann.HNSW_EF_SEARCH`` is for M = 32)
PGVECTOR_EF_SEARCH = 300
#: a selfie search first asks for this many neighbours, then twice as many while the last
#: one is still a match (:func:`candidates`): most runners have fewer photos than this, and
#: a query's cost grows with what it asks
FIRST_CANDIDATES = 64
#: pgvector's HNSW returns at most ``hnsw.ef_search`` rows (and its limit is 1000), before
#: the event's filter: iterative scans go on until the query's LIMIT is met
PGVECTOR_MAX_EF_SEARCH = 1000
#: 2: ``index`` is an ``ann`` structure; 1 (read still): a bare hnswlib index
FILE_FORMAT = 2
#: vectors drawn at random from an index (once per file loaded) to tell a query's ordinary
#: scores from those that stand out (search/outfit.py): enough for a median and its spread
SAMPLE_SIZE = 1000


@dataclass
class SyncResult:
    added: int = 0
    removed: int = 0
    rebuilt: list[str] = field(default_factory=list)
    files: int = 0


@dataclass(frozen=True)
class Mismatch:
    event_id: int
    kind: str
    model: str
    missing: int  # in the database, not in the index
    extra: int  # in the index, not (or no longer searchable) in the database
    wrong_vectors: int

    def __str__(self):
        return (f"event {self.event_id} {self.kind} {self.model}: {self.missing} missing, "
                f"{self.extra} extra, {self.wrong_vectors} with a different vector")


# --- What the database holds -------------------------------------------------------------


def _rows(kind: str, event_id: int, model: str | None = None):
    """The searchable rows of one event and kind, as (id, vector) querysets."""
    if kind == FACES:
        rows = Face.objects.filter(event_id=event_id, searchable=True, embedding__isnull=False)
        return rows.filter(model=model) if model else rows
    if kind == CLIP:
        rows = Photo.objects.filter(event_id=event_id, clip_embedding__isnull=False)
        return rows.filter(clip_model=model) if model else rows
    raise ValueError(f"Unknown index kind {kind!r}; known: {KINDS}.")


def _model_field(kind: str) -> str:
    return "model" if kind == FACES else "clip_model"


def _vector_field(kind: str) -> str:
    return "embedding" if kind == FACES else "clip_embedding"


def models_in_database(kind: str, event_id: int) -> list[str]:
    return sorted(set(_rows(kind, event_id).order_by().values_list(_model_field(kind), flat=True)
                      .distinct()))


def _vectors(kind: str, event_id: int, model: str, ids=None) -> tuple[np.ndarray, np.ndarray]:
    rows = _rows(kind, event_id, model)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    pairs = list(rows.order_by("pk").values_list("pk", _vector_field(kind)))
    if not pairs:
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
    ids_array = np.fromiter((pk for pk, _vector in pairs), dtype=np.int64, count=len(pairs))
    vectors = np.stack([np.asarray(vector, dtype=np.float32) for _pk, vector in pairs])
    return ids_array, vectors


# --- Files -------------------------------------------------------------------------------


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in model)


def index_path(event_id: int, kind: str, model: str) -> Path:
    return _event_folder(event_id) / f"{kind}--{_slug(model)}.hnsw"


def _index_files(event_id: int, kind: str) -> list[Path]:
    return sorted(_event_folder(event_id).glob(f"{kind}--*.hnsw"))


def _existing(event_id: int, kind: str) -> dict[str, tuple[Path, dict | None]]:
    """Index files of one event and kind, read once, by the model recorded inside each;
    an unreadable file is keyed by its name and comes with None (it gets rebuilt)."""
    found = {}
    for path in _index_files(event_id, kind):
        try:
            data = _read(path)
        except Exception:
            logger.warning("unreadable index file %s: it will be rebuilt", path, exc_info=True)
            found[path.stem.split("--", 1)[1]] = (path, None)
        else:
            found[data["model"]] = (path, data)
    return found


def _event_folder(event_id: int) -> Path:
    return Path(settings.INDEX_DIR) / f"event-{event_id}"


@contextmanager
def _locked(event_id: int, kind: str) -> Iterator[None]:
    """One writer per event and kind, across processes and machines sharing INDEX_DIR."""
    folder = _event_folder(event_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{kind}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> dict:
    # Only files this module wrote, under INDEX_DIR, are ever unpickled.
    with open(path, "rb") as handle:
        data = pickle.load(handle)
    if data.get("format") == 1:
        data.update(format=FILE_FORMAT, index=ann.Graph.wrapping(data["index"]))
    elif data.get("format") != FILE_FORMAT:
        raise ValueError(f"{path}: unknown index format {data.get('format')!r}")
    return data


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as output:
            pickle.dump(data, output, protocol=pickle.HIGHEST_PROTOCOL)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def _build(kind: str, event_id: int, model: str) -> dict:
    ids, vectors = _vectors(kind, event_id, model)
    index = ann.build(ids, vectors)
    return {"format": FILE_FORMAT, "event_id": event_id, "kind": kind, "model": model,
            "dimension": int(vectors.shape[1]), "ids": ids, "index": index}


# --- Keeping files in step ---------------------------------------------------------------


def sync(event_id: int, kind: str) -> SyncResult:
    """Bring the event's index files of ``kind`` in line with the database."""
    result = SyncResult()
    if not _event_folder(event_id).exists() and not Event.objects.filter(pk=event_id).exists():
        return result  # no such event (deleted before its sync ran): leave no folder behind
    with _locked(event_id, kind):
        files = _existing(event_id, kind)
        wanted = models_in_database(kind, event_id)
        written = set()
        for model in wanted:
            path = index_path(event_id, kind, model)
            written.add(path)
            old_path, data = files.get(model, (None, None))
            if data is None:
                data = _build(kind, event_id, model)
                result.rebuilt.append(model)
                result.added += len(data["ids"])
            else:
                added, removed, rebuilt = _patch(data, kind, event_id, model)
                result.added += added
                result.removed += removed
                if rebuilt:
                    result.rebuilt.append(model)
                if not (added or removed or rebuilt) and old_path == path:
                    continue
            _write(path, data)
            result.files += 1
            if old_path is not None and old_path != path:
                old_path.unlink(missing_ok=True)
        for model, (path, data) in files.items():
            if model not in wanted and path not in written:  # no searchable rows left
                result.removed += len(data["ids"]) if data else 0
                path.unlink(missing_ok=True)
    logger.info("index sync event %s %s: %s", event_id, kind, result)
    return result


def _patch(data: dict, kind: str, event_id: int, model: str) -> tuple[int, int, bool]:
    in_index = set(data["ids"].tolist())
    in_database = set(_rows(kind, event_id, model).values_list("pk", flat=True))
    to_add = in_database - in_index
    to_remove = in_index - in_database
    if not to_add and not to_remove:
        return 0, 0, False
    index = data["index"]
    deleted_after = index.stored - len(in_index) + len(to_remove)
    if (deleted_after > REBUILD_WHEN_DELETED_SHARE * max(index.stored, 1)
            or not ann.suits(index, len(in_database))):
        data.update(_build(kind, event_id, model))
        return len(to_add), len(to_remove), True
    index.remove(to_remove)
    if to_add:
        ids, vectors = _vectors(kind, event_id, model, to_add)
        index.add(ids, vectors)
        to_add = set(ids.tolist())
    data["ids"] = np.array(sorted((in_index - to_remove) | to_add), dtype=np.int64)
    return len(to_add), len(to_remove), False


def rebuild(event_id: int, kinds=KINDS) -> SyncResult:
    """Throw the event's index files away and build them again from the database."""
    result = SyncResult()
    for kind in kinds:
        with _locked(event_id, kind):
            for path in _index_files(event_id, kind):
                path.unlink(missing_ok=True)
            for model in models_in_database(kind, event_id):
                data = _build(kind, event_id, model)
                _write(index_path(event_id, kind, model), data)
                result.added += len(data["ids"])
                result.rebuilt.append(f"{kind}:{model}")
                result.files += 1
    return result


def check(event_id: int, kinds=KINDS, vectors: bool = True) -> list[Mismatch]:
    """Differences between the index files and the database (empty: they agree)."""
    if settings.SEARCH_BACKEND == "pgvector":
        return []  # PostgreSQL's own indexes cannot drift from its tables
    problems = []
    for kind in kinds:
        files = _existing(event_id, kind)
        for model in sorted(set(files) | set(models_in_database(kind, event_id))):
            expected = set(_rows(kind, event_id, model).values_list("pk", flat=True))
            _path, data = files.get(model, (None, None))
            actual = set(data["ids"].tolist()) if data else set()
            wrong = 0
            if data and vectors:
                common = sorted(expected & actual)
                if common:
                    ids, stored = _vectors(kind, event_id, model, common)
                    indexed = data["index"].vectors(ids.tolist())
                    # The index keeps vectors normalised; compare directions.
                    stored = normalised(stored)
                    wrong = int((np.abs(indexed - stored).max(axis=1) > 1e-4).sum())
            missing, extra = len(expected - actual), len(actual - expected)
            if missing or extra or wrong:
                problems.append(Mismatch(event_id, kind, model, missing, extra, wrong))
    return problems


# --- Searching ---------------------------------------------------------------------------

_cache: dict[Path, tuple[tuple[int, int], dict]] = {}
_cache_lock = threading.Lock()


def _loaded(path: Path) -> dict | None:
    """The index in ``path``, read again only when the file was replaced."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_ino)
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        data = _read(path)
        _cache[path] = (stamp, data)
        return data


def nearest(event_id: int, kind: str, model: str, vector, k: int) -> list[tuple[int, float]]:
    """Up to ``k`` (id, cosine similarity) pairs, most similar first."""
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    if settings.SEARCH_BACKEND == "pgvector":
        return _nearest_pgvector(event_id, kind, model, query[0], k)
    data = _loaded(index_path(event_id, kind, model))
    if data is None or not len(data["ids"]):
        return []
    if data["dimension"] != query.shape[1]:
        raise ValueError(f"A {query.shape[1]}-d query cannot search a {data['dimension']}-d "
                         f"index of {model}.")
    return data["index"].search(query[0], min(k, len(data["ids"])))


def candidates(search, threshold: float, limit: int) -> list[tuple[int, float]]:
    """The hits of ``search(k)`` (id, similarity, best first) at or above ``threshold``, up
    to ``limit``: asked for FIRST_CANDIDATES first and widened while the last hit is still
    at or above the threshold, so a selfie costs what its own matches need."""
    k = min(FIRST_CANDIDATES, limit)
    while True:
        hits = search(k)
        if len(hits) < k or hits[-1][1] < threshold or k >= limit:
            return [hit for hit in hits if hit[1] >= threshold]
        k = min(limit, 2 * k)


def nearest_matches(event_id: int, kind: str, model: str, vector, threshold: float,
                    limit: int) -> list[tuple[int, float]]:
    """Every (id, similarity) at or above ``threshold``, most similar first, at most ``limit``."""
    return candidates(lambda k: nearest(event_id, kind, model, vector, k), threshold, limit)


def pgvector_search_settings(k: int) -> list[str]:
    """The settings (for ``SET LOCAL``, inside the query's transaction) with which pgvector's
    HNSW can answer ``k`` rows of one event from an index over every event."""
    return [f"SET LOCAL hnsw.ef_search = {min(PGVECTOR_MAX_EF_SEARCH, max(PGVECTOR_EF_SEARCH, k))}",
            # Without it the event filter runs on the ef_search rows the index gave, and a
            # big event beside a small one leaves the small one's search with fewer rows.
            "SET LOCAL hnsw.iterative_scan = relaxed_order"]


def sample(event_id: int, kind: str, model: str, size: int = SAMPLE_SIZE) -> np.ndarray:
    """Up to ``size`` of the event's vectors (normalised), drawn at random: with hnswlib
    from the index file, once per file loaded; empty when the event has no index yet."""
    if settings.SEARCH_BACKEND == "pgvector":
        rows = list(_rows(kind, event_id, model).order_by("?")
                    .values_list(_vector_field(kind), flat=True)[:size])
        return normalised(np.array(rows, dtype=np.float32)) if rows else np.empty((0, 0), np.float32)
    data = _loaded(index_path(event_id, kind, model))
    if data is None or not len(data["ids"]):
        return np.empty((0, 0), dtype=np.float32)
    drawn = data.get("sample")
    if drawn is None or len(drawn) < min(size, len(data["ids"])):
        chosen = np.random.default_rng(0).choice(data["ids"], min(size, len(data["ids"])),
                                                 replace=False)
        drawn = data["index"].vectors(chosen.tolist())
        data["sample"] = drawn  # the cached file's: dropped with it when the file changes
    return drawn[:size]


class _VectorCast(Func):
    template = "(%(expressions)s)::vector(%(dimensions)d)"

    def __init__(self, column: str, dimensions: int):
        super().__init__(F(column), dimensions=dimensions,
                         output_field=VectorField(dimensions=dimensions))


def _nearest_pgvector(event_id, kind, model, query, k) -> list[tuple[int, float]]:
    dimensions = (registry.face_vector_dimensions() if kind == FACES
                  else registry.clip_vector_dimensions()).get(model)
    column = _vector_field(kind)
    # The same cast and model filter as the partial index, so PostgreSQL uses it.
    expression = _VectorCast(column, dimensions) if dimensions else F(column)
    rows = (_rows(kind, event_id, model)
            .annotate(distance=CosineDistance(expression, query.tolist()))
            .order_by("distance").values_list("pk", "distance")[:k])
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in pgvector_search_settings(k):
            cursor.execute(statement)
        found = list(rows)
    # A relaxed-order scan may return rows slightly out of order.
    return sorted(((pk, 1.0 - float(distance)) for pk, distance in found), key=lambda hit: -hit[1])
