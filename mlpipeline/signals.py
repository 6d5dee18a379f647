"""Index updates follow every change of a face or a CLIP embedding, whoever makes it.

Steps call :func:`mlpipeline.tasks.indexes_changed` themselves (bulk writes
send no signals); these receivers cover everything else: a face deleted with
its photo or event, a runner's opt-out saving ``searchable=False``, an
erasure deleting faces, a photo deleted in the admin.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from mlpipeline import indexes
from mlpipeline.tasks import indexes_changed
from photos.models import Face, Photo


@receiver(post_save, sender=Face, dispatch_uid="mlpipeline.face_saved")
@receiver(post_delete, sender=Face, dispatch_uid="mlpipeline.face_deleted")
def face_changed(sender, instance: Face, **kwargs):
    indexes_changed(instance.event_id, indexes.FACES)


@receiver(post_save, sender=Photo, dispatch_uid="mlpipeline.photo_saved")
def photo_saved(sender, instance: Photo, update_fields=None, **kwargs):
    # Most photo saves are state changes: only an embedding write concerns the index.
    if update_fields is not None and "clip_embedding" not in update_fields:
        return
    if instance.clip_embedding is not None:
        indexes_changed(instance.event_id, indexes.CLIP)


@receiver(post_delete, sender=Photo, dispatch_uid="mlpipeline.photo_deleted")
def photo_deleted(sender, instance: Photo, **kwargs):
    if instance.clip_embedding is not None:
        indexes_changed(instance.event_id, indexes.CLIP)
