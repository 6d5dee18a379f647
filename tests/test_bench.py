"""Every bench script runs on a few generated images, so none of them rots unnoticed.

The figures mean nothing at this size: what is tested is that each script's main
reads its data layout, runs the product's real models and code, and prints its
figures. bench/startup.py is not run here: it starts the whole server
(``manage.py run``: initdb, migrations, demo data, a web server on a port), which
takes minutes on a shared machine; run it by hand. bench/event.py starts that same
server too, without the demo data: its test is the one check of the whole stack's path
(drop folder, worker, linking, indexes, web search), so it runs, on three photos.
"""

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from mlpipeline.inference.mtcnn import FaceDetector
from mlpipeline.tests.test_faces import CARTOON_FACE, cartoon_face, marked_face
from mlpipeline.tests.test_ocr import BIB, FACE, runner_photo

ROOT = Path(__file__).resolve().parents[1]


def bench(name: str):
    """bench/<name>.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_labels(dataset: Path, photos: dict[str, str]) -> None:
    """rbnr-dev's label files for drawn runner photos (one bib each, under the drawn face):
    labels.csv, meta.csv (one set) and boxes.csv."""
    write_csv(dataset / "labels.csv", ["image", "bibs"], [[n, b] for n, b in photos.items()])
    write_csv(dataset / "meta.csv", ["image", "set"], [[n, "race"] for n in photos])
    write_csv(dataset / "boxes.csv",
              ["image", "bib", "bib_x1", "bib_y1", "bib_x2", "bib_y2",
               "face_x1", "face_y1", "face_x2", "face_y2"],
              [[name, bib, *BIB, *FACE] for name, bib in photos.items()])


@pytest.fixture
def torch_threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_bibs_scores_a_labelled_set_and_times_a_crowd(tmp_path, capsys,
                                                            torch_threads_restored):
    (tmp_path / "images").mkdir()
    photos = {"race_1.jpg": "4721", "race_2.jpg": "318"}
    for name, number in photos.items():
        runner_photo(number).save(tmp_path / "images" / name, quality=92)
    write_csv(tmp_path / "labels.csv", ["image", "bibs"], [[n, b] for n, b in photos.items()])
    write_csv(tmp_path / "meta.csv", ["image", "set"], [[n, "race"] for n in photos])

    assert bench("bibs").main([str(tmp_path), "--start-list", "--threads", "1",
                               "--dump", str(tmp_path / "dump")]) == 0

    out = capsys.readouterr().out
    assert "labelled bibs: 2" in out
    assert "[start list, confidence >= 0.3] recall" in out
    assert "OCR wall (start list) s/photo: mean" in out
    assert "OCR wall on a drawn crowd photo (285 faces" in out
    assert f"dumped to {tmp_path / 'dump'}" in out


def test_bench_crowd_explains_each_missed_bib(tmp_path, capsys, torch_threads_restored):
    """A runner whose bib is blank is missed in the crowd frame and in its own photo: the
    explanation says so (the reader's ceiling, not the crowd's)."""
    (tmp_path / "images").mkdir()
    runner_photo("4721").save(tmp_path / "images" / "race_1.jpg", quality=92)
    blank = runner_photo("4721")
    ImageDraw.Draw(blank).rectangle(BIB, fill=(110, 100, 90))
    blank.save(tmp_path / "images" / "race_2.jpg", quality=92)
    photos = {"race_1.jpg": "4721", "race_2.jpg": "999"}
    write_labels(tmp_path, photos)

    assert bench("crowd").main([str(tmp_path), "--frames", "1", "--size", "1600x1200",
                                "--runners", "3", "--faces", "60-70", "--no-legible",
                                "--explain"]) == 0

    out = capsys.readouterr().out
    assert "causes of misses by face height" in out
    missed = [line for line in out.splitlines() if line.split()[1:2] == ["999"]]
    assert missed and all(line.endswith("NO (reader ceiling)") for line in missed), out


def _close_up_and_group(tmp_path: Path) -> Path:
    """Two labelled photos of one runner: ``group.jpg`` (the face 70 px high in a 400 x 520
    photo) and ``close-up.jpg`` (the same face in a photo four times as large): scaled to
    one face size, the close-up is four times the group's size."""
    (tmp_path / "images").mkdir(parents=True)
    runner_photo("4721").save(tmp_path / "images" / "group.jpg", quality=92)
    runner_photo("4721", size=(1600, 2080)).save(tmp_path / "images" / "close-up.jpg", quality=92)
    write_labels(tmp_path, {"close-up.jpg": "4721", "group.jpg": "4721"})
    return tmp_path


