"""Bib numbers read from a race photo with EasyOCR (CRAFT text detector + English CRNN).

CRAFT costs about 5 µs of CPU per pixel, so running it over a whole photo takes
seconds and still misses small bibs. A bib hangs on the torso below the face,
at a size proportional to the face: with the faces found earlier in the
pipeline, only the torso region under each face is read, rescaled so every
face is ``FACE_HEIGHT`` pixels high. That puts the digits at a size CRAFT and
the recogniser read well (small far-away runners are enlarged, close-ups are
shrunk) and keeps the work per face constant. The torso crops are laid in evenly
filled rows on a canvas, so the detector and the recogniser run once per canvas (a
crowd fills a few, each at most ``CANVAS_PIXELS`` for CRAFT's memory); what a look
costs is bounded by its pixels (``LOOK_PIXELS``), not by a count of faces, so a
crowd is read as far as that budget goes, largest runners first.
On a large photo the faces are found on a reduced copy, where a runner in the
background is a few pixels high; given the original's ``detail``, the reader cuts
such torsos (and reads their text boxes) from the original's own pixels rather
than enlarging the copy's, which is what reads them on crowd shots (bench/crowd.py).

Without faces (none found, or none given) the whole photo is read, shrunk to
``WHOLE_PIXELS`` (the cost of a look at torsos): only good for bibs that fill a
fair part of the frame, but a photo of a back or a cropped head still gets a chance.

Where the processor multiplies bfloat16 in hardware (AMX, AVX-512 BF16), the text
detector (CRAFT) runs in bfloat16 (``native_bf16``): 4x faster, and it reads the same
bibs. The recogniser stays in float32: in bfloat16 it misread 3 more of rbnr-dev's
177 labelled bibs (bench/bibs.py --start-list: 159 against 162; CRAFT alone in
bfloat16: 161, with one wrong tag fewer).

Measured on the RBNR dev set (bench/bibs.py), the recogniser reads 86 % of the
labelled bibs exactly when given a tight box around the digits, but only 15 %
with 15 % of margin added: an edge of the bib, a pin or the sponsor line
becomes an extra digit. So CRAFT's boxes are taken without margin, and each
box is read several times, slightly tighter, looser and rotated (bibs hang
askew on a moving runner), in one batch through the recogniser. Every distinct
reading is kept as an alternative: the bib rules pick the one that is on the
start list, which is what lifts recall, not the single most confident guess.
Torsos where CRAFT finds no text at all are looked at a second time, larger
(``RETRY_FACE_HEIGHT``): small red-on-white digits are often missed at the
first scale.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from .base import ModelWrapper

#: face height, in pixels, that every torso crop is rescaled to. 48 reads rbnr-dev as 60
#: did (bench/bibs.py --start-list: 161/177, 14 unlabelled tags; 40 read 158) for 36 %
#: fewer CRAFT pixels a torso, and more of a crowd, whose torsos fit the pixel budget
#: 1.56 times over (bench/crowd.py --frames 12: 62 -> 63/81 seed 16, 57 -> 59/76 seed 7)
FACE_HEIGHT = 48
#: torso region around a face of width w and height h, from the face's centre and
#: bottom: covers 98 % of the labelled bibs of the RBNR dev set
TORSO_HALF_WIDTH = 1.3  # × w either side
TORSO_TOP, TORSO_BOTTOM = 0.7, 4.9  # × h below the chin
#: faces smaller than this (in pixels of the original, when the reader is given its
#: detail) are too far away for their bib to be readable
MIN_FACE = 12
#: CRAFT's cost is its pixels (1.45 µs each in bfloat16, 6 in float32): the pixels of
#: one look at a photo's torsos. Every torso is scaled to FACE_HEIGHT, about 20,000 px,
#: so this reads the largest ~55 runners of a crowd (the runners in front first) and a
#: photo of many small runners costs what one of a few large ones does. At 0.8 MP (and
#: torsos of 30,000 px), a 37-face crowd frame of bench/crowd.py left 6 labelled runners
#: unread.
LOOK_PIXELS = 1_200_000
#: ... read in canvases of at most this many pixels: CRAFT's memory grows with its input
#: (0.34 GiB more at the peak of a 0.8 MP canvas, 0.49 GiB at 1.2 MP), and the worker's
#: processes each run it
CANVAS_PIXELS = 800_000
#: a photo without a usable face is read whole, shrunk to this many pixels: about the
#: cost of a look at the torsos of a photo of a few runners
WHOLE_PIXELS = 800_000
#: the canvas's widest row: torsos are laid in rows, so many of them never make a
#: canvas EasyOCR would shrink (it caps its input at 2560 px) or CRAFT's memory balloon
CANVAS_WIDTH = 1536
#: space between crops on the canvas, so text is never joined across two runners
GAP = 16
DIGITS = "0123456789"
#: torsos with no text found at FACE_HEIGHT are searched again at this face height
#: (on rbnr-dev, with the start list: recall 0.864 -> 0.887)
RETRY_FACE_HEIGHT = 90
#: ... for the largest faces only: in a crowd most torsos are hidden, and each one
#: looked at again costs CRAFT time (2.25x the pixels of the first look). Two faces
#: at 90 px found as many bibs as three at 100 px, in 56 % of the time.
RETRY_MAX_FACES = 2
#: CRAFT thresholds: lower than EasyOCR's defaults (0.7 / 0.4 / 0.4), which miss a
#: quarter of the red-on-white bibs of rbnr-dev; the extra boxes are mostly read as
#: nothing or as numbers the rules drop. No margin: see the module docstring.
DETECTION = {"text_threshold": 0.4, "low_text": 0.3, "link_threshold": 0.3, "add_margin": 0.0}
#: how each found box is read: (grow x, grow y) in box heights (negative = tighter),
#: and a rotation in degrees. Each variant adds one recogniser input per box.
VARIANTS = ((0.0, 0.0, 0), (-0.08, 0.0, 0), (0.08, 0.0, 0), (0.0, -0.08, 0),
            (0.0, 0.0, 8), (0.0, 0.0, -8))
#: the recogniser's input height, and the widest input it is given (16:1 covers any bib)
LINE_HEIGHT = 64
MAX_LINE_WIDTH = 16 * LINE_HEIGHT
#: boxes read per look at most (largest first): bounds the cost of a photo full of text
MAX_BOXES = 40
#: recogniser inputs per forward pass, grouped by width so little is padding
BATCH = 24


@dataclass(frozen=True)
class BibReading:
    """What one text box says: its most confident reading, and every other one seen.

    ``alternatives`` are (text, confidence) pairs from the variants of the box,
    most confident first, ``text`` included.
    """
    text: str
    confidence: float
    box: tuple[float, float, float, float]
    alternatives: tuple[tuple[str, float], ...] = ()

    def candidates(self) -> tuple[tuple[str, float], ...]:
        return self.alternatives or ((self.text, self.confidence),)


@dataclass(frozen=True)
class _Tile:
    """Where a crop sits on the canvas and how it maps back to the photo."""
    left: int  # where the tile is on the canvas
    top: int
    width: int
    height: int
    x0: float  # photo coordinates of the crop's top-left corner
    y0: float
    scale: float  # canvas pixels per photo pixel
    face: tuple[float, float, float, float] | None = None  # the face whose torso it is


class _Regions:
    """An image read as an array one region at a time (``pixels[y1:y2, x1:x2]``, as numpy
    slices them): the reader cuts a few torsos and text boxes out of the original's
    detail, which copied whole into numpy would be another 72 MB of a 24 MP photo at the
    worker's peak."""

    def __init__(self, image: Image.Image):
        self._image = image if image.mode == "RGB" else image.convert("RGB")
        self.shape = (image.height, image.width, 3)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, columns = key
        top, bottom, _step = rows.indices(self.shape[0])
        left, right, _step = columns.indices(self.shape[1])
        return np.asarray(self._image.crop((left, top, max(left, right), max(top, bottom))))


