"""Face-search privacy: who can be found by their face, opting out, erasure.

The rule lives in one place, :func:`is_face_blocked`, and every way a face
can become searchable goes through it: the pipeline calls
:func:`is_face_search_blocked` when it links a face to a bib, and a
``pre_save`` guard (connected in ``AccountsConfig.ready``) re-checks every
Face that is saved, so a face of a runner who opted out is never saved as
searchable, whoever saves it.

Faces leave and enter the ANN indexes through ``Face.save()`` and
``Face.delete()`` (QuerySet.delete() included), whose signals update the
indexes on commit. ``QuerySet.update()`` on Face would bypass them: never
use it here.
"""

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import BibClaim, ErasureRecord
from events.models import Event
from photos.models import BibTag, Face

logger = logging.getLogger(__name__)

_REFERENCE_SALT = "racephoto.accounts.privacy.erasure"


class FaceSearchOff(Exception):
    """The event does not allow selfie search."""


def erasure_reference(event_id: int, bib: str) -> str:
    """A keyed hash of (event, bib): the same bib gives the same reference, the
    reference alone does not give the bib back (SECRET_KEY is the key)."""
    return salted_hmac(_REFERENCE_SALT, f"{event_id}:{bib.strip()}",
                       algorithm="sha256").hexdigest()


def _blocked_bibs(event, bibs) -> set[str]:
    """Which of ``bibs`` someone opted out of face search for, or had erased."""
    bibs = {bib for bib in bibs if bib}
    if not bibs:
        return set()
    blocked = set(BibClaim.objects.filter(event=event, bib__in=bibs,
                                          face_search=BibClaim.FaceSearch.OPTED_OUT)
                  .values_list("bib", flat=True))
    references = {erasure_reference(event.pk, bib): bib for bib in bibs - blocked}
    if references:
        erased = ErasureRecord.objects.filter(event=event, reference__in=references)
        blocked |= {references[reference] for reference in erased.values_list("reference",
                                                                              flat=True)}
    return blocked


def is_bib_erased(event, bib) -> bool:
    """Whether the runner wearing ``bib`` at ``event`` had their data erased: the pipeline
    must then not tag new photos with that bib either."""
    return bool(bib) and ErasureRecord.objects.filter(
        event=event, reference=erasure_reference(event.pk, bib)).exists()


def _consented_bibs(event, bibs) -> set[str]:
    return set(BibClaim.objects.filter(event=event, bib__in=[bib for bib in bibs if bib],
                                       face_search=BibClaim.FaceSearch.CONSENTED)
               .values_list("bib", flat=True))


def is_face_search_blocked(event, bib) -> bool:
    """May a face linked to ``bib`` (empty: no bib known) at ``event`` be searchable?

    Off: never. On: unless someone opted out for the bib or had it erased.
    Opt-in: only once someone consented for the bib, and nobody opted out.
    """
    if event.face_search == Event.FaceSearch.OFF:
        return True
    if bib and _blocked_bibs(event, {bib}):
        return True
    if event.face_search == Event.FaceSearch.OPT_IN:
        return not (bib and _consented_bibs(event, {bib}))
    return False


def is_face_blocked(face) -> bool:
    """is_face_search_blocked for a face, counting the bibs of its cluster (the same runner
    seen in other photos): an opt-out reaches the faces where the bib is hidden too."""
    return _rule(face.event, [face])(face)


def _rule(event, faces):
    """The privacy decision for ``faces`` of ``event``, with every lookup done once:
    returns ``blocked(face) -> bool``.

    A face counts its own bib and the bibs linked to the other faces of its
    cluster. Any of them opted out or erased: blocked. On an opt-in event, a
    face with a bib needs consent for that bib; a face without one needs consent
    for every bib of its cluster (a cluster can join two look-alike runners).
    """
    if event.face_search == Event.FaceSearch.OFF:
        return lambda face: True
    # Bibs of the clusters, from the database for the other faces and from memory for
    # these (their bib may be changing in this very save).
    given = {face.pk for face in faces if face.pk}
    clusters = {face.cluster for face in faces if face.cluster is not None}
    cluster_bibs: dict[int, set[str]] = {}
    if clusters:
        for cluster, bib in (Face.objects.filter(event=event, cluster__in=clusters)
                             .exclude(pk__in=given).exclude(bib="")
                             .values_list("cluster", "bib")):
            cluster_bibs.setdefault(cluster, set()).add(bib)
    for face in faces:
        if face.cluster is not None and face.bib:
            cluster_bibs.setdefault(face.cluster, set()).add(face.bib)
    own = {face.bib for face in faces if face.bib}
    known = own.union(*cluster_bibs.values())
    blocked_bibs = _blocked_bibs(event, known)
    consented = _consented_bibs(event, known) if event.face_search == Event.FaceSearch.OPT_IN \
        else set()

    def blocked(face) -> bool:
        linked = cluster_bibs.get(face.cluster, set()) if face.cluster is not None else set()
        bibs = linked | ({face.bib} if face.bib else set())
        if bibs & blocked_bibs:
            return True
        if event.face_search == Event.FaceSearch.OPT_IN:
            if face.bib:
                return face.bib not in consented
            return not linked or not linked <= consented
        return False

    return blocked


def guard_face_searchable(sender, instance, raw=False, **kwargs):
    """pre_save on Face: a blocked face is never saved as searchable."""
    if raw or not instance.searchable:
        return
    if is_face_blocked(instance):
        instance.searchable = False


