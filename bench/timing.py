"""Photos found by time and by bursts: how many untagged photos they recover, on generated data.

    python bench/timing.py [--runners 800] [--seed 0] [--read-share 0.55]

One generated race: ``--runners`` runners with a start list, finishing 09:40–10:40 (a
log-normal spread, denser in the middle: at the peak one runner every second or two)
and a finish-mat timing file. Three photographers stand at known offsets from the mat
(−4 s, −25 s, +6 s: runners' paces vary, so the further from the mat the later or
earlier a runner really is); two of their cameras' clocks are wrong (+137 s, −62 s).
Each photographer catches a runner with some chance, in a burst of 1–4 frames 0.4 s
apart; in each burst the bib is readable with ``--read-share`` chance per frame (a
read tag, linked to the runner's face when a face was found), else it is hidden (the
truth is kept). A frame also shows any other runner at the camera within 0.5 s (the
truth is a set of bibs). One photo in twenty shows nobody (crowd, empty road: no face).

The product's own code then runs on a throwaway database: ``photos.timing.recompute``
with the cameras' clocks as set, again after ``set_clock_from_photo`` on one read photo
per photographer ("this photo is bib …"), and ``photos.sequences.recompute``. For the
untagged photos of runners (no bib read): how many get a right tag (timing), how many
have the right bib among their suggestions; and the precision of tags and suggestions
(a bib counts as right when the runner is on the photo).
"""

import argparse
import datetime as dt
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RACE_START = dt.datetime(2026, 5, 10, 7, 30, tzinfo=dt.UTC)  # 09:30 in Paris
# (name, position from the mat in s, window in s, camera clock error in s)
PHOTOGRAPHERS = (("finish-line", -4.0, 3.0, 0.0), ("last-bend", -25.0, 6.0, 137.0),
                 ("after-the-mat", 6.0, 3.0, -62.0))
CATCH_SHARE = 0.7
EMPTY_SHARE = 0.05
FACE_SHARE = 0.8


def generate(runners: int, seed: int, read_share: float) -> dict:
    """The race as the photographers saw it: finish times and frames with their truth."""
    rng = random.Random(seed)
    finish = {str(bib): RACE_START + dt.timedelta(
        seconds=min(3600 + 600, max(600.0, 600 + rng.lognormvariate(math.log(1500), 0.35))))
        for bib in range(1, runners + 1)}
    pace = {bib: rng.gauss(1.0, 0.1) for bib in finish}  # how much slower than the average
    frames = []
    for name, position, _window, clock_error in PHOTOGRAPHERS:
        # When each runner is really in front of this camera.
        at_camera = {bib: passed + dt.timedelta(seconds=position * pace[bib])
                     for bib, passed in finish.items()}
        for bib, moment in at_camera.items():
            if rng.random() > CATCH_SHARE:
                continue
            first = moment + dt.timedelta(seconds=rng.uniform(-0.8, 0.8))
            readable = rng.random() < read_share
            for frame in range(rng.randint(1, 4)):
                taken = first + dt.timedelta(seconds=0.4 * frame)
                seen = {other for other, there in at_camera.items()
                        if abs((there - taken).total_seconds()) < 0.5} | {bib}
                # Within a burst the bib is mostly visible or mostly hidden, not at random.
                read = rng.random() < (0.85 if readable else 0.15)
                frames.append({"photographer": name, "taken": taken, "truth": seen, "main": bib,
                               "read": read, "face": rng.random() < FACE_SHARE,
                               "clock_error": clock_error})
        first_time, last_time = min(finish.values()), max(finish.values())
        for _empty in range(int(len(frames) * EMPTY_SHARE / len(PHOTOGRAPHERS)) + 1):
            taken = first_time + (last_time - first_time) * rng.random()
            frames.append({"photographer": name, "taken": taken, "truth": set(), "main": None,
                           "read": False, "face": False, "clock_error": clock_error})
    return {"finish": finish, "frames": frames}


def _vector(bib: str, frame: int) -> list[float]:
    base = np.random.default_rng(int(bib)).normal(size=128)
    noise = np.random.default_rng(10_000_000 + frame).normal(size=128) * 0.01
    value = base / np.linalg.norm(base) + noise
    return (value / np.linalg.norm(value)).tolist()


def load(race: dict, seed: int):
    """The race in the database, as upload, the bib step and a timing import leave it."""
    from accounts.models import User
    from events.models import Event, PhotographerTiming, StartListEntry, TimingPoint, TimingResult
    from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder
    from photos.models import BibTag, Face, Photo

    event = Event.objects.create(name=f"Bench timing {seed}", slug=f"bench-timing-{seed}",
                                 date=RACE_START.date(), time_zone="Europe/Paris")
    StartListEntry.objects.bulk_create([StartListEntry(event=event, bib=bib)
                                        for bib in race["finish"]])
    point = TimingPoint.objects.create(event=event, name="Finish")
    TimingResult.objects.bulk_create([TimingResult(point=point, bib=bib, passed_at=passed)
                                      for bib, passed in race["finish"].items()])
    users = {}
    for name, position, window, _error in PHOTOGRAPHERS:
        users[name] = User.objects.create(username=f"{name}-{seed}",
                                          role=User.Role.PHOTOGRAPHER)
        PhotographerTiming.objects.create(event=event, photographer=users[name], point=point,
                                          position_seconds=position, window_seconds=window)
    photos = Photo.objects.bulk_create([
        Photo(event=event, photographer=users[frame["photographer"]], state=Photo.State.READY,
              content_hash=f"{seed}-{index}", original_name=f"{frame['photographer']}-{index:06d}.jpg",
              captured_at=frame["taken"] + dt.timedelta(seconds=frame["clock_error"]))
        for index, frame in enumerate(race["frames"])], batch_size=2000)
    faces = Face.objects.bulk_create([
        Face(photo=photo, event=event, box=[10, 10, 60, 60], score=0.99,
             embedding=_vector(frame["main"], index), model=DlibFaceEmbedder.signature,
             bib=frame["main"] if frame["read"] else "")
        for index, (photo, frame) in enumerate(zip(photos, race["frames"]))
        if frame["face"] and frame["main"]], batch_size=2000)
    face_of = {face.photo_id: face for face in faces}
    BibTag.objects.bulk_create([
        BibTag(photo=photo, bib=frame["main"], confidence=0.9, source=BibTag.Source.OCR,
               confirmed=True, face=face_of.get(photo.pk))
        for photo, frame in zip(photos, race["frames"]) if frame["read"]], batch_size=2000)
    truth = {photo.pk: frame["truth"] for photo, frame in zip(photos, race["frames"])}
    untagged = {photo.pk for photo, frame in zip(photos, race["frames"])
                if frame["truth"] and not frame["read"]}
    return event, users, truth, untagged, photos, race["frames"]


