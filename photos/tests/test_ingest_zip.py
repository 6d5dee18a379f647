import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from django.utils import translation

from events.tests.factories import EventFactory
from photos.models import Photo
from photos.services import ingest_zip
from photos.tests.images import image_bytes, jpeg, make_zip
from photos.validation import RejectedFile, _MemberReader, open_archive

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_storage")]

FIVE_MB_OF_ZEROS = bytes(5 * 1024 * 1024)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield



# Where each field sits in a member's local header and in its central directory entry.
_LOCAL_FIELDS = {"flag_bits": (6, "<H"), "crc": (14, "<I"), "compress_size": (18, "<I"),
                 "file_size": (22, "<I")}
_CENTRAL_FIELDS = {"flag_bits": (8, "<H"), "crc": (16, "<I"), "compress_size": (20, "<I"),
                   "file_size": (24, "<I")}


def patch_member(data: bytes, name: str, **fields) -> bytes:
    """Rewrite header fields of one member, in both places a ZIP keeps them."""
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local, entry = archive.getinfo(name).header_offset, archive.start_dir
    while data[entry:entry + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, entry + 28)
        if data[entry + 46:entry + 46 + name_length] == name.encode():
            break
        entry += 46 + name_length + extra_length + comment_length
    for field, value in fields.items():
        struct.pack_into(_LOCAL_FIELDS[field][1], data, local + _LOCAL_FIELDS[field][0], value)
        struct.pack_into(_CENTRAL_FIELDS[field][1], data, entry + _CENTRAL_FIELDS[field][0], value)
    return bytes(data)


def ingest(event, data, **kwargs):
    return ingest_zip(event, io.BytesIO(data), **kwargs)


def by_name(results):
    return {result.name: result for result in results}


def stored_files(root) -> list[str]:
    root = Path(root)
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def assert_only_these_stored(settings, results):
    photos = [result.photo for result in results if result.status == "accepted"]
    assert Photo.objects.count() == len(photos)
    assert stored_files(settings.PRIVATE_MEDIA_ROOT) == sorted(p.original.name for p in photos)


def test_it_ingests_photos_from_nested_folders(settings):
    event = EventFactory()
    data = make_zip(("start/IMG_0001.JPG", jpeg(seed=1)),
                    ("finish/line/IMG_0001.JPG", jpeg(seed=2)),
                    ("podium.png", image_bytes("PNG", seed=3)))

    results = ingest(event, data)

    assert [(r.name, r.status) for r in results] == [
        ("start/IMG_0001.JPG", "accepted"), ("finish/line/IMG_0001.JPG", "accepted"),
        ("podium.png", "accepted")]
    assert set(Photo.objects.filter(event=event).values_list("original_name", flat=True)) == {
        "start/IMG_0001.JPG", "finish/line/IMG_0001.JPG", "podium.png"}
    assert_only_these_stored(settings, results)


@pytest.mark.parametrize("hostile", ["../evil.jpg", "photos/../../evil.jpg", "/abs.jpg",
                                     "..\\evil.jpg", "C:/evil.jpg"])