def test_a_frame_of_one_group_draws_again_until_a_photo_fits(tmp_path):
    """A 1600 x 1200 frame with faces of 100 px: the close-up would be 2,286 px wide, so
    it never fits; drawn once a place, some frames are left empty (as bench/crowd.py's
    seeded dev set was measured), drawn up to 20 times, every frame holds its runner."""
    import numpy as np

    crowd = bench("crowd")
    dataset = _close_up_and_group(tmp_path)
    sources, start_lists = crowd.load_sources(dataset)

    def frames(attempts: int) -> list:
        rng = np.random.default_rng(3)
        return [crowd.make_frame(dataset, sources, start_lists, rng, (1600, 1200), 1, (100, 100),
                                 attempts=attempts) for _ in range(8)]

    once = frames(1)
    assert any(not frame.runners for frame in once)
    assert all(frame.runners == [] or frame.runners[0].source == "group.jpg" for frame in once)
    again = frames(20)
    assert all(len(frame.runners) == 1 and frame.runners[0].source == "group.jpg" for frame in again)
    only_close_ups = [source for source in sources if source.name == "close-up.jpg"]
    rng = np.random.default_rng(3)
    assert crowd.make_frame(dataset, only_close_ups, start_lists, rng, (1600, 1200), 1, (100, 100),
                            attempts=20).runners == []


def test_bench_bigphotos_times_every_step_of_a_camera_frame(tmp_path, capsys, torch_threads_restored):
    dataset = _close_up_and_group(tmp_path / "data")
    written = tmp_path / "frames"

    assert bench("bigphotos").main([str(dataset), "--sizes", "0.4", "--photos", "2", "--runners", "1",
                                    "--faces", "0.15", "0.2", "--write", str(written)]) == 0

    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["0.4", "775x516"])
    cells = row.split()
    # validation, derivatives, faces, bibs and outfit each timed (wall/CPU); CLIP has no
    # weights in the tests ("-"); then the total CPU, the peak PSS and the load
    assert all(re.fullmatch(r"\d+\.\d\d/\d+\.\d\d", cell) for cell in cells[3:8]), row
    assert float(cells[-4]) > 0 and cells[-2] == "G", row
    assert sorted(path.name for path in written.iterdir()) == ["big_0.4mp_00.jpg", "big_0.4mp_01.jpg"]


def _faces_data(tmp_path: Path) -> tuple[Path, Path, dict]:
    """Two drawn runners in two photos each (with a selfie crop per photo) and two
    drawn identities of two crops each, and where the face of each image is."""
    faces_dir, images = tmp_path / "faces-dev", tmp_path / "rbnr-images"
    images.mkdir()
    faces = {}  # image file -> (x offset, y offset, scale) of CARTOON_FACE in it
    manifest = []
    for runner, face in (("r1", marked_face()), ("r2", cartoon_face())):
        (faces_dir / "rbnr_runners" / runner).mkdir(parents=True)
        for shot, dx in enumerate((60, 100)):
            photo = Image.new("RGB", (320, 240), (90, 120, 160))
            photo.paste(face, (dx, 40))
            name = f"{runner}-{shot}.jpg"
            photo.save(images / name, quality=95)
            faces[images / name] = (dx, 40, 1.0)
            crop = faces_dir / "rbnr_runners" / runner / f"crop{shot}.jpg"
            face.save(crop, quality=95)
            faces[crop] = (0, 0, 1.0)
            manifest.append([runner, name, crop.name])
    write_csv(faces_dir / "rbnr_runners" / "manifest.csv",
              ["identity", "source_image", "face_crop"], manifest)
    for identity, face in (("A", marked_face()), ("B", cartoon_face())):
        (faces_dir / "celebs" / identity).mkdir(parents=True)
        for index in range(2):
            crop = faces_dir / "celebs" / identity / f"{index}.jpg"
            face.resize((112, 112)).save(crop, quality=95 - index)
            faces[crop] = (56, 56, 112 / 160)  # the bench pads half a crop on every side
    return faces_dir, images, faces


