import hashlib
import io
import logging
import threading
import types
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import translation
from PIL import Image, ImageFile

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from photos import services
from photos.models import Photo
from photos.services import IngestStatus, enqueue_processing, ingest_file
from photos.tests.factories import PhotoFactory
from photos.tests.images import (
    bomb_png,
    exif,
    heic_header,
    image_bytes,
    jpeg,
    jpeg_claiming_size,
    picture,
    png_claiming_size,
    png_rgb16,
    webp_claiming_size,
)
from photos.validation import RejectedFile, inspect_image

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_storage")]


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def stored_files(root) -> list[str]:
    root = Path(root)
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def ingest(event, data, name="IMG_0001.JPG", **kwargs):
    return ingest_file(event, io.BytesIO(data), name=name, **kwargs)


def assert_nothing_stored(settings):
    assert Photo.objects.count() == 0
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == []
    assert stored_files(settings.MEDIA_ROOT) == []


# --- Accepted files -------------------------------------------------------------------


def test_it_accepts_a_jpeg_and_keeps_the_original_private(settings):
    event = EventFactory()
    photographer = UserFactory(role=User.Role.PHOTOGRAPHER)
    data = jpeg(size=(60, 40))

    result = ingest(event, data, name="IMG_0001.JPG", photographer=photographer)

    assert (result.status, result.reason, result.name) == ("accepted", "", "IMG_0001.JPG")
    photo = Photo.objects.get()
    assert photo == result.photo
    assert (photo.event, photo.photographer, photo.state) == (event, photographer, "uploaded")
    assert photo.original_name == "IMG_0001.JPG"
    assert photo.content_hash == hashlib.sha256(data).hexdigest()
    assert (photo.file_size, photo.image_format, photo.width, photo.height) == (
        len(data), "JPEG", 60, 40)
    with photo.original.open("rb") as original:
        assert original.read() == data
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [photo.original.name]
    assert stored_files(settings.MEDIA_ROOT) == []  # nothing public until derivatives exist


def test_it_names_the_original_from_event_and_content_never_from_the_upload_name(settings):
    event = EventFactory()
    data = image_bytes("PNG")

    result = ingest(event, data, name="../../etc/passwd.jpg")

    photo = result.photo
    assert result.status == "accepted"
    assert photo.original.name == f"originals/{event.pk}/{hashlib.sha256(data).hexdigest()}.png"
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [photo.original.name]
    written = Path(settings.PRIVATE_MEDIA_ROOT).parent.rglob("*")
    assert not any("passwd" in str(path) for path in written)
    assert photo.original_name == "../../etc/passwd.jpg"  # kept only as text to show back


def test_it_reads_capture_time_camera_and_orientation_from_exif(settings):
    settings.TIME_ZONE = "Europe/Paris"
    data = image_bytes("JPEG", size=(60, 40), exif=exif(
        captured="2025:10:12 09:31:02", subsec="25", make="Canon", model="Canon EOS R5",
        orientation=6))

    info = inspect_image(io.BytesIO(data), "IMG_0001.JPG")
    photo = ingest(EventFactory(), data).photo

    expected = datetime(2025, 10, 12, 9, 31, 2, 250000, tzinfo=ZoneInfo("Europe/Paris"))
    assert (info.captured_at, info.camera, info.orientation) == (expected, "Canon EOS R5", 6)
    assert info.captured_at.utcoffset() == timedelta(hours=2)
    assert (info.width, info.height) == (60, 40)
    photo.refresh_from_db()
    assert (photo.captured_at, photo.camera) == (expected, "Canon EOS R5")
    assert (photo.width, photo.height) == (40, 60)  # turned a quarter, as viewers see it


def test_it_uses_the_time_offset_the_camera_wrote(settings):
    settings.TIME_ZONE = "Europe/Paris"
    data = jpeg(exif=exif(captured="2025:07:04 18:00:00", offset="-04:00", make="SONY",
                          model="ILCE-7M3"))

    info = inspect_image(io.BytesIO(data), "DSC01234.JPG")

    assert info.captured_at.utcoffset() == timedelta(hours=-4)
    assert info.captured_at.astimezone(ZoneInfo("UTC")).hour == 22
    assert info.camera == "SONY ILCE-7M3"