#: what the reader reads pixels from: the analysis copy, or regions of the original's detail
Pixels = np.ndarray | _Regions


class BibReader(ModelWrapper):
    job = "bib_ocr"
    name = "easyocr-craft-english_g2-torso"
    version = "2"
    feature = _("Bib numbers read from photos")
    on_detail = _("Bib numbers are read from photos.")
    off_detail = _("Bib reading is off: EasyOCR weights are missing.")
    weights_package = "easyocr_en_models"
    package_files = ("models/craft_mlt_25k.pth", "models/english_g2.pth")
    #: run the text detector in bfloat16: None decides by the processor (``native_bf16``)
    bf16: bool | None = None

    def __init__(self, *, bf16: bool | None = None):
        super().__init__()
        if bf16 is not None:
            self.bf16 = bf16

    def load(self) -> None:
        directory = self.packaged_weights() / "models"
        import easyocr

        # download_enabled=False: a missing file must fail here, never reach the network.
        self._reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(directory),
                                      download_enabled=False, verbose=False)
        if self.bf16 is None:
            self.bf16 = native_bf16()
        if self.bf16:
            # CRAFT is most of the cost. The recogniser decides the digits: bfloat16's
            # 8-bit mantissa there cost readings (see the module's note).
            self._reader.detector = _in_bf16(self._reader.detector)
        characters = self._reader.converter.character  # index 0 is the CTC blank
        #: the recogniser's output columns kept: the blank, then the ten digits
        self._columns = [0] + [characters.index(digit) for digit in DIGITS]

    def predict(self, image: Image.Image,
                faces: Sequence[tuple[float, float, float, float]] | None = None,
                keeps: Callable[[BibReading], bool] | None = None,
                detail: Callable[[int], Image.Image] | None = None,
                original_scale: float = 1.0) -> list[BibReading]:
        """What the bibs under ``faces`` (or, without faces, anywhere) say.

        ``keeps`` tells whether a reading is one the caller would keep (the event's bib
        rules): the largest torsos with no such reading get a second, closer look.
        Without it, only torsos where no text was found at all are looked at again.

        ``detail(longest)`` gives the same photo at a higher resolution (at least
        ``longest`` px on its long side where the original has them): when a face is
        smaller in ``image`` than the scale its torso is read at, the torsos are cut
        from that copy instead of being enlarged from ``image``, so a small runner of
        a large photo is read from the pixels the camera recorded. ``original_scale``
        is how many pixels of the original each pixel of ``image`` stands for: a face is
        too small to read (``MIN_FACE``) by its size in the original. Boxes are always
        in ``image`` pixels.
        """
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        if rgb.shape[0] < 8 or rgb.shape[1] < 8:
            return []
        min_face = MIN_FACE / max(1.0, original_scale) if detail is not None else MIN_FACE
        usable = _largest_usable(() if faces is None else faces, min_face)
        if not usable:
            tiles, canvas = _whole(rgb)
            return self._read(rgb, self._detect(canvas, tiles))
        fill = int(rgb.mean())
        factor = 1.0
        smallest = min(face[3] - face[1] for face in usable)
        if detail is not None and smallest < FACE_HEIGHT:
            source = detail(math.ceil(max(image.size) * FACE_HEIGHT / smallest))
            if source.width > image.width:
                factor = source.width / image.width
                rgb = _Regions(source)
                usable = [tuple(value * factor for value in face) for face in usable]
        readings = self._look(rgb, usable, keeps, fill)
        if factor == 1.0:
            return readings
        return [BibReading(reading.text, reading.confidence,
                           tuple(value / factor for value in reading.box), reading.alternatives)
                for reading in readings]

    def _look(self, rgb: Pixels, usable, keeps, fill: int) -> list[BibReading]:
        """Read the torsos under ``usable`` faces (pixels of ``rgb``), then look again,
        closer, at the largest ones where nothing kept was read."""
        readings, boxes, looked = [], [], []
        waiting, left = list(usable), LOOK_PIXELS
        while waiting and left > 0:  # canvases of at most CANVAS_PIXELS, until the budget
            tiles = _torso_tiles(rgb, waiting, FACE_HEIGHT, min(left, CANVAS_PIXELS),
                                 at_least_one=not looked)
            if not tiles:
                break
            canvas = _canvas(tiles, fill)
            found = self._detect(canvas, tiles)
            readings += self._read(rgb, found)
            boxes += found
            looked += [tile.face for tile, _crop in tiles]
            waiting = [face for face in waiting if face not in looked]
            left -= canvas.shape[0] * canvas.shape[1]
        if keeps is None:
            found = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, x2, y1, y2 in boxes]
        else:
            found = [_centre(reading.box) for reading in readings if keeps(reading)]
        retry = [face for face in usable[:RETRY_MAX_FACES]
                 if not any(_inside(point, _torso(face, rgb.shape)) for point in found)]
        tiles = _torso_tiles(rgb, retry, RETRY_FACE_HEIGHT, CANVAS_PIXELS)
        if tiles:
            readings += self._read(rgb, self._detect(_canvas(tiles, fill), tiles))
        return readings

    def _detect(self, canvas: np.ndarray, tiles) -> list[list[int]]:
        """Text boxes [x1, x2, y1, y2] in photo pixels (slanted ones as their bounding box)."""
        # canvas_size: the canvas is read as it is, never shrunk to EasyOCR's default cap.
        horizontal, free = self._reader.detect(canvas, canvas_size=max(canvas.shape[:2]), **DETECTION)
        boxes = [_to_photo(box, tiles) for box in horizontal[0]]
        for polygon in free[0]:
            points = _polygon_to_photo(polygon, tiles)
            xs, ys = [x for x, _y in points], [y for _x, y in points]
            boxes.append([min(xs), max(xs), min(ys), max(ys)])
        return [box for box in boxes if box[1] - box[0] >= 4 and box[3] - box[2] >= 4]

    def _read(self, rgb: Pixels, boxes: list[list[int]]) -> list[BibReading]:
        boxes = sorted(boxes, key=lambda b: -(b[1] - b[0]) * (b[3] - b[2]))[:MAX_BOXES]
        if not boxes:
            return []
        # Read in the photo itself, not the canvas: a close-up's digits keep their resolution.
        crops, owners = [], []
        for index, box in enumerate(boxes):
            for crop in _variants(rgb, box):
                crops.append(crop)
                owners.append(index)
        readings = self._recognise(crops)
        by_box: dict[int, dict[str, float]] = {}
        for owner, (text, confidence) in zip(owners, readings):
            if text:
                seen = by_box.setdefault(owner, {})
                seen[text] = max(confidence, seen.get(text, 0.0))
        result = []
        for index, seen in sorted(by_box.items()):
            ranked = tuple(sorted(seen.items(), key=lambda item: -item[1]))
            x1, x2, y1, y2 = boxes[index]
            result.append(BibReading(ranked[0][0], ranked[0][1],
                                     (float(x1), float(y1), float(x2), float(y2)), ranked))
        return result

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Digits and confidence of each greyscale line image, batched through the CRNN."""
        import torch

        lines = [_line(crop) for crop in crops]
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        result: list[tuple[str, float]] = [("", 0.0)] * len(lines)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            width = max(lines[i].shape[1] for i in chunk)
            # Padding repeats the last column, as the recogniser saw in training.
            batch = np.stack([np.pad(lines[i], ((0, 0), (0, width - lines[i].shape[1])), mode="edge")
                              for i in chunk]).astype(np.float32)
            tensor = torch.from_numpy(batch).div_(127.5).sub_(1.0).unsqueeze(1)
            with torch.inference_mode():
                logits = self._reader.recognizer(tensor, None)[:, :, self._columns]
                probabilities = torch.softmax(logits, dim=2).numpy()
            for i, frames in zip(chunk, probabilities):
                result[i] = ctc_greedy(frames, DIGITS)
        return result


def native_bf16() -> bool:
    """Whether this processor multiplies bfloat16 in hardware (AMX or AVX-512 BF16).

    There CRAFT runs 4x faster in bfloat16 than in float32 (1.45 against 6.1 µs of
    CPU per pixel, one thread); elsewhere bfloat16 is emulated and slower than float32.
    """
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def _in_bf16(module):
    """``module`` run under bfloat16 autocast, its outputs given back in float32 (EasyOCR
    turns them into numpy arrays, which have no bfloat16). A module itself, so it can
    stand in for the reader's detector."""
    import torch

    class InBf16(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module.to(memory_format=torch.channels_last)

        def forward(self, tensor):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = self.inner(tensor.contiguous(memory_format=torch.channels_last))
            if isinstance(output, tuple):
                return tuple(part.float() for part in output)
            return output.float()

    return InBf16().eval()


def ctc_greedy(frames: np.ndarray, alphabet: str) -> tuple[str, float]:
    """Best-path CTC decoding of (time, 1 + len(alphabet)) probabilities, blank first.

    The confidence is EasyOCR's: the product of the kept frames' probabilities,
    softened by the length (``p ** (2 / sqrt(n))``) so long numbers are not
    punished for every extra digit.
    """
    best = frames.argmax(axis=1)
    text, kept, previous = [], [], 0
    for column, probability in zip(best, frames.max(axis=1)):
        if column != 0:
            kept.append(float(probability))
            if column != previous:
                text.append(alphabet[column - 1])
        previous = column
    if not kept:
        return "", 0.0
    return "".join(text), float(np.prod(kept) ** (2.0 / math.sqrt(len(kept))))


def _variants(rgb: Pixels, box: list[int]) -> Iterable[np.ndarray]:
    """The box cut a little tighter, looser and turned, contrast stretched, in grey."""
    import cv2

    x1, x2, y1, y2 = box
    height = y2 - y1
    # Only the pixels within reach of the variants are made grey: the photo may be a
    # 24 MP original. Cut to the photo, the region holds every variant's crop.
    reach = math.ceil(max(abs(value) for variant in VARIANTS for value in variant[:2]) * height) + 1
    left0, top0 = max(0, x1 - reach), max(0, y1 - reach)
    region = rgb[top0:min(rgb.shape[0], y2 + reach), left0:min(rgb.shape[1], x2 + reach)]
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(region)).convert("L"))
    for grow_x, grow_y, angle in VARIANTS:
        left = int(max(0, x1 - grow_x * height)) - left0
        right = int(min(rgb.shape[1], x2 + grow_x * height)) - left0
        top = int(max(0, y1 - grow_y * height)) - top0
        bottom = int(min(rgb.shape[0], y2 + grow_y * height)) - top0
        if right - left < 4 or bottom - top < 4:
            continue
        crop = cv2.normalize(np.ascontiguousarray(grey[top:bottom, left:right]), None, 0, 255,
                             cv2.NORM_MINMAX)
        if angle:
            turn = cv2.getRotationMatrix2D(((right - left) / 2, (bottom - top) / 2), angle, 1.0)
            crop = cv2.warpAffine(crop, turn, (right - left, bottom - top),
                                  borderMode=cv2.BORDER_REPLICATE)
        yield crop


