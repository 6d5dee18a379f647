"""The drop folder: `manage.py import_photos EVENT DIR [--watch]` and photos.dropfolder."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.utils import translation

from events.tests.factories import EventFactory
from photos import dropfolder
from photos.management.commands import import_photos
from photos.models import DropFolderFile, Photo
from photos.tests.images import image_bytes, jpeg, make_zip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_storage")]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def drop(tmp_path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def put(folder: Path, relative: str, data: bytes) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path



def run(*args) -> str:
    out = StringIO()
    call_command("import_photos", *[str(arg) for arg in args], stdout=out, stderr=StringIO())
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names(event) -> set[str]:
    return set(Photo.objects.filter(event=event).values_list("original_name", flat=True))


def ledger(event) -> dict[str, str]:
    return dict(DropFolderFile.objects.filter(event=event).values_list("path", "status"))


# --- One pass: `import_photos EVENT DIR` ----------------------------------------------------


def test_it_imports_every_image_and_zip_under_nested_folders_once(drop):
    event = EventFactory(slug="trail-des-crets")
    put(drop, "start.jpg", jpeg(seed=1))
    put(drop, "km10/IMG_0002.JPG", jpeg(seed=2))
    put(drop, "km10/finish/line.png", image_bytes("PNG", seed=3))
    put(drop, "day2/batch.zip", make_zip(("a.jpg", jpeg(seed=4)),
                                         ("more/b.webp", image_bytes("WEBP", seed=5))))

    output = run("trail-des-crets", drop)

    assert names(event) == {"start.jpg", "km10/IMG_0002.JPG", "km10/finish/line.png", "a.jpg",
                            "more/b.webp"}
    assert Photo.objects.count() == 5
    assert ledger(event) == {"start.jpg": "accepted", "km10/IMG_0002.JPG": "accepted",
                             "km10/finish/line.png": "accepted", "day2/batch.zip": "accepted"}
    lines = output.splitlines()
    assert "accepted  km10/finish/line.png" in lines
    assert "accepted  more/b.webp" in lines
    assert lines[-1] == "5 accepted, 0 duplicates, 0 rejected."
    # Same checks as a browser upload: the original is stored, named by its content.
    photo = Photo.objects.get(original_name="start.jpg")
    assert photo.content_hash == sha256(jpeg(seed=1))
    assert photo.original.read() == jpeg(seed=1)


def test_it_accepts_the_event_id_and_credits_the_photographer(drop):
    event = EventFactory()
    alice = get_user_model().objects.create_user("alice")
    put(drop, "a.jpg", jpeg(seed=1))

    run(event.pk, drop, "--photographer", "alice")

    assert Photo.objects.get(event=event).photographer == alice


def test_it_says_clearly_when_the_event_does_not_exist(drop):
    with pytest.raises(CommandError, match="No event with slug or id “no-such-race”"):
        run("no-such-race", drop)


def test_it_says_clearly_when_the_folder_is_not_a_directory(drop):
    event = EventFactory()
    file = put(drop, "a.jpg", jpeg())

    with pytest.raises(CommandError, match=f"{drop / 'missing'} is not a directory"):
        run(event.slug, drop / "missing")
    with pytest.raises(CommandError, match=f"{file} is not a directory"):
        run(event.slug, file)
    assert Photo.objects.count() == 0


def test_it_says_clearly_when_the_photographer_does_not_exist(drop):
    event = EventFactory()
    put(drop, "a.jpg", jpeg())

    with pytest.raises(CommandError, match="No user named 'bob'"):
        run(event.slug, drop, "--photographer", "bob")
    assert Photo.objects.count() == 0


def test_it_refuses_a_watch_interval_that_would_spin(drop):
    event = EventFactory()

    with pytest.raises(CommandError, match="--interval must be more than 0"):
        run(event.slug, drop, "--watch", "--interval", "0")
    with pytest.raises(CommandError, match="--settle cannot be negative"):
        run(event.slug, drop, "--watch", "--settle", "-1")


def test_it_skips_hidden_files_and_uploads_in_progress(drop):
    event = EventFactory()
    put(drop, "keep.jpg", jpeg(seed=1))
    put(drop, ".hidden.jpg", jpeg(seed=2))
    put(drop, "._keep.jpg", b"macOS resource fork")
    put(drop, ".sync/inside-a-hidden-folder.jpg", jpeg(seed=3))
    put(drop, "uploading.jpg.part", jpeg(seed=4)[:100])
    put(drop, "copying.jpg.tmp", jpeg(seed=5)[:100])
    put(drop, "SHOUTING.JPG.PART", jpeg(seed=6)[:100])
    put(drop, "filezilla.jpg.filepart", jpeg(seed=7)[:100])

    output = run(event.slug, drop)

    assert names(event) == {"keep.jpg"}
    assert ledger(event) == {"keep.jpg": "accepted"}
    assert output.splitlines() == ["accepted  keep.jpg", "1 accepted, 0 duplicates, 0 rejected."]


def test_it_rejects_what_is_not_a_photo_with_a_reason_and_imports_the_rest(drop):
    event = EventFactory()
    # Named so the bad files come first: a rejection must not stop the ones after it.
    put(drop, "0-notes.txt", b"bib 42 = Camille\n")
    put(drop, "1-animation.gif", image_bytes("GIF"))
    put(drop, "2-cut-off.jpg", jpeg(seed=1, size=(640, 480))[:2000])
    put(drop, "3-empty.zip", make_zip())
    put(drop, "4-good.jpg", jpeg(seed=2))
    put(drop, "5-mixed.zip", make_zip(("fine.jpg", jpeg(seed=3)), ("readme.txt", b"hello")))

    output = run(event.slug, drop)

    lines = output.splitlines()
    assert "rejected  0-notes.txt – Not an image: use JPEG, PNG or WebP files." in lines
    assert "rejected  1-animation.gif – Unsupported format GIF: use JPEG, PNG or WebP." in lines
    assert any(line.startswith("rejected  2-cut-off.jpg – The image is damaged or incomplete")
               for line in lines)
    assert "rejected  3-empty.zip – The archive holds no photos." in lines
    assert "rejected  readme.txt – Not an image: use JPEG, PNG or WebP files." in lines
    assert lines[-1] == "2 accepted, 0 duplicates, 5 rejected."
    assert names(event) == {"4-good.jpg", "fine.jpg"}
    assert ledger(event) == {"0-notes.txt": "rejected", "1-animation.gif": "rejected",
                             "2-cut-off.jpg": "rejected", "3-empty.zip": "rejected",
                             "4-good.jpg": "accepted", "5-mixed.zip": "accepted"}
    notes = DropFolderFile.objects.get(path="0-notes.txt")
    assert notes.reason == "0-notes.txt: Not an image: use JPEG, PNG or WebP files."
    assert "readme.txt: Not an image" in DropFolderFile.objects.get(path="5-mixed.zip").reason


# --- Never twice: the ledger, and the content hash behind it ---------------------------------


def test_it_imports_nothing_new_when_run_twice(drop):
    event = EventFactory()
    put(drop, "a.jpg", jpeg(seed=1))
    put(drop, "sub/b.jpg", jpeg(seed=2))
    put(drop, "batch.zip", make_zip(("c.jpg", jpeg(seed=3))))
    put(drop, "notes.txt", b"not a photo")
    run(event.slug, drop)
    photos = set(Photo.objects.values_list("pk", flat=True))

    output = run(event.slug, drop)

    # Not even reported as duplicates: the ledger says these exact files were done.
    assert output.splitlines() == ["0 accepted, 0 duplicates, 0 rejected."]
    assert set(Photo.objects.values_list("pk", flat=True)) == photos
    assert DropFolderFile.objects.count() == 4


def test_it_finds_the_duplicates_when_the_ledger_missed_them(drop):
    # As after a crash between a photo's commit and its ledger row: the files look
    # new, and the content hash is what keeps the photos single.
    event = EventFactory()
    put(drop, "a.jpg", jpeg(seed=1))
    put(drop, "batch.zip", make_zip(("b.jpg", jpeg(seed=2)), ("c.jpg", jpeg(seed=3))))
    run(event.slug, drop)
    photos = set(Photo.objects.values_list("pk", flat=True))
    DropFolderFile.objects.all().delete()

    output = run(event.slug, drop)

    lines = output.splitlines()
    assert "duplicate a.jpg – Already uploaded to this event as a.jpg." in lines
    assert "duplicate c.jpg – Already uploaded to this event as c.jpg." in lines
    assert lines[-1] == "0 accepted, 3 duplicates, 0 rejected."
    assert set(Photo.objects.values_list("pk", flat=True)) == photos
    assert ledger(event) == {"a.jpg": "duplicate", "batch.zip": "duplicate"}
    assert DropFolderFile.objects.get(path="a.jpg").photo == Photo.objects.get(
        original_name="a.jpg")
    assert run(event.slug, drop).splitlines() == ["0 accepted, 0 duplicates, 0 rejected."]


def test_it_reports_copies_and_touched_files_as_duplicates_without_new_photos(drop):
    event = EventFactory()
    original = put(drop, "a.jpg", jpeg(seed=1))
    run(event.slug, drop)
    put(drop, "copy/a-again.jpg", jpeg(seed=1))
    stat = original.stat()
    os.utime(original, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # `touch`

    output = run(event.slug, drop)

    assert output.splitlines()[-1] == "0 accepted, 2 duplicates, 0 rejected."
    assert Photo.objects.count() == 1
    assert DropFolderFile.objects.filter(path="a.jpg").count() == 2  # both versions recorded
    assert run(event.slug, drop).splitlines() == ["0 accepted, 0 duplicates, 0 rejected."]


def test_it_takes_a_replaced_file_again(drop):
    event = EventFactory()
    path = put(drop, "finish.jpg", jpeg(seed=1))
    run(event.slug, drop)
    first = Photo.objects.get()
    # The photographer re-exports the same frame, edited: new content, new mtime.
    stat = path.stat()
    path.write_bytes(jpeg(seed=2))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    output = run(event.slug, drop)

    assert output.splitlines() == ["accepted  finish.jpg", "1 accepted, 0 duplicates, 0 rejected."]
    second = Photo.objects.exclude(pk=first.pk).get()
    assert second.content_hash == sha256(jpeg(seed=2))
    assert DropFolderFile.objects.filter(path="finish.jpg").count() == 2
    assert set(DropFolderFile.objects.values_list("photo", flat=True)) == {first.pk, second.pk}


# --- Settling: a file is taken once it stopped changing --------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(dropfolder, "monotonic", fake)
    return fake


def grow(path: Path, data: bytes, mtime_ns: int) -> None:
    """Append ``data`` and set the mtime, as an upload in progress does (the fs clock is coarse)."""
    with path.open("ab") as handle:
        handle.write(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_it_waits_until_a_growing_file_stops_changing(drop, clock):
    event = EventFactory()
    data = jpeg(seed=1, size=(640, 480))
    thirds = [data[:len(data) // 3], data[len(data) // 3:2 * len(data) // 3],
              data[2 * len(data) // 3:]]
    path = drop / "slow.jpg"
    path.touch()
    seen, results = {}, []

    def scan_at(moment):
        clock.now = 1000.0 + moment
        return dropfolder.import_once(event, drop, settle_seconds=5, seen=seen,
                                      report=results.append)

    grow(path, thirds[0], 1_000_000_000)
    assert scan_at(0) == 0  # first sight: never taken at once
    assert scan_at(4.9) == 0  # unchanged, but not for long enough
    grow(path, thirds[1], 2_000_000_000)
    assert scan_at(6) == 0  # changed: the wait starts again
    assert scan_at(10.9) == 0
    grow(path, thirds[2], 3_000_000_000)
    assert scan_at(11) == 0
    assert scan_at(15) == 0
    assert results == [] and Photo.objects.count() == 0

    assert scan_at(16) == 1  # five seconds without a change

    assert [(result.status, result.name) for result in results] == [("accepted", "slow.jpg")]
    assert Photo.objects.get().content_hash == sha256(data)
    assert seen == {}
    assert scan_at(100) == 0  # and never again


def test_it_waits_for_a_file_whose_mtime_alone_changes(drop, clock):
    event = EventFactory()
    path = put(drop, "a.jpg", jpeg(seed=1))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    seen = {}
    clock.now = 0
    dropfolder.import_once(event, drop, settle_seconds=2, seen=seen)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))  # rewritten in place, same size
    clock.now = 3

    assert dropfolder.import_once(event, drop, settle_seconds=2, seen=seen) == 0
    clock.now = 5
    assert dropfolder.import_once(event, drop, settle_seconds=2, seen=seen) == 1


def test_it_imports_at_once_without_a_settle_time(drop, clock):
    event = EventFactory()
    put(drop, "a.jpg", jpeg(seed=1))

    assert dropfolder.import_once(event, drop, settle_seconds=0, seen={}) == 1
    assert names(event) == {"a.jpg"}


def test_it_forgets_files_deleted_before_they_settled(drop, clock):
    event = EventFactory()
    path = put(drop, "gone.jpg", jpeg(seed=1))
    seen = {}
    dropfolder.import_once(event, drop, settle_seconds=5, seen=seen)
    assert set(seen) == {"gone.jpg"}
    path.unlink()

    dropfolder.import_once(event, drop, settle_seconds=5, seen=seen)

    assert seen == {}


def test_it_carries_on_when_a_file_vanishes_between_scan_and_import(drop, monkeypatch):
    event = EventFactory()
    put(drop, "a-moved-away.jpg", jpeg(seed=1))
    put(drop, "b.jpg", jpeg(seed=2))
    real_scan = dropfolder.scan

    def scan_then_lose_a_file(directory):
        found = real_scan(directory)
        (directory / "a-moved-away.jpg").unlink(missing_ok=True)
        return found

    monkeypatch.setattr(dropfolder, "scan", scan_then_lose_a_file)
    results = []

    assert dropfolder.import_once(event, drop, report=results.append) == 1

    assert [(result.status, result.code, result.name) for result in results] == [
        ("rejected", "unreadable", "a-moved-away.jpg"), ("accepted", "", "b.jpg")]
    assert results[0].reason == ("Not imported this time, it will be tried again: "
                                 "No such file or directory")
    assert ledger(event) == {"b.jpg": "accepted"}  # nothing recorded: tried again when back
    monkeypatch.setattr(dropfolder, "scan", real_scan)
    put(drop, "a-moved-away.jpg", jpeg(seed=1))
    assert dropfolder.import_once(event, drop) == 1
    assert names(event) == {"a-moved-away.jpg", "b.jpg"}


def test_it_records_a_file_once_when_another_watcher_took_it_meanwhile(drop):
    event = EventFactory()
    put(drop, "a.jpg", jpeg(seed=1))
    candidate = dropfolder.scan(drop)[0]
    dropfolder.import_candidate(event, candidate)

    # The same file again, as a second watcher that scanned at the same moment would.
    results = dropfolder.import_candidate(event, candidate)

    assert [result.status for result in results] == ["duplicate"]
    assert DropFolderFile.objects.count() == 1
    assert Photo.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the watch loop manages its connection itself
def test_it_keeps_watching_through_a_database_outage(drop, monkeypatch):
    event = EventFactory()
    calls = []
    handler_before = signal.getsignal(signal.SIGTERM)

    def scan_with_an_outage(*args, **kwargs):
        calls.append(len(calls))
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        raise KeyboardInterrupt  # Ctrl-C on the second scan: the watch survived the first

    monkeypatch.setattr(import_photos, "import_once", scan_with_an_outage)
    out, err = StringIO(), StringIO()
    call_command("import_photos", event.slug, str(drop), "--watch", "--interval", "0.01",
                 stdout=out, stderr=err)

    assert calls == [0, 1]
    assert "Database unavailable, will retry: server closed the connection" in err.getvalue()
    assert out.getvalue().splitlines()[-1] == "0 accepted, 0 duplicates, 0 rejected."
    assert signal.getsignal(signal.SIGTERM) == handler_before  # put back for the caller


# --- --watch, for real: a separate process, files dropped while it runs -----------------------


def _database_url() -> str:
    """pytest-django's test database, as a URL the watcher process can use."""
    db = connection.settings_dict
    user = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"]
                                         else "")
    if db["HOST"].startswith("/"):  # a Unix socket directory (the embedded server)
        port = f":{db['PORT']}" if db["PORT"] else ""
        return f"postgres://{user}@{port}/{db['NAME']}?host={quote(db['HOST'], safe='')}"
    return f"postgres://{user}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class Watcher:
    """`import_photos --watch` in its own process, as an operator would run it."""

    SETTLE = 2.0

    def __init__(self, settings, event, folder: Path, log_dir: Path):
        self.args = [sys.executable, "manage.py", "import_photos", event.slug, str(folder),
                     "--watch", "--interval", "0.2", "--settle", str(self.SETTLE)]
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT),
            # The watcher processes each photo itself: no worker needed, and no message
            # left in the shared test broker.
            "CELERY_TASK_ALWAYS_EAGER": "1",
        }
        self.log_dir = log_dir
        self.runs = 0
        self.process = None

    def start(self):
        self.runs += 1
        self.log = self.log_dir / f"watcher-{self.runs}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def stop(self) -> str:
        """SIGTERM, as `docker stop` sends; returns what the watcher printed."""
        self.process.send_signal(signal.SIGTERM)
        try:
            assert self.process.wait(timeout=30) == 0, self.log.read_text()
        finally:
            self.kill()
        return self.log.read_text()

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait_for(self, condition, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"watcher exited while waiting for {what}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout}s:\n{self.log.read_text()}")
            time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_it_watches_a_folder_and_imports_each_file_once_across_restarts(settings, tmp_path):
    event = EventFactory()
    folder = tmp_path / "drop"
    put(folder, "before-start.jpg", jpeg(seed=1))
    watcher = Watcher(settings, event, folder, tmp_path)
    try:
        watcher.start()
        watcher.wait_for(lambda: names(event) == {"before-start.jpg"}, "first photo")

        # A slow FTP upload: half the file, a pause shorter than the settle time, the rest.
        slow = jpeg(seed=2, size=(1024, 768), quality=95)
        with (folder / "slow.jpg").open("wb") as handle:
            handle.write(slow[:len(slow) // 2])
            handle.flush()
            time.sleep(Watcher.SETTLE / 4)
            handle.write(slow[len(slow) // 2:])
        # An FTP client that uploads under a temporary name, then renames.
        put(folder, "renamed.jpg.part", jpeg(seed=3))
        (folder / "renamed.jpg.part").rename(folder / "renamed.jpg")
        put(folder, "km21/nested.jpg", jpeg(seed=4))
        put(folder, "batch.zip", make_zip(("z1.jpg", jpeg(seed=5)), ("z2.jpg", jpeg(seed=6))))
        expected = {"before-start.jpg", "slow.jpg", "renamed.jpg", "km21/nested.jpg",
                    "z1.jpg", "z2.jpg"}
        watcher.wait_for(lambda: names(event) == expected, "six photos")

        output = watcher.stop()
    finally:
        watcher.kill()

    # Never taken half-written (it would have been rejected as damaged, then taken again).
    assert "rejected  slow.jpg" not in output
    assert "6 accepted, 0 duplicates, 0 rejected." in output.splitlines(), output
    assert Photo.objects.get(original_name="slow.jpg").content_hash == sha256(slow)
    assert ledger(event) == {"before-start.jpg": "accepted", "slow.jpg": "accepted",
                             "renamed.jpg": "accepted", "km21/nested.jpg": "accepted",
                             "batch.zip": "accepted"}
    # Committed photos went on through the pipeline (eagerly, in the watcher).
    assert set(Photo.objects.values_list("state", flat=True)) == {Photo.State.READY}

    # Restarted: the folder is still full, and only the new file is taken.
    try:
        watcher.start()
        put(folder, "after-restart.jpg", jpeg(seed=7))
        watcher.wait_for(lambda: "after-restart.jpg" in names(event), "the new photo")
        time.sleep(Watcher.SETTLE + 0.5)  # time enough to (wrongly) take an old file again
        output = watcher.stop()
    finally:
        watcher.kill()

    assert "1 accepted, 0 duplicates, 0 rejected." in output.splitlines(), output
    assert Photo.objects.count() == 7
    assert DropFolderFile.objects.count() == 6