def test_it_cleans_camera_names_and_ignores_an_unset_camera_clock():
    data = jpeg(exif=exif(captured="0000:00:00 00:00:00", make="NIKON CORPORATION\x00",
                          model="NIKON  D850   "))

    info = inspect_image(io.BytesIO(data), "DSC_0001.JPG")

    assert (info.captured_at, info.camera, info.orientation) == (None, "NIKON D850", 1)


def test_it_accepts_a_photo_without_exif():
    info = inspect_image(io.BytesIO(image_bytes("PNG")), "scan.png")

    assert (info.captured_at, info.camera, info.orientation) == (None, "", 1)


def test_it_accepts_a_photo_whose_exif_is_broken():
    good = jpeg()
    broken_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(20)
    app1 = b"\xff\xe1" + (len(broken_exif) + 2).to_bytes(2, "big") + broken_exif
    data = good[:2] + app1 + good[2:]

    with pytest.warns(UserWarning, match="Corrupt EXIF"):  # Pillow says so, and goes on
        result = ingest(EventFactory(), data)

    assert result.status == "accepted"
    assert (result.photo.captured_at, result.photo.camera) == (None, "")


def test_it_hashes_and_measures_what_it_reads_without_touching_the_database(
        django_assert_num_queries):
    data = image_bytes("WEBP", size=(30, 20))

    with django_assert_num_queries(0):
        info = inspect_image(io.BytesIO(data), "a.webp")

    assert (info.format, info.extension, info.width, info.height) == ("WEBP", "webp", 30, 20)
    assert (info.sha256, info.size) == (hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize(("image_format", "mode"), [
    ("PNG", "I;16"),
    ("PNG", "P"),
    ("PNG", "LA"),
    ("PNG", "RGBA"),
    ("PNG", "1"),
    ("JPEG", "CMYK"),
    ("JPEG", "L"),
    ("WEBP", "RGB"),
])
def test_it_accepts_unusual_image_modes_for_later_conversion(image_format, mode):
    data = image_bytes(image_format, mode=mode)

    result = ingest(EventFactory(), data, name=f"photo.{image_format.lower()}")

    assert result.status == "accepted", result.reason
    assert result.photo.image_format == image_format
    assert inspect_image(io.BytesIO(data), "photo").mode == mode


def test_it_stores_a_multi_picture_jpeg_as_a_jpeg():
    buffer = io.BytesIO()
    picture(seed=1).save(buffer, "MPO", save_all=True, append_images=[picture(seed=2)])

    photo = ingest(EventFactory(), buffer.getvalue()).photo

    assert photo.image_format == "JPEG"
    assert photo.original.name.endswith(".jpg")


def test_it_accepts_a_16_bit_rgb_png():
    result = ingest(EventFactory(), png_rgb16(size=(16, 12)), name="export.png")

    assert result.status == "accepted", result.reason
    assert (result.photo.image_format, result.photo.width, result.photo.height) == ("PNG", 16, 12)


# --- Rejected files: nothing is stored -------------------------------------------------


def corrupt_jpeg(damage):
    data = bytearray(jpeg(size=(64, 48)))
    if damage == "tables":
        tables = data.index(b"\xff\xc4") + 4  # the Huffman tables that decode every pixel
        data[tables:tables + 36] = bytes(36)
    else:
        pixels = data.index(b"\xff\xda") + 20  # inside the compressed pixels
        data[pixels:pixels + 4] = b"\xff\x01\xff\x02"  # markers no JPEG has there
    return bytes(data)


# Flipped bits in the compressed pixels are invisible to any decoder (the picture
# just looks wrong); damage to the file's structure is what can and must be caught.
@pytest.mark.parametrize("damage", ["tables", "pixels"])
def test_it_rejects_a_corrupt_jpeg(settings, damage):
    result = ingest(EventFactory(), corrupt_jpeg(damage))

    assert (result.status, result.code, result.photo) == ("rejected", "corrupt", None)
    assert "damaged" in result.reason
    assert_nothing_stored(settings)


@pytest.mark.parametrize("cut", [0.5, 0.9], ids=["half", "end-missing"])
def test_it_rejects_a_truncated_jpeg(settings, cut):
    data = jpeg(size=(64, 48))

    result = ingest(EventFactory(), data[:int(len(data) * cut)])

    assert (result.status, result.code) == ("rejected", "corrupt")
    assert "incomplete" in result.reason
    assert_nothing_stored(settings)


def test_it_rejects_a_jpeg_missing_only_its_end_marker(settings):
    result = ingest(EventFactory(), jpeg(size=(64, 48))[:-2])

    assert (result.status, result.code) == ("rejected", "corrupt")
    assert_nothing_stored(settings)


def test_it_calls_a_file_that_only_starts_like_a_jpeg_damaged(settings):
    result = ingest(EventFactory(), jpeg()[:20])  # the start of the headers, nothing more

    assert (result.status, result.code) == ("rejected", "corrupt")
    assert_nothing_stored(settings)


def test_it_rejects_a_text_file_named_jpg(settings):
    result = ingest(EventFactory(), b"Bib 1234, finish 00:41:12\n" * 10, name="photo.jpg")

    assert (result.status, result.code, result.name) == ("rejected", "not_image", "photo.jpg")
    assert result.reason == "Not an image: use JPEG, PNG or WebP files."
    assert_nothing_stored(settings)


def test_it_rejects_an_empty_file(settings):
    result = ingest(EventFactory(), b"", name="IMG_0002.JPG")

    assert (result.status, result.code) == ("rejected", "empty")
    assert result.reason == "The file is empty."
    assert_nothing_stored(settings)


def test_it_rejects_a_decompression_bomb_png_from_its_header(settings):
    data = bomb_png(30_000, 30_000)  # valid, under 0.5 MB, 900 megapixels once decoded
    assert len(data) < 1024 * 1024

    result = ingest(EventFactory(), data, name="bomb.png")

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert "too large" in result.reason and "megapixels" in result.reason
    assert_nothing_stored(settings)


def test_it_checks_the_pixel_limit_before_decoding_anything(settings):
    # 81 megapixels of pixel data that could not even be decoded: only a check of
    # the header, made first, gives "too large" rather than "damaged".
    result = ingest(EventFactory(), png_claiming_size(9000, 9000), name="big.png")

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert result.reason == (
        "The image is too large: 9000 × 9000 pixels, the limit is 80 megapixels.")
    assert_nothing_stored(settings)


@pytest.mark.parametrize("claiming_size", [png_claiming_size, jpeg_claiming_size, webp_claiming_size],
                         ids=["png", "jpeg", "webp"])
def test_a_header_over_our_limit_is_refused_before_pillow_warns(settings, caplog, claiming_size):
    # 120 MP: over Pillow's warning threshold (89 MP), under its error (179 MP). Our limit
    # is checked on the header first, so nothing is logged for a file we refuse anyway.
    assert Image.MAX_IMAGE_PIXELS < 120_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    data = claiming_size(12_000, 10_000)

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        result = ingest(EventFactory(), data, name="big.img")

    assert [warning.category for warning in caught] == []
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert result.reason == (
        "The image is too large: 12000 × 10000 pixels, the limit is 80 megapixels.")
    assert_nothing_stored(settings)


@pytest.fixture
def unreadable_header(monkeypatch):
    """As if the file's header were one our own reader cannot follow: Pillow's guard is
    then the first to see the size, and must still end in a refusal."""
    monkeypatch.setattr("photos.validation.declared_size", lambda content: None)


def test_it_refuses_what_pillow_only_warns_about(settings, monkeypatch, unreadable_header):
    settings.PHOTO_MAX_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    with pytest.warns(Image.DecompressionBombWarning):
        result = ingest(EventFactory(), image_bytes("PNG", size=(40, 30)))  # 1200 pixels

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert_nothing_stored(settings)


def test_the_header_check_refuses_what_pillow_would_warn_about_at_its_own_limit(settings, monkeypatch):
    settings.PHOTO_MAX_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        result = ingest(EventFactory(), image_bytes("PNG", size=(40, 30)))  # 1200 pixels

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert result.reason == "The image is too large: 40 × 30 pixels, the limit is 0.001 megapixels."


def test_it_turns_pillows_decompression_bomb_error_into_a_rejection(settings, monkeypatch,
                                                                      unreadable_header):
    settings.PHOTO_MAX_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    result = ingest(EventFactory(), image_bytes("PNG", size=(100, 30)))  # over twice the limit

    assert (result.status, result.code) == ("rejected", "too_many_pixels")
    assert result.reason == "The image is too large: more than 0.001 megapixels."
    assert_nothing_stored(settings)


def test_it_rejects_a_pillow_warning_raised_as_an_error(settings, monkeypatch, unreadable_header):
    settings.PHOTO_MAX_PIXELS = 10**9
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        result = ingest(EventFactory(), image_bytes("PNG", size=(40, 30)))

    assert (result.status, result.code) == ("rejected", "too_many_pixels")


def test_pillows_own_guard_stays_on_for_every_other_reader():
    # We never switch Pillow's guard off: whoever opens such a file gets Pillow's error.
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png_claiming_size(15_000, 15_000)))


