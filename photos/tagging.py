"""Changes people make to photos' bib tags: add, remove, confirm, reject, undo.

Every change locks the photo's row first, the same lock the pipeline's steps take
(:mod:`photos.pipeline`): two organisers tagging one photo, or an organiser and a
re-read of the photo, take turns, and each sees what the other wrote. A change is
recorded as a :class:`~photos.models.TagChange` with the photo's state for that bib
before and after; undo puts the "before" back only where the state is still the
"after", so it never overwrites what someone did since (that is reported as a
conflict instead).

What a person decides wins over the machine: a tag added or confirmed by hand is
``manual`` (re-reading and linking never delete those), and a bib removed or rejected
by hand is stored as a :class:`~photos.models.RejectedReading`, which the bib step
and face linking consult, so it never comes back on that photo.
"""

import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext as _

from mlpipeline.bibrules import canonical
from photos.models import BibTag, Photo, RejectedReading, TagChange

BIB_MAX_LENGTH = 12


class TaggingError(ValueError):
    """A change that cannot be made as asked (the message says why, for the organiser)."""


@dataclass
class ChangeResult:
    batch: uuid.UUID | None = None
    changed: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    photo_ids: set[int] = field(default_factory=set)


def clean_bib(text: str) -> str:
    """A bib typed by a person, as the start list writes it (no spaces, no leading zeros)."""
    bib = "".join((text or "").split())
    if not bib:
        raise TaggingError(_("Type a bib number."))
    if not bib.isalnum() or not bib.isascii():
        raise TaggingError(_("A bib has only digits and letters: “%(bib)s”.") % {"bib": bib[:20]})
    bib = canonical(bib).upper()
    if len(bib) > BIB_MAX_LENGTH:
        raise TaggingError(_("A bib has at most %(count)d characters.") % {"count": BIB_MAX_LENGTH})
    return bib


def _state(photo_id: int, bib: str) -> dict:
    """What the photo says about ``bib``: its tag (or None) and whether it was rejected."""
    # The id too: a tag put back by undo keeps it, so pages showing it stay right.
    tag = (BibTag.objects.filter(photo_id=photo_id, bib=bib)
           .values("id", "source", "confirmed", "confidence", "box", "face_id", "read_as").first())
    if tag is not None and not tag["read_as"]:
        # Left out when empty: states recorded before tags remembered corrections compare equal.
        del tag["read_as"]
    rejected = RejectedReading.objects.filter(photo_id=photo_id, bib=bib).exists()
    return {"tag": tag, "rejected": rejected}


def _put(photo_id: int, bib: str, state: dict, user) -> None:
    """Make the photo's state for ``bib`` be ``state``."""
    tag = state["tag"]
    if tag is None:
        BibTag.objects.filter(photo_id=photo_id, bib=bib).delete()
    else:
        fields = {"read_as": "", **{name: value for name, value in tag.items() if name != "id"}}
        updated = BibTag.objects.filter(photo_id=photo_id, bib=bib).update(**fields)
        if not updated:
            BibTag.objects.create(photo_id=photo_id, bib=bib, **fields,
                                  **({"id": tag["id"]} if tag.get("id") else {}))
    if state["rejected"]:
        RejectedReading.objects.get_or_create(photo_id=photo_id, bib=bib,
                                              defaults={"rejected_by": user})
    else:
        RejectedReading.objects.filter(photo_id=photo_id, bib=bib).delete()


def _locked_photos(event, photo_ids) -> list[Photo]:
    ids = {int(pk) for pk in photo_ids}
    if not ids:
        raise TaggingError(_("Select at least one photo."))
    # In id order: two editors locking overlapping selections never deadlock.
    photos = list(Photo.objects.select_for_update().filter(event=event, pk__in=ids).order_by("pk"))
    if len(photos) != len(ids):
        raise TaggingError(_("Some of these photos are not photos of this event."))
    return photos


def _apply(user, event, targets, action, wanted) -> ChangeResult:
    """For each (photo id, bib) of ``targets``, make the state ``wanted(before)`` and record it."""
    result = ChangeResult(batch=uuid.uuid4())
    changes = []
    for photo_id, bib in targets:
        before = _state(photo_id, bib)
        after = wanted(before)
        if after == before:
            result.unchanged += 1
            continue
        _put(photo_id, bib, after, user)
        after = _state(photo_id, bib)  # as stored: a new tag's id included
        changes.append(TagChange(photo_id=photo_id, bib=bib, action=action, user=user,
                                 batch=result.batch, before=before, after=after))
        result.photo_ids.add(photo_id)
    TagChange.objects.bulk_create(changes)
    result.changed = len(changes)
    return result


def _manual(before: dict) -> dict:
    """The state after a person says "this bib is on this photo"."""
    tag = before["tag"] or {"id": None, "confidence": 1.0, "box": None, "face_id": None}
    # A reading or face link a person confirms keeps its box and face: the crop stays useful.
    return {"tag": {**tag, "source": BibTag.Source.MANUAL, "confirmed": True}, "rejected": False}


