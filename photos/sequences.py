"""Sequence neighbours: a photographer shoots a runner in a burst, one frame shows the bib
and the next has it hidden (an arm, another runner, the angle). The hidden frame gets the
bib as a :class:`~photos.models.TagSuggestion` (source ``sequence``) when it was taken

- within :data:`BURST_SECONDS` of a frame of the same photographer where the bib is on
  (read, face-linked or tagged by hand), and it shows a runner whose bib is not read (a
  face without a bib, or no face found: a back, a runner turned away); or
- within :data:`FACE_SECONDS` of such a frame and one of its faces is the face the bib
  was linked to there, or that runner's face elsewhere (the face model's own linking
  threshold).

A frame where every face is another runner the event knows (photos.runner_faces) gets
no suggestion: the runner left the frame, they are not hidden in it.

Capture times of one photographer share one clock, so its offset does not matter here.
:func:`recompute` rewrites the event's sequence suggestions from scratch; like every
suggestion, one whose bib is now on the photo or was rejected there is not offered.
"""

from dataclasses import dataclass

from django.db import transaction

from photos.models import BibTag, Photo, RejectedReading, TagSuggestion
from photos.runner_faces import OTHER, SAME, RunnerFaces, link_threshold, photo_faces
from photos.tags import shown_tags

#: frames of one burst: a camera shoots 5–12 frames a second for a second or two; wider,
#: and at a busy finish the next runner's burst comes in (measured in bench/timing.py)
BURST_SECONDS = 2.0
#: the same face seen again this much later is still the same pass in front of the camera
FACE_SECONDS = 12.0


@dataclass(frozen=True)
class Neighbour:
    photo_id: int
    bib: str
    from_photo_id: int
    seconds: float
    same_face: bool

    @property
    def score(self) -> float:
        # The face is the stronger evidence; closer frames are more likely the same scene.
        base = 0.9 if self.same_face else 0.7
        limit = FACE_SECONDS if self.same_face else BURST_SECONDS
        return round(base * (1.0 - 0.5 * self.seconds / limit), 4)


def neighbours(event_id: int) -> list[Neighbour]:
    """The suggestions the event's bursts give now; writes nothing."""
    frames = list(Photo.objects.filter(event_id=event_id, photographer__isnull=False,
                                       captured_at__isnull=False)
                  .order_by("photographer_id", "captured_at", "pk")
                  .values_list("pk", "photographer_id", "captured_at"))
    seeds: dict[int, set[str]] = {}
    # The runner's face on the frame with the bib: the one the bib was linked to.
    seed_faces: dict[tuple[int, str], set[int]] = {}
    for photo_id, bib, face_id in (shown_tags(event_id).exclude(source=BibTag.Source.TIMING)
                                   .values_list("photo_id", "bib", "face_id")):
        seeds.setdefault(photo_id, set()).add(bib)
        if face_id is not None:
            seed_faces.setdefault((photo_id, bib), set()).add(face_id)
    if not seeds:
        return []
    tagged: dict[int, set[str]] = {}
    accounted: set[int] = set()  # faces some tag of their photo is linked to
    for photo_id, bib, face_id in (BibTag.objects.filter(photo__event_id=event_id)
                                   .values_list("photo_id", "bib", "face_id")):
        tagged.setdefault(photo_id, set()).add(bib)
        if face_id is not None:
            accounted.add(face_id)
    rejected = set(RejectedReading.objects.filter(photo__event_id=event_id)
                   .values_list("photo_id", "bib"))

    # Every (frame, bib) within FACE_SECONDS of a frame with that bib, the closest kept.
    candidates: dict[tuple[int, str], tuple[float, int]] = {}
    start = 0
    while start < len(frames):
        end = start
        while end < len(frames) and frames[end][1] == frames[start][1]:
            end += 1
        burst = frames[start:end]
        times = [captured_at.timestamp() for _pk, _who, captured_at in burst]
        for index, (seed_id, _who, _at) in enumerate(burst):
            for bib in seeds.get(seed_id, ()):
                for step in (-1, 1):
                    other = index + step
                    while 0 <= other < len(burst) and abs(times[other] - times[index]) <= FACE_SECONDS:
                        photo_id = burst[other][0]
                        key = (photo_id, bib)
                        seconds = abs(times[other] - times[index])
                        if (bib not in tagged.get(photo_id, ()) and key not in rejected
                                and (key not in candidates or seconds < candidates[key][0])):
                            candidates[key] = (seconds, seed_id)
                        other += step
        start = end
    if not candidates:
        return []

    faces = photo_faces({photo_id for photo_id, _bib in candidates}
                        | {seed_id for _seconds, seed_id in candidates.values()})
    runners = RunnerFaces.of_event(event_id)
    found = []
    for (photo_id, bib), (seconds, seed_id) in candidates.items():
        runner = [face for face in faces.get(seed_id, ()) if face.vector is not None
                  and (face.bib == bib or face.pk in seed_faces.get((seed_id, bib), ()))]
        here = faces.get(photo_id, [])
        same_face = any(face.model == seed.model and link_threshold(face.model) is not None
                        and float(face.vector @ seed.vector) >= link_threshold(face.model)
                        for face in here if face.vector is not None for seed in runner)
        verdict = runners.verdict(here, bib)
        if verdict == OTHER and not same_face:
            continue  # every face here is another runner the event knows
        same_face = same_face or verdict == SAME
        # A hidden bib needs a runner whose bib is not read here: every face linked to a
        # bib already means everyone in the frame is accounted for.
        someone_unread = not here or any(not face.bib and face.pk not in accounted
                                         for face in here)
        if same_face or (seconds <= BURST_SECONDS and someone_unread):
            found.append(Neighbour(photo_id, bib, seed_id, seconds, same_face))
    return found


def recompute(event_id: int) -> int:
    """Replace the event's sequence suggestions with what its bursts give now; how many."""
    found = neighbours(event_id)
    with transaction.atomic():
        TagSuggestion.objects.filter(photo__event_id=event_id,
                                     source=TagSuggestion.Source.SEQUENCE).delete()
        TagSuggestion.objects.bulk_create([
            TagSuggestion(photo_id=item.photo_id, bib=item.bib,
                          source=TagSuggestion.Source.SEQUENCE, score=item.score,
                          seconds=item.seconds, from_photo_id=item.from_photo_id,
                          same_face=item.same_face)
            for item in found], batch_size=2000)
    return len(found)
