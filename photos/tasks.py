"""Celery tasks for photos: thin wrappers around :mod:`photos.pipeline`.

One task per photo runs all of its remaining steps. A chain of one task per
step would be no more resumable — every step is recorded in ``PhotoStep``, so
a redelivered or re-enqueued task skips what is done and resumes where the
last one stopped — but it would cost a broker round trip per step and spread
one photo's story over several task ids.
"""

import logging

from celery import Task, shared_task

from photos import pipeline

logger = logging.getLogger(__name__)


class PhotoTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Called once retries are used up. Without this the photo would say
        # "processing" forever and `process_event --wait` would never finish.
        photo_id = args[0] if args else kwargs.get("photo_id")
        try:
            pipeline.give_up(photo_id, exc)
        except Exception:  # the database may be what is down; the log is all we have then
            logger.exception("could not mark photo %s failed", photo_id)


@shared_task(
    bind=True,
    base=PhotoTask,
    name="photos.process_photo",
    acks_late=True,  # a worker killed mid-photo leaves the message to be redelivered
    autoretry_for=pipeline.TRANSIENT_ERRORS,
    max_retries=3,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def process_photo(self, photo_id: int) -> str | None:
    """Run the photo's remaining processing steps; its state afterwards."""
    return pipeline.process_photo(photo_id)
