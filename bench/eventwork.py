"""Event-wide work as an event grows: linking, suggestions and index syncs at 1,000 to
50,000 photos, on the real database.

    python bench/eventwork.py [--photos 1000 10000 50000] [--burst 100] [--claims 40]
                              [--seed 0]

A photo's own steps cost the same in an event of any size; what can grow with the event
is the work done for the whole event while its photos come in: each run of
``link_event`` reads every face of the event, and the suggestions and index syncs read
the event's tags and vectors. bench/event.py measures a whole event through the running
stack, but at about 2 CPU-s a photo an event of 10,000 takes hours; this measures the
event-wide part alone, at the sizes where it would show, in minutes.

One event is grown in a throwaway database (bench/ingest.py's way) to each ``--photos``
size in turn, from faces shaped like SFace's (bench/clustering.py's synthetic runners:
about two faces a photo, 40 % of them with their runner's bib read by OCR, 128-d
vectors), a start list of every bib, one CLIP vector (512-d, under the product's CLIP
signature, so the photos' HNSW index is kept up as in use) a photo, capture times from
twelve cameras shooting in bursts, and ``--claims`` runners who claimed their bib before
the photos came, a quarter of them opting out of face search (from the first claim on,
the database's face-search rule reads the claims on every face written). At each size:

1. everything but the last ``--burst`` photos is in the event, linked once in full and
   indexed (timed: the full link, as ``manage.py relink_event`` runs it, and the index build);
2. the burst's photos arrive, and the runs a worker makes after a burst are timed one by
   one, as ``mlpipeline.tasks`` runs them: the incremental link, the burst and timing
   suggestions, the face and CLIP index syncs;
3. then what runners and the organiser do, each answered inside one web request: one
   more runner opts out (``accounts.privacy.set_face_search``), and the organiser turns
   the event's face search off and on again (the admin's save).

Reported for each size: the seconds of each run, the seconds per 1,000 photos of the
event, and the process's peak RSS so far. Then what it means for an upload: with
``EVENT_WORK_SPACING`` (9) each task waits nine times its own last duration before it runs
again, so each keeps to a tenth of one worker process at any size, a new photo waits for
about ten linking runs' time to be linked, and the last photo of an upload for one run.

Wall times depend on the machine's load: report ``uptime`` with them.
"""

import argparse
import datetime
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import clustering  # noqa: E402  (synthetic SFace-like runners)
from bench.search import _with_database  # noqa: E402  (a throwaway database)

