"""Checks what a photographer uploads before it becomes a Photo. No database here.

``inspect_image`` reads one file once (hashing it on the way), asks Pillow for
the header, then decodes the whole image (a JPEG at 1/8 scale, which reads every
byte of its compressed data all the same), so a damaged file is refused at upload
time with a reason the photographer can act on, instead of failing later in a
background step nobody watches. ``open_archive`` does the same job for a ZIP:
it never unpacks anything to disk, and every limit is checked on the bytes
really read, because the sizes written in a ZIP's headers can lie.
"""

import hashlib
import logging
import lzma
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from photos.imaging import declared_size, pixel_limit

logger = logging.getLogger(__name__)

# Pillow's format name -> extension of the stored original. Nothing else is accepted.
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

_CHUNK = 1024 * 1024
# A typical race photo (5-15 MB) stays in memory; larger ones spill to a temp file.
_SPOOL_IN_MEMORY = 10 * 1024 * 1024

# A member that unpacks to more than 1 MB at more than 200 times its packed size is
# a ZIP bomb: JPEG, PNG and WebP are already compressed and barely shrink in a ZIP.
_BOMB_MIN_BYTES = 1024 * 1024
_BOMB_RATIO = 200

# Common "photos" that are not JPEG, PNG or WebP, recognised by their first bytes
# so the reason can name them. Pillow never parses them (less attack surface).
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_ACCEPTED_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def max_bytes() -> int:
    return getattr(settings, "PHOTO_MAX_BYTES", 60 * 1024 * 1024)


def zip_max_total_bytes() -> int:
    return getattr(settings, "PHOTO_ZIP_MAX_TOTAL_BYTES", 20 * 1024**3)


def zip_max_members() -> int:
    return getattr(settings, "PHOTO_ZIP_MAX_MEMBERS", 20_000)