def test_bench_faces_runs_retrieval_and_verification(tmp_path, capsys):
    faces_dir, images, faces = _faces_data(tmp_path)
    module = bench("faces")
    # Drawn faces are nothing MTCNN finds: the bench's own detection cache holds where
    # they are, so SFace embeds them and every figure is computed on them.
    cache = module.CachedDetector(FaceDetector(), tmp_path / "detections.json")
    entries = {}
    for path, (dx, dy, scale) in faces.items():
        image = Image.open(path).convert("RGB")
        if "celebs" in path.parts:
            image = module._pad(Image.open(path), 0.5)
        x1, y1, x2, y2 = CARTOON_FACE.box
        box = [dx + x1 * scale, dy + y1 * scale, dx + x2 * scale, dy + y2 * scale]
        landmarks = [[dx + x * scale, dy + y * scale] for x, y in CARTOON_FACE.landmarks]
        kind = "photo" if path.parent == images else "selfie"  # the event's photos, or crops
        entries[f"{kind}:{module.CachedDetector.key(image)}"] = [[*box, 0.99, landmarks]]
    cache.path.write_text(json.dumps({"config": cache.config, "faces": entries}))

    assert module.main([str(faces_dir), "--rbnr-images", str(images), "--embedder", "sface",
                        "--detections", str(cache.path)]) == 0

    out = capsys.readouterr().out
    assert "rbnr-dev index: 4 photos, 4 faces kept" in out
    assert "selfies: 2 runners, 4 crops, 0 without a detected face" in out
    assert "every crop as the selfie in turn: 4 queries" in out
    assert "celebs: 4 crops of 2 identities, 0 without a face" in out
    assert "<- product" in out


def test_bench_linking_runs_geometry_and_propagation(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    photos = {"race_1.jpg": "4721", "race_2.jpg": "318"}
    for name, number in photos.items():
        runner_photo(number).save(tmp_path / "images" / name, quality=92)
    write_csv(tmp_path / "labels.csv", ["image", "bibs"], [[n, b] for n, b in photos.items()])
    write_csv(tmp_path / "boxes.csv",
              ["image", "bib", "bib_x1", "bib_y1", "bib_x2", "bib_y2",
               "face_x1", "face_y1", "face_x2", "face_y2"],
              [[name, bib, *BIB, *FACE] for name, bib in photos.items()])

    assert bench("linking").main([str(tmp_path), "--embedder", "sface"]) == 0

    out = capsys.readouterr().out
    assert "(a) geometry, labelled boxes: 2/2 bibs linked to their own face" in out
    assert "geometry, MTCNN faces:" in out
    assert "(b) propagation at threshold 0.7 with 50% of readings hidden" in out


def test_bench_ingest_processes_photos_on_a_throwaway_database(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.new("RGB", (64, 48), (100 * index, 60, 60)).save(photos / f"{index}.jpg")
    (photos / "notes.jpg").write_bytes(b"not a photo")
    # A script of its own: it starts its own embedded PostgreSQL and Valkey, and Django
    # with its settings, which this test process already has.
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "RACEPHOTO_VAR_DIR")}

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), str(photos)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert "accepted: 2  duplicate: 0  rejected: 1" in done.stdout
    assert "photo states after: derivatives 2" in done.stdout
    assert "derivatives:" in done.stdout and "photos/s" in done.stdout


def test_bench_eventwork_times_the_runs_after_a_burst_as_the_event_grows():
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "RACEPHOTO_VAR_DIR")}

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "eventwork.py"),
                           "--photos", "150", "300", "--burst", "50"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^(150|300) \| ([\d,]+) \| ", done.stdout, re.MULTILINE)
    assert [photos for photos, _faces in rows] == ["150", "300"], done.stdout
    moved = re.search(r"re-clustered by the incremental link: ([\d,]+) of ([\d,]+), "
                      r"([\d,]+) of ([\d,]+)", done.stdout)
    # Incremental: the burst's faces and those whose runner changed, not the whole event.
    moved_at_300, faces_at_300 = (int(moved[group].replace(",", "")) for group in (3, 4))
    assert 0 < moved_at_300 < faces_at_300, done.stdout
    tags = re.search(r"face-link tags: ([\d,]+), ([\d,]+)", done.stdout)
    assert 0 < int(tags[1]) < int(tags[2].replace(",", "")), done.stdout
    assert "cost of one round of event-wide runs, 150 -> 300 photos" in done.stdout
    assert "| opt-out | face search off | face search on |" in done.stdout


def test_bench_ingest_full_times_every_step_in_forked_worker_processes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    runner_photo("4721").save(photos / "race.jpg", quality=92)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "RACEPHOTO_VAR_DIR")}

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), str(photos),
                           "--full", "--processes", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr
    assert "photo states after: ready 1" in done.stdout, done.stdout
    steps = dict(re.findall(r"^  (\w+) +[\d.]+ s  CPU +([\d.]+) s  \(1 done", done.stdout, re.M))
    assert {"derivatives", "faces", "ocr"} <= steps.keys(), done.stdout
    assert float(steps["ocr"]) > 0, done.stdout  # the reader ran in the worker process


