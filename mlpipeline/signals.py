"""Index updates follow every change of a face or a CLIP embedding, whoever makes it.

A face saved or deleted (with its photo or event, by an erasure), a photo
deleted in the admin, and every write after which the database re-decides who
is searchable (accounts migration 0003): a bib claim saved or deleted, an
event's face-search setting, a bulk write of faces (``photos.models.faces_written``).
"""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from accounts.models import BibClaim
from events.models import Event
from mlpipeline import indexes
from mlpipeline.tasks import indexes_changed
from photos.models import Face, Photo, faces_written


@receiver(post_save, sender=Face, dispatch_uid="mlpipeline.face_saved")
@receiver(post_delete, sender=Face, dispatch_uid="mlpipeline.face_deleted")
def face_changed(sender, instance: Face, **kwargs):
    indexes_changed(instance.event_id, indexes.FACES)


@receiver(faces_written, sender=Face, dispatch_uid="mlpipeline.faces_written")
def faces_bulk_written(sender, event_ids, **kwargs):
    for event_id in event_ids:
        indexes_changed(event_id, indexes.FACES)


@receiver(post_save, sender=BibClaim, dispatch_uid="mlpipeline.claim_saved")
@receiver(post_delete, sender=BibClaim, dispatch_uid="mlpipeline.claim_deleted")
def claim_changed(sender, instance: BibClaim, created=False, **kwargs):
    # The database has just taken the runner's faces out of search, or put them back;
    # a new claim that decides nothing yet changes no face.
    if created and instance.face_search == BibClaim.FaceSearch.UNDECIDED:
        return
    indexes_changed(instance.event_id, indexes.FACES)


@receiver(pre_save, sender=Event, dispatch_uid="mlpipeline.event_saving")
def event_saving(sender, instance: Event, **kwargs):
    instance.face_search_before_save = (
        Event.objects.filter(pk=instance.pk).values_list("face_search", flat=True).first()
        if instance.pk else None)


@receiver(post_save, sender=Event, dispatch_uid="mlpipeline.event_saved")
def event_saved(sender, instance: Event, created=False, **kwargs):
    # The database has just applied the new setting to every face of the event.
    if not created and instance.face_search != instance.face_search_before_save:
        indexes_changed(instance.pk, indexes.FACES)


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