def _line(crop: np.ndarray) -> np.ndarray:
    """A crop at the recogniser's height, aspect kept (capped so a long strip stays bounded)."""
    import cv2

    height, width = crop.shape
    new_width = max(8, min(MAX_LINE_WIDTH, math.ceil(LINE_HEIGHT * width / height)))
    return cv2.resize(crop, (new_width, LINE_HEIGHT), interpolation=cv2.INTER_CUBIC)


def _usable(face, min_face: float) -> bool:
    try:
        x1, y1, x2, y2 = (float(value) for value in face[:4])
    except (TypeError, ValueError):
        return False
    return all(map(math.isfinite, (x1, y1, x2, y2))) and min(x2 - x1, y2 - y1) >= min_face


def _largest_usable(faces, min_face: float = MIN_FACE) -> list[tuple[float, float, float, float]]:
    usable = sorted((tuple(float(v) for v in face[:4]) for face in faces if _usable(face, min_face)),
                    key=lambda f: -(f[2] - f[0]) * (f[3] - f[1]))
    return usable


def _torso(face, shape) -> tuple[int, int, int, int]:
    """The region under a face where its bib hangs, in photo pixels, cut to the photo."""
    x1, y1, x2, y2 = face
    w, h = x2 - x1, y2 - y1
    centre = (x1 + x2) / 2
    height, width = shape[:2]
    return (max(0, int(centre - TORSO_HALF_WIDTH * w)), max(0, int(y2 + TORSO_TOP * h)),
            min(width, int(centre + TORSO_HALF_WIDTH * w)), min(height, int(y2 + TORSO_BOTTOM * h)))


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    """Centre of a reading's box (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2


def _inside(point: tuple[float, float], region: tuple[int, int, int, int]) -> bool:
    return region[0] <= point[0] <= region[2] and region[1] <= point[1] <= region[3]


def _torso_tiles(rgb: Pixels, faces, face_height: int, budget: int,
                 at_least_one: bool = True) -> list[tuple[_Tile, np.ndarray]]:
    """The torsos under ``faces`` (in order, largest first) scaled so each face is
    ``face_height`` px, laid in rows of at most CANVAS_WIDTH px (``_layout``), until the
    canvas would hold more than ``budget`` pixels (``at_least_one``: the first torso
    whatever its size, so a photo's one close-up is always read)."""
    chosen: list[tuple[tuple, tuple[int, int, int, int], float, tuple[int, int]]] = []
    for face in faces:
        region = _torso(face, rgb.shape)
        scale = face_height / (face[3] - face[1])
        size = (round((region[2] - region[0]) * scale), round((region[3] - region[1]) * scale))
        if min(size) < face_height / 4:  # the torso is off the frame
            continue
        _spots, width, height = _layout([*(kept[3] for kept in chosen), size])
        if (chosen or not at_least_one) and width * height > budget:
            break
        chosen.append((face, region, scale, size))
    spots, _width, _height = _layout([kept[3] for kept in chosen])
    tiles = []
    for (face, (cx1, cy1, cx2, cy2), scale, size), (left, top) in zip(chosen, spots):
        crop = np.asarray(Image.fromarray(rgb[cy1:cy2, cx1:cx2]).resize(size, Image.BICUBIC))
        tiles.append((_Tile(left, top, size[0], size[1], cx1, cy1, scale, face), crop))
    return tiles


def _layout(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], int, int]:
    """Where tiles of these (width, height) go on the canvas, in order, and the canvas's
    width and height: in as few rows of at most CANVAS_WIDTH px as they need, filled
    evenly. CRAFT reads the canvas's whole rectangle, so a half-empty last row would
    be read for nothing (a third of the canvas of a 17-runner crowd)."""
    if not sizes:
        return [], 0, 0
    total = sum(width for width, _height in sizes) + GAP * (len(sizes) - 1)
    rows = math.ceil(total / CANVAS_WIDTH)
    limit = max(max(width for width, _height in sizes), math.ceil(total / rows))
    while True:  # the narrowest rows that keep to that many rows (a tile never splits)
        spots, left, top, row_height, width, used = [], 0, 0, 0, 0, 1
        for tile_width, tile_height in sizes:
            if left and left + tile_width > limit:
                left, top, row_height, used = 0, top + row_height + GAP, 0, used + 1
            spots.append((left, top))
            width = max(width, left + tile_width)
            left += tile_width + GAP
            row_height = max(row_height, tile_height)
        if used <= rows or limit >= CANVAS_WIDTH:
            return spots, width, top + row_height
        limit = min(CANVAS_WIDTH, limit + GAP)


