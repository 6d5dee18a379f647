"""The machine-learning steps of a photo, and the event-wide linking of faces to bibs.

Steps (registered in ``MlpipelineConfig.ready``) run inside the photo's
pipeline transaction (see :mod:`photos.pipeline`): whatever they write is
committed together with the step's "done" record, so a crash never leaves
half a result. Each step replaces its own earlier output, which makes running
it again harmless.

Order: faces, then bibs (the reader looks below each face first and the
geometry links each bib to the face above it), then the CLIP embedding.
"""

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count

from accounts import privacy
from mlpipeline import indexes, linking, loaded
from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules
from photos import derivatives
from photos.models import BibTag, Face, Photo
from photos.pipeline import PermanentStepError

logger = logging.getLogger(__name__)

# Faces and bibs are looked for on the photo at most this size: a 24 MP
# original costs four times the time of 2048 px for no more runners found.
ANALYSIS_SIZE = 2048
# CLIP looks at 224 px; decoding the web copy at twice that keeps resizing honest.
CLIP_DECODE_SIZE = 448
START_LIST_CACHE_SECONDS = 60


# --- Images ------------------------------------------------------------------------------

_image_cache = threading.local()


def _analysis_image(photo: Photo):
    """The upright photo at analysis size and its scale to the original's pixels.

    Faces and bibs of one photo run one after the other in one process: the
    decoded image is kept for the second step instead of decoding twice.
    """
    key = (photo.pk, photo.original.name)
    cached = getattr(_image_cache, "entry", None)
    if cached and cached[0] == key:
        return cached[1], cached[2]
    with photo.original.open("rb") as handle:
        data = handle.read()
    try:
        image, (width, _height) = derivatives.decode_upright(data, ANALYSIS_SIZE)
    except derivatives.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc
    scale = width / image.width
    _image_cache.entry = (key, image, scale)
    return image, scale


def _scaled(box, factor: float) -> list[float]:
    return [round(float(value) * factor, 1) for value in box]


# --- Faces -------------------------------------------------------------------------------


def detect_faces(photo: Photo) -> int:
    """Find and embed the photo's faces, replacing earlier ones; how many were found."""
    detector, embedder = loaded.face_detector(), loaded.face_embedder()
    detector.ensure_loaded()
    embedder.ensure_loaded()  # both or neither: faces without vectors could not be searched
    image, scale = _analysis_image(photo)
    found = detector.predict(image)
    vectors = embedder.predict(image, found) if found else np.empty((0, 0), dtype=np.float32)
    photo.faces.all().delete()
    Face.objects.bulk_create([
        Face(photo=photo, event_id=photo.event_id, box=_scaled(face.box, scale),
             score=float(face.score), embedding=vector.tolist(), model=embedder.signature)
        for face, vector in zip(found, vectors)
    ])
    # bulk_create skips the privacy guard: faces of an event without face search,
    # or not consented to, are made unsearchable before anything can find them.
    privacy.refresh_faces(photo.faces.all())
    indexes_changed(photo.event_id, indexes.FACES)
    return len(found)


# --- Bibs --------------------------------------------------------------------------------

_rules_cache: dict[int, tuple[float, tuple, BibRules]] = {}


def bib_rules_for(event) -> BibRules:
    """The event's bib rules, start list included (cached a minute per process)."""
    stamp = (event.updated_at, event.start_list.count())
    cached = _rules_cache.get(event.pk)
    if cached and cached[1] == stamp and time.monotonic() - cached[0] < START_LIST_CACHE_SECONDS:
        return cached[2]
    start_list = frozenset(bib for bib in event.start_list.values_list("bib", flat=True)
                           if bib.strip().isdigit())
    rules = BibRules(min_length=event.bib_min_length, max_length=event.bib_max_length,
                     min_value=event.bib_min_value, max_value=event.bib_max_value,
                     start_list=start_list or None,
                     ignore=frozenset(event.ignored_bibs_raw()),
                     min_confidence=PRODUCT_MIN_CONFIDENCE)
    _rules_cache[event.pk] = (time.monotonic(), stamp, rules)
    return rules


