"""Bad input at the size of a real race: each file gets a clear result and the rest goes on.

A 45 MP camera file (taken and processed through every step with the rest of its card;
a 150 MP medium-format frame on the same card is refused by the documented 80 MP limit,
PHOTO_MAX_PIXELS), a JPEG whose frame header claims 60,000 × 60,000 pixels (refused
from its header, nothing decoded), one whose EXIF claims it (the frame is believed),
a 200 MB TIFF renamed .jpg (refused by its first bytes, the rest never read; the file
is sparse, never in memory), a memory card imported twice (duplicates by content, no
second photo or file) and 10,000 files dropped at once (each imported and queued
exactly once, timed)."""

import io
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from django.db.models import Count
from django.utils import translation
from PIL import ExifTags, Image

from events.tests.factories import EventFactory
from photos import derivatives, dropfolder, pipeline, services
from photos.imaging import fit
from photos.models import DropFolderFile, Photo, PhotoStep
from photos.tests.images import exif, image_bytes, jpeg

pytestmark = pytest.mark.django_db

DROPPED_AT_ONCE = 10_000


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def queued(monkeypatch):
    """Photo ids handed to the workers, in order (no worker runs here)."""
    sent = []
    monkeypatch.setattr(services, "enqueue_processing", sent.append)
    return sent


def originals(settings, event) -> list[Path]:
    folder = Path(settings.PRIVATE_MEDIA_ROOT) / "originals" / str(event.pk)
    return sorted(folder.iterdir()) if folder.exists() else []