def test_it_rejects_unsafe_paths_and_writes_nothing_outside(settings, tmp_path, hostile):
    data = make_zip((hostile, jpeg(seed=1)), ("ok/IMG_0002.JPG", jpeg(seed=2)))

    results = by_name(ingest(EventFactory(), data))

    assert (results[hostile].status, results[hostile].code) == ("rejected", "unsafe_path")
    assert results[hostile].reason == "Unsafe path in the archive: this file was not unpacked."
    assert results["ok/IMG_0002.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())
    assert not list(tmp_path.parent.rglob("evil.jpg")) and not Path("/abs.jpg").exists()


def test_it_rejects_symbolic_links(settings):
    link = zipfile.ZipInfo("latest.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip((link, "/etc/passwd"), ("IMG_0001.JPG", jpeg()))

    results = by_name(ingest(EventFactory(), data))

    assert (results["latest.jpg"].status, results["latest.jpg"].code) == ("rejected", "symlink")
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_encrypted_members(settings):
    data = make_zip(("secret.jpg", jpeg(seed=1)), ("IMG_0001.JPG", jpeg(seed=2)))
    data = patch_member(data, "secret.jpg", flag_bits=0x1)

    results = by_name(ingest(EventFactory(), data))

    assert (results["secret.jpg"].status, results["secret.jpg"].code) == ("rejected", "encrypted")
    assert "password" in results["secret.jpg"].reason
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_a_zip_bomb_member_without_unpacking_it(settings):
    data = make_zip(("zeros.jpg", FIVE_MB_OF_ZEROS), ("IMG_0001.JPG", jpeg()))

    results = by_name(ingest(EventFactory(), data))

    assert (results["zeros.jpg"].status, results["zeros.jpg"].code) == ("rejected", "zip_bomb")
    assert "ZIP bomb" in results["zeros.jpg"].reason
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_a_member_whose_header_understates_its_size(settings):
    # The headers say 100 kB (no bomb by ratio) for what really unpacks to 5 MB.
    data = make_zip(("liar.jpg", FIVE_MB_OF_ZEROS), ("IMG_0001.JPG", jpeg()))
    data = patch_member(data, "liar.jpg", file_size=100_000)

    results = by_name(ingest(EventFactory(), data))

    assert (results["liar.jpg"].status, results["liar.jpg"].code) == ("rejected", "corrupt_entry")
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_never_unpacks_more_than_a_member_declares():
    # Even with a checksum forged to match, reading stops at the declared size.
    data = make_zip(("liar.jpg", FIVE_MB_OF_ZEROS))
    data = patch_member(data, "liar.jpg", file_size=100_000,
                        crc=zlib.crc32(FIVE_MB_OF_ZEROS[:100_000]))

    with open_archive(io.BytesIO(data)) as archive, archive.open(archive.members[0]) as member:
        while member.read(64 * 1024):
            pass

    assert archive.unpacked == 100_000


def test_it_rejects_a_member_whose_header_overstates_its_packed_size(settings):
    # A packed size as large as the unpacked one hides a 1000:1 ratio; it cannot fit
    # before the next member, and that gives it away.
    data = make_zip(("hidden.jpg", FIVE_MB_OF_ZEROS), ("IMG_0001.JPG", jpeg()))
    data = patch_member(data, "hidden.jpg", compress_size=len(FIVE_MB_OF_ZEROS))

    results = by_name(ingest(EventFactory(), data))

    assert (results["hidden.jpg"].status, results["hidden.jpg"].code) == ("rejected", "zip_bomb")
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_stops_reading_a_member_as_soon_as_its_real_size_betrays_a_bomb():
    unpacked = io.BytesIO(bytes(3 * 1024 * 1024))
    reader = _MemberReader(unpacked, packed=1000, room=10**12)

    with pytest.raises(RejectedFile) as rejection:
        while reader.read(256 * 1024):
            pass

    assert rejection.value.code == "zip_bomb"
    assert unpacked.tell() < 2 * 1024 * 1024


def test_it_rejects_a_member_over_the_file_size_limit(settings):
    settings.PHOTO_MAX_BYTES = 5000
    data = make_zip(("large.jpg", jpeg(seed=1, size=(400, 300))), ("small.jpg", jpeg(seed=2)),
                    compression=zipfile.ZIP_STORED)

    results = by_name(ingest(EventFactory(), data))

    assert (results["large.jpg"].status, results["large.jpg"].code) == ("rejected", "too_large")
    assert results["small.jpg"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_non_images_inside_and_ingests_the_rest(settings):
    data = make_zip(("notes.txt", b"bib 1234 at km 5"), ("bibs.jpg", b"not really a jpeg"),
                    ("IMG_0001.JPG", jpeg()))

    results = by_name(ingest(EventFactory(), data))

    assert (results["notes.txt"].code, results["bibs.jpg"].code) == ("not_image", "not_image")
    assert results["IMG_0001.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_a_damaged_member_and_ingests_the_rest(settings):
    good = jpeg(seed=2)
    data = bytearray(make_zip(("damaged.jpg", jpeg(seed=1)), ("IMG_0002.JPG", good)))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        start = archive.getinfo("damaged.jpg").header_offset + 30 + len("damaged.jpg")
    data[start + 100:start + 110] = bytes(10)  # inside the deflated bytes: the CRC breaks

    results = by_name(ingest(EventFactory(), bytes(data)))

    assert (results["damaged.jpg"].status, results["damaged.jpg"].code) == (
        "rejected", "corrupt_entry")
    assert results["damaged.jpg"].reason == "This file is damaged inside the archive."
    assert results["IMG_0002.JPG"].status == "accepted"
    assert_only_these_stored(settings, results.values())


def test_it_rejects_a_file_that_is_not_a_zip_at_all(settings):
    upload = io.BytesIO(jpeg())
    upload.name = "photos.zip"

    results = ingest_zip(EventFactory(), upload)

    assert [(r.name, r.status, r.code) for r in results] == [
        ("photos.zip", "rejected", "corrupt_archive")]
    assert results[0].reason == "This is not a ZIP archive, or the archive is damaged."
    assert_only_these_stored(settings, results)


def test_it_rejects_a_truncated_archive(settings):
    data = make_zip(("IMG_0001.JPG", jpeg(seed=1)), ("IMG_0002.JPG", jpeg(seed=2)))

    results = ingest(EventFactory(), data[:len(data) * 2 // 3])

    assert [(r.name, r.status, r.code) for r in results] == [
        ("ZIP archive", "rejected", "corrupt_archive")]
    assert Photo.objects.count() == 0


def test_it_skips_folders_and_macos_and_windows_clutter(settings):
    data = make_zip(("run/", b""), ("run/IMG_0001.JPG", jpeg(seed=1)),
                    ("__MACOSX/run/._IMG_0001.JPG", b"\x00\x05\x16\x07 resource fork"),
                    ("run/.DS_Store", b"\x00\x00\x00\x01Bud1"), ("run/._IMG_0002.JPG", b"fork"),
                    ("run/Thumbs.db", b"\xd0\xcf\x11\xe0"), ("run/IMG_0002.JPG", jpeg(seed=2)))

    results = ingest(EventFactory(), data)

    assert [(r.name, r.status) for r in results] == [
        ("run/IMG_0001.JPG", "accepted"), ("run/IMG_0002.JPG", "accepted")]
    assert_only_these_stored(settings, results)


def test_it_ingests_the_good_files_of_a_mixed_archive(settings):
    event = EventFactory()
    already_there = ingest_zip(event, io.BytesIO(make_zip(("old.jpg", jpeg(seed=9)))))[0].photo
    data = make_zip(("a/IMG_0001.JPG", jpeg(seed=1)), ("a/empty.jpg", b""),
                    ("../escape.jpg", jpeg(seed=2)), ("b/IMG_0003.PNG", image_bytes("PNG", seed=3)),
                    ("b/same-as-old.jpg", jpeg(seed=9)), ("b/bomb.jpg", FIVE_MB_OF_ZEROS),
                    ("b/IMG_0001-copy.JPG", jpeg(seed=1)), ("c/scan.gif", image_bytes("GIF")),
                    ("c/IMG_0004.webp", image_bytes("WEBP", seed=4)))

    results = ingest(event, data)

    assert [(r.name, r.status, r.code) for r in results] == [
        ("a/IMG_0001.JPG", "accepted", ""),
        ("a/empty.jpg", "rejected", "empty"),
        ("../escape.jpg", "rejected", "unsafe_path"),
        ("b/IMG_0003.PNG", "accepted", ""),
        ("b/same-as-old.jpg", "duplicate", ""),
        ("b/bomb.jpg", "rejected", "zip_bomb"),
        ("b/IMG_0001-copy.JPG", "duplicate", ""),
        ("c/scan.gif", "rejected", "unsupported_format"),
        ("c/IMG_0004.webp", "accepted", ""),
    ]
    assert results[4].photo == already_there
    assert results[6].photo == results[0].photo
    assert Photo.objects.filter(event=event).count() == 4  # three new and the old one


def test_it_rejects_an_archive_with_too_many_members(settings):
    settings.PHOTO_ZIP_MAX_MEMBERS = 2
    data = make_zip(*((f"IMG_{n}.JPG", jpeg(seed=n)) for n in range(3)))

    results = ingest(EventFactory(), data)

    assert [(r.status, r.code) for r in results] == [("rejected", "too_many_files")]
    assert results[0].reason == (
        "The archive holds 3 files, the limit is 2: split it into several archives.")
    assert Photo.objects.count() == 0


def test_it_rejects_an_archive_too_large_once_unpacked(settings):
    settings.PHOTO_ZIP_MAX_TOTAL_BYTES = 1000
    data = make_zip(("IMG_0001.JPG", jpeg(seed=1)), ("IMG_0002.JPG", jpeg(seed=2)))

    results = ingest(EventFactory(), data)

    assert [(r.status, r.code) for r in results] == [("rejected", "archive_too_large")]
    assert Photo.objects.count() == 0


def test_it_reads_an_archive_from_a_path_and_reports_progress(settings, tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(make_zip(("IMG_0001.JPG", jpeg(seed=1)), ("notes.txt", b"hello"),
                              ("IMG_0002.JPG", jpeg(seed=2))))
    calls = []

    results = ingest_zip(EventFactory(), path,
                         progress=lambda done, total: calls.append((done, total)))

    assert [r.status for r in results] == ["accepted", "rejected", "accepted"]
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
