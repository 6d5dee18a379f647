"""What a new or longer start list changes for the readings already stored.

Readings kept aside because their number was not listed (``BibTag.confirmed=False``)
become confirmed tags once the number is listed, are linked to the face above them by
the same geometry the bib step uses, and the event is linked again: its runners'
other photos get the bib by face, without reading a single photo again.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef

from events.models import StartListEntry
from mlpipeline import linking, tasks
from photos.models import BibTag, Face


def confirm_listed_readings(event_id: int) -> int:
    """Confirm the event's stored readings whose bib is now listed; how many were confirmed."""
    listed = StartListEntry.objects.filter(event_id=event_id, bib=OuterRef("bib"))
    with transaction.atomic():
        tags = list(BibTag.objects.select_for_update()
                    .filter(photo__event_id=event_id, source=BibTag.Source.OCR, confirmed=False)
                    .filter(Exists(listed)).order_by("pk"))
        if not tags:
            return 0
        BibTag.objects.filter(pk__in=[tag.pk for tag in tags]).update(confirmed=True)
        _link_to_faces(tags)
        tasks.links_changed(event_id)
    return len(tags)


def _link_to_faces(tags) -> None:
    """Each newly confirmed reading to the free face above it, as read_bibs would have."""
    by_photo: dict[int, list[BibTag]] = {}
    for tag in tags:
        if tag.box and tag.face_id is None:
            by_photo.setdefault(tag.photo_id, []).append(tag)
    faces_of: dict[int, list[Face]] = {}
    for face in Face.objects.filter(photo_id__in=by_photo, bib="").order_by("pk"):
        faces_of.setdefault(face.photo_id, []).append(face)
    for photo_id, photo_tags in by_photo.items():
        faces = faces_of.get(photo_id, [])
        pairs = linking.assign_bibs_to_faces([tag.box for tag in photo_tags],
                                             [face.box for face in faces])
        for bib_index, face_index, _confidence in pairs:
            tag, face = photo_tags[bib_index], faces[face_index]
            BibTag.objects.filter(pk=tag.pk).update(face=face)
            # The database re-decides the face's searchable flag for its bib (privacy rule).
            Face.objects.filter(pk=face.pk).update(bib=tag.bib)
