"""Public derivatives of a private original: web version, watermarked preview, thumbnail.

The original is decoded once (:mod:`photos.imaging`), shrunk while decoding where the
format allows it, and every smaller image is made from the previous one; the decode is
kept for the analysis steps that run next on the same photo (faces, bibs, outfit). On a 12 MP JPEG
this is several times faster than decoding at full size, which is what keeps a whole
event's upload moving at 10+ photos a second on a small machine.

:func:`render` is pure (bytes in, bytes out) so it can be measured and tested
without a database; :func:`make_derivatives` is the storage side.
"""

import hashlib
import importlib.util
import io
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from photos.imaging import DecodedPhoto, InvalidImage, decoded, fit, shrink

logger = logging.getLogger(__name__)

WEB_SIZE = 1600
PREVIEW_SIZE = 1200
THUMBNAIL_SIZE = 400
SHARPNESS_SIZE = 800
WEB_QUALITY = 85
# Previews and thumbnails are only looked at, never printed: a little more compression is fine.
PREVIEW_QUALITY = 80
THUMBNAIL_QUALITY = 80


@dataclass(frozen=True)
class Rendered:
    web: bytes
    preview: bytes
    thumbnail: bytes
    sharpness: float
    # Upright size of the original, in pixels.
    width: int
    height: int


# --- Watermark ----------------------------------------------------------------------


# Pillow's built-in font has no accented letters ("10 km de Lyon (démo)" would
# show a box), so the watermark uses Lato (SIL Open Font License) from the
# font-lato package, which covers French and the rest of Latin Extended.
def _watermark_font_path() -> Path | None:
    spec = importlib.util.find_spec("font_lato")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "files" / "Lato-Bold.ttf"
    return path if path.is_file() else None


@lru_cache(maxsize=64)
def _font(size: int):
    path = _watermark_font_path()
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size=size)
        except OSError:  # Pillow without FreeType
            pass
    return ImageFont.load_default(size=size)


def _text_mask(text: str, height: int) -> Image.Image:
    """``text`` as an "L" mask about ``height`` pixels tall."""
    font = _font(height)
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255)
    if not isinstance(font, ImageFont.FreeTypeFont) and mask.height < height:
        # Pillow built without FreeType only has a small bitmap font: scale it up
        # (blocky, but a watermark must still be big enough to spoil the photo).
        scale = height / mask.height
        mask = mask.resize((max(1, round(mask.width * scale)), height), Image.Resampling.BICUBIC)
    return mask


def _outline(mask: Image.Image, height: int) -> Image.Image:
    """A thickened copy of a text mask: dark edges keep white text visible on snow or sky."""
    return mask.filter(ImageFilter.MaxFilter(5 if height >= 40 else 3))


def _scaled(mask: Image.Image, opacity: float) -> Image.Image:
    return mask.point(lambda value: round(value * opacity))


def _flattened(size: tuple[int, int], layers) -> tuple[Image.Image, Image.Image]:
    """(colour or RGB image, mask) layers as one colour image and one mask: one paste per photo."""
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    for source, mask in layers:
        layer = (Image.new("RGBA", size, (*source, 0)) if isinstance(source, tuple)
                 else source.convert("RGBA"))
        layer.putalpha(mask)
        overlay = Image.alpha_composite(overlay, layer)
    return overlay.convert("RGB"), overlay.getchannel("A")


