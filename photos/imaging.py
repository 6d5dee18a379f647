"""Decoding a photo's bytes into an upright sRGB image, and the colour handling it needs.

Used by the derivatives (web copy, preview, thumbnail) and by the analysis steps
(faces, bibs, CLIP), so every consumer sees the same pixels: EXIF orientation
applied, 16-bit samples scaled, transparency on white, embedded ICC profiles
converted to sRGB. JPEGs are shrunk while decoding where the target allows it
(``draft``: the decoder skips DCT detail it would throw away), and one
:class:`DecodedPhoto` serves every scale a photo's steps ask for from as few
decodes as it can (:func:`decoded` shares it between the steps of one photo).
"""

import io
import logging
import math
import struct
import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

# Formats a camera or an export tool produces. Pillow can open many more, but
# rarely used decoders are where image-parsing vulnerabilities live, and
# nothing a race photographer uploads needs them.
ACCEPTED_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP")  # JPEG includes multi-picture (MPO) files

# EXIF orientation -> the transpose that shows the photo upright (EXIF 2.3, tag 0x0112).
_ORIENTATION_TAG = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class InvalidImage(ValueError):
    """The bytes are not a usable photo (derivatives and analysis alike); trying again
    will not help.

    ``reason`` is a sentence for the photographer or staff, already translated.
    """

    def __init__(self, reason):
        super().__init__(str(reason))
        self.reason = str(reason)


# JPEG markers that start a frame header (SOFn: baseline, progressive, lossless,
# arithmetic...); C4, C8 and CC are other segments.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# A JPEG's header is a few segments (tables, EXIF, ICC in a few parts): past this many
# before the frame header, the file is not one a camera wrote; Pillow judges it.
_JPEG_MAX_SEGMENTS = 256


def declared_size(stream) -> tuple[int, int] | None:
    """Width and height as a JPEG, PNG or WebP file's header declares them, read from the
    seekable binary ``stream`` without decoding anything; None for another format or a
    header this cannot follow (Pillow then says what is wrong).

    Our pixel limit is checked on this before Pillow opens the file: Pillow's own check
    warns (a logged ``DecompressionBombWarning``) about anything over its limit before
    we could refuse it with a reason, and it stays in force for whatever gets past here.
    """
    stream.seek(0)
    head = stream.read(30)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24]) if len(head) >= 24 else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) == 30:
        return _webp_size(head)
    if head[:3] == b"\xff\xd8\xff":
        return _jpeg_frame_size(stream)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sizes less one
        return (int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless: two 14-bit sizes less one
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        return (int.from_bytes(head[26:28], "little") & 0x3FFF,
                int.from_bytes(head[28:30], "little") & 0x3FFF)
    return None


def _jpeg_frame_size(stream) -> tuple[int, int] | None:
    stream.seek(2)
    for _segment in range(_JPEG_MAX_SEGMENTS):
        marker = stream.read(2)
        while marker == b"\xff\xff":  # fill bytes before a marker
            marker = b"\xff" + stream.read(1)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xD9, 0xDA):
            return None  # damaged, or the image data begins with no frame header before it
        if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:
            continue  # markers without a length
        length = stream.read(2)
        if len(length) < 2 or struct.unpack(">H", length)[0] < 2:
            return None
        if marker[1] in _JPEG_FRAMES:
            frame = stream.read(5)  # precision, then height and width
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:])
            return width, height
        stream.seek(struct.unpack(">H", length)[0] - 2, io.SEEK_CUR)
    return None


