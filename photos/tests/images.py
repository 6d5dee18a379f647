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


def jpeg_claiming_size(width, height) -> bytes:
    """A small JPEG (EXIF first, as cameras write it) whose frame header (SOF0) says
    width × height: Pillow reads the size and nothing beyond it until asked to decode."""
    data = jpeg(size=(64, 48), exif=exif(make="Canon", model="Canon EOS R5"))
    frame = data.index(b"\xff\xc0")  # FFC0, length (2), precision (1), height, width
    return data[:frame + 5] + struct.pack(">HH", height, width) + data[frame + 9:]


def webp_claiming_size(width, height) -> bytes:
    """A small WebP with transparency (an extended, VP8X file) whose canvas says
    width × height."""
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 48), (20, 90, 170, 128)).save(buffer, "WEBP")
    data = buffer.getvalue()
    assert data[12:16] == b"VP8X"
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return data[:24] + canvas + data[30:]


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


def adobe_rgb_profile() -> bytes:
    """An ICC v2 display profile of Adobe RGB (1998): its D50-adapted primaries and its
    2.2 gamma (563/256), as Adobe's own profile holds them. Written by hand because no
    Adobe RGB profile ships with Pillow or the system (bench/bigphotos.py uses it too)."""
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    description = b"Adobe RGB (1998) compatible"
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 563) + bytes(2)
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(description) + 1) + description
         + b"\0" + bytes(4) + bytes(4) + bytes(3) + bytes(67)),
        (b"cprt", b"text" + bytes(4) + b"No copyright, use freely\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.6097, 0.3111, 0.0195)),
        (b"gXYZ", xyz(0.2053, 0.6257, 0.0609)),
        (b"bXYZ", xyz(0.1492, 0.0632, 0.7446)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntr"
              + b"RGB " + b"XYZ " + struct.pack(">6H", 2026, 12, 1, 0, 0, 0) + b"acsp"
              + bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(8) + bytes(4)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
