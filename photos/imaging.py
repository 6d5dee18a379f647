"""Decoding a photo's bytes into an upright sRGB image, and the colour handling it needs.

Used by the derivatives (web copy, preview, thumbnail) and by the analysis steps
(faces, bibs, CLIP), so every consumer sees the same pixels: EXIF orientation
applied, 16-bit samples scaled, transparency on white, embedded ICC profiles
converted to sRGB. JPEGs are shrunk while decoding where the target allows it
(``draft``: the decoder skips DCT detail it would throw away).
"""

import io
import logging
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


def decode_upright(data: bytes, longest: int) -> tuple[Image.Image, tuple[int, int]]:
    """The photo upright, in sRGB, at most ``longest`` px, and the upright size of the
    original. Raises :class:`InvalidImage` for bytes that are not a usable photo."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.UnidentifiedImageError:
        raise InvalidImage(_("The file is not a photo in a supported format "
                             "(JPEG, PNG, TIFF or WebP).")) from None
    except Exception as exc:
        raise InvalidImage(_("The file could not be read as an image: %(error)s")
                           % {"error": exc}) from exc
    width, height = image.size
    max_pixels = getattr(settings, "PHOTO_MAX_PIXELS", 80_000_000)
    if width * height > max_pixels:
        raise InvalidImage(
            _("The photo is too large (%(pixels).1f megapixels, at most %(max).1f).")
            % {"pixels": width * height / 1_000_000, "max": max_pixels / 1_000_000})
    try:
        orientation = _orientation(image)
        icc = image.info.get("icc_profile")
        target = fit(image.size, longest)
        # JPEG decodes at 1/2, 1/4 or 1/8 scale for free; draft picks the smallest
        # scale that is still at least the target, and is a no-op for other formats.
        image.draft(None, target)
        image.load()
        image = _flatten(image)
        image = shrink(image, target, Image.Resampling.BICUBIC)
        image = _to_srgb(image, icc)
        if orientation in _UPRIGHT:
            image = image.transpose(_UPRIGHT[orientation])
    except MemoryError:
        raise
    except Exception as exc:
        # Whatever goes wrong while decoding untrusted bytes is the bytes' fault
        # (truncated upload, bad Huffman table, bomb...): permanent, not retried.
        raise InvalidImage(_("The file is damaged or truncated: %(error)s")
                           % {"error": exc}) from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return image, (width, height)
