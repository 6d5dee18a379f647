"""Outfit colours on rbnr-dev, and outfit text search time on a generated event.

    python bench/outfit.py /work/shared/data/rbnr-dev [--labels bench/outfit_labels.csv]
                           [--no-bib-boxes] [--search 20000] [--runs 200]

(a) Accuracy: bench/outfit_labels.csv holds the shirt colour of rbnr-dev runners, labelled
    by eye on contact sheets of their torsos (runner = the face box of boxes.csv, with its
    bib box; mixed-colour shirts were left out). Every labelled runner goes through
    ``OutfitReader`` with that face box and, as the pipeline masks the bibs it read, the
    labelled bib boxes of the photo (``--no-bib-boxes``: none, as for unread bibs).
    Printed: accuracy overall and per labelled colour, the confusion (label -> named),
    and the model's time per photo (every labelled runner of the photo at once).
    The labels file is by image name and face box; the images are never copied.
(b) ``--search N``: an event of N generated photos, each with one to three runners of
    random colours, in throwaway embedded servers (a temp dir, deleted afterwards); the
    server time of outfit text search (parse + ``photos_by_colours``, and the event page
    with ``?outfit=``) for a set of English and French queries, p50 and p95; then the CLIP
    path on random 512-d image vectors (its text encoder stood in for: no weights here),
    before the event's CLIP index exists (PostgreSQL scores every photo) and with it.
"""

import argparse
import csv
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ("red shirt", "maillot rouge casquette blanche", "short noir", "blue",
           "white cap black shorts", "t-shirt jaune", "débardeur vert et blanc", "navy tights",
           "casquette rose", "orange")


def _boxes(row, prefix) -> tuple[float, float, float, float]:
    return tuple(float(row[f"{prefix}_{key}"]) for key in ("x1", "y1", "x2", "y2"))


def bench_accuracy(data: Path, labels: Path, bib_boxes: bool) -> float:
    from mlpipeline.inference.outfit import PALETTE, OutfitReader

    bibs_of = defaultdict(list)
    for row in csv.DictReader(open(data / "boxes.csv")):
        bibs_of[row["image"]].append(_boxes(row, "bib"))
    runners = defaultdict(list)
    for row in csv.DictReader(open(labels)):
        runners[row["image"]].append((_boxes(row, "face"), row["shirt"]))
    reader = OutfitReader().ensure_loaded()
    confusion: dict[str, Counter] = defaultdict(Counter)
    times = []
    for image_name, labelled in sorted(runners.items()):
        with Image.open(data / "images" / image_name) as image:
            image = image.convert("RGB")
        started = time.perf_counter()
        outfits = reader.predict(image, [face for face, _shirt in labelled],
                                 bibs_of[image_name] if bib_boxes else ())
        times.append(time.perf_counter() - started)
        for (_face, shirt), outfit in zip(labelled, outfits):
            named = outfit.shirt.colour if outfit and outfit.shirt else "(none)"
            confusion[shirt][named] += 1
    total = sum(sum(row.values()) for row in confusion.values())
    right = sum(row[colour] for colour, row in confusion.items())
    print(f"(a) shirt colour, {total} labelled runners in {len(runners)} photos"
          f"{'' if bib_boxes else ', no bib boxes'}: accuracy {right}/{total} = {right / total:.3f}")
    for colour in sorted(confusion, key=lambda c: -sum(confusion[c].values())):
        row = confusion[colour]
        count = sum(row.values())
        print(f"  {colour:>7}: {row[colour]:3d}/{count:<3d} = {row[colour] / count:.2f}   named: "
              + ", ".join(f"{named} {n}" for named, n in row.most_common()))
    named = sorted({named for row in confusion.values() for named in row},
                   key=lambda c: PALETTE.index(c) if c in PALETTE else len(PALETTE))
    print("  confusion (rows: label, columns: named)")
    print("  " + " " * 8 + "".join(f"{c[:6]:>7}" for c in named))
    for colour in sorted(confusion, key=PALETTE.index):
        print(f"  {colour:>8}" + "".join(f"{confusion[colour][c] or '.':>7}" for c in named))
    times_ms = sorted(t * 1000 for t in times)
    print(f"  time per photo: median {statistics.median(times_ms):.1f} ms, "
          f"p95 {times_ms[int(0.95 * (len(times_ms) - 1))]:.1f} ms, max {times_ms[-1]:.1f} ms")
    return right / total


def _percentile(values, share) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))]


def bench_search(count: int, runs: int) -> None:
    temp_root = Path(tempfile.mkdtemp(prefix="racephoto-bench-outfit-"))
    var_dir = temp_root / "var"
    for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR"):
        os.environ.pop(key, None)
    # No CLIP weights: the colours' search is the one timed.
    os.environ.update(DEBUG="1", RACEPHOTO_VAR_DIR=str(var_dir), CELERY_TASK_ALWAYS_EAGER="0",
                      DJANGO_SETTINGS_MODULE="racephoto.settings",
                      MODELS_DIR=str(temp_root / "models"), ML_PIPELINE="0")
    try:
        _search(count, runs)
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey

        EmbeddedPostgres(var_dir).stop()
        EmbeddedValkey(var_dir).stop()
        shutil.rmtree(temp_root, ignore_errors=True)