def test_it_rejects_an_image_over_the_configured_pixel_limit(settings):
    settings.PHOTO_MAX_PIXELS = 1000

    result = ingest(EventFactory(), jpeg(size=(40, 30)))

    assert result.reason == (
        "The image is too large: 40 × 30 pixels, the limit is 0.001 megapixels.")
    assert_nothing_stored(settings)


@pytest.mark.parametrize(("image_format", "data"), [
    ("GIF", image_bytes("GIF")),
    ("BMP", image_bytes("BMP")),
    ("TIFF", image_bytes("TIFF")),
    ("HEIC", heic_header()),
], ids=["gif", "bmp", "tiff", "heic"])
def test_it_rejects_unsupported_formats_by_name(settings, image_format, data):
    result = ingest(EventFactory(), data, name="photo.jpg")  # the extension is not believed

    assert (result.status, result.code) == ("rejected", "unsupported_format")
    assert result.reason == f"Unsupported format {image_format}: use JPEG, PNG or WebP."
    assert_nothing_stored(settings)


def test_it_rejects_an_oversize_file_without_reading_all_of_it(settings):
    settings.PHOTO_MAX_BYTES = 1000
    upload = io.BytesIO(jpeg(size=(64, 48)) + bytes(5 * 1024 * 1024))

    result = ingest_file(EventFactory(), upload, name="huge.jpg")

    assert (result.status, result.code) == ("rejected", "too_large")
    assert result.reason == "The file is larger than the 1000\xa0bytes limit."
    assert upload.tell() <= 1024 * 1024  # stopped after the first chunk
    assert_nothing_stored(settings)