def pixel_limit() -> int:
    """The most pixels a photo may have: ``PHOTO_MAX_PIXELS``, never above Pillow's own bomb
    threshold, so what Pillow would only warn about (or refuse) is refused with our reason,
    at upload (photos/validation.py) and whenever a stored photo is decoded."""
    limit = getattr(settings, "PHOTO_MAX_PIXELS", 80_000_000)
    return min(limit, Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else limit


def _check_pixels(width: int, height: int) -> None:
    limit = pixel_limit()
    if width * height > limit:
        raise InvalidImage(
            _("The photo is too large (%(pixels).1f megapixels, at most %(max).1f).")
            % {"pixels": width * height / 1_000_000, "max": limit / 1_000_000})


def fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``size`` scaled so its longest side is at most ``longest`` (never enlarged)."""
    width, height = size
    if max(width, height) <= longest:
        return width, height
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """``image`` at ``size``, as cheaply as the ratio allows.

    Resampling is the costliest step here (a 2000 px -> 1600 px bicubic pass
    costs more than decoding the JPEG). An exact integer ratio is a box
    average (``reduce``), ten times faster and just as clean; a large ratio is
    box-reduced first down to twice the target (``reducing_gap``), then filtered.
    """
    if image.size == size:
        return image
    factor_x, factor_y = image.width / size[0], image.height / size[1]
    if factor_x == factor_y and factor_x.is_integer():
        return image.reduce(int(factor_x))
    return image.resize(size, resample, reducing_gap=2.0)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not cost the photo: show it as stored
        return 1


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale to 8-bit by scaling, not clipping (Pillow's convert clips)."""
    pixels = np.asarray(image)
    if image.mode.startswith("I;16"):
        pixels = pixels >> 8
    elif pixels.size and pixels.max() > 255:
        # "I" holds 16-bit PNG/TIFF samples (0-65535); "F" rarely anything but 0-255.
        pixels = pixels / 257.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def _flatten(image: Image.Image) -> Image.Image:
    """Modes JPEG cannot hold, made RGB/L/CMYK; transparency lands on white, as on a web page."""
    if image.mode.startswith("I") or image.mode == "F":
        return _to_8bit(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode not in ("RGB", "L", "CMYK"):
        return image.convert("RGB")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of any mode (greyscale, palette, 16-bit, with alpha) for a model that
    reads RGB pixels; transparency lands on white, as a viewer shows it."""
    image = _flatten(image)
    return image if image.mode == "RGB" else image.convert("RGB")


@lru_cache(maxsize=1)
def _srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=16)
def _icc_transform(icc: bytes, mode: str):
    """A transform from an embedded profile to sRGB, or None when none is needed or possible.

    Cached: a photographer's whole shoot carries the same profile, and building
    a transform costs more than applying it.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if mode == "RGB" and "srgb" in ImageCms.getProfileDescription(profile).lower():
            return None
        return ImageCms.buildTransform(profile, _srgb_profile(), mode, "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        logger.info("ignoring an unusable ICC profile", exc_info=True)
        return None


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB in sRGB: browsers take an untagged JPEG as sRGB; Adobe RGB or CMYK would look off."""
    if icc and image.mode in ("RGB", "L", "CMYK"):
        transform = _icc_transform(icc, image.mode)
        if transform is not None:
            return ImageCms.applyTransform(image, transform)
    return image if image.mode == "RGB" else image.convert("RGB")


class DecodedPhoto:
    """One photo's bytes, decoded once per scale its consumers need, never more.

    The derivatives want the photo at 1600 px, faces and bibs at 2048 px, the bib reader
    the full resolution around small runners. A JPEG is decoded at the smallest DCT
    scale (1/1, 1/2, 1/4, 1/8) that still covers what is asked (``draft``), and a decode
    already made at a larger scale serves every smaller request by shrinking it, so a
    24 MP photo whose steps run one after the other in one process is decoded once at
    half size, and at full size only when there are small runners to read.
    Raises :class:`InvalidImage` for bytes that are not a usable photo.
    """

    def __init__(self, data: bytes):
        self._data = data
        header = self._open()
        self.stored_size = header.size  # as the pixels are stored, before EXIF orientation
        self.orientation = _orientation(header)
        self.icc = header.info.get("icc_profile")
        self.format = header.format
        width, height = header.size
        #: width and height as the photo is shown (orientations 5 to 8 turn it a quarter)
        self.size = (height, width) if self.orientation in (5, 6, 7, 8) else (width, height)
        # decodes as stored (flattened, not yet shrunk, coloured or turned), largest first
        self._decodes: list[Image.Image] = []
        self._images: dict[int, Image.Image] = {}  # longest side asked -> upright sRGB image
        self._detail: Image.Image | None = None

    def _open(self) -> Image.Image:
        declared = declared_size(io.BytesIO(self._data))
        if declared:
            _check_pixels(*declared)  # before Pillow warns about what is refused anyway
        try:
            image = Image.open(io.BytesIO(self._data), formats=ACCEPTED_FORMATS)
        except Image.UnidentifiedImageError:
            raise InvalidImage(_("The file is not a photo in a supported format "
                                 "(JPEG, PNG, TIFF or WebP).")) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own guard, on a header ours cannot read (a TIFF, an unusual JPEG): the
            # same permanent refusal (the warning is an exception only when warnings are errors).
            raise InvalidImage(_("The photo is too large (more than %(max).1f megapixels).")
                               % {"max": pixel_limit() / 1_000_000}) from None
        except Exception as exc:
            raise InvalidImage(_("The file could not be read as an image: %(error)s")
                               % {"error": exc}) from exc
        _check_pixels(*image.size)
        return image

    def _decoded(self, target: tuple[int, int]) -> Image.Image:
        """The smallest decode at least ``target`` (stored orientation), made if none is."""
        for decode in reversed(self._decodes):  # smallest first
            if decode.width >= target[0] and decode.height >= target[1]:
                return decode
        try:
            image = self._open()
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free; draft picks the smallest
            # scale that is still at least the target, and is a no-op for other formats.
            image.draft(None, target)
            image.load()
            image = _flatten(image)
        except (MemoryError, InvalidImage):
            raise
        except Exception as exc:
            # Whatever goes wrong while decoding untrusted bytes is the bytes' fault
            # (truncated upload, bad Huffman table, bomb...): permanent, not retried.
            raise InvalidImage(_("The file is damaged or truncated: %(error)s")
                               % {"error": exc}) from exc
        self._decodes = sorted([*self._decodes, image], key=lambda decode: -decode.width)
        return image

    def _upright(self, image: Image.Image) -> Image.Image:
        if self.orientation in _UPRIGHT:
            return image.transpose(_UPRIGHT[self.orientation])
        return image

    def image(self, longest: int) -> Image.Image:
        """The photo upright, in sRGB, at most ``longest`` px on its long side."""
        if longest not in self._images:
            target = fit(self.stored_size, longest)
            try:
                image = shrink(self._decoded(target), target, Image.Resampling.BICUBIC)
                image = self._upright(_to_srgb(image, self.icc))
            except (MemoryError, InvalidImage):
                raise
            except Exception as exc:
                raise InvalidImage(_("The file is damaged or truncated: %(error)s")
                                   % {"error": exc}) from exc
            self._images[longest] = image
        return self._images[longest]

    def detail(self, longest: int) -> Image.Image:
        """The photo upright at the smallest decoded scale whose long side is at least
        ``longest`` (the full resolution at most), for reading small text: its colours
        are left as stored (no ICC conversion: text reads the same in Adobe RGB), and
        it is not resampled. Kept until :meth:`forget_detail`."""
        stored_longest = max(self.stored_size)
        scale = min(1.0, longest / stored_longest)
        target = (min(self.stored_size[0], math.ceil(self.stored_size[0] * scale)),
                  min(self.stored_size[1], math.ceil(self.stored_size[1] * scale)))
        if self._detail is None or max(self._detail.size) < min(longest, stored_longest):
            decodes = len(self._decodes)
            decode = self._decoded(target)
            self._detail = to_rgb(self._upright(decode))
            if self._detail is not decode and len(self._decodes) > decodes:
                # Decoded for the detail alone, then turned or converted: keeping both would
                # hold a 24 MP photo twice (72 MB more) while the bib reader works.
                self._decodes = [kept for kept in self._decodes if kept is not decode]
        return self._detail

    def forget_detail(self) -> None:
        """Let the detail image and any decode larger than the images made go (memory)."""
        self._detail = None
        largest_asked = max((max(image.size) for image in self._images.values()), default=0)
        keep = [decode for decode in self._decodes if max(decode.size) <= 2 * largest_asked]
        self._decodes = keep or self._decodes[-1:]


def decode_upright(data: bytes, longest: int) -> tuple[Image.Image, tuple[int, int]]:
    """The photo upright, in sRGB, at most ``longest`` px, and the upright size of the
    original. Raises :class:`InvalidImage` for bytes that are not a usable photo."""
    photo = DecodedPhoto(data)
    return photo.image(longest), photo.size


_last_decoded = threading.local()


def decoded(key: tuple, read: Callable[[], bytes]) -> DecodedPhoto:
    """The :class:`DecodedPhoto` of the file ``key`` names, read with ``read()`` unless it
    is the one this thread decoded last: a photo's derivatives, faces, bibs and outfit
    steps run one after the other in one worker thread, and share one decode.

    ``key`` must change when the bytes do: a stored original's name and content hash
    (originals are named by their content and never rewritten). Only the last photo is
    kept, so a worker holds one photo's pixels at most.
    """
    entry = getattr(_last_decoded, "entry", None)
    if entry is not None and entry[0] == key:
        return entry[1]
    _last_decoded.entry = None  # the previous photo's pixels go before the next are read
    photo = DecodedPhoto(read())
    _last_decoded.entry = (key, photo)
    return photo


def forget_decoded() -> None:
    """Drop this thread's last decoded photo (tests; a process done with a photo)."""
    _last_decoded.entry = None
