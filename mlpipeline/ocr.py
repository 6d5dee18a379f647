"""Bib numbers read from a race photo with EasyOCR (CRAFT text detector + English CRNN).

CRAFT costs about 5 µs of CPU per pixel, so running it over a whole photo takes
seconds and still misses small bibs. A bib hangs on the torso below the face,
at a size proportional to the face: with the faces found earlier in the
pipeline, only the torso region under each face is read, rescaled so every
face is ``FACE_HEIGHT`` pixels high. That puts the digits at a size CRAFT and
the recogniser read well (small far-away runners are enlarged, close-ups are
shrunk) and keeps the work per face constant. The torso crops are laid side by
side on one canvas, so the detector and the recogniser each run once per photo.

Without faces (none found, or none given) the whole photo is read, shrunk to
``FALLBACK_SIDE``: slower and only good for bibs that fill a fair part of the
frame, but a photo of a back or a cropped head still gets a chance.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .availability import package_dir
from .base import ModelUnavailable, ModelWrapper

WEIGHTS_PACKAGE = "easyocr_en_models"
WEIGHT_FILES = ("models/craft_mlt_25k.pth", "models/english_g2.pth")

#: face height, in pixels, that every torso crop is rescaled to
FACE_HEIGHT = 60
#: torso region around a face of width w and height h, from the face's centre and
#: bottom: covers 98 % of the labelled bibs of the RBNR dev set
TORSO_HALF_WIDTH = 1.3  # × w either side
TORSO_TOP, TORSO_BOTTOM = 0.7, 4.9  # × h below the chin
#: faces smaller than this are too far away for their bib to be readable
MIN_FACE = 12
#: crowd shots hold dozens of faces; the largest are the runners in front, and
#: the cost grows with each face read, so the rest are skipped
MAX_FACES = 8
#: long side of the photo when it is read whole (no faces)
FALLBACK_SIDE = 640
#: space between crops on the canvas, so text is never joined across two runners
GAP = 16
DIGITS = "0123456789"


@dataclass(frozen=True)
class BibReading:
    text: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class _Tile:
    """Where a crop sits on the canvas and how it maps back to the photo."""
    left: int  # x of the tile on the canvas
    width: int
    height: int
    x0: float  # photo coordinates of the crop's top-left corner
    y0: float
    scale: float  # canvas pixels per photo pixel


def weights_dir() -> Path:
    """The folder holding the EasyOCR weights, or ModelUnavailable saying what is missing."""
    base = package_dir(WEIGHTS_PACKAGE)
    if base is None:
        raise ModelUnavailable(f"Bib reading needs the Python package {WEIGHTS_PACKAGE}, "
                               "which is not installed.")
    missing = [name for name in WEIGHT_FILES if not (base / name).is_file()]
    if missing:
        raise ModelUnavailable(f"Bib reading needs {', '.join(missing)} in {base}; "
                               f"reinstall {WEIGHTS_PACKAGE}.")
    return base / "models"


class BibReader(ModelWrapper):
    job = "bib_ocr"
    name = "easyocr-craft-english_g2-torso"
    version = "1"

    def load(self) -> None:
        directory = weights_dir()
        import easyocr

        # download_enabled=False: a missing file must fail here, never reach the network.
        self._reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=str(directory),
                                      download_enabled=False, verbose=False)

    def predict(self, image: Image.Image,
                faces: Sequence[tuple[float, float, float, float]] | None = None
                ) -> list[BibReading]:
        rgb = np.asarray(image.convert("RGB"))
        if rgb.shape[0] < 8 or rgb.shape[1] < 8:
            return []
        tiles = _torso_tiles(rgb, () if faces is None else faces)
        if tiles:
            canvas = _canvas(rgb, tiles)
        else:
            tiles, canvas = _whole(rgb)
        return self._read(rgb, canvas, tiles)

    def _read(self, rgb: np.ndarray, canvas: np.ndarray,
              tiles: list[tuple[_Tile, np.ndarray]]) -> list[BibReading]:
        horizontal, free = self._reader.detect(canvas)
        # Boxes are found on the rescaled canvas but read in the photo itself:
        # a close-up's digits keep their full resolution.
        upright = [_to_photo(box, tiles) for box in horizontal[0]]
        upright = [box for box in upright if box[1] - box[0] >= 4 and box[3] - box[2] >= 4]
        slanted = [_polygon_to_photo(poly, tiles) for poly in free[0]]
        if not upright and not slanted:
            return []
        grey = np.asarray(Image.fromarray(rgb).convert("L"))
        readings = []
        for corners, text, confidence in self._reader.recognize(
                grey, upright, slanted, allowlist=DIGITS):
            digits = "".join(char for char in text if char.isdigit())
            if digits:
                xs = [float(point[0]) for point in corners]
                ys = [float(point[1]) for point in corners]
                readings.append(BibReading(digits, float(confidence),
                                           (min(xs), min(ys), max(xs), max(ys))))
        return readings


def _usable(face) -> bool:
    try:
        x1, y1, x2, y2 = (float(value) for value in face[:4])
    except (TypeError, ValueError):
        return False
    return all(map(math.isfinite, (x1, y1, x2, y2))) and min(x2 - x1, y2 - y1) >= MIN_FACE


def _torso_tiles(rgb: np.ndarray, faces) -> list[tuple[_Tile, np.ndarray]]:
    height, width = rgb.shape[:2]
    usable = sorted((tuple(float(v) for v in face[:4]) for face in faces if _usable(face)),
                    key=lambda f: -(f[2] - f[0]) * (f[3] - f[1]))
    tiles, left = [], 0
    for x1, y1, x2, y2 in usable[:MAX_FACES]:
        w, h = x2 - x1, y2 - y1
        centre = (x1 + x2) / 2
        cx1, cx2 = max(0, int(centre - TORSO_HALF_WIDTH * w)), min(width, int(centre + TORSO_HALF_WIDTH * w))
        cy1, cy2 = max(0, int(y2 + TORSO_TOP * h)), min(height, int(y2 + TORSO_BOTTOM * h))
        scale = FACE_HEIGHT / h
        size = (round((cx2 - cx1) * scale), round((cy2 - cy1) * scale))
        if min(size) < FACE_HEIGHT / 4:  # the torso is off the frame
            continue
        crop = np.asarray(Image.fromarray(rgb[cy1:cy2, cx1:cx2]).resize(size, Image.BICUBIC))
        tiles.append((_Tile(left, size[0], size[1], cx1, cy1, scale), crop))
        left += size[0] + GAP
    return tiles


def _canvas(rgb: np.ndarray, tiles: list[tuple[_Tile, np.ndarray]]) -> np.ndarray:
    last = tiles[-1][0]
    canvas = np.full((max(tile.height for tile, _ in tiles), last.left + last.width, 3),
                     int(rgb.mean()), dtype=np.uint8)
    for tile, crop in tiles:
        canvas[:tile.height, tile.left:tile.left + tile.width] = crop
    return canvas


def _whole(rgb: np.ndarray) -> tuple[list[tuple[_Tile, np.ndarray]], np.ndarray]:
    height, width = rgb.shape[:2]
    scale = min(1.0, FALLBACK_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)) if scale < 1 else rgb
    return [(_Tile(0, size[0], size[1], 0, 0, scale), canvas)], canvas


def _tile_at(x: float, tiles: list[tuple[_Tile, np.ndarray]]) -> _Tile:
    for tile, _ in tiles:
        if x < tile.left + tile.width + GAP / 2:
            return tile
    return tiles[-1][0]


def _to_photo(box, tiles) -> list[int]:
    """A canvas box [x1, x2, y1, y2] as the same box in the photo, cut to its own crop."""
    x1, x2, y1, y2 = box
    tile = _tile_at((x1 + x2) / 2, tiles)
    x1, x2 = max(x1, tile.left), min(x2, tile.left + tile.width)
    y1, y2 = max(y1, 0), min(y2, tile.height)
    return [int(tile.x0 + (x1 - tile.left) / tile.scale), int(tile.x0 + (x2 - tile.left) / tile.scale),
            int(tile.y0 + y1 / tile.scale), int(tile.y0 + y2 / tile.scale)]


def _polygon_to_photo(polygon, tiles) -> list[list[int]]:
    tile = _tile_at(sum(point[0] for point in polygon) / len(polygon), tiles)
    return [[int(tile.x0 + (x - tile.left) / tile.scale), int(tile.y0 + y / tile.scale)]
            for x, y in polygon]
