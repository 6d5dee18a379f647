"""Face-search privacy: who can be found by their face, opting out, erasure.

The rule lives in the database, in one SQL function (``racephoto_faces_blocked``,
accounts migration 0003, which decides a set of faces at once; the one-face
``racephoto_face_blocked`` calls it), and triggers apply it to every write of
a face, a bib claim or an event's setting: save(), bulk_create(),
QuerySet.update(), bulk_update() and raw SQL alike. Python cannot forget it at
a new write site, because no write site has to remember it.
:func:`is_face_search_blocked` asks the same function.

Why not in Python: a rule that each write path must call is a rule the next
bulk write forgets (it happened three times in the pipeline); a database rule
also covers imports and maintenance SQL. Why a trigger, not a generated
column or a view: the answer depends on other rows (claims, the event, the
faces of the same cluster), which a generated column cannot read, and a view
would leave the ANN indexes and every other reader of ``searchable`` to
remember it instead.

The one part the database cannot know is erasure: an erasure record keeps only
a keyed hash of the bib, and the key (SECRET_KEY) never reaches the database.
Until the erasure is carried out the runner's claim is an opt-out, which the
database applies; afterwards the pipeline never writes the erased bib again,
and a face saved with it stays unsearchable (:func:`guard_erased_bib`).

The ANN indexes follow: a face's save or delete, a bib claim's, an event's
setting and the Face queryset's bulk writes each schedule an index sync of the
event (``mlpipeline.signals``), and a sync keeps only searchable faces.
"""

import logging

from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import BibClaim, ErasureRecord
from events.models import Event
from photos.models import BibTag, Face

logger = logging.getLogger(__name__)

_REFERENCE_SALT = "racephoto.accounts.privacy.erasure"

# Sent by erase() inside its transaction, before the record forgets the runner, with
# ``user``, ``event`` and ``bib``: the apps above accounts (commerce's orders) remove
# what they hold of the runner without accounts importing them.
runner_erased = Signal()


class FaceSearchOff(Exception):
    """The event does not allow selfie search."""


def erasure_reference(event_id: int, bib: str) -> str:
    """A keyed hash of (event, bib): the same bib gives the same reference, the
    reference alone does not give the bib back (SECRET_KEY is the key)."""
    return salted_hmac(_REFERENCE_SALT, f"{event_id}:{bib.strip()}",
                       algorithm="sha256").hexdigest()


def is_bib_erased(event, bib) -> bool:
    """Whether the runner wearing ``bib`` at ``event`` had their data erased: the pipeline
    must then not tag new photos with that bib either."""
    return bool(bib) and ErasureRecord.objects.filter(
        event=event, reference=erasure_reference(event.pk, bib)).exists()


def is_face_search_blocked(event, bib) -> bool:
    """May a face linked to ``bib`` (empty: no bib known) at ``event`` be searchable?

    Off: never. On: unless someone opted out for the bib or had it erased.
    Opt-in: only once someone consented for the bib, and nobody opted out.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT racephoto_face_blocked(%s, NULL, %s, NULL)", [event.pk, bib or ""])
        (blocked,) = cursor.fetchone()
    return blocked or is_bib_erased(event, bib)


def guard_erased_bib(sender, instance, raw=False, **kwargs):
    """pre_save on Face: a face saved with an erased runner's bib stays out of search (the
    database applies the rest of the rule, but cannot recognise an erased bib)."""
    if not raw and instance.searchable and instance.bib and is_bib_erased(instance.event,
                                                                          instance.bib):
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
    the runner at once (the database does, when the claim is written). Returns how many
    faces changed."""
    claim = BibClaim.objects.select_for_update().get(pk=claim.pk)
    runner_faces = _runner_faces(claim.event, claim.bib)
    before = set(runner_faces.filter(searchable=True).values_list("pk", flat=True))
    if claim.face_search != choice:
        claim.face_search = choice
        claim.save(update_fields=["face_search", "updated_at"])
    after = set(runner_faces.filter(searchable=True).values_list("pk", flat=True))
    changed = len(before ^ after)
    logger.info("face search choice applied", extra={
        "event_id": claim.event_id, "choice": choice, "faces_changed": changed})
    return changed


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
    event, have their orders there anonymised (``runner_erased``), keep the record
    without the runner or the bib. Safe to run twice."""
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
        runner_erased.send(sender=ErasureRecord, user=record.user, event=event, bib=bib)
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