def _search(count: int, runs: int) -> None:
    import django

    django.setup()
    import datetime
    import logging

    from django.core.management import call_command
    from django.test import Client

    from events.models import Event
    from mlpipeline.inference.outfit import PALETTE
    from photos.models import Face, Outfit, Photo
    from search import outfit

    logging.disable(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)
    event = Event.objects.create(name="Bench outfit", slug="bench-outfit",
                                 date=datetime.date.today(), is_published=True)
    rng = random.Random(0)
    started = time.perf_counter()
    photos = Photo.objects.bulk_create([
        Photo(event=event, original=f"originals/{n}.jpg", content_hash=f"{n:064d}",
              state=Photo.State.READY, preview=f"previews/{n}.jpg", thumbnail=f"thumbnails/{n}.jpg",
              captured_at=datetime.datetime(2026, 9, 14, 9, tzinfo=datetime.UTC)
              + datetime.timedelta(seconds=n))
        for n in range(count)], batch_size=2000)
    faces = Face.objects.bulk_create([
        Face(photo=photo, event=event, box=[10, 10, 60, 70], score=0.99, searchable=False)
        for photo in photos for _ in range(rng.choice((1, 1, 2, 3)))], batch_size=2000)

    def colour(share_seen):
        return (rng.choice(PALETTE), round(rng.uniform(0.3, 1.0), 3)) \
            if rng.random() < share_seen else ("", 0.0)

    rows = []
    for face in faces:
        (cap, cap_c), (shirt, shirt_c), (legs, legs_c) = colour(0.3), colour(0.95), colour(0.8)
        rows.append(Outfit(photo_id=face.photo_id, event=event, face=face, model="bench@1",
                           cap=cap, cap_confidence=cap_c, shirt=shirt, shirt_confidence=shirt_c,
                           legs=legs, legs_confidence=legs_c))
    Outfit.objects.bulk_create(rows, batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"(b) generated {count} photos, {len(faces)} runners with outfits "
          f"in {time.perf_counter() - started:.0f} s")

    search_ms, page_ms = [], []
    client = Client(HTTP_HOST="localhost")
    for run in range(runs):
        query = QUERIES[run % len(QUERIES)]
        started = time.perf_counter()
        matches = outfit.photos_by_outfit(event, query)
        search_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        response = client.get(f"/en/events/{event.slug}/", {"outfit": query})
        page_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or not matches:
            raise SystemExit(f"{query!r}: HTTP {response.status_code}, {len(matches)} matches")
    print(f"  outfit search (parse + ranked photo ids), {runs} runs of {len(QUERIES)} queries: "
          f"p50 {statistics.median(search_ms):.1f} ms, p95 {_percentile(search_ms, 0.95):.1f} ms")
    print(f"  event page with ?outfit= (search, public photos, first 24 tiles rendered): "
          f"p50 {statistics.median(page_ms):.1f} ms, p95 {_percentile(page_ms, 0.95):.1f} ms")
    _search_clip(event, photos, runs)


class _RandomText:
    """Stands in for CLIP's text tower (no weights here): a random unit vector per query.
    What is timed is the rest, the same with real weights: every photo's similarity in
    PostgreSQL, then the robust z-score cut-off."""

    signature = "open_clip-ViT-B-32@1"

    def __init__(self, rng):
        self.rng = rng

    def embed_text(self, text):
        import numpy as np

        vector = np.array([self.rng.gauss(0, 1) for _ in range(512)], dtype=np.float32)
        return vector / np.linalg.norm(vector)


def _search_clip(event, photos, runs) -> None:
    import numpy as np

    from mlpipeline import loaded
    from photos.models import Photo
    from search import outfit

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for photo in photos:
        vector = rng.normal(size=512).astype(np.float32)
        photo.clip_embedding = (vector / np.linalg.norm(vector)).tolist()
        photo.clip_model = _RandomText.signature
    Photo.objects.bulk_update(photos, ["clip_embedding", "clip_model"], batch_size=1000)
    print(f"  CLIP: {len(photos)} random 512-d image vectors stored in "
          f"{time.perf_counter() - started:.0f} s")
    loaded.clip_embedder = lambda: text_model
    text_model = _RandomText(random.Random(1))

    def timed():
        clip_ms, found = [], []
        for run in range(runs):
            query = outfit.parse(QUERIES[run % len(QUERIES)])
            started = time.perf_counter()
            found.append(len(outfit.photos_by_clip(event, query)))
            clip_ms.append((time.perf_counter() - started) * 1000)
        return (f"p50 {statistics.median(clip_ms):.1f} ms, p95 {_percentile(clip_ms, 0.95):.1f} ms, "
                f"{statistics.mean(found):.1f} photos kept on average")

    print(f"  CLIP outfit search without the text encoder, before the event's CLIP index exists "
          f"(every photo's similarity in PostgreSQL, z-score cut-off), {runs} runs: {timed()}")
    from mlpipeline import indexes

    started = time.perf_counter()
    indexes.sync(event.pk, indexes.CLIP)
    print(f"  CLIP index of {len(photos)} photos built in {time.perf_counter() - started:.0f} s")
    print(f"  CLIP outfit search without the text encoder, with the index (the closest "
          f"{outfit.CLIP_MAX_RESULTS} from hnswlib, the cut-off from {indexes.SAMPLE_SIZE} sampled "
          f"vectors), {runs} runs: {timed()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="rbnr-dev folder (images/, boxes.csv)")
    parser.add_argument("--labels", type=Path, default=ROOT / "bench" / "outfit_labels.csv")
    parser.add_argument("--no-bib-boxes", action="store_true",
                        help="do not mask the labelled bib boxes (as for bibs nobody read)")
    parser.add_argument("--search", type=int, default=0, metavar="PHOTOS",
                        help="also time outfit search on an event of this many generated photos")
    parser.add_argument("--runs", type=int, default=200, help="searches timed with --search")
    args = parser.parse_args(argv)
    if not (args.data / "boxes.csv").is_file():
        parser.error(f"{args.data} has no boxes.csv")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "racephoto.settings")
    bench_accuracy(args.data, args.labels, not args.no_bib_boxes)
    if args.search:
        bench_search(args.search, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
