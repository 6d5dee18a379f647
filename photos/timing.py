"""Photos found by time: the timing file says when each runner passed a timing point, the
organiser says where each photographer stood (seconds from that point) and how wrong
their camera's clock was; a photo then shows the runners who passed the point about
``position`` seconds before it was taken (after correcting its clock).

:func:`recompute` matches every photo of every placed photographer against the
runners' windows (``passed_at + position ± window``) and writes, from scratch:

- a ``timing`` :class:`~photos.models.BibTag` where exactly one runner's window matches,
  the photo shows a face and nothing else tags it (a runner finds it, the organiser
  reviews it);
- no suggestion of a runner where every face of the photo is another runner the event
  knows (photos.runner_faces), and the ones where a face is that runner's first;
- :class:`~photos.models.TagSuggestion` rows (source ``timing``) for every other match,
  closest first and at most :data:`MAX_CANDIDATES` per photo (a pack at the finish
  would otherwise flood the queue), for a person to accept or reject.

What people decided wins: a bib already on the photo (read, linked, by hand) is not
suggested again, and a bib rejected there never comes back. The capture time itself is
never rewritten: the clock offset is kept beside it, so setting it again is free.
"""

import bisect
import dataclasses
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from events.models import PhotographerTiming, TimingPoint, TimingResult
from photos import tagging
from photos.models import BibTag, Photo, RejectedReading, TagSuggestion
from photos.runner_faces import OTHER, SAME, RunnerFaces, photo_faces
from photos.tags import shown_tags

#: beyond this many runners in one window the photo is a pack: the closest ones only
MAX_CANDIDATES = 5


class TimingError(ValueError):
    """A clock cannot be set as asked (the message says why, for the organiser)."""


@dataclass(frozen=True)
class Outcome:
    photos: int  # photos of placed photographers with a capture time
    tags: int
    suggestions: int


@dataclass(frozen=True)
class _Match:
    photo_id: int
    bib: str
    distance: float  # seconds between the photo and the runner's expected moment
    passed_at: object
    point: str
    window: float
    same_face: bool = False  # a face here is this runner's face on their other photos

    @property
    def closeness(self) -> float:
        return round(max(0.0, 1.0 - self.distance / self.window), 4)

    @property
    def score(self) -> float:
        # A face that agrees says more than a second closer: those suggestions come first.
        return round(0.5 + 0.5 * self.closeness if self.same_face else 0.5 * self.closeness, 4)


def _windows(point_ids) -> dict[int, tuple[list[float], list[str], list]]:
    """Per point: passing instants (POSIX seconds, sorted), their bibs and datetimes."""
    found: dict[int, tuple[list[float], list[str], list]] = {pk: ([], [], []) for pk in point_ids}
    for point_id, bib, passed_at in (TimingResult.objects.filter(point_id__in=point_ids)
                                     .order_by("point_id", "passed_at", "bib")
                                     .values_list("point_id", "bib", "passed_at")):
        times, bibs, instants = found[point_id]
        times.append(passed_at.timestamp())
        bibs.append(bib)
        instants.append(passed_at)
    return found


def matches(event_id: int) -> tuple[list[_Match], list[_Match], int]:
    """(tags, suggestions, photos looked at) as the timing says now; writes nothing."""
    placements = list(PhotographerTiming.objects.filter(event_id=event_id, point__isnull=False)
                      .select_related("point"))
    if not placements:  # most events: no timing file, nothing to read
        return [], [], 0
    windows = _windows({placement.point_id for placement in placements})
    tagged: dict[int, set[str]] = {}
    for photo_id, bib in (BibTag.objects.filter(photo__event_id=event_id)
                          .exclude(source=BibTag.Source.TIMING).values_list("photo_id", "bib")):
        tagged.setdefault(photo_id, set()).add(bib)
    shown = set(shown_tags(event_id).exclude(source=BibTag.Source.TIMING)
                .values_list("photo_id", flat=True))
    rejected = set(RejectedReading.objects.filter(photo__event_id=event_id)
                   .values_list("photo_id", "bib"))
    faces = photo_faces(Photo.objects.filter(
        event_id=event_id, photographer_id__in=[placement.photographer_id for placement in placements],
        captured_at__isnull=False).values("pk"))
    runners = RunnerFaces.of_event(event_id)

    tags, suggestions, looked_at = [], [], 0
    for placement in placements:
        times, bibs, instants = windows[placement.point_id]
        window = placement.window_seconds
        shift = placement.clock_offset_seconds - placement.position_seconds
        for photo_id, captured_at in (Photo.objects.filter(
                event_id=event_id, photographer_id=placement.photographer_id,
                captured_at__isnull=False).values_list("pk", "captured_at")):
            looked_at += 1
            # The moment the runners in front of the camera passed the point.
            target = captured_at.timestamp() + shift
            low = bisect.bisect_left(times, target - window)
            high = bisect.bisect_right(times, target + window)
            if low == high:
                continue
            found = sorted((_Match(photo_id, bibs[index], abs(times[index] - target),
                                   instants[index], placement.point.name, window)
                            for index in range(low, high)), key=lambda match: match.distance)
            here = faces.get(photo_id, [])
            fresh = []
            for match in found:
                if match.bib in tagged.get(photo_id, ()) or (photo_id, match.bib) in rejected:
                    continue
                verdict = runners.verdict(here, match.bib)
                if verdict == OTHER:
                    continue  # every face here is another runner the event knows
                fresh.append(dataclasses.replace(match, same_face=verdict == SAME))
            if len(found) == 1 and fresh and photo_id not in shown and here:
                tags.append(fresh[0])
            else:
                fresh.sort(key=lambda match: -match.score)
                suggestions += fresh[:MAX_CANDIDATES]
    return tags, suggestions, looked_at