def test_it_refuses_to_run_if_pillow_is_told_to_accept_truncated_images(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    with pytest.raises(ImproperlyConfigured):
        inspect_image(io.BytesIO(jpeg()), "IMG_0001.JPG")


def test_it_raises_rejected_file_with_a_reason_from_inspect_image():
    with pytest.raises(RejectedFile) as rejection:
        inspect_image(io.BytesIO(b"%PDF-1.7"), "invoice.jpg")

    assert rejection.value.code == "not_image"
    assert rejection.value.reason == "Not an image: use JPEG, PNG or WebP files."


# --- Duplicates ------------------------------------------------------------------------


def test_it_reports_the_same_photo_twice_in_an_event_as_a_duplicate(settings):
    event = EventFactory()
    data = jpeg()
    first = ingest(event, data, name="IMG_0001.JPG")

    again = ingest(event, data, name="copy of IMG_0001.JPG")

    assert (again.status, again.photo) == ("duplicate", first.photo)
    assert again.reason == "Already uploaded to this event as IMG_0001.JPG."
    assert Photo.objects.count() == 1
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [first.photo.original.name]


def test_it_accepts_the_same_photo_in_another_event(settings):
    data = jpeg()
    first = ingest(EventFactory(), data)

    second = ingest(EventFactory(), data)

    assert second.status == "accepted"
    assert second.photo != first.photo
    assert second.photo.content_hash == first.photo.content_hash
    assert len(stored_files(settings.PRIVATE_MEDIA_ROOT)) == 2


def test_it_reports_a_duplicate_when_it_loses_the_race_at_the_unique_constraint(
        settings, monkeypatch):
    event = EventFactory()
    data = jpeg()
    winner = ingest(event, data).photo
    real_lookup = services._existing_photo
    lookups = []

    def miss_the_first_lookup(event, content_hash):
        # As if the other upload committed just after this one looked for duplicates.
        lookups.append(content_hash)
        return None if len(lookups) == 1 else real_lookup(event, content_hash)

    monkeypatch.setattr(services, "_existing_photo", miss_the_first_lookup)

    result = ingest(event, data, name="again.jpg")

    assert (result.status, result.photo) == ("duplicate", winner)
    assert len(lookups) == 2
    assert Photo.objects.count() == 1
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [winner.original.name]


@pytest.mark.django_db(transaction=True)
def test_it_gives_one_accepted_and_one_duplicate_for_simultaneous_identical_uploads(
        settings, monkeypatch):
    event = EventFactory()
    data = jpeg()
    barrier = threading.Barrier(2, timeout=10)
    looked = threading.local()
    real_lookup = services._existing_photo
    lookups = []

    def look_then_wait_for_the_other_upload(event, content_hash):
        found = real_lookup(event, content_hash)
        lookups.append(found)
        if not getattr(looked, "once", False):
            looked.once = True
            barrier.wait()  # both have looked for a duplicate and found none
        return found

    monkeypatch.setattr(services, "_existing_photo", look_then_wait_for_the_other_upload)
    monkeypatch.setattr(services, "enqueue_processing", lambda photo_id: None)
    results, errors = [None, None], []

    def upload(index):
        try:
            results[index] = ingest(event, data, name=f"copy{index}.jpg")
        except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(result.status for result in results) == ["accepted", "duplicate"]
    photo = Photo.objects.get()
    assert {result.photo.pk for result in results} == {photo.pk}
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [photo.original.name]
    # Both missed the other; the loser looked again after the unique index refused its row.
    assert lookups == [None, None, photo]


# --- After the upload -------------------------------------------------------------------


def test_it_enqueues_processing_only_once_the_photo_is_committed(
        monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr(services, "enqueue_processing", enqueued.append)
    event = EventFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        accepted = ingest(event, jpeg())
        assert enqueued == []  # nothing before the commit
        ingest(event, jpeg(), name="again.jpg")
        ingest(event, b"not a photo", name="notes.jpg")

    assert len(callbacks) == 1
    assert enqueued == [accepted.photo.pk]


def test_it_hands_the_photo_id_to_the_processing_task(monkeypatch):
    sent = []
    monkeypatch.setattr(services.tasks, "process_photo", types.SimpleNamespace(delay=sent.append))

    enqueue_processing(42)

    assert sent == [42]


def test_it_logs_each_result_with_event_name_status_and_reason(caplog):
    event = EventFactory()

    with caplog.at_level(logging.INFO, logger="photos.services"):
        ingest(event, jpeg(), name="good.jpg")
        ingest(event, b"", name="empty.jpg")

    accepted, rejected = [record for record in caplog.records if record.name == "photos.services"]
    assert (accepted.event_id, accepted.file_name, accepted.status, accepted.reason) == (
        event.pk, "good.jpg", "accepted", "")
    assert accepted.photo_id == Photo.objects.get().pk
    assert (rejected.event_id, rejected.file_name, rejected.status, rejected.code) == (
        event.pk, "empty.jpg", "rejected", "empty")
    assert rejected.reason == "The file is empty."


def test_it_returns_a_result_whose_status_compares_as_text():
    result = ingest(EventFactory(), jpeg())

    assert result.status is IngestStatus.ACCEPTED
    assert result.status == "accepted"


def test_photo_factory_can_write_a_real_original(settings):
    photo = PhotoFactory(with_original=True)

    with photo.original.open("rb") as original:
        assert original.read(3) == b"\xff\xd8\xff"
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == [photo.original.name]