FACES_PER_PHOTO = 2  # bench/clustering.py's photos hold one to three runners
CLIP_DIMENSION = 512
CAMERAS = 12
BATCH = 2000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class GrowingEvent:
    """One event, filled photo by photo (in upload order) from a synthetic race."""

    def __init__(self, photos: int, seed: int, claims: int = 0):
        from django.contrib.auth import get_user_model

        from accounts import privacy
        from accounts.models import BibClaim
        from events.models import Event, StartListEntry
        from mlpipeline.inference import registry
        from mlpipeline.inference.sface import SFaceEmbedder

        self.model = SFaceEmbedder.signature
        # The product's CLIP signature, so the photos' own HNSW index is kept up as in use.
        self.clip_model = next(iter(registry.clip_vector_dimensions()))
        vectors, photo_ids, bibs, _runners = clustering.synthetic_event(
            FACES_PER_PHOTO * photos, seed=seed)
        # bench/clustering.py numbers photos on a random permutation of the faces, so the
        # order of the numbers is an upload order where a runner's photos come at any time.
        order = np.argsort(photo_ids, kind="stable")
        self.vectors = vectors[order].astype(np.float32)
        self.photo_of = np.asarray(photo_ids)[order]
        self.bibs = [bibs[index] for index in order]
        self.face_start = np.searchsorted(self.photo_of, np.arange(self.photo_of.max() + 2))
        self.event = Event.objects.create(
            name="Event-wide work", slug=f"bench-eventwork-{seed}", date=datetime.date.today(),
            is_published=True, face_search=Event.FaceSearch.ON)
        StartListEntry.objects.bulk_create(
            [StartListEntry(event=self.event, bib=bib, first_name="Runner", last_name=bib)
             for bib in sorted({bib for bib in self.bibs if bib})], batch_size=5000)
        # Runners who claimed their bib, a quarter of them opting out: from the first claim
        # on, the database's face-search rule reads the claims on every face written.
        self.bib_pool = sorted({bib for bib in self.bibs if bib})
        self.rng = np.random.default_rng(seed)
        self.user = get_user_model().objects.create_user("bench-runner@example.com",
                                                         password=None)
        claims = min(claims, len(self.bib_pool) // 2)  # bibs left for opt_out()
        for number, bib in enumerate(self.rng.choice(self.bib_pool, claims, replace=False)):
            choice = (BibClaim.FaceSearch.OPTED_OUT if number % 4 == 0
                      else BibClaim.FaceSearch.CONSENTED)
            privacy.claim_bib(self.user, self.event, str(bib), face_search=choice)
        self.loaded = 0
        self.start = datetime.datetime(2026, 5, 1, 9, 0, tzinfo=datetime.UTC)

    @property
    def available(self) -> int:
        return len(self.face_start) - 1

    def add(self, count: int) -> None:
        """The next ``count`` photos, processed: ready, faces embedded, bibs read, CLIP."""
        from django.db import transaction

        from photos.models import BibTag, Face, Photo

        stop = min(self.available, self.loaded + count)
        for first in range(self.loaded, stop, BATCH):
            numbers = range(first, min(stop, first + BATCH))
            with transaction.atomic():
                photos = Photo.objects.bulk_create([self._photo(number) for number in numbers])
                faces, tags = [], []
                for number, photo in zip(numbers, photos):
                    for index in range(self.face_start[number], self.face_start[number + 1]):
                        bib = self.bibs[index] or ""
                        face = Face(photo=photo, event=self.event, box=[100, 100, 160, 170],
                                    score=0.99, embedding=self.vectors[index], model=self.model,
                                    bib=bib)
                        faces.append(face)
                        if bib:
                            tags.append(BibTag(photo=photo, bib=bib, confidence=0.9,
                                               source=BibTag.Source.OCR, confirmed=True,
                                               face=face))
                Face.objects.bulk_create(faces)
                # A runner twice in one photo is read once (one tag per photo and bib).
                BibTag.objects.bulk_create(tags, ignore_conflicts=True)
        self.loaded = stop

    def opt_out(self) -> int:
        """One more runner opts out: every face of their clusters leaves face search."""
        from accounts import privacy
        from accounts.models import BibClaim

        taken = set(BibClaim.objects.filter(event=self.event).values_list("bib", flat=True))
        bib = next(bib for bib in self.bib_pool if bib not in taken)
        claim = privacy.claim_bib(self.user, self.event, bib)
        return privacy.set_face_search(claim, BibClaim.FaceSearch.OPTED_OUT)

    def set_face_search(self, setting: str) -> None:
        """The organiser changes the event's face-search setting (the admin's save)."""
        self.event.face_search = setting
        self.event.save()

    def _photo(self, number: int):
        from photos.models import Photo

        camera = number % CAMERAS
        # Each camera shoots bursts of five frames 0.3 s apart, a burst every 20 s or so.
        shot = number // CAMERAS
        seconds = (shot // 5) * 20 + (shot % 5) * 0.3 + camera * 1.7
        clip = self.rng.normal(size=CLIP_DIMENSION).astype(np.float32)
        return Photo(event=self.event, state=Photo.State.READY, content_hash=f"{number:064d}",
                     original_name=f"IMG_{number:05d}.JPG", camera=f"Camera {camera}",
                     preview=f"previews/{number}.jpg", thumbnail=f"thumbnails/{number}.jpg",
                     width=6000, height=4000,
                     captured_at=self.start + datetime.timedelta(seconds=seconds),
                     clip_embedding=clip / np.linalg.norm(clip), clip_model=self.clip_model)


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def measure(event: GrowingEvent, size: int, burst: int) -> dict:
    from django.db import connection

    from mlpipeline import event_linking, indexes
    from photos import sequences, timing
    from photos.models import Face

    event.add(size - burst - event.loaded)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    pk = event.event.pk
    figures = {"photos": size, "faces": 0}
    figures["full link"], _ = timed(lambda: event_linking.link_event(pk, full=True))
    figures["index build"], _ = timed(lambda: (indexes.sync(pk, indexes.FACES),
                                               indexes.sync(pk, indexes.CLIP)))
    event.add(burst)
    figures["faces"] = Face.objects.filter(event_id=pk).count()
    # What a worker runs after a burst (mlpipeline.tasks: link_event, then suggestions;
    # sync_index once per kind).
    figures["link"], result = timed(lambda: event_linking.link_event(pk))
    figures["moved"] = result.faces_moved
    figures["tags"] = result.face_link_tags
    figures["bursts"], _ = timed(lambda: sequences.recompute(pk))
    figures["timing"], _ = timed(lambda: timing.recompute(pk))
    figures["face index"], _ = timed(lambda: indexes.sync(pk, indexes.FACES))
    figures["CLIP index"], _ = timed(lambda: indexes.sync(pk, indexes.CLIP))
    # What runners and the organiser do, answered inside a web request.
    figures["opt-out"], _ = timed(lambda: event.opt_out())
    figures["face search off"], _ = timed(lambda: event.set_face_search("off"))
    figures["face search on"], _ = timed(lambda: event.set_face_search("on"))
    figures["peak MiB"] = peak_rss_mib()
    return figures


RUNS = ("link", "bursts", "timing", "face index", "CLIP index")
ASKED = ("opt-out", "face search off", "face search on")


def report(rows: list[dict], burst: int, spacing: int) -> None:
    print(f"\nafter a burst of {burst} new photos (s per run; per 1,000 photos of the event):")
    header = ["photos", "faces", *RUNS, "all runs", "full link", "index build", *ASKED,
              "peak RSS"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        total = sum(row[name] for name in RUNS)
        row["all runs"] = total
        per = 1000 / row["photos"]
        cells = [f"{row['photos']:,}", f"{row['faces']:,}"]
        cells += [f"{row[name]:.2f} ({row[name] * per:.3f})" for name in (*RUNS, "all runs")]
        cells += [f"{row[name]:.1f}" for name in ("full link", "index build")]
        cells += [f"{row[name]:.2f}" for name in ASKED]
        cells += [f"{row['peak MiB']:,.0f} MiB"]
        print(" | ".join(cells))
    print("\nfaces re-clustered by the incremental link: "
          + ", ".join(f"{row['moved']:,} of {row['faces']:,}" for row in rows))
    print("face-link tags: " + ", ".join(f"{row['tags']:,}" for row in rows))
    first, last = rows[0], rows[-1]
    if len(rows) > 1:
        growth = (last["all runs"] / first["all runs"]) / (last["photos"] / first["photos"])
        print(f"\ncost of one round of event-wide runs, {first['photos']:,} -> {last['photos']:,} "
              f"photos: x{last['all runs'] / first['all runs']:.1f} for x"
              f"{last['photos'] / first['photos']:.0f} the photos (x{growth:.2f} per photo)")
    for row in rows:
        # Spaced runs: each waits EVENT_WORK_SPACING times its duration after it ends.
        linking = row["link"] + row["bursts"] + row["timing"]  # one task: link_and_suggest
        print(f"{row['photos']:,} photos: a new photo is linked within about "
              f"{(spacing + 1) * linking:.0f} s of being ready, the upload's last one within "
              f"{linking:.1f} s after it")
    print(f"(each of the three event-wide tasks, linking with its suggestions and the two "
          f"index syncs, waits {spacing} times its own duration between runs: each keeps to "
          f"1/{spacing + 1} of one worker process at any size)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--burst", type=int, default=100,
                        help="new photos between two rounds of event-wide runs (default 100)")
    parser.add_argument("--claims", type=int, default=40,
                        help="runners who claimed their bib before the photos, a quarter "
                             "opted out (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = sorted(args.photos)
    if sizes[0] <= args.burst:
        parser.error(f"every size must be larger than the burst ({args.burst})")

    def run():
        import logging

        from django.conf import settings

        logging.getLogger("mlpipeline").setLevel(logging.WARNING)
        started = time.monotonic()
        event = GrowingEvent(sizes[-1], args.seed, args.claims)
        print(f"synthetic race: {event.available:,} photos, {len(event.vectors):,} faces "
              f"({time.monotonic() - started:.0f} s to generate)", flush=True)
        rows = []
        for size in sizes:
            started = time.monotonic()
            rows.append(measure(event, min(size, event.available), args.burst))
            print(f"{rows[-1]['photos']:,} photos measured ({time.monotonic() - started:.0f} s "
                  f"with loading)", flush=True)
        report(rows, args.burst, settings.EVENT_WORK_SPACING)
        return 0

    return _with_database(run)


if __name__ == "__main__":
    sys.exit(main())