def recompute(event_id: int) -> Outcome:
    """Replace the event's timing tags and suggestions with what the timing says now."""
    tags, suggestions, looked_at = matches(event_id)
    with transaction.atomic():
        TagSuggestion.objects.filter(photo__event_id=event_id,
                                     source=TagSuggestion.Source.TIMING).delete()
        TagSuggestion.objects.bulk_create([
            TagSuggestion(photo_id=match.photo_id, bib=match.bib,
                          source=TagSuggestion.Source.TIMING, score=match.score,
                          seconds=match.distance, passed_at=match.passed_at, point=match.point,
                          same_face=match.same_face)
            for match in suggestions], batch_size=2000)
        wanted = {(match.photo_id, match.bib): match for match in tags}
        kept = set()
        for tag in BibTag.objects.select_for_update().filter(photo__event_id=event_id,
                                                             source=BibTag.Source.TIMING):
            match = wanted.get((tag.photo_id, tag.bib))
            if match is None:
                tag.delete()
                continue
            kept.add((tag.photo_id, tag.bib))
            if abs(tag.confidence - match.closeness) > 1e-6:
                BibTag.objects.filter(pk=tag.pk).update(confidence=match.closeness)
        # A tag read, linked or set by hand meanwhile wins (unique per photo and bib).
        BibTag.objects.bulk_create([
            BibTag(photo_id=match.photo_id, bib=match.bib, confidence=match.closeness,
                   source=BibTag.Source.TIMING, confirmed=True)
            for key, match in wanted.items() if key not in kept],
            ignore_conflicts=True, batch_size=2000)
    return Outcome(photos=looked_at, tags=len(tags), suggestions=len(suggestions))


def placement_for(event, photographer_id: int) -> PhotographerTiming:
    """The photographer's position, created at the event's only (or first) timing point."""
    placement, created = PhotographerTiming.objects.get_or_create(
        event=event, photographer_id=photographer_id,
        defaults={"point": TimingPoint.objects.filter(event=event).order_by("pk").first()})
    if placement.point_id is None and not created:
        placement.point = TimingPoint.objects.filter(event=event).order_by("pk").first()
    return placement


def set_clock_from_photo(user, event, photo: Photo, bib_text: str) -> PhotographerTiming:
    """"This photo is bib 1234": the camera's clock offset that puts the photo at that
    runner's moment, for all of its photographer's photos; the photo gets the bib by hand."""
    bib = tagging.clean_bib(bib_text)
    if photo.event_id != event.pk:
        raise TimingError(_("This photo is not a photo of this event."))
    if photo.photographer_id is None:
        raise TimingError(_("This photo has no photographer: its clock cannot be set."))
    if photo.captured_at is None:
        raise TimingError(_("This photo has no capture time (no EXIF date): choose another."))
    placement = placement_for(event, photo.photographer_id)
    if placement.point is None:
        raise TimingError(_("Import the timing results first."))
    result = TimingResult.objects.filter(point=placement.point, bib=bib).first()
    if result is None:
        raise TimingError(_("Bib %(bib)s has no time at %(point)s.")
                          % {"bib": bib, "point": placement.point.name})
    with transaction.atomic():
        placement.clock_offset_seconds = round(
            (result.passed_at - photo.captured_at).total_seconds() + placement.position_seconds, 3)
        placement.clock_reference = (_("%(photo)s is bib %(bib)s")
                                     % {"photo": photo.original_name or photo.pk, "bib": bib})[:200]
        placement.save()
        tagging.add_bib(user, event, [photo.pk], bib)
    return placement


def place_photographers(event, point: TimingPoint) -> int:
    """Every photographer of the event's photos not placed yet stands at ``point`` (offset 0,
    the default window) until the organiser says otherwise; how many were placed."""
    placed = set(PhotographerTiming.objects.filter(event=event)
                 .values_list("photographer_id", flat=True))
    new = [PhotographerTiming(event=event, photographer_id=pk, point=point)
           for pk in sorted(set(Photo.objects.filter(event=event).exclude(photographer=None)
                                .values_list("photographer_id", flat=True)) - placed)]
    PhotographerTiming.objects.bulk_create(new)
    PhotographerTiming.objects.filter(event=event, point=None).update(point=point)
    return len(new)


def photographers(event) -> list[dict]:
    """The event's photographers with photos, each with their photo count and placement."""
    counts = dict(Photo.objects.filter(event=event).exclude(photographer=None).order_by()
                  .values_list("photographer_id").annotate(count=Count("pk")))
    placements = {placement.photographer_id: placement for placement in
                  PhotographerTiming.objects.filter(event=event)
                  .select_related("photographer", "point")}
    users = {user.pk: user for user in
             get_user_model().objects.filter(pk__in=set(counts) | set(placements))}
    return sorted(({"user": users[pk], "photos": counts.get(pk, 0),
                    "placement": placements.get(pk)} for pk in users),
                  key=lambda row: row["user"].username)