def _canvas(tiles: list[tuple[_Tile, np.ndarray]], fill: int) -> np.ndarray:
    height = max(tile.top + tile.height for tile, _crop in tiles)
    width = max(tile.left + tile.width for tile, _crop in tiles)
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    for tile, crop in tiles:
        canvas[tile.top:tile.top + tile.height, tile.left:tile.left + tile.width] = crop
    return canvas


def _whole(rgb: np.ndarray) -> tuple[list[tuple[_Tile, np.ndarray]], np.ndarray]:
    height, width = rgb.shape[:2]
    scale = min(1.0, math.sqrt(WHOLE_PIXELS / (height * width)))
    size = (max(1, int(width * scale)), max(1, int(height * scale)))  # within WHOLE_PIXELS
    canvas = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)) if scale < 1 else rgb
    return [(_Tile(0, 0, size[0], size[1], 0, 0, scale), canvas)], canvas


def _tile_at(x: float, y: float, tiles: list[tuple[_Tile, np.ndarray]]) -> _Tile:
    """The tile a point of the canvas belongs to: the nearest (gaps are between tiles)."""
    def distance(tile: _Tile) -> float:
        return math.hypot(max(tile.left - x, 0.0, x - tile.left - tile.width),
                          max(tile.top - y, 0.0, y - tile.top - tile.height))

    return min((tile for tile, _crop in tiles), key=distance)


def _to_photo(box, tiles) -> list[int]:
    """A canvas box [x1, x2, y1, y2] as the same box in the photo, cut to its own crop."""
    x1, x2, y1, y2 = box
    tile = _tile_at((x1 + x2) / 2, (y1 + y2) / 2, tiles)
    x1, x2 = max(x1, tile.left), min(x2, tile.left + tile.width)
    y1, y2 = max(y1, tile.top), min(y2, tile.top + tile.height)
    return [int(tile.x0 + (x1 - tile.left) / tile.scale), int(tile.x0 + (x2 - tile.left) / tile.scale),
            int(tile.y0 + (y1 - tile.top) / tile.scale), int(tile.y0 + (y2 - tile.top) / tile.scale)]


def _polygon_to_photo(polygon, tiles) -> list[list[int]]:
    tile = _tile_at(sum(point[0] for point in polygon) / len(polygon),
                    sum(point[1] for point in polygon) / len(polygon), tiles)
    return [[int(tile.x0 + (x - tile.left) / tile.scale), int(tile.y0 + (y - tile.top) / tile.scale)]
            for x, y in polygon]