def read_bibs(photo: Photo) -> int:
    """Read the photo's bib numbers, link each to the face above it; how many were kept."""
    reader = loaded.bib_reader()
    reader.ensure_loaded()
    image, scale = _analysis_image(photo)
    faces = list(photo.faces.order_by("pk"))
    face_boxes = [_scaled(face.box, 1 / scale) for face in faces]
    rules = bib_rules_for(photo.event)
    # The rules steer the reader's second look to torsos where no keepable bib was read.
    readings = reader.predict(image, faces=face_boxes, keeps=rules.keeps)
    accepted = rules.accept(readings)

    manual = set(photo.bib_tags.filter(source=BibTag.Source.MANUAL).values_list("bib", flat=True))
    # An erased runner's bib is never tagged again, on photos uploaded later too.
    accepted = [bib for bib in accepted
                if bib.text not in manual and not privacy.is_bib_erased(photo.event, bib.text)]
    # Kept unconfirmed, linked to no face: the organiser reviews them, runners never see them.
    off_list = [bib for bib in rules.off_list(readings, accepted)
                if bib.text not in manual and not privacy.is_bib_erased(photo.event, bib.text)]
    pairs = linking.assign_bibs_to_faces([bib.box for bib in accepted], face_boxes)
    face_of = {bib_index: faces[face_index] for bib_index, face_index, _conf in pairs}

    photo.bib_tags.filter(source=BibTag.Source.OCR).delete()
    # What OCR reads outranks what face linking guessed for this photo.
    photo.bib_tags.filter(source=BibTag.Source.FACE_LINK,
                          bib__in=[bib.text for bib in accepted]).delete()
    BibTag.objects.bulk_create([
        BibTag(photo=photo, bib=bib.text, confidence=float(bib.confidence),
               source=BibTag.Source.OCR, confirmed=bib.confirmed,
               box=_scaled(bib.box, scale), face=face_of.get(index))
        for index, bib in enumerate(accepted)
    ])
    # A face-link tag of a bib since taken off the start list stays as it is.
    linked_here = set(photo.bib_tags.filter(source=BibTag.Source.FACE_LINK)
                      .values_list("bib", flat=True))
    BibTag.objects.bulk_create([
        BibTag(photo=photo, bib=bib.text, confidence=bib.confidence, source=BibTag.Source.OCR,
               confirmed=False, box=_scaled(bib.box, scale))
        for bib in off_list if bib.text not in linked_here
    ])
    linked = {face.pk: accepted[index].text for index, face in face_of.items()}
    for face in faces:
        bib = linked.get(face.pk, "")
        if face.bib != bib:
            # Not a privacy change, so no index update is needed: update() skips the signals.
            Face.objects.filter(pk=face.pk).update(bib=bib)
    # A bib whose runner opted out takes its face out of search at once.
    privacy.refresh_faces(photo.faces.all())
    if accepted:
        links_changed(photo.event_id)
    return len(accepted)


# --- CLIP --------------------------------------------------------------------------------


def embed_image(photo: Photo) -> None:
    """The CLIP embedding of the photo, from its web copy (CLIP looks at 224 px)."""
    embedder = loaded.clip_embedder()
    embedder.ensure_loaded()
    with photo.web.open("rb") as handle:
        data = handle.read()
    try:
        image, _size = derivatives.decode_upright(data, CLIP_DECODE_SIZE)
    except derivatives.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc
    photo.clip_embedding = embedder.predict(image).tolist()
    photo.clip_model = embedder.signature
    photo.save(update_fields=["clip_embedding", "clip_model", "updated_at"])


# --- Keeping indexes and links in step ---------------------------------------------------

_pending = threading.local()


def _once_on_commit(key: tuple, callback) -> None:
    """Run ``callback`` after the commit, once per key however often it is asked for."""
    pending = getattr(_pending, "keys", None)
    if pending is None:
        pending = _pending.keys = set()
    if key in pending:
        return
    pending.add(key)

    def run():
        pending.discard(key)
        try:
            callback()
        except Exception:
            # The broker may be down: the next change, or rebuild_indexes, catches up.
            logger.exception("could not schedule %s", key)

    transaction.on_commit(run)


def indexes_changed(event_id: int, kind: str) -> None:
    """The event's ``kind`` embeddings changed: update its index soon after the commit."""
    if settings.SEARCH_BACKEND == "pgvector":
        return  # PostgreSQL keeps its own indexes in step
    from mlpipeline import tasks

    _once_on_commit(("index", event_id, kind),
                    lambda: tasks.schedule(tasks.sync_index, event_id, kind))


def links_changed(event_id: int) -> None:
    from mlpipeline import tasks

    _once_on_commit(("links", event_id), lambda: tasks.schedule(tasks.link_event, event_id))


# --- Linking faces and bibs across an event ----------------------------------------------


@dataclass(frozen=True)
class LinkResult:
    faces: int
    clusters: int
    face_link_tags: int


