"""Camera-sized photos: validated and decoded at the scale each step needs, never more.

No database: validation and decoding are pure.
"""

import io

import pytest
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin

from photos import imaging
from photos.imaging import DecodedPhoto
from photos.tests.images import adobe_rgb_profile, encoded, exif, image_bytes, picture
from photos.validation import RejectedFile, inspect_image


@pytest.fixture
def decoded_sizes(monkeypatch):
    """The size every JPEG is decoded at (after draft), in order."""
    sizes = []
    real_load = ImageFile.ImageFile.load

    def recording_load(self):
        if isinstance(self, JpegImagePlugin.JpegImageFile) and self.tile:
            sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    return sizes


def test_validation_decodes_a_jpeg_at_an_eighth_of_its_size(decoded_sizes):
    info = inspect_image(io.BytesIO(image_bytes("JPEG", size=(1600, 1200))), "big.jpg")

    assert (info.width, info.height) == (1600, 1200)  # the photo's own size, not the decode's
    assert decoded_sizes == [(200, 150)]


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_the_reduced_decode_still_refuses_a_cut_off_jpeg(cut, decoded_sizes):
    data = image_bytes("JPEG", size=(1600, 1200))

    with pytest.raises(RejectedFile) as refused:
        inspect_image(io.BytesIO(data[:int(len(data) * cut)]), "cut.jpg")

    assert refused.value.code == "corrupt"
    assert decoded_sizes == [(200, 150)]


def test_a_photo_decoded_for_derivatives_serves_the_analysis_without_decoding_again(decoded_sizes):
    photo = DecodedPhoto(image_bytes("JPEG", size=(4800, 3600)))

    web = photo.image(1600)
    analysis = photo.image(2048)

    assert (web.size, analysis.size) == ((1600, 1200), (2048, 1536))
    assert decoded_sizes == [(2400, 1800)]  # one decode at half scale covers both


def test_detail_is_the_smallest_decode_that_covers_what_is_asked(decoded_sizes):
    photo = DecodedPhoto(image_bytes("JPEG", size=(4800, 3600)))
    photo.image(2048)

    assert photo.detail(1800).size == (2400, 1800)  # the half-scale decode already made
    assert photo.detail(3000).size == (4800, 3600)  # the full resolution, decoded for it
    assert decoded_sizes == [(2400, 1800), (4800, 3600)]
    photo.forget_detail()
    assert photo.detail(1800).size == (2400, 1800)
    assert len(decoded_sizes) == 2  # the full-size decode is gone, the half-scale one kept


def test_detail_is_upright_like_the_images():
    data = image_bytes("JPEG", size=(600, 400), exif=exif(orientation=6))
    photo = DecodedPhoto(data)

    assert photo.size == (400, 600)
    assert photo.image(300).size == (200, 300)
    assert photo.detail(600).size == (400, 600)


def test_an_adobe_rgb_photo_is_converted_to_srgb_but_its_detail_keeps_its_pixels():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(adobe_rgb_profile()))
    to_adobe = ImageCms.buildTransform(srgb, adobe, "RGB", "RGB")
    stored = ImageCms.applyTransform(Image.new("RGB", (64, 64), (40, 200, 40)), to_adobe)
    data = encoded(stored, icc_profile=adobe_rgb_profile(), quality=100)

    photo = DecodedPhoto(data)
    shown = photo.image(64).getpixel((32, 32))
    kept = photo.detail(64).getpixel((32, 32))

    assert all(abs(a - b) <= 6 for a, b in zip(shown, (40, 200, 40)))  # back to sRGB
    assert max(abs(a - b) for a, b in zip(kept, shown)) > 20  # as stored: no ICC pass


def test_decoded_shares_one_decode_per_file_and_reads_a_new_one_again():
    reads = []

    def reader(data):
        def read():
            reads.append(len(data))
            return data
        return read

    first, second = image_bytes("JPEG", size=(64, 48)), image_bytes("JPEG", size=(64, 48), seed=3)
    try:
        one = imaging.decoded(("originals/1.jpg", "a"), reader(first))
        assert imaging.decoded(("originals/1.jpg", "a"), reader(first)) is one
        other = imaging.decoded(("originals/2.jpg", "b"), reader(second))
        assert other is not one and len(reads) == 2
        assert imaging.decoded(("originals/1.jpg", "a"), reader(first)) is not one  # only the last kept
    finally:
        imaging.forget_decoded()


def test_decode_upright_keeps_its_answer():
    data = encoded(picture((300, 200)))

    image, size = imaging.decode_upright(data, 100)

    assert (image.size, size, image.mode) == ((100, 67), (300, 200), "RGB")


def test_a_turned_photos_full_resolution_detail_is_held_once(decoded_sizes):
    # The detail of a photo shot upright is the decode turned: a new image. Keeping the decode
    # too would hold a 24 MP photo twice (72 MB more) while the bib reader works.
    photo = DecodedPhoto(image_bytes("JPEG", size=(4800, 3600), exif=exif(orientation=6)))
    photo.image(2048)

    detail = photo.detail(3600)

    assert detail.size == (3600, 4800)
    assert decoded_sizes == [(2400, 1800), (4800, 3600)]
    assert [decode.size for decode in photo._decodes] == [(2400, 1800)]  # the full one went
    assert photo.detail(3600) is detail  # and the detail is kept for the reader's next look
