import hashlib
import io
import re

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.utils import translation
from PIL import Image, ImageFilter, ImageFont

from events.tests.factories import EventFactory
from photos import derivatives
from photos.derivatives import InvalidImage, make_derivatives, render
from photos.models import Photo
from photos.tests.factories import derivative_files
from photos.tests.images import png_claiming_size

# --- Helpers: real images, made in memory ---------------------------------------------




def scene(size=(1024, 768), seed=0) -> Image.Image:
    """A photo-like RGB image: smooth light, a few sharp-edged shapes, some grain."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 200 / width + 30, y * 200 / height + 30,
                       np.full((height, width), 120.0)], axis=-1)
    for _ in range(12):
        left, top = rng.integers(0, width - width // 6), rng.integers(0, height - height // 6)
        pixels[top:top + height // 8, left:left + width // 8] = rng.integers(0, 255, 3)
    pixels += rng.normal(0, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt="JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg(size=(1024, 768), seed=0, **params) -> bytes:
    return encode(scene(size, seed), "JPEG", quality=90, **params)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def make_photo(event, data: bytes, name="IMG_0001.JPG") -> Photo:
    return Photo.objects.create(event=event, content_hash=hashlib.sha256(data).hexdigest(),
                                original=ContentFile(data, name=name), original_name=name)



def changed_fraction(a: np.ndarray, b: np.ndarray, threshold=12) -> float:
    return float((np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > threshold).mean())


def quadrants(pixels: np.ndarray):
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    return [pixels[:h, :w], pixels[:h, w:], pixels[h:, :w], pixels[h:, w:]]


# --- Sizes, orientation, colour ------------------------------------------------------------


def test_it_makes_web_preview_and_thumbnail_at_their_sizes():
    rendered = render(jpeg((4000, 3000)), "Course de Lyon")

    assert opened(rendered.web).size == (1600, 1200)
    assert opened(rendered.preview).size == (1200, 900)
    assert opened(rendered.thumbnail).size == (400, 300)
    assert (rendered.width, rendered.height) == (4000, 3000)
    for data in (rendered.web, rendered.preview, rendered.thumbnail):
        image = opened(data)
        assert (image.format, image.mode) == ("JPEG", "RGB")


def test_it_never_enlarges_a_small_photo():
    rendered = render(jpeg((800, 600)), "Course")

    assert opened(rendered.web).size == (800, 600)
    assert opened(rendered.preview).size == (800, 600)
    assert opened(rendered.thumbnail).size == (400, 300)


def test_it_keeps_thumbnails_within_400_pixels_for_any_shape():
    for size in ((3000, 1000), (1000, 3000), (1601, 1599), (401, 399)):
        assert max(opened(render(jpeg(size), "Course").thumbnail).size) <= 400


def test_it_applies_the_exif_orientation():
    image = scene((1200, 800))
    image.paste((255, 0, 0), (0, 0, 200, 200))  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rendered = render(encode(image, "JPEG", quality=95, exif=exif), "Course")

    web = opened(rendered.web)
    assert web.size == (800, 1200)
    assert (rendered.width, rendered.height) == (800, 1200)
    red, green, blue = web.getpixel((web.width - 50, 50))  # now top-right
    assert red > 200 and green < 60 and blue < 60


def test_it_strips_camera_metadata_from_public_files():
    exif = Image.Exif()
    exif[0x0110] = "Secret Camera 5000"  # Model
    exif[0x8825] = {1: "N", 2: (45.0, 45.0, 0.0)}  # GPS position
    rendered = render(encode(scene(), "JPEG", exif=exif), "Course")

    for data in (rendered.web, rendered.preview, rendered.thumbnail):
        assert not opened(data).getexif()
        assert b"Secret Camera" not in data


def _cmyk_jpeg():
    return encode(scene().convert("CMYK"), "JPEG")


def _sixteen_bit_png():
    return encode(Image.fromarray(np.full((600, 800), 32768, dtype=np.uint16)), "PNG")


def _palette_png():
    image = scene().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(image, "PNG", transparency=0)


def _rgba_png():
    image = scene().convert("RGBA")
    image.putalpha(Image.new("L", image.size, 255))
    image.paste((0, 0, 0, 0), (0, 0, 300, 300))  # fully transparent black corner
    return encode(image, "PNG")


def _la_png():
    return encode(scene().convert("LA"), "PNG")


@pytest.mark.parametrize("make", [_cmyk_jpeg, _sixteen_bit_png, _palette_png, _rgba_png, _la_png,
                                  lambda: encode(scene(), "TIFF"), lambda: encode(scene(), "WEBP")],
                         ids=["cmyk", "16-bit", "palette", "rgba", "la", "tiff", "webp"])
def test_it_turns_any_accepted_input_into_rgb_jpegs(make):
    rendered = render(make(), "Course")

    for data in (rendered.web, rendered.preview, rendered.thumbnail):
        image = opened(data)
        assert (image.format, image.mode) == ("JPEG", "RGB")


def test_it_flattens_transparency_on_white():
    web = opened(render(_rgba_png(), "Course").web)

    assert min(web.getpixel((20, 20))) > 240


def test_it_scales_16_bit_samples_instead_of_clipping_them():
    web = opened(render(_sixteen_bit_png(), "Course").web)

    assert 120 <= web.getpixel((10, 10))[0] <= 136  # 32768 of 65535 is mid-grey, not white


def test_it_converts_cmyk_to_the_same_colours_in_rgb():
    original = scene()
    web = opened(render(encode(original.convert("CMYK"), "JPEG", quality=95), "Course").web)

    difference = np.abs(np.asarray(web, dtype=int) - np.asarray(original, dtype=int))
    assert difference.mean() < 12


# --- Watermark ---------------------------------------------------------------------------


def _plain_and_marked(size=(1600, 1200), logo=None, text="Marathon de Lyon"):
    flat = Image.new("RGB", size, (128, 128, 128))
    rendered = render(encode(flat, "JPEG", quality=95), text, logo)
    preview = np.asarray(opened(rendered.preview))
    thumbnail = np.asarray(opened(rendered.thumbnail))
    return preview, thumbnail


def test_it_watermarks_every_part_of_the_preview():
    preview, _thumbnail = _plain_and_marked()
    plain = np.full_like(preview, 128)

    for quadrant, reference in zip(quadrants(preview), quadrants(plain), strict=True):
        assert changed_fraction(quadrant, reference) > 0.05
    # Every 200 px square too: a crop around one runner still carries the mark.
    for top in range(0, preview.shape[0] - 200, 200):
        for left in range(0, preview.shape[1] - 200, 200):
            tile = preview[top:top + 200, left:left + 200]
            assert changed_fraction(tile, plain[:200, :200]) > 0.02, (top, left)


def test_it_watermarks_the_thumbnail_too():
    _preview, thumbnail = _plain_and_marked()
    plain = np.full_like(thumbnail, 128)

    for quadrant, reference in zip(quadrants(thumbnail), quadrants(plain), strict=True):
        assert changed_fraction(quadrant, reference) > 0.05


def test_it_watermarks_portrait_and_odd_sizes_all_over():
    for size in ((1200, 1600), (1999, 700)):
        preview, _thumbnail = _plain_and_marked(size)
        plain = np.full_like(preview, 128)
        for quadrant, reference in zip(quadrants(preview), quadrants(plain), strict=True):
            assert changed_fraction(quadrant, reference) > 0.05


def test_it_uses_the_event_name_or_its_watermark_text():
    data = jpeg()
    by_name = render(data, "Course de Lyon").preview
    by_text = render(data, "© Studio Photo").preview

    assert by_name != by_text


def test_it_tiles_the_logo_over_the_preview():
    logo = Image.new("RGBA", (200, 100), (200, 0, 0, 255))
    without_logo, _ = _plain_and_marked()
    with_logo, _ = _plain_and_marked(logo=encode(logo, "PNG"))

    assert changed_fraction(with_logo, without_logo) > 0.02
    for quadrant, reference in zip(quadrants(with_logo), quadrants(without_logo), strict=True):
        assert changed_fraction(quadrant, reference) > 0.01


def test_it_ignores_an_unreadable_logo_but_keeps_the_text_watermark():
    with_broken_logo, _ = _plain_and_marked(logo=b"not a png")
    without_logo, _ = _plain_and_marked()

    assert changed_fraction(with_broken_logo, without_logo) == 0


def test_it_still_watermarks_with_pillows_bitmap_font(monkeypatch):
    monkeypatch.setattr(derivatives, "_font", lambda size: ImageFont.load_default_imagefont())
    derivatives.forget_drawn_watermarks()
    try:
        preview, _thumbnail = _plain_and_marked()
    finally:
        derivatives.forget_drawn_watermarks()
    plain = np.full_like(preview, 128)

    for quadrant, reference in zip(quadrants(preview), quadrants(plain), strict=True):
        assert changed_fraction(quadrant, reference) > 0.05


# --- Sharpness ---------------------------------------------------------------------------


def test_it_scores_a_blurred_photo_as_less_sharp():
    sharp = scene((2000, 1500))
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))

    sharp_score = render(encode(sharp, "JPEG", quality=95), "Course").sharpness
    blurred_score = render(encode(blurred, "JPEG", quality=95), "Course").sharpness

    assert blurred_score < sharp_score / 2


def test_it_scores_sharpness_at_a_fixed_scale():
    image = scene((3200, 2400))
    half = image.resize((1600, 1200), Image.Resampling.BOX)

    assert derivatives.sharpness(image) == pytest.approx(derivatives.sharpness(half), rel=0.05)


# --- Bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"this is not an image at all",
    jpeg()[:4000],  # an upload cut short
    encode(scene(), "GIF"),  # a real image, in a format no camera writes
], ids=["empty", "text", "truncated", "gif"])
def test_it_rejects_what_it_cannot_use_with_a_reason(data):
    with pytest.raises(InvalidImage) as raised:
        render(data, "Course")

    assert raised.value.reason


def test_it_refuses_an_image_with_too_many_pixels(settings):
    settings.PHOTO_MAX_PIXELS = 1_000_000

    with translation.override("en"), pytest.raises(InvalidImage, match="too large"):
        render(jpeg((1600, 1200)), "Course")


def test_a_header_over_the_limit_is_refused_before_pillow_warns(recwarn):
    # 120 MP, between Pillow's warning (89 MP) and error (179 MP) thresholds.
    with translation.override("en"), pytest.raises(InvalidImage, match="too large"):
        render(png_claiming_size(12_000, 10_000), "Course")

    assert [warning.category for warning in recwarn] == []


# --- Storage -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_names_derivatives_from_the_photo_and_keeps_only_watermarked_ones_public(settings):
    event = EventFactory()
    photo = make_photo(event, jpeg(), name="Jean Dupont <script>.jpg")

    make_derivatives(photo)
    photo.refresh_from_db()

    tokens = set()
    for kind, folder in (("web", "web"), ("preview", "previews"), ("thumbnail", "thumbnails")):
        name = getattr(photo, kind).name
        match = re.fullmatch(rf"{folder}/{event.pk}/{photo.pk}-([0-9a-f]{{32}})-[0-9a-f]{{12}}\.jpg",
                             name)
        assert match, name
        tokens.add(match.group(1))
        # The clean web version is worth buying: private like the original.
        public = kind != "web"
        assert default_storage.exists(name) is public
        assert storages["private"].exists(name) is not public
    assert len(tokens) == 3  # the preview's public URL does not give away the web version's
    assert photo.sharpness > 0
    assert (photo.width, photo.height) == (1024, 768)


@pytest.mark.django_db
def test_it_overwrites_its_own_files_when_run_again(settings):
    photo = make_photo(EventFactory(), jpeg())

    make_derivatives(photo)
    first = derivative_files(settings)
    make_derivatives(Photo.objects.get(pk=photo.pk))

    assert derivative_files(settings) == first
    assert len(first) == 3


@pytest.mark.django_db
def test_a_new_watermark_gets_new_public_names_so_caches_never_show_the_old_one(settings):
    event = EventFactory(watermark_text="Marathon de Lyon")
    photo = make_photo(event, jpeg())
    make_derivatives(photo)
    photo.refresh_from_db()
    before = {kind: getattr(photo, kind).name for kind in ("web", "preview", "thumbnail")}

    event.watermark_text = "Semi de Lyon"
    event.save()
    make_derivatives(Photo.objects.get(pk=photo.pk))
    photo.refresh_from_db()

    for kind in ("preview", "thumbnail"):
        assert getattr(photo, kind).name != before[kind]
        assert not default_storage.exists(before[kind])  # the old copy is gone
    assert photo.web.name == before["web"]  # no watermark: same bytes, same name
    assert len(derivative_files(settings)) == 3


@pytest.mark.django_db
def test_it_removes_a_derivative_saved_under_an_older_name(settings):
    photo = make_photo(EventFactory(), jpeg())
    old_name = default_storage.save("previews/old-scheme.jpg", ContentFile(b"old"))
    photo.preview.name = old_name
    photo.save()

    make_derivatives(photo)

    assert not default_storage.exists(old_name)
    assert len(derivative_files(settings)) == 3


@pytest.mark.django_db
def test_it_uses_the_event_logo_from_storage(settings):
    logo = Image.new("RGBA", (120, 60), (0, 0, 255, 255))
    event = EventFactory(watermark_text="Studio")
    event.watermark_logo.save("logo.png", ContentFile(encode(logo, "PNG")))
    plain_event = EventFactory(watermark_text="Studio")
    data = encode(Image.new("RGB", (1600, 1200), (128, 128, 128)), "JPEG")
    with_logo, without_logo = make_photo(event, data), make_photo(plain_event, data)

    make_derivatives(with_logo)
    make_derivatives(without_logo)

    marked = np.asarray(opened(with_logo.preview.read()))
    plain = np.asarray(opened(without_logo.preview.read()))
    assert changed_fraction(marked, plain) > 0.02


@pytest.mark.django_db
def test_it_says_when_the_original_is_missing():
    photo = make_photo(EventFactory(), jpeg())
    photo.original.storage.delete(photo.original.name)

    with pytest.raises(InvalidImage):
        make_derivatives(photo)


def test_it_draws_accented_event_names_in_the_watermark():
    from photos.derivatives import _font

    font = _font(40)
    def glyph(text):
        mask = font.getmask(text)
        return mask.size, bytes(mask)

    missing_glyph = glyph("\ue000")  # private use: drawn as the "no glyph" box

    assert font.getname()[0] == "Lato"
    for letter in "éèàçôÉ":
        assert glyph(letter) != missing_glyph, letter