def link_event(event_id: int) -> LinkResult:
    """Cluster the event's faces into runners and carry read bibs to their other photos.

    Runs after a burst of photos is processed (debounced, see ``links_changed``)
    and recomputes every ``face-link`` tag of the event from scratch, so it is
    safe to run twice and a corrected OCR tag or a deleted photo is reflected at
    once. Only faces of the event's main face model are clustered together.
    """
    faces = Face.objects.filter(event_id=event_id, embedding__isnull=False)
    model = (faces.order_by().values("model").annotate(count=Count("pk"))
             .order_by("-count").values_list("model", flat=True).first())
    rows = list(faces.filter(model=model).order_by("pk")
                .values_list("pk", "photo_id", "bib", "embedding")) if model else []
    links, labels = [], np.empty(0, dtype=np.int64)
    if rows:
        face_ids = [row[0] for row in rows]
        photo_ids = [row[1] for row in rows]
        bibs = [row[2] or None for row in rows]
        vectors = np.stack([np.asarray(row[3], dtype=np.float32) for row in rows])
        threshold = link_threshold(model)
        labels = linking.cluster_faces(vectors, photo_ids, bibs, threshold)
        # Only bibs a person would trust count as "already on the photo".
        photo_bibs: dict[int, set[str]] = {}
        for photo_id, bib in (BibTag.objects.filter(photo__event_id=event_id)
                              .exclude(source=BibTag.Source.FACE_LINK)
                              .exclude(source=BibTag.Source.OCR, confirmed=False)
                              .values_list("photo_id", "bib")):
            photo_bibs.setdefault(photo_id, set()).add(bib)
        links = linking.propagate_bibs(labels, photo_ids, face_ids, bibs, vectors, photo_bibs)
        links = _unambiguous(links, face_ids, bibs, vectors, threshold)
    with transaction.atomic():
        _save_clusters(rows, labels)
        created = _replace_face_links(event_id, links)
        # New clusters may join an opted-out runner's faces with faces where the bib
        # is hidden: those must leave search too.
        if privacy.may_block_faces(event_id):
            privacy.refresh_faces(Face.objects.filter(event_id=event_id))
    result = LinkResult(faces=len(rows), clusters=len(set(labels.tolist())),
                        face_link_tags=created)
    logger.info("event %s linked: %s", event_id, result)
    return result


def _unambiguous(links, face_ids, bibs, vectors, threshold) -> list:
    """Drop a link when the face looks as much like a runner with another bib.

    Clustering puts a face with its nearest runner; when two runners look alike
    (twins, a team in one kit), "nearest" is a coin toss, and a wrong bib sends
    photos to the wrong person: no tag is better.
    """
    position = {face_id: index for index, face_id in enumerate(face_ids)}
    linked = [index for index, bib in enumerate(bibs) if bib]
    kept = []
    for link in links:
        vector = vectors[position[link.face_id]]
        rivals = [index for index in linked if bibs[index] != link.bib]
        if rivals and float(np.max(vectors[rivals] @ vector)) >= threshold:
            continue
        kept.append(link)
    return kept


# Thresholds of face models no longer produced: an event's faces keep their vectors
# (and can still be clustered) until its photos are embedded again.
RETIRED_MATCH_THRESHOLDS = {
    "dlib-resnet-v1@1": 0.95,  # one descriptor per face, without its mirror image
}


def _embedder_of(signature: str):
    """The embedder class that produces ``signature`` vectors, or None for a retired one."""
    from mlpipeline.faces import EMBEDDERS

    return next((embedder for embedder in EMBEDDERS.values()
                 if f"{embedder.name}@{embedder.version}" == signature), None)


def match_threshold(signature: str) -> float:
    """The similarity above which two faces of ``signature`` are the same person."""
    embedder = _embedder_of(signature)
    if embedder is not None:
        return embedder.match_threshold
    if signature in RETIRED_MATCH_THRESHOLDS:
        return RETIRED_MATCH_THRESHOLDS[signature]
    raise ValueError(f"No known face model {signature!r}.")


def link_threshold(signature: str) -> float:
    """The similarity above which event linking takes two faces of ``signature`` as one
    runner: the model's own linking threshold where it has one, else its match threshold."""
    embedder = _embedder_of(signature)
    if embedder is not None and embedder.link_threshold:
        return embedder.link_threshold
    return match_threshold(signature)


def _save_clusters(rows, labels) -> None:
    changed = [Face(pk=row[0], cluster=int(label)) for row, label in zip(rows, labels)]
    # Cluster numbers are not a privacy change: bulk_update without signals is right here.
    Face.objects.bulk_update(changed, ["cluster"], batch_size=1000)


def _replace_face_links(event_id: int, links) -> int:
    wanted = {(link.photo_id, link.bib): link for link in links}
    existing = BibTag.objects.select_for_update().filter(photo__event_id=event_id,
                                                         source=BibTag.Source.FACE_LINK)
    kept = set()
    for tag in existing:
        link = wanted.get((tag.photo_id, tag.bib))
        if link is None:
            tag.delete()
            continue
        kept.add((tag.photo_id, tag.bib))
        if tag.face_id != link.face_id or abs(tag.confidence - link.confidence) > 1e-6:
            tag.face_id, tag.confidence = link.face_id, link.confidence
            tag.save(update_fields=["face", "confidence"])
    new = [BibTag(photo_id=link.photo_id, bib=link.bib, confidence=link.confidence,
                  source=BibTag.Source.FACE_LINK, confirmed=True, face_id=link.face_id)
           for key, link in wanted.items() if key not in kept]
    # A tag read or set by hand since the links were computed wins (unique per photo and bib).
    BibTag.objects.bulk_create(new, ignore_conflicts=True)
    return len(wanted)