def with_frame_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a baseline JPEG) with its frame header (SOF0) saying width × height."""
    sof = data.index(b"\xff\xc0")
    # FFC0, length (2), precision (1), then height and width (2 each).
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


class CountingReader:
    def __init__(self, handle):
        self.handle, self.bytes_read = handle, 0

    def read(self, size=-1):
        chunk = self.handle.read(size)
        self.bytes_read += len(chunk)
        return chunk


def camera_frame(width: int, height: int, *, model: str) -> bytes:
    """A camera's JPEG of width × height: smooth detail (a small random picture enlarged,
    so it compresses as a photo does, not as noise or a flat colour), quality 92, EXIF."""
    rng = np.random.default_rng(45)
    detail = Image.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    detail.resize((width, height), Image.Resampling.BILINEAR).save(
        buffer, "JPEG", quality=92, exif=exif(make=model.split()[0], model=model))
    return buffer.getvalue()


def test_a_45_megapixel_photo_is_taken_and_processed_with_the_rest_of_its_card(
        settings, queued, django_capture_on_commit_callbacks):
    # 45 MP cameras (Canon EOS R5, Nikon Z 7II, Sony A7R III: 42-46 MP) are under the
    # 80 MP limit; a 150 MP medium-format back is over it and says so.
    assert settings.PHOTO_MAX_PIXELS == 80_000_000
    big = camera_frame(8192, 5464, model="Canon EOS R5")
    card = {"IMG_0001.JPG": jpeg(seed=1, size=(600, 400)), "IMG_0002.JPG": big,
            "IMG_0003.JPG": with_frame_size(jpeg(size=(64, 48)), 14_204, 10_652),
            "IMG_0004.JPG": jpeg(seed=4, size=(600, 400))}
    event = EventFactory()

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        results = {name: services.ingest_file(event, io.BytesIO(data), name=name)
                   for name, data in card.items()}
    ingest_seconds = time.monotonic() - started

    refused = results.pop("IMG_0003.JPG")
    assert (refused.status, refused.code) == ("rejected", "too_many_pixels")
    assert refused.reason == ("The image is too large: 14204 × 10652 pixels, the limit is "
                              "80 megapixels.")
    assert {name: result.status for name, result in results.items()} == dict.fromkeys(
        results, "accepted")
    photo = results["IMG_0002.JPG"].photo
    assert (photo.width, photo.height, photo.camera) == (8192, 5464, "Canon EOS R5")
    assert photo.file_size == len(big)

    started = time.monotonic()
    states = [pipeline.process_photo(photo_id) for photo_id in queued]  # every step
    process_seconds = time.monotonic() - started
    assert states == [Photo.State.READY] * 3
    steps = dict(PhotoStep.objects.filter(photo=photo).values_list("step", "status"))
    assert steps.keys() == {step.name for step in pipeline.STEPS}
    # Each step ran, or its model is missing on this machine (CLIP without its weights).
    assert set(steps.values()) <= {PhotoStep.Status.DONE, PhotoStep.Status.UNAVAILABLE}
    assert steps["derivatives"] == PhotoStep.Status.DONE
    photo.refresh_from_db()
    with Image.open(photo.web) as web:
        assert web.size == fit((8192, 5464), derivatives.WEB_SIZE) == (1600, 1067)
    print(f"\n45 MP ({len(big) / 1e6:.1f} MB) with 3 other files: ingested in "
          f"{ingest_seconds:.1f} s, processed (steps {', '.join(steps)}) in "
          f"{process_seconds:.1f} s, load average {os.getloadavg()[0]:.1f}")


def test_a_jpeg_whose_header_claims_60000_by_60000_is_refused_without_decoding(settings, queued):
    data = with_frame_size(jpeg(size=(64, 48)), 60_000, 60_000)
    with pytest.raises(Image.DecompressionBombError):  # what a plain reader of it does
        Image.open(io.BytesIO(data))

    started = time.monotonic()
    result = services.ingest_file(EventFactory(), io.BytesIO(data), name="IMG_9999.JPG")

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert "too large" in result.reason and "80 megapixels" in result.reason
    assert time.monotonic() - started < 5  # 3.6 gigapixels were never decoded
    assert queued == [] and not Photo.objects.exists()


def test_a_jpeg_whose_exif_claims_60000_by_60000_is_taken_at_its_real_size(settings, queued):
    claims = exif(make="Canon", model="Canon EOS R6")
    claims.get_ifd(ExifTags.IFD.Exif).update({ExifTags.Base.ExifImageWidth: 60_000,
                                              ExifTags.Base.ExifImageHeight: 60_000})
    data = image_bytes("JPEG", size=(64, 48), exif=claims)
    result = services.ingest_file(EventFactory(), io.BytesIO(data), name="IMG_1.JPG")

    assert result.status == "accepted", result.reason
    assert (result.photo.width, result.photo.height) == (64, 48)


def test_a_200_mb_tiff_renamed_jpg_is_refused_by_its_first_bytes(settings, tmp_path, queued):
    tiff = tmp_path / "IMG_0001.jpg"
    with tiff.open("wb") as handle:
        handle.write(b"II*\x00" + struct.pack("<I", 8) + bytes(24))
        handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB long, a few bytes on disk
    event = EventFactory()

    with tiff.open("rb") as handle:
        reader = CountingReader(handle)
        result = services.ingest_file(event, reader, name=tiff.name)

    assert (result.status, result.code) == ("rejected", "unsupported_format")
    assert result.reason == "Unsupported format TIFF: use JPEG, PNG or WebP."
    assert reader.bytes_read <= 1024 * 1024  # one chunk, not 60 MB and then "too large"
    assert originals(settings, event) == [] and queued == []


def test_a_card_imported_twice_gives_duplicates_and_no_second_copy(
        settings, tmp_path, queued, django_capture_on_commit_callbacks):
    event = EventFactory()
    card = {f"DCIM/100CANON/IMG_{number:04d}.JPG": jpeg(seed=number) for number in range(12)}
    for copy in ("monday", "tuesday-again"):
        for relative, data in card.items():
            path = tmp_path / copy / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    with django_capture_on_commit_callbacks(execute=True):
        first = dropfolder.import_once(event, tmp_path / "monday")
        second = dropfolder.import_once(event, tmp_path / "tuesday-again")

    assert (first, second) == (12, 12)
    assert Photo.objects.filter(event=event).count() == 12
    assert len(originals(settings, event)) == 12 and len(queued) == 12
    statuses = dict(DropFolderFile.objects.filter(event=event).values_list("status")
                    .annotate(count=Count("pk")))
    assert statuses == {"accepted": 12, "duplicate": 12}
    duplicate = DropFolderFile.objects.filter(event=event, status="duplicate").first()
    assert "Already uploaded to this event as DCIM/100CANON/IMG_" in duplicate.reason


def unique_jpeg(base: bytes, number: int) -> bytes:
    """``base`` with a comment segment of its own: a distinct file, the same pixels."""
    comment = f"frame {number}".encode()
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + base[2:]


def test_ten_thousand_files_dropped_at_once_are_each_imported_and_queued_once(
        settings, tmp_path, queued, django_capture_on_commit_callbacks, capsys):
    event = EventFactory()
    drop = tmp_path / "drop"
    base = jpeg(size=(16, 12))
    for number in range(DROPPED_AT_ONCE):
        folder = drop / f"{number // 1000:03d}CANON"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{number:05d}.JPG").write_bytes(unique_jpeg(base, number))
    (drop / "notes.txt").write_text("not a photo")  # and one that is refused

    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        taken = dropfolder.import_once(event, drop)
    elapsed = time.monotonic() - started

    assert taken == DROPPED_AT_ONCE + 1
    photos = Photo.objects.filter(event=event)
    assert photos.count() == DROPPED_AT_ONCE
    assert sorted(queued) == sorted(photos.values_list("pk", flat=True))  # each queued once
    assert len(originals(settings, event)) == DROPPED_AT_ONCE
    ledger = DropFolderFile.objects.filter(event=event)
    assert ledger.filter(status="accepted").count() == DROPPED_AT_ONCE
    refused = ledger.get(status="rejected")
    assert refused.path == "notes.txt" and "Not an image" in refused.reason
    # The folder scanned again (a watcher's next pass): nothing is taken twice.
    assert dropfolder.import_once(event, drop) == 0
    load = os.getloadavg()[0]
    with capsys.disabled():
        print(f"\n{DROPPED_AT_ONCE} files dropped at once: imported in {elapsed:.1f} s "
              f"({DROPPED_AT_ONCE / elapsed:.0f} files/s, load average {load:.1f})")
