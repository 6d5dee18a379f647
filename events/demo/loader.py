"""The demo event's photos: drawn by :mod:`events.demo.scenes`, taken in like any upload.

They go through the real ingestion (checks, private original, a Photo row)
and the real processing (derivatives, faces, bibs, CLIP where its weights
are, face linking): by default the Celery worker does it in the background,
as for an upload; ``process_here`` does it in this process, for a machine
without a worker and for tests.
"""

import io
from dataclasses import dataclass, field

from django.conf import settings

from events.demo import scenes
from photos import services
from photos.models import Photo


@dataclass
class DemoPhotosResult:
    added: list[Photo] = field(default_factory=list)
    already_there: int = 0
    rejected: list[str] = field(default_factory=list)  # "name: reason"


def load_demo_photos(event, *, photos=scenes.PHOTOS, progress=None) -> DemoPhotosResult:
    """Add the demo photos the event does not have yet; each is queued for processing.

    A photo counts as there when the event has one of that file name or of the same
    content, so loading twice adds nothing, and a photo an organiser deleted comes back.
    ``progress(done, total)`` is called after each photo drawn.
    """
    result = DemoPhotosResult()
    present = set(event.photos.filter(original_name__in=[photo.name for photo in photos])
                  .values_list("original_name", flat=True))
    missing = [photo for photo in photos if photo.name not in present]
    result.already_there = len(photos) - len(missing)
    for done, photo in enumerate(missing, start=1):
        ingested = services.ingest_file(event, io.BytesIO(scenes.jpeg_bytes(photo)),
                                        name=photo.name)
        if ingested.status == services.IngestStatus.ACCEPTED:
            result.added.append(ingested.photo)
        elif ingested.status == services.IngestStatus.DUPLICATE:
            result.already_there += 1
        else:
            result.rejected.append(f"{photo.name}: {ingested.reason}")
        if progress:
            progress(done, len(missing))
    return result


def unfinished(event, *, photos=scenes.PHOTOS) -> list[int]:
    """Ids of the event's demo photos still waiting for processing (queued for a worker
    that never ran, say), oldest first."""
    return list(event.photos.filter(original_name__in=[photo.name for photo in photos])
                .exclude(state__in=(Photo.State.READY, Photo.State.FAILED))
                .order_by("pk").values_list("pk", flat=True))


def process_here(event, photo_ids, *, progress=None) -> None:
    """Process the photos in this process, then link faces and update the search indexes
    (what the worker does after a burst), so search works when this returns."""
    from mlpipeline import event_linking, indexes
    from photos import pipeline

    for done, photo_id in enumerate(photo_ids, start=1):
        try:
            pipeline.process_photo(photo_id)
        except pipeline.TRANSIENT_ERRORS as error:
            pipeline.give_up(photo_id, error)  # no worker to retry it: shown as failed
        if progress:
            progress(done, len(photo_ids))
    event_linking.link_event(event.pk)
    if settings.SEARCH_BACKEND != "pgvector":  # PostgreSQL keeps its own indexes in step
        for kind in indexes.KINDS:
            indexes.sync(event.pk, kind)