class RejectedFile(Exception):
    """The file cannot become a photo. ``reason`` is shown to the photographer as it is;
    ``code`` names the rule for logs and code that reacts to it."""

    def __init__(self, reason: str, *, code: str = "rejected"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int  # as stored in the file, before EXIF orientation
    height: int
    mode: str  # Pillow mode: later steps convert CMYK, 16-bit, palette... to RGB
    captured_at: datetime | None
    camera: str
    orientation: int  # EXIF orientation, 1 (upright) when absent
    sha256: str
    size: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def upright_size(self) -> tuple[int, int]:
        """Width and height as the photo is shown: orientations 5 to 8 turn it a quarter."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def inspect_image(fileobj, name: str) -> ImageInfo:
    """Validate one file and read its metadata, or raise RejectedFile."""
    with inspected(fileobj, name) as (info, _content):
        return info


@contextmanager
def inspected(fileobj, name: str):
    """Like inspect_image, and also yield the bytes read (a file at position 0) so the
    caller can store them without reading the upload a second time."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow only has a process-wide switch; with it on, a cut-off photo would be
        # accepted with a grey bottom half and the photographer never told.
        raise ImproperlyConfigured(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False: photo ingestion relies on "
            "Pillow refusing truncated files."
        )
    content, sha256, size = _spool(fileobj)
    with content:
        info = _inspect(content, name, sha256, size)
        content.seek(0)
        yield info, content


def file_too_large() -> RejectedFile:
    return RejectedFile(
        _("The file is larger than the %(limit)s limit.") % {"limit": filesizeformat(max_bytes())},
        code="too_large",
    )


def _spool(fileobj):
    """Copy the upload once into a spooled temp file, hashing and counting as it goes."""
    limit = max_bytes()
    content = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := fileobj.read(_CHUNK):
            if size == 0:
                # A TIFF, RAW or HEIC is refused by its first bytes, before the rest is read:
                # a 200 MB TIFF renamed .jpg gets the reason that helps, not "too large".
                _refuse_known_other_format(chunk[:32])
            size += len(chunk)
            if size > limit:
                raise file_too_large()  # stop here: the rest is never read
            digest.update(chunk)
            content.write(chunk)
        if size == 0:
            raise RejectedFile(_("The file is empty."), code="empty")
    except BaseException:
        content.close()
        raise
    content.seek(0)
    return content, digest.hexdigest(), size


def _inspect(content, name, sha256, size) -> ImageInfo:
    head = content.read(32)
    declared = declared_size(content)
    if declared:
        # Refused from the header before Pillow opens it: Pillow would first log a
        # DecompressionBombWarning about what we refuse anyway.
        _check_pixels(*declared)
    content.seek(0)
    try:
        with Image.open(content, formats=tuple(EXTENSIONS)) as img:
            # Multi-picture JPEGs (some cameras' default) are JPEGs with extra frames.
            image_format = "JPEG" if img.format == "MPO" else img.format
            width, height = img.size
            _check_pixels(width, height)  # as Pillow read the header, before any pixel is decoded
            # A JPEG is decoded at 1/8 scale: libjpeg still reads and entropy-decodes every
            # coefficient of every block (a truncated or broken stream fails exactly as at
            # full size) but skips the inverse DCT and the colour conversion of all but one
            # value per block, so a 24 MP photo costs 1/64 of its pixels' memory and a
            # fraction of the time. Other formats ignore draft and decode in full.
            img.draft(None, (max(1, width // 8), max(1, height // 8)))
            img.load()
            captured_at, camera, orientation = _read_exif(img, name)
            mode = img.mode
    except RejectedFile:
        raise
    except UnidentifiedImageError:
        raise _unidentified(head) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard fired while reading the header (the warning is an
        # exception only when warnings are errors).
        raise RejectedFile(
            _("The image is too large: more than %(limit)s megapixels.")
            % {"limit": _megapixels(pixel_limit())},
            code="too_many_pixels",
        ) from None
    except MemoryError:
        raise
    except Exception as error:
        # Pillow reports damaged data as OSError, SyntaxError, ValueError, EOFError,
        # struct.error, zlib.error... whichever it is, the pixels cannot be read.
        logger.debug("cannot decode %s: %r", name, error)
        raise _damaged() from None
    return ImageInfo(format=image_format, width=width, height=height, mode=mode,
                     captured_at=captured_at, camera=camera, orientation=orientation,
                     sha256=sha256, size=size)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def _check_pixels(width: int, height: int) -> None:
    limit = pixel_limit()  # never above Pillow's own bomb threshold
    if width * height > limit:
        raise RejectedFile(
            _("The image is too large: %(width)s × %(height)s pixels, the limit is "
              "%(limit)s megapixels.")
            % {"width": width, "height": height, "limit": _megapixels(limit)},
            code="too_many_pixels",
        )


def _unidentified(head: bytes) -> RejectedFile:
    if head.startswith(_ACCEPTED_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return _damaged()  # starts like a JPEG, PNG or WebP, but Pillow cannot read its header
    other = _other_format(head)
    if other:
        return _unsupported(other)
    return RejectedFile(_("Not an image: use JPEG, PNG or WebP files."), code="not_image")


def _unsupported(other_format: str) -> RejectedFile:
    return RejectedFile(
        _("Unsupported format %(format)s: use JPEG, PNG or WebP.") % {"format": other_format},
        code="unsupported_format",
    )


def _refuse_known_other_format(head: bytes) -> None:
    other = _other_format(head)
    if other:
        raise _unsupported(other)


def _damaged() -> RejectedFile:
    return RejectedFile(
        _("The image is damaged or incomplete (for example cut off during copying) "
          "and cannot be read."),
        code="corrupt",
    )


def _other_format(head: bytes) -> str | None:
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"  # also DNG, NEF, ARW and CR2 raw files, which are TIFF inside
    bmp_header_sizes = (12, 40, 52, 56, 64, 108, 124)  # "BM" alone is too common a start
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in bmp_header_sizes:
        return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIC"
        if brand == b"crx ":
            return "RAW"  # Canon CR3
    if head.startswith((b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"IIU\x00")):
        return "RAW"  # Fujifilm RAF, Olympus ORF, Panasonic RW2
    if head[:4] == b"8BPS":
        return "PSD"
    return None


# --- EXIF ------------------------------------------------------------------------

_EXIF_DATETIME = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _read_exif(img, name):
    """(captured_at, camera, orientation); missing or broken EXIF gives (None, "", 1)."""
    try:
        exif = img.getexif()
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception as error:
        # Broken EXIF is common (editing tools, phone apps) and never a reason to
        # refuse a photo whose pixels are fine.
        logger.debug("unreadable EXIF in %s: %r", name, error)
        return None, "", 1
    captured_at = _captured_at(details.get(ExifTags.Base.DateTimeOriginal),
                               details.get(ExifTags.Base.OffsetTimeOriginal),
                               details.get(ExifTags.Base.SubsecTimeOriginal))
    camera = _camera(exif.get(ExifTags.Base.Make), exif.get(ExifTags.Base.Model))
    orientation = exif.get(ExifTags.Base.Orientation)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return captured_at, camera, orientation


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    printable = "".join(char if char.isprintable() else " " for char in value.replace("\x00", ""))
    return " ".join(printable.split())


def _captured_at(value, offset, subsec) -> datetime | None:
    match = _EXIF_DATETIME.match(_text(value))
    if not match:
        return None
    try:
        naive = datetime(*(int(part) for part in match.groups()))
    except ValueError:
        return None  # "0000:00:00 00:00:00": the camera's clock was never set
    # Sub-seconds order the frames of a burst, which share the same second.
    fraction = re.match(r"\d+", _text(subsec))
    if fraction:
        naive = naive.replace(microsecond=int(fraction.group()[:6].ljust(6, "0")))
    return naive.replace(tzinfo=_exif_offset(offset) or ZoneInfo(settings.TIME_ZONE))


def _exif_offset(offset) -> timezone | None:
    match = _EXIF_OFFSET.fullmatch(_text(offset))
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    try:
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    except ValueError:
        return None


def _camera(make, model) -> str:
    make, model = _text(make), _text(model)
    # Most makers repeat their name in the model ("Canon" + "Canon EOS R5").
    if make and model.lower().startswith(make.split()[0].lower()):
        make = ""
    return " ".join(part for part in (make, model) if part)[:120]


# --- ZIP archives ------------------------------------------------------------------

_EOCD = b"PK\x05\x06"
_ZIP64_EOCD_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def corrupt_archive() -> RejectedFile:
    return RejectedFile(_("This is not a ZIP archive, or the archive is damaged."),
                        code="corrupt_archive")


@contextmanager
def open_archive(fileobj):
    """Open a ZIP (a seekable file object) for reading photo by photo.

    Raises RejectedFile when the archive as a whole is unusable: not a ZIP,
    damaged, too many members or too large once unpacked.
    """
    limit = zip_max_members()
    declared = _declared_member_count(fileobj)
    # Checked before zipfile parses the directory, which holds every entry in memory.
    if declared is not None and declared > limit:
        raise _too_many_members(declared, limit)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            struct.error) as error:
        logger.debug("unreadable ZIP: %r", error)
        raise corrupt_archive() from None
    with archive:
        members = archive.infolist()
        if len(members) > limit:
            raise _too_many_members(len(members), limit)
        if sum(member.file_size for member in members) > zip_max_total_bytes():
            raise _archive_too_large()
        yield PhotoArchive(archive)


class PhotoArchive:
    """An open ZIP. ``members`` are the files worth a result; ``open`` checks one and
    returns a reader that enforces the limits on what it really unpacks."""

    def __init__(self, archive: zipfile.ZipFile):
        self._archive = archive
        self._room = _room_per_member(archive)
        self.unpacked = 0  # bytes really read from all members so far

    @property
    def members(self) -> list[zipfile.ZipInfo]:
        """Files in archive order; folders and what macOS and Windows add are left out."""
        return [member for member in self._archive.infolist()
                if not member.is_dir() and not _is_junk(member.filename)]

    @contextmanager
    def open(self, member: zipfile.ZipInfo):
        _check_member(member)
        room = self._room[id(member)]
        # A packed size larger than the space up to the next member is a lie, or
        # members overlap: both are how bombs hide their true ratio.
        if member.compress_size > room or _is_bomb(member.file_size, member.compress_size):
            raise _zip_bomb()
        try:
            raw = self._archive.open(member)
        except NotImplementedError:
            raise RejectedFile(_("This file is packed with a compression method we cannot "
                                 "read; make the archive again with standard settings."),
                               code="unsupported_compression") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
            raise _corrupt_member() from None
        reader = _MemberReader(raw, packed=member.compress_size,
                               room=zip_max_total_bytes() - self.unpacked)
        try:
            with raw:
                yield reader
        finally:
            self.unpacked += reader.count


class _MemberReader:
    """Reads one member and counts what it really yields: headers can understate sizes."""

    def __init__(self, raw, *, packed: int, room: int):
        self._raw = raw
        self._packed = packed
        self._room = room
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError):
            raise _corrupt_member() from None  # bad CRC, broken deflate stream...
        self.count += len(data)
        if _is_bomb(self.count, self._packed):
            raise _zip_bomb()
        if self.count > self._room:
            raise _archive_too_large()
        return data


def _check_member(member: zipfile.ZipInfo) -> None:
    if _is_unsafe_path(member.filename):
        raise RejectedFile(_("Unsafe path in the archive: this file was not unpacked."),
                           code="unsafe_path")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise RejectedFile(_("Symbolic links are not accepted in an archive."), code="symlink")
    if member.flag_bits & 0x1:
        raise RejectedFile(_("This file is encrypted: make the archive again without a "
                             "password."), code="encrypted")
    if member.file_size > max_bytes():
        raise file_too_large()


def _is_unsafe_path(name: str) -> bool:
    path = name.replace("\\", "/")
    absolute = path.startswith("/") or re.match(r"[A-Za-z]:", path) is not None
    return absolute or ".." in path.split("/")


def _is_junk(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1] in _JUNK_NAMES or parts[-1].startswith("._")


def _is_bomb(unpacked: int, packed: int) -> bool:
    return unpacked > _BOMB_MIN_BYTES and unpacked > _BOMB_RATIO * packed


def _room_per_member(archive: zipfile.ZipFile) -> dict[int, int]:
    """Bytes from each member's header to the next one (or to the central directory)."""
    members = sorted(archive.infolist(), key=lambda member: member.header_offset)
    ends = [member.header_offset for member in members[1:]] + [archive.start_dir]
    return {id(member): end - member.header_offset for member, end in zip(members, ends)}


def _declared_member_count(fileobj) -> int | None:
    """The member count in the end-of-central-directory record, or None if not found."""
    start = fileobj.tell()
    try:
        end = fileobj.seek(0, os.SEEK_END)
        # The record is 22 bytes plus a comment of at most 64 KiB, preceded in
        # ZIP64 archives by a 20-byte locator.
        tail_size = min(end, 22 + 0xFFFF + 20)
        fileobj.seek(end - tail_size)
        tail = fileobj.read(tail_size)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) < at + 22:
            return None
        count = struct.unpack_from("<H", tail, at + 10)[0]
        if count == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == _ZIP64_EOCD_LOCATOR:
            fileobj.seek(struct.unpack_from("<Q", tail, at - 12)[0])
            record = fileobj.read(56)
            if len(record) == 56 and record[:4] == _ZIP64_EOCD:
                count = struct.unpack_from("<Q", record, 32)[0]
        return count
    except (OSError, ValueError, struct.error):
        return None
    finally:
        fileobj.seek(start)


def _too_many_members(count: int, limit: int) -> RejectedFile:
    return RejectedFile(
        _("The archive holds %(count)s files, the limit is %(limit)s: split it into "
          "several archives.") % {"count": count, "limit": limit},
        code="too_many_files",
    )


def _archive_too_large() -> RejectedFile:
    return RejectedFile(
        _("The archive is too large once unpacked (the limit is %(limit)s): split it into "
          "several archives.") % {"limit": filesizeformat(zip_max_total_bytes())},
        code="archive_too_large",
    )


def _zip_bomb() -> RejectedFile:
    return RejectedFile(_("Suspicious compression in the archive (a possible ZIP bomb): "
                          "this file was not unpacked."), code="zip_bomb")


def _corrupt_member() -> RejectedFile:
    return RejectedFile(_("This file is damaged inside the archive."), code="corrupt_entry")