def _rejected(_before: dict) -> dict:
    return {"tag": None, "rejected": True}


def add_bib(user, event, photo_ids, bib_text: str) -> ChangeResult:
    """Tag ``bib`` on every photo of ``photo_ids`` by hand (an automatic tag becomes manual)."""
    bib = clean_bib(bib_text)
    with transaction.atomic():
        photos = _locked_photos(event, photo_ids)
        return _apply(user, event, [(photo.pk, bib) for photo in photos], TagChange.Action.ADD,
                      _manual)


def remove_bib(user, event, photo_ids, bib_text: str) -> ChangeResult:
    """Take ``bib`` off every photo of ``photo_ids``; the pipeline never puts it back there."""
    bib = clean_bib(bib_text)
    with transaction.atomic():
        photos = _locked_photos(event, photo_ids)
        # Only photos that have the tag: a rejection elsewhere would be a decision nobody took.
        tagged = set(BibTag.objects.filter(photo__in=photos, bib=bib).values_list("photo_id",
                                                                                 flat=True))
        result = _apply(user, event, [(pk, bib) for pk in sorted(tagged)],
                        TagChange.Action.REMOVE, _rejected)
        result.unchanged += len(photos) - len(tagged)
        return result


def _review(user, event, tag_ids, action, wanted) -> ChangeResult:
    tags = list(BibTag.objects.filter(pk__in=tag_ids, photo__event=event)
                .values_list("pk", "photo_id", "bib"))
    if len(tags) != len(set(tag_ids)):
        # Gone since the page was drawn (someone else removed it, a re-read replaced it).
        return ChangeResult(conflicts=[_(
            "This tag was changed by someone else or by processing since the page was "
            "loaded: reload the page.")])
    with transaction.atomic():
        _locked_photos(event, {photo_id for _pk, photo_id, _bib in tags})
        still_there = set(BibTag.objects.filter(pk__in=tag_ids).values_list("pk", flat=True))
        if still_there != {pk for pk, _photo, _bib in tags}:
            return ChangeResult(conflicts=[_(
                "This tag was changed by someone else or by processing since the page was "
                "loaded: reload the page.")])
        return _apply(user, event, [(photo_id, bib) for _pk, photo_id, bib in tags], action, wanted)


def confirm(user, event, tag_ids) -> ChangeResult:
    """A person says these tags are right: they become manual, and stay whatever runs again."""
    return _review(user, event, tag_ids, TagChange.Action.CONFIRM, _manual)


def reject(user, event, tag_ids) -> ChangeResult:
    """A person says these tags are wrong: removed, and never tagged on that photo again."""
    return _review(user, event, tag_ids, TagChange.Action.REJECT, _rejected)


def _suggested(user, event, targets, action, wanted) -> ChangeResult:
    with transaction.atomic():
        _locked_photos(event, {photo_id for photo_id, _bib in targets})
        return _apply(user, event, sorted(set(targets)), action, wanted)


def accept_suggested(user, event, targets) -> ChangeResult:
    """A person says each (photo id, bib) a suggestion offered is right: tagged by hand."""
    return _suggested(user, event, targets, TagChange.Action.CONFIRM, _manual)


def reject_suggested(user, event, targets) -> ChangeResult:
    """A person says each (photo id, bib) a suggestion offered is wrong: never offered again."""
    return _suggested(user, event, targets, TagChange.Action.REJECT, _rejected)


def undo_last(user, event) -> ChangeResult:
    """Take back ``user``'s latest change on the event (all photos of that keystroke)."""
    last = (TagChange.objects.filter(user=user, photo__event=event, undone=False)
            .exclude(action=TagChange.Action.UNDO).order_by("-at", "-pk").first())
    if last is None:
        raise TaggingError(_("Nothing to undo."))
    with transaction.atomic():
        changes = list(TagChange.objects.select_for_update().filter(batch=last.batch, undone=False))
        if not changes:
            raise TaggingError(_("Nothing to undo."))
        _locked_photos(event, {change.photo_id for change in changes})
        result = ChangeResult(batch=uuid.uuid4())
        undone = []
        for change in changes:
            if _state(change.photo_id, change.bib) != change.after:
                result.conflicts.append(_(
                    "Bib %(bib)s on photo %(photo)d was changed again since: left as it is.")
                    % {"bib": change.bib, "photo": change.photo_id})
                continue
            _put(change.photo_id, change.bib, change.before, user)
            undone.append(TagChange(photo_id=change.photo_id, bib=change.bib,
                                    action=TagChange.Action.UNDO, user=user, batch=result.batch,
                                    before=change.after, after=change.before))
            result.photo_ids.add(change.photo_id)
        TagChange.objects.bulk_create(undone)
        TagChange.objects.filter(pk__in=[change.pk for change in changes]).update(undone=True)
        result.changed = len(undone)
        return result


def rejected_bibs(photo_id: int) -> set[str]:
    return set(RejectedReading.objects.filter(photo_id=photo_id).values_list("bib", flat=True))
