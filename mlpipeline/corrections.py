"""When a reading the bib rules corrected onto a listed bib becomes a confirmed tag.

The rules correct a reading one slip away from exactly one listed bib
(:func:`mlpipeline.bibrules.near_miss`). On a partial start list that is also what an
unlisted runner's bib looks like: a runner's 3025, not on the list, became another
runner's 4025 on real photos. So a corrected tag (``BibTag.read_as`` set) is stored
unconfirmed: runners see it as *probable*, the review queue shows it with what was read,
and it is linked to no face. It becomes confirmed when something independent agrees:

- a **face link**: face linking would carry the same bib onto that photo, because a
  face there clusters with faces where the bib is confirmed;
- **another photo**: another frame of the same photographer's burst (captured within
  ``BURST_SECONDS``) carries the same bib from an exact reading, a face link or a person;
- a **person** confirming it in the review queue (that makes it manual: photos.tagging).

A stored start list that now lists what was read replaces the correction by the exact
reading (:func:`mlpipeline.start_list.confirm_listed_readings`).
"""

from datetime import timedelta

from django.db.models import DurationField, Exists, OuterRef, Q, Value

# The module, not the name: start_list imports tasks, which imports event_linking, which
# imports this module, so start_list may not be finished when this one is imported.
from mlpipeline import start_list
from photos.models import BibTag, Face

#: two frames of one photographer this close in capture time show the same runners
BURST_SECONDS = 10


def corrected_unconfirmed(event_id: int):
    """The event's corrected readings that nothing has confirmed yet."""
    return (BibTag.objects.filter(photo__event_id=event_id, source=BibTag.Source.OCR,
                                  confirmed=False).exclude(read_as=""))


def _trusted_same_bib():
    """Tags of the outer tag's bib a runner can rely on, on another photo of its event:
    confirmed, and not themselves a correction (a chain of guesses proves nothing),
    unless a person decided it."""
    return (BibTag.objects.filter(bib=OuterRef("bib"), photo__event_id=OuterRef("photo__event_id"),
                                  confirmed=True)
            .filter(Q(read_as="") | Q(source=BibTag.Source.MANUAL))
            .exclude(photo_id=OuterRef("photo_id")))


def corroborated_by_burst(event_id: int):
    """Corrected readings with the same bib on a neighbouring frame of the same photographer."""
    window = Value(timedelta(seconds=BURST_SECONDS), output_field=DurationField())
    neighbour = _trusted_same_bib().filter(
        photo__photographer_id=OuterRef("photo__photographer_id"),
        photo__captured_at__gte=OuterRef("photo__captured_at") - window,
        photo__captured_at__lte=OuterRef("photo__captured_at") + window)
    return corrected_unconfirmed(event_id).filter(photo__captured_at__isnull=False,
                                                  photo__photographer_id__isnull=False,
                                                  ).filter(Exists(neighbour))


def confirm_corrected_readings(event_id: int, links) -> tuple[list, int]:
    """Confirm the event's corrected readings that a face link or a burst neighbour backs.

    ``links`` are the face links :func:`mlpipeline.event_linking.link_event` computed (it
    leaves corrected readings out of the bibs already on a photo, so a link onto such a
    photo is the face's independent word). Returns the links still to write as
    ``face-link`` tags (those that confirmed a reading are not: the reading stays, linked
    to the link's face) and how many readings were confirmed. Run inside the caller's
    transaction.
    """
    pending = {(photo_id, bib): pk for pk, photo_id, bib in
               corrected_unconfirmed(event_id).select_for_update()
               .values_list("pk", "photo_id", "bib")}
    if not pending:
        return list(links), 0
    remaining, by_face = [], {}
    for link in links:
        tag_id = pending.get((link.photo_id, link.bib))
        if tag_id is None:
            remaining.append(link)
        else:
            by_face[tag_id] = link
    for tag_id, link in by_face.items():
        BibTag.objects.filter(pk=tag_id).update(confirmed=True, face_id=link.face_id)
        # The database re-decides the face's searchable flag for its bib (privacy rule).
        Face.objects.filter(pk=link.face_id, bib="").update(bib=link.bib)
    burst = list(corroborated_by_burst(event_id).exclude(pk__in=by_face).order_by("pk"))
    if burst:
        BibTag.objects.filter(pk__in=[tag.pk for tag in burst]).update(confirmed=True)
        start_list.link_to_faces(burst)
    return remaining, len(by_face) + len(burst)
