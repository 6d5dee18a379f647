"""Linking faces and bibs across an event: who is who, and which bib is on which photo.

The pure algorithms are in :mod:`mlpipeline.linking`; this module reads an
event's faces and tags, runs them, and writes the clusters and ``face-link``
tags back. ``tasks.link_event`` runs it after a burst of photos.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Q

from mlpipeline import corrections, linking
from mlpipeline.inference import registry
from photos.models import BibTag, Face, RejectedReading
from photos.tags import shown_tags

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkResult:
    faces: int
    clusters: int
    face_link_tags: int
    #: faces whose cluster was written (new faces, and those whose runner changed)
    faces_moved: int = 0
    #: face-link tags created, changed or deleted
    tags_written: int = 0


def link_event(event_id: int, full: bool = False) -> LinkResult:
    """Cluster the event's faces into runners and carry read bibs to their other photos.

    Runs after a burst of photos is processed (debounced, see ``tasks.links_changed``).
    Incremental: the event's clusters that still hold together stay as they are, and the
    faces not clustered yet (the burst's) look for their nearest faces and join those
    runners or form new ones (``linking.cluster_faces``); ``full`` clusters every face
    again. Either way a cluster keeps its number, so only faces whose runner changed are
    written. The ``face-link`` tags are recomputed from the clusters and the tags of the
    whole event, and only the differences written: safe to run twice, and a corrected OCR
    tag or a deleted photo is reflected at once. Only faces of the event's main face
    model are clustered together.
    """
    faces = Face.objects.filter(event_id=event_id, embedding__isnull=False)
    model = (faces.order_by().values("model").annotate(count=Count("pk"))
             .order_by("-count").values_list("model", flat=True).first())
    rows = list(faces.filter(model=model).order_by("pk")
                .values_list("pk", "photo_id", "bib", "cluster", "embedding")) if model else []
    links, labels, previous = [], np.empty(0, dtype=np.int64), []
    # Bibs confirmed somewhere in the event (start list, by hand): their face-link tags are
    # confirmed too; one carried from probable readings only stays probable (confirmed=False).
    confirmed_bibs: set[str] = set()
    if rows:
        face_ids = [row[0] for row in rows]
        photo_ids = [row[1] for row in rows]
        bibs = [row[2] or None for row in rows]
        previous = [row[3] for row in rows]
        vectors = np.stack([np.asarray(row[4], dtype=np.float32) for row in rows])
        threshold = registry.link_threshold(model)
        # Every reading linked to a face keeps two faces apart (two bibs, two people)...
        groups = linking.cluster_faces(vectors, photo_ids, bibs, threshold,
                                       clusters=None if full else previous)
        # New numbers above every number in the event, other models' faces included: a
        # search by cluster must never join two runners.
        top = Face.objects.filter(event_id=event_id).aggregate(top=Max("cluster"))["top"]
        labels = linking.stable_labels(groups, previous, 0 if top is None else top + 1)
        # ...but only bibs a person would trust count as "already on the photo" and are
        # carried over: without a start list, the probable readings only.
        photo_bibs: dict[int, set[str]] = {}
        # An unconfirmed correction is neither carried nor "already there": a link onto its
        # photo is then the face's own word for it (mlpipeline.corrections).
        for photo_id, bib, confirmed, source in (
                # A timing tag is a guess from the clock: never carried to other photos.
                shown_tags(event_id).exclude(source__in=[BibTag.Source.FACE_LINK,
                                                         BibTag.Source.TIMING])
                .exclude(Q(confirmed=False) & ~Q(read_as=""))
                .values_list("photo_id", "bib", "confirmed", "source")):
            photo_bibs.setdefault(photo_id, set()).add(bib)
            if confirmed or source == BibTag.Source.MANUAL:
                confirmed_bibs.add(bib)
        trusted = [bib if bib and bib in photo_bibs.get(photo_id, ()) else None
                   for bib, photo_id in zip(bibs, photo_ids)]
        links = linking.propagate_bibs(labels, photo_ids, face_ids, trusted, vectors, photo_bibs)
        links = linking.drop_ambiguous(links, face_ids, bibs, vectors, threshold)
    with transaction.atomic():
        moved = _save_clusters(rows, labels, previous)
        links, _corrections = corrections.confirm_corrected_readings(event_id, links)
        # New clusters may join an opted-out runner's faces with faces where the bib is
        # hidden: the database re-decides every cluster this write touched.
        created, written = _replace_face_links(event_id, links, confirmed_bibs)
    result = LinkResult(faces=len(rows), clusters=len(set(labels.tolist())),
                        face_link_tags=created, faces_moved=moved, tags_written=written)
    logger.info("event %s linked (%s): %s", event_id, "full" if full else "incremental", result)
    return result


def _save_clusters(rows, labels, previous) -> int:
    changed = [Face(pk=row[0], cluster=int(label))
               for row, label, before in zip(rows, labels, previous) if before != label]
    # bulk_update goes through FaceQuerySet.update: the database applies the privacy rule
    # to the new clusters and the indexes are told.
    Face.objects.bulk_update(changed, ["cluster"], batch_size=1000)
    return len(changed)


def _replace_face_links(event_id: int, links, confirmed_bibs) -> tuple[int, int]:
    # A bib a person rejected on a photo is not carried back onto it by face.
    rejected = set(RejectedReading.objects.filter(photo__event_id=event_id)
                   .values_list("photo_id", "bib"))
    wanted = {(link.photo_id, link.bib): link for link in links
              if (link.photo_id, link.bib) not in rejected}
    existing = BibTag.objects.select_for_update().filter(photo__event_id=event_id,
                                                         source=BibTag.Source.FACE_LINK)
    kept, written = set(), 0
    for tag in existing:
        link = wanted.get((tag.photo_id, tag.bib))
        if link is None:
            tag.delete()
            written += 1
            continue
        kept.add((tag.photo_id, tag.bib))
        confirmed = link.bib in confirmed_bibs
        if (tag.face_id != link.face_id or abs(tag.confidence - link.confidence) > 1e-6
                or tag.confirmed != confirmed):
            tag.face_id, tag.confidence, tag.confirmed = link.face_id, link.confidence, confirmed
            tag.save(update_fields=["face", "confidence", "confirmed"])
            written += 1
    new = [BibTag(photo_id=link.photo_id, bib=link.bib, confidence=link.confidence,
                  source=BibTag.Source.FACE_LINK, confirmed=link.bib in confirmed_bibs,
                  face_id=link.face_id)
           for key, link in wanted.items() if key not in kept]
    # A face says more than the timing: its tag replaces a timing tag of the same bib.
    timing = [tag.pk for tag in BibTag.objects.filter(photo__event_id=event_id,
                                                      source=BibTag.Source.TIMING)
              if (tag.photo_id, tag.bib) in wanted]
    BibTag.objects.filter(pk__in=timing).delete()
    # A tag read or set by hand since the links were computed wins (unique per photo and bib).
    BibTag.objects.bulk_create(new, ignore_conflicts=True)
    return len(wanted), written + len(new)