def score(event, truth, untagged, source) -> dict:
    from photos.models import BibTag, TagSuggestion

    tags = list(BibTag.objects.filter(photo__event=event, source=BibTag.Source.TIMING)
                .values_list("photo_id", "bib")) if source == "timing" else []
    suggestions = list(TagSuggestion.objects.filter(photo__event=event, source=source)
                       .values_list("photo_id", "bib"))
    right = lambda pairs: [(photo, bib) for photo, bib in pairs if bib in truth[photo]]  # noqa: E731
    return {
        "tags": len(tags), "tags_right": len(right(tags)),
        "tag_recovered": len({photo for photo, _bib in right(tags) if photo in untagged}),
        "suggestions": len(suggestions), "suggestions_right": len(right(suggestions)),
        "suggested_recovered": len({photo for photo, _bib in right(suggestions)
                                    if photo in untagged}),
        "recovered": {photo for photo, _bib in right(tags) + right(suggestions)
                      if photo in untagged},
    }


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.3f})" if whole else f"{part}/0"


def _report(label: str, figures: dict, untagged: int, seconds: float) -> None:
    print(f"{label} ({seconds:.2f} s):")
    if figures["tags"]:
        print(f"  tags: {figures['tags']}, precision {_share(figures['tags_right'], figures['tags'])};"
              f" untagged photos recovered by a tag {_share(figures['tag_recovered'], untagged)}")
    print(f"  suggestions: {figures['suggestions']}, precision "
          f"{_share(figures['suggestions_right'], figures['suggestions'])}; untagged photos with "
          f"the right bib among them {_share(figures['suggested_recovered'], untagged)}")


def run(args) -> dict:
    """The bench on the current database (a throwaway one from main, the test's in tests)."""
    from photos import sequences, timing

    race = generate(args.runners, args.seed, args.read_share)
    event, users, truth, untagged, photos, frames = load(race, args.seed)
    nobody = sum(1 for frame in frames if not frame["truth"])
    print(f"event: {args.runners} runners, {len(frames)} photos by {len(PHOTOGRAPHERS)} "
          f"photographers ({nobody} of nobody), {len(untagged)} photos of runners with no bib "
          f"read; clocks off by {', '.join(f'{error:+g} s' for *_rest, error in PHOTOGRAPHERS)}")

    started = time.monotonic()
    timing.recompute(event.pk)
    before = score(event, truth, untagged, "timing")
    _report("timing, cameras' clocks as set", before, len(untagged), time.monotonic() - started)

    # "This photo is bib …": the first read photo of each photographer whose clock is off.
    organiser = users[PHOTOGRAPHERS[0][0]]
    for name, *_rest, error in PHOTOGRAPHERS:
        if not error:
            continue
        photo, frame = next((photo, frame) for photo, frame in zip(photos, frames)
                            if frame["photographer"] == name and frame["read"])
        timing.set_clock_from_photo(organiser, event, photo, frame["main"])
    started = time.monotonic()
    timing.recompute(event.pk)
    after = score(event, truth, untagged, "timing")
    _report("timing, clocks set from one photo each", after, len(untagged),
            time.monotonic() - started)

    started = time.monotonic()
    sequences.recompute(event.pk)
    bursts = score(event, truth, untagged, "sequence")
    _report("sequence neighbours", bursts, len(untagged), time.monotonic() - started)

    both = after["recovered"] | bursts["recovered"]
    print(f"together: untagged photos with the right bib as a tag or a suggestion "
          f"{_share(len(both), len(untagged))}")
    return {"before": before, "after": after, "bursts": bursts, "untagged": len(untagged),
            "together": len(both)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--read-share", type=float, default=0.55,
                        help="chance that a burst shows its bib readably")
    args = parser.parse_args(argv)

    from bench.ingest import _isolate, _stop_servers

    temp_root = Path(tempfile.mkdtemp(prefix="racephoto-bench-timing-"))
    var_dir = temp_root / "var"
    _isolate(var_dir, Path(os.environ.get("MODELS_DIR") or ROOT / "var" / "models").resolve())
    try:
        import logging

        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        logging.getLogger("mlpipeline").setLevel(logging.WARNING)
        run(args)
    finally:
        _stop_servers(var_dir)
        shutil.rmtree(temp_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
