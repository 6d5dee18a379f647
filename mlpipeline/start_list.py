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
from mlpipeline.bibrules import canonical
from photos.models import BibTag, Face, RejectedReading


def confirm_listed_readings(event_id: int) -> int:
    """Confirm the event's stored readings whose bib is now listed; how many were confirmed.

    A reading the bib rules corrected onto a listed bib is not confirmed by its bib being
    listed (it was corrected because it is): it is, once what was actually read is listed,
    and then it becomes that bib.
    """
    listed = StartListEntry.objects.filter(event_id=event_id, bib=OuterRef("bib"))
    with transaction.atomic():
        unconfirmed = (BibTag.objects.select_for_update()
                       .filter(photo__event_id=event_id, source=BibTag.Source.OCR, confirmed=False))
        tags = list(unconfirmed.filter(read_as="").filter(Exists(listed)).order_by("pk"))
        BibTag.objects.filter(pk__in=[tag.pk for tag in tags]).update(confirmed=True)
        tags += _read_as_listed(event_id, unconfirmed.exclude(read_as=""))
        if not tags:
            return 0
        link_to_faces(tags)
        tasks.links_changed(event_id)
    return len(tags)


def _read_as_listed(event_id: int, corrected) -> list[BibTag]:
    """Corrected readings whose text as read is now listed, re-tagged with it and confirmed;
    skipped where the photo already has that bib or a person rejected it there."""
    listed = set(StartListEntry.objects.filter(event_id=event_id).values_list("bib", flat=True))
    taken = None
    retagged = []
    for tag in corrected.order_by("pk"):
        bib = canonical(tag.read_as)
        if bib not in listed:
            continue
        if taken is None:
            taken = set(BibTag.objects.filter(photo__event_id=event_id)
                        .values_list("photo_id", "bib"))
            taken |= set(RejectedReading.objects.filter(photo__event_id=event_id)
                         .values_list("photo_id", "bib"))
        if (tag.photo_id, bib) in taken:
            continue
        taken.add((tag.photo_id, bib))
        BibTag.objects.filter(pk=tag.pk).update(bib=bib, read_as="", confirmed=True)
        tag.bib, tag.read_as, tag.confirmed = bib, "", True
        retagged.append(tag)
    return retagged


def link_to_faces(tags) -> None:
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