def test_bench_event_takes_a_dropped_event_through_the_running_stack(tmp_path):
    # The real stack, not an in-process stand-in: `manage.py run` (embedded PostgreSQL and
    # Valkey, gunicorn, the Celery worker with its models) and `manage.py import_photos
    # --watch` on the bench's own var dir, the photos dropped into the watched folder.
    dataset = tmp_path / "dataset"
    (dataset / "images").mkdir(parents=True)
    photos = {"race_1.jpg": "4721", "race_2.jpg": "318"}
    for name, number in photos.items():
        runner_photo(number).save(dataset / "images" / name, quality=92)
    write_labels(dataset, photos)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "RACEPHOTO_VAR_DIR")}

    # Not under tmp_path: another pytest session starting meanwhile makes pytest's base dir
    # private again, and the database's own user could no longer reach its data to stop.
    work = Path(tempfile.mkdtemp(prefix="racephoto-bench-event-"))
    try:
        # Two rbnr-like photos and one camera frame (0.5 MP: the frame path, kept cheap).
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "event.py"), str(dataset),
                               "--photos", "3", "--mix", "rbnr:2,0.5:1", "--sample", "1",
                               "--web-workers", "1", "--timeout", "300", "--work-dir", str(work)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        [var_dir] = work.glob("racephoto-event-3-*/var")
        # Everything it started is stopped: no PostgreSQL left on the bench's var dir.
        from racephoto.embedded import EmbeddedPostgres

        left_running = EmbeddedPostgres(var_dir).postmaster_pid()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "mix: 67% rbnr-dev photos, 33% 0.5 MP frames" in out
    assert "photos accepted 3, files refused or duplicate 0, failed 0" in out
    assert "every photo searchable" in out and "s after the last" in out
    assert "CPU s from the first drop: worker" in out
    assert "web check:" in out
    assert left_running is None


def test_bench_outfit_scores_labelled_shirts(tmp_path, capsys):
    from mlpipeline.tests.test_outfit import runner

    (tmp_path / "images").mkdir()
    boxes, labels = [], []
    for name, shirt in (("red.jpg", "red"), ("blue.jpg", "blue")):
        image, face = runner(shirt, "black")
        image.save(tmp_path / "images" / name, quality=92)
        boxes.append([name, "1234", 0, 0, 1, 1, *face])
        labels.append([name, "1234", *face, shirt])
    write_csv(tmp_path / "boxes.csv", ["image", "bib", "bib_x1", "bib_y1", "bib_x2", "bib_y2",
                                       "face_x1", "face_y1", "face_x2", "face_y2"], boxes)
    write_csv(tmp_path / "labels.csv", ["image", "bib", "face_x1", "face_y1", "face_x2",
                                        "face_y2", "shirt"], labels)

    assert bench("outfit").main([str(tmp_path), "--labels", str(tmp_path / "labels.csv")]) == 0

    out = capsys.readouterr().out
    assert "2 labelled runners in 2 photos: accuracy 2/2 = 1.000" in out
    assert "time per photo: median" in out


@pytest.mark.django_db
def test_bench_timing_scores_timing_and_bursts_on_a_generated_race(capsys):
    import argparse

    figures = bench("timing").run(argparse.Namespace(runners=40, seed=3, read_share=0.55))

    out = capsys.readouterr().out
    assert "timing, clocks set from one photo each" in out and "sequence neighbours" in out
    assert figures["untagged"] > 0
    # The wrong clocks, once set from one photo each, find more of the untagged photos.
    assert len(figures["after"]["recovered"]) > len(figures["before"]["recovered"])


@pytest.mark.parametrize("structure, options, sweep, made", [
    ("graph", ["--m", "8", "--ef", "20"], "hnswlib k=10 ef=20: query p50",
     r"hnswlib graph, 3000 vectors of 128 \(M=8, ef_construction=200, ef=\d+\): "),
    ("inverted", ["--probed", "0.3"], "inverted file k=10 scanning 0.3 of the lists: query p50",
     r"faiss inverted file, 3000 vectors of 128 \(4 x sqrt\(n\) lists, scanning [\d.]+ of them, "
     r"k \+ \d+ re-ranked\): "),
])
def test_bench_search_ann_builds_keeps_and_reloads_an_index(tmp_path, structure, options, sweep, made):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "RACEPHOTO_VAR_DIR")}
    command = [sys.executable, str(ROOT / "bench" / "search.py"), "ann", "--isotropic",
               "--faces", "3000", "--queries", "20", "--structure", structure,
               "--keep-index", str(tmp_path), *options]

    built = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

    assert built.returncode == 0, built.stderr
    assert sweep in built.stdout
    assert re.search(made + "built in", built.stdout)
    assert again.returncode == 0, again.stderr
    assert "index loaded from" in again.stdout
    assert re.search(made + "loaded; index", again.stdout)
    # The same vectors and the same index: the same recall both times.
    recall = [line.split("recall@10 ")[1][:5] for line in (built.stdout, again.stdout)]
    assert recall[0] == recall[1]