def check_face_search(event) -> None:
    """Raise FaceSearchOff unless the event allows selfie search (call before embedding)."""
    if event.face_search == Event.FaceSearch.OFF:
        raise FaceSearchOff(event.pk)


# --- Workflows ------------------------------------------------------------------------


def _runner_faces(event, bib):
    """The faces of the runner wearing ``bib``: linked to it, or in the same cluster."""
    clusters = (Face.objects.filter(event=event, bib=bib, cluster__isnull=False)
                .values("cluster"))
    return Face.objects.filter(Q(bib=bib) | Q(cluster__in=clusters), event=event)


def refresh_faces(faces) -> int:
    """Re-apply the rule to each face of a Face queryset, one save() each so the indexes
    follow; returns how many changed. The pipeline calls it after writes that skip the
    pre_save guard (bulk_create, update() of bib or cluster)."""
    by_event: dict[int, tuple] = {}
    for face in faces.select_related("event").order_by("pk"):
        by_event.setdefault(face.event_id, (face.event, []))[1].append(face)
    changed = 0
    for event, event_faces in by_event.values():
        blocked = _rule(event, event_faces)
        for face in event_faces:
            searchable = not blocked(face)
            if face.searchable != searchable:
                face.searchable = searchable
                face.save(update_fields=["searchable"])
                changed += 1
    return changed


@transaction.atomic
def claim_bib(user, event, bib, face_search=BibClaim.FaceSearch.UNDECIDED) -> BibClaim:
    """Record that ``user`` wears ``bib`` at ``event``, with their face-search choice."""
    bib = bib.strip()
    claim, _created = BibClaim.objects.get_or_create(user=user, event=event, bib=bib)
    set_face_search(claim, face_search)
    claim.refresh_from_db()
    return claim


@transaction.atomic
def set_face_search(claim, choice) -> int:
    """Opt out of (or agree to) face search for a claimed bib; applies to every face of
    the runner at once. Returns how many faces changed."""
    claim = BibClaim.objects.select_for_update().get(pk=claim.pk)
    if claim.face_search != choice:
        claim.face_search = choice
        claim.save(update_fields=["face_search", "updated_at"])
    changed = refresh_faces(_runner_faces(claim.event, claim.bib))
    logger.info("face search choice applied", extra={
        "event_id": claim.event_id, "choice": choice, "faces_changed": changed})
    return changed


@transaction.atomic
def apply_event_face_search(event) -> int:
    """After the event's face-search setting changed: every face follows it."""
    return refresh_faces(Face.objects.filter(event=event))


@transaction.atomic
def request_erasure(user) -> list[ErasureRecord]:
    """A runner asks for their face data to be erased, for every bib they claimed.

    Their faces leave search at once (an opt-out); deleting them waits for an
    admin to check the claim (:func:`erase`), since a claim alone proves nothing
    and deleting is final. Asking twice adds nothing.
    """
    records = []
    for claim in BibClaim.objects.filter(user=user).select_related("event"):
        set_face_search(claim, BibClaim.FaceSearch.OPTED_OUT)
        record, _created = ErasureRecord.objects.get_or_create(
            user=user, event=claim.event, bib=claim.bib, status=ErasureRecord.Status.REQUESTED,
            defaults={"reference": erasure_reference(claim.event_id, claim.bib)})
        records.append(record)
    return records


@transaction.atomic
def erase(record) -> ErasureRecord:
    """Delete the runner's faces (and so their embeddings) and the bib's tags at the
    event, keep the record without the runner or the bib. Safe to run twice."""
    record = ErasureRecord.objects.select_for_update().get(pk=record.pk)
    if record.status == ErasureRecord.Status.DONE:
        return record
    event, bib = record.event, record.bib
    faces_deleted = bib_tags_deleted = claims_deleted = 0
    if event is not None:  # a deleted event took all its faces and tags with it
        face_ids = list(_runner_faces(event, bib).values_list("pk", flat=True))
        _total, deleted = BibTag.objects.filter(
            Q(bib=bib) | Q(face__in=face_ids), photo__event=event).delete()
        bib_tags_deleted = deleted.get(BibTag._meta.label, 0)
        # Row by row through the model's signals, so every index drops them on commit.
        _total, deleted = Face.objects.filter(pk__in=face_ids).delete()
        faces_deleted = deleted.get(Face._meta.label, 0)
        _total, deleted = BibClaim.objects.filter(event=event, bib=bib).delete()
        claims_deleted = deleted.get(BibClaim._meta.label, 0)
    record.faces_deleted = faces_deleted
    record.bib_tags_deleted = bib_tags_deleted
    record.claims_deleted = claims_deleted
    record.user = None
    record.bib = ""
    record.status = ErasureRecord.Status.DONE
    record.completed_at = timezone.now()
    record.save()
    # Counts and ids only: the log must not become the personal data we just erased.
    logger.info("face data erased", extra={
        "event_id": event.pk, "erasure_id": record.pk, "faces": faces_deleted,
        "bib_tags": bib_tags_deleted})
    return record


def may_block_faces(event_id: int) -> bool:
    """Whether any face of the event can be blocked at all; when not, the pipeline skips
    re-checking an event's every face after clustering it."""
    return (Event.objects.filter(pk=event_id).exclude(face_search=Event.FaceSearch.ON).exists()
            or BibClaim.objects.filter(event_id=event_id).exists()
            or ErasureRecord.objects.filter(event_id=event_id).exists())