def _tiled_text(side: int, text: str) -> tuple[Image.Image, Image.Image]:
    """Fill and outline masks of ``text`` repeated diagonally over a ``side`` square.

    Drawn on a square as large as the diagonal, rotated, then cropped: every
    part of the square is covered, so no crop of the photo escapes it.
    """
    text_height = max(10, round(side * 0.045))
    fill = _text_mask(text, text_height)
    outline = _outline(fill, text_height)
    # Rows about two text heights apart: no face or bib fits between two of them.
    cell_w = fill.width + 2 * text_height
    cell_h = round(2.6 * text_height)
    canvas_side = math.ceil(side * math.sqrt(2)) + 2 * cell_w
    fill_canvas = Image.new("L", (canvas_side, canvas_side))
    outline_canvas = Image.new("L", (canvas_side, canvas_side))
    pad_x = (outline.width - fill.width) // 2
    pad_y = (outline.height - fill.height) // 2
    for row in range(canvas_side // cell_h + 1):
        # Every other row shifted by half a cell: a brick pattern leaves no clean column.
        offset = (row % 2) * cell_w // 2 - cell_w
        for column in range(canvas_side // cell_w + 2):
            x, y = offset + column * cell_w, row * cell_h
            outline_canvas.paste(outline, (x - pad_x, y - pad_y))
            fill_canvas.paste(fill, (x, y))
    corner = (canvas_side - side) // 2
    box = (corner, corner, corner + side, corner + side)
    return (fill_canvas.rotate(30, Image.Resampling.BICUBIC).crop(box),
            outline_canvas.rotate(30, Image.Resampling.BICUBIC).crop(box))


def _tiled_logo(side: int, logo_data: bytes) -> tuple[Image.Image, Image.Image] | None:
    try:
        logo = Image.open(io.BytesIO(logo_data))
        logo.load()
        logo = logo.convert("RGBA")
    except Exception:
        # The text watermark still protects the photo; a broken logo file must
        # not stop a whole event from being published.
        logger.warning("watermark logo unreadable; previews get the text watermark only",
                       exc_info=True)
        return None
    logo.thumbnail((max(8, round(side * 0.12)),) * 2, Image.Resampling.LANCZOS)
    logo_rgb, alpha = logo.convert("RGB"), _scaled(logo.getchannel("A"), 0.35)
    colour = Image.new("RGB", (side, side), (255, 255, 255))
    mask = Image.new("L", (side, side))
    step_x, step_y = logo.width * 3, logo.height * 3
    for row, y in enumerate(range(-logo.height // 2, side, step_y)):
        for x in range((row % 2) * step_x // 2 - logo.width, side, step_x):
            colour.paste(logo_rgb, (x, y))
            mask.paste(alpha, (x, y))
    return colour, mask


def _pattern_side(longest: int) -> int:
    # Rounded up so photos of nearly the same size share one cached pattern.
    return -(-longest // 64) * 64


@lru_cache(maxsize=8)
def _pattern(side: int, text: str, logo_data: bytes | None) -> tuple[Image.Image, Image.Image]:
    """The repeated part of the watermark over a square; a preview is marked with a centre crop.

    Cached per text and scale, not per photo size: cropped photos come in every
    size, and drawing the pattern costs several times more than the rest of the
    derivatives, while almost every preview is 1200 px on its longest side.
    """
    layers = []
    if logo_data:
        logo = _tiled_logo(side, logo_data)
        if logo:
            layers.append(logo)
    fill, outline = _tiled_text(side, text)
    layers.append(((0, 0, 0), _scaled(outline, 0.22)))
    layers.append(((255, 255, 255), _scaled(fill, 0.40)))
    return _flattened((side, side), layers)


@lru_cache(maxsize=32)
def _band_text(text: str, text_height: int, max_width: int) -> tuple[Image.Image, Image.Image]:
    fill = _text_mask(text, text_height)
    if fill.width > max_width:
        scale = max_width / fill.width
        fill = fill.resize((max(1, round(fill.width * scale)), max(1, round(fill.height * scale))),
                           Image.Resampling.BICUBIC)
    outline = _outline(fill, text_height)
    placed = Image.new("L", outline.size)
    placed.paste(fill, ((outline.width - fill.width) // 2, (outline.height - fill.height) // 2))
    return _flattened(outline.size, [((0, 0, 0), _scaled(outline, 0.45)),
                                     ((255, 255, 255), _scaled(placed, 0.85))])


def forget_drawn_watermarks() -> None:
    """Drop the cached watermark patterns and bands, so the next ones are drawn again
    (tests that swap the font; a process drawing with new fonts restarts anyway)."""
    _pattern.cache_clear()
    _band_text.cache_clear()


def watermark(image: Image.Image, text: str, logo_data: bytes | None = None) -> Image.Image:
    """A copy of ``image`` with ``text`` (and the logo) across all of it.

    A faint diagonal pattern covers every part of the image, and a strong band
    crosses the middle, where the runner usually is.
    """
    width, height = image.size
    marked = image.copy()
    side = _pattern_side(max(width, height))
    colour, mask = _pattern(side, text, logo_data)
    left, top = (side - width) // 2, (side - height) // 2
    box = (left, top, left + width, top + height)
    marked.paste(colour.crop(box), (0, 0), mask.crop(box))
    band_height = max(16, round(min(width, height) * 0.16))
    band_top = (height - band_height) // 2
    marked.paste((0, 0, 0), (0, band_top, width, band_top + band_height),
                 Image.new("L", (width, band_height), 90))
    colour, mask = _band_text(text, round(band_height * 0.55), round(width * 0.9))
    position = ((width - colour.width) // 2, band_top + (band_height - colour.height) // 2)
    marked.paste(colour, position, mask)
    return marked


# --- Sharpness ----------------------------------------------------------------------


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian of a greyscale ~800 px copy: higher is sharper.

    Measured at one fixed size so photos of different resolutions compare.
    """
    grey = shrink(image.convert("L"), fit(image.size, SHARPNESS_SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32)
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    laplacian = (pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1]
                 - 4 * pixels[1:-1, 1:-1])
    return float(laplacian.var())


# --- Putting it together ------------------------------------------------------------


def _jpeg(image: Image.Image, quality: int) -> bytes:
    # No EXIF is copied: public files must not carry the camera serial or GPS position.
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def render(data: bytes | DecodedPhoto, watermark_text: str,
           logo_data: bytes | None = None) -> Rendered:
    """All derivatives of an original, from its bytes (or its decoded photo, which the
    analysis steps go on using). Raises :class:`InvalidImage`."""
    photo = data if isinstance(data, DecodedPhoto) else DecodedPhoto(data)
    web = photo.image(WEB_SIZE)
    width, height = photo.size
    preview = watermark(shrink(web, fit(web.size, PREVIEW_SIZE), Image.Resampling.BILINEAR),
                        watermark_text, logo_data)
    # The thumbnail is shrunk from the watermarked preview, not from the web
    # version: thumbnails are public too, and a clean 400 px copy is already
    # good enough for social media. The watermark stays legible at that size.
    thumbnail = shrink(preview, fit(preview.size, THUMBNAIL_SIZE), Image.Resampling.BILINEAR)
    return Rendered(
        web=_jpeg(web, WEB_QUALITY),
        preview=_jpeg(preview, PREVIEW_QUALITY),
        thumbnail=_jpeg(thumbnail, THUMBNAIL_QUALITY),
        sharpness=sharpness(web),
        width=width,
        height=height,
    )


DERIVATIVE_FIELDS = ("web", "preview", "thumbnail")


def derivative_name(photo, kind: str, data: bytes) -> str:
    """Storage name of one derivative: unguessable from another, and new for new content.

    Derived from the photo id and content hash (never the uploaded file name) and a
    digest of the derivative's own bytes: re-rendering the same image rewrites the same
    file, and a new watermark gives a new name, so the public copies can be cached for
    good (settings.MEDIA_CACHE_CONTROL). The token is keyed with SECRET_KEY and differs
    per kind: a public preview URL must not reveal where the clean web version is.
    """
    folder = {"web": "web", "preview": "previews", "thumbnail": "thumbnails"}[kind]
    token = salted_hmac(f"photos.derivatives.{kind}", f"{photo.pk}:{photo.content_hash}",
                        algorithm="sha256").hexdigest()[:32]
    digest = hashlib.sha256(data).hexdigest()[:12]
    return f"{folder}/{photo.event_id}/{photo.pk}-{token}-{digest}.jpg"


#: watermark logos a process keeps read, by storage name; the least recently used goes first
#: (a worker lives through many events: the cache grew with every logo it had ever used)
LOGOS_KEPT = 16
_logo_cache: OrderedDict[str, bytes] = OrderedDict()


def _logo_data(event) -> bytes | None:
    logo = event.watermark_logo
    if not logo:
        return None
    # Keyed by storage name: a replaced logo gets a new name, so no stale logo is used.
    data = _logo_cache.get(logo.name)
    if data is not None:
        _logo_cache.move_to_end(logo.name)
        return data
    try:
        with logo.storage.open(logo.name, "rb") as handle:
            data = handle.read()
    except OSError:
        logger.warning("watermark logo %s missing; text watermark only", logo.name,
                       exc_info=True)
        return None
    _logo_cache[logo.name] = data
    while len(_logo_cache) > LOGOS_KEPT:
        _logo_cache.popitem(last=False)
    return data


def _replace(storage, name: str, data: bytes) -> str:
    # Storages never overwrite (they append a random suffix): delete first so a
    # re-run leaves one file per derivative, not a pile of copies.
    if storage.exists(name):
        storage.delete(name)
    saved = storage.save(name, ContentFile(data))
    if saved != name:
        logger.warning("derivative saved as %s instead of %s", saved, name)
    return saved


def make_derivatives(photo) -> None:
    """Write the photo's web version, preview and thumbnail and save their fields.

    Raises :class:`InvalidImage` for an unusable original (permanent) and
    ``OSError`` when storage fails (transient: the caller retries).
    """
    if not photo.original:
        raise InvalidImage(_("The photo has no original file."))

    def read() -> bytes:
        try:
            with photo.original.storage.open(photo.original.name, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise InvalidImage(_("The original file is missing from storage.")) from None

    event = photo.event
    # Decoded once for this step and the analysis steps that follow it in this thread.
    rendered = render(decoded((photo.original.name, photo.content_hash), read),
                      (event.watermark_text or event.name).strip(), _logo_data(event))
    update_fields = ["sharpness", "updated_at", *DERIVATIVE_FIELDS]
    for kind in DERIVATIVE_FIELDS:
        field_file = getattr(photo, kind)
        previous = field_file.name
        data = getattr(rendered, kind)
        field_file.name = _replace(field_file.storage, derivative_name(photo, kind, data), data)
        if previous and previous != field_file.name:
            # Another content (a new watermark), an older naming scheme or SECRET_KEY:
            # do not leave the old copy behind.
            field_file.storage.delete(previous)
    photo.sharpness = rendered.sharpness
    if photo.width is None or photo.height is None:
        photo.width, photo.height = rendered.width, rendered.height
        update_fields += ["width", "height"]
    photo.save(update_fields=update_fields)
