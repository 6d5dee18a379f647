"""Real image files (and ZIPs of them) built in memory for tests: Pillow where it can
write the file, by hand where it cannot (16-bit RGB PNG, a PNG that only claims to be huge)."""

import functools
import io
import struct
import zipfile
import zlib

from PIL import ExifTags, Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def picture(size=(48, 32), *, seed=0, mode="RGB") -> Image.Image:
    """A small picture with some detail; a different seed gives different pixels."""
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.new("L", size, (seed * 37) % 256)
    return Image.merge("RGB", (red, green, blue)).convert(mode)


def image_bytes(image_format="JPEG", *, size=(48, 32), seed=0, mode="RGB", **options) -> bytes:
    buffer = io.BytesIO()
    picture(size, seed=seed, mode=mode).save(buffer, image_format, **options)
    return buffer.getvalue()


def encoded(image: Image.Image, image_format="JPEG", **options) -> bytes:
    """The bytes of ``image`` saved as a file would be (a drawn scene, a selfie); JPEGs at
    quality 90 unless told, as a camera or a phone saves them."""
    if image_format == "JPEG":
        options.setdefault("quality", 90)
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def jpeg(seed=0, **options) -> bytes:
    return image_bytes("JPEG", seed=seed, **options)


def exif(*, captured=None, offset=None, subsec=None, make=None, model=None,
         orientation=None) -> Image.Exif:
    """An EXIF block as cameras write it, for ``image_bytes(..., exif=...)``."""
    block = Image.Exif()
    for tag, value in ((ExifTags.Base.Make, make), (ExifTags.Base.Model, model),
                       (ExifTags.Base.Orientation, orientation)):
        if value is not None:
            block[tag] = value
    details = block.get_ifd(ExifTags.IFD.Exif)
    for tag, value in ((ExifTags.Base.DateTimeOriginal, captured),
                       (ExifTags.Base.OffsetTimeOriginal, offset),
                       (ExifTags.Base.SubsecTimeOriginal, subsec)):
        if value is not None:
            details[tag] = value
    return block


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(width, height, *, bit_depth, color_type, rows, rows_per_block=1000) -> bytes:
    """A PNG written chunk by chunk; ``rows(count)`` returns that many filtered rows."""
    compressor = zlib.compressobj(1)
    idat = []
    for first in range(0, height, rows_per_block):
        idat.append(compressor.compress(rows(min(rows_per_block, height - first))))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(idat))
            + png_chunk(b"IEND", b""))


def png_rgb16(size=(16, 12)) -> bytes:
    """A 16-bit-per-channel RGB PNG, as raw converters export; Pillow cannot write one."""
    width, height = size
    row = b"\x00" + b"".join(struct.pack(">HHH", x * 4000, 30000, 65535 - x * 4000)
                             for x in range(width))
    return handmade_png(width, height, bit_depth=16, color_type=2, rows=lambda n: row * n)


@functools.cache
def bomb_png(width=30_000, height=30_000) -> bytes:
    """A valid 1-bit black PNG: under 0.5 MB on disk, 900 megapixels once decoded."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits, all zero
    return handmade_png(width, height, bit_depth=1, color_type=0, rows=lambda n: row * n)


def png_claiming_size(width, height) -> bytes:
    """A PNG whose header announces width × height but whose pixel data is garbage:
    only a check made before decoding can give a reason other than "damaged"."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"not zlib")
            + png_chunk(b"IEND", b""))


def heic_header() -> bytes:
    """The start of an iPhone HEIC file (ISO box "ftyp", brand heic)."""
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic" + bytes(64)


def make_zip(*members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """members: (name or ZipInfo, bytes) pairs, written in this order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()
