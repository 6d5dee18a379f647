"""Outfit colours read from the regions around each face: cap, shirt, shorts or tights.

No weights: the regions are placed by body proportions from the face box the pipeline
already found, and each pixel is named in a small palette by its hue, saturation and
value (HSV; achromatic pixels by their value only), then the region's pixels vote.
What would spoil the vote is taken out first:

- the runner's own skin (arms, neck, legs): its colour is measured inside the face box
  and pixels close to it in Lab are dropped;
- the printed bib: the box the bib reader found is masked; where none was found (a
  turned or unread bib) the white pixels of the chest's centre, where a bib hangs,
  count for little, so a white shirt is still named by its sides and shoulders;
- the background at the edges of a region: pixels count less the farther they are from
  the body's middle line.

Colour search works on any machine with this model; with CLIP weights, text search uses
CLIP instead (search/outfit.py).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext_lazy as _
from PIL import Image

from .base import ModelWrapper

#: the palette, in the order a tie is broken in
PALETTE = ("white", "black", "grey", "red", "orange", "yellow", "green", "blue", "navy",
           "purple", "pink", "brown")
REGIONS = ("cap", "shirt", "legs")

#: where each region is, from a face box of width w and height h: (half width × w around
#: the face's centre, top and bottom × h from the chin; the cap's from the face's top).
#: Measured on the demo's drawn runners and rbnr-dev's labelled runners (bench/outfit.py).
CAP_HALF_WIDTH, CAP_TOP, CAP_BOTTOM = 0.3, -0.5, -0.05  # × h from the face's top
SHIRT_HALF_WIDTH, SHIRT_TOP, SHIRT_BOTTOM = 1.0, 0.25, 2.1
LEGS_HALF_WIDTH, LEGS_TOP, LEGS_HEIGHT = 0.8, 2.5, 1.0
#: bodies differ (and so do face boxes): the shirt's lower edge is looked for between
#: these heights below the chin, in a strip this wide (× w either side of the centre),
#: and the shorts start there; with no edge found (shorts of the shirt's colour) they
#: are looked for at LEGS_TOP
SHIRT_END_FROM, SHIRT_END_TO, SHIRT_END_HALF_WIDTH = 1.2, 4.5, 0.95
#: a row belongs to the shirt while at least this share of its kept pixels is its colour
SHIRT_ROW_SHARE = 0.3
#: ... and it ends at the first run of rows this high (× h) that are not
SHIRT_END_RUN = 0.2
#: beside the cap, at its height (× w from the centre): the background a cap must differ from
BESIDE_CAP_INNER, BESIDE_CAP_OUTER = 0.9, 1.4
#: a cap of the background's colour counts for this much: it is most likely the background
BACKGROUND_FACTOR = 0.3
#: where a bib hangs when the reader found none: × w either side, × h below the chin
BIB_HALF_WIDTH, BIB_TOP, BIB_BOTTOM = 0.8, 0.8, 2.1
#: weight of a white pixel in that zone (a white shirt still wins by its sides)
BIB_ZONE_WHITE_WEIGHT = 0.15
#: regions are shrunk to at most this many pixels on their long side: the colour of a
#: shirt needs no detail, and a photo of eight runners costs a few milliseconds
REGION_SIDE = 48
#: faces smaller than this are too far for their clothes to be told apart
MIN_FACE = 14
#: a region where less than this share of its pixels is left after masking is not named
MIN_KEPT_SHARE = 0.12
#: Lab distance within which a pixel is taken for the runner's skin
SKIN_DISTANCE = 18.0
#: a colour is only stored with at least this share of the region's votes
MIN_CONFIDENCE = 0.3
#: caps: hair is black or brown too, so a dark "cap" counts for less (no cap is the
#: commonest case, and most hair is dark)
HAIR_COLOURS = frozenset({"black", "brown", "grey"})
HAIR_FACTOR = 0.5
#: a cap needs more votes than a shirt: a bare head is the commonest case
CAP_MIN_CONFIDENCE = 0.45


@dataclass(frozen=True)
class RegionColour:
    colour: str  # one of PALETTE
    confidence: float  # share of the region's votes, 0..1


@dataclass(frozen=True)
class Outfit:
    """The colours worn by the runner of one face; a region is None when it could not be
    seen (off the photo, hidden, too small) or showed no clear colour."""

    cap: RegionColour | None
    shirt: RegionColour | None
    legs: RegionColour | None


#: blue hues darker than this lightness (CIE L*, 0-100) are navy. Lightness, not HSV's
#: value: a pure dark blue (0, 0, 128) has value 0.5 but looks as dark as L* 13, and
#: royal blue (65, 105, 225), value 0.88, is L* 47
NAVY_LIGHTNESS = 30.0
NAVY_HUES = (195, 255)
#: neutral pixels at least this bright (HSV value) are white, darker ones down to
#: BLACK_VALUE grey: mid grey (128) is 0.5, a white shirt in the sun 0.85+ and one in the
#: shade 0.6 (rbnr-dev: a higher bar turns shaded white shirts grey)...
WHITE_VALUE = 0.6
#: ... unless the runner's bib tells how bright white paper is in their light (photos
#: brightened to it, see _light): then a grey of 0.61 (150) beside it is grey
WHITE_VALUE_BESIDE_BIB = 0.65
BLACK_VALUE = 0.3
#: a bib's paper (this percentile of the values in its box: the print is dark) is taken
#: for this white, brightening the runner's regions at most by MAX_GAIN
REFERENCE_PERCENTILE = 90
REFERENCE_WHITE = 0.95
MAX_GAIN = 1.6
#: red hues this pale (saturation below, value above) are pink
PINK_SATURATION, PINK_VALUE = 0.55, 0.65


def _lightness(hsv: np.ndarray) -> np.ndarray:
    import cv2

    flat = np.ascontiguousarray(hsv.reshape(-1, 1, 3), dtype=np.uint8)
    lab = cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_HSV2RGB), cv2.COLOR_RGB2LAB)
    return lab[..., 0].reshape(hsv.shape[:-1]).astype(np.float32) * (100.0 / 255.0)


def name_colours(hsv: np.ndarray, white_value: float = WHITE_VALUE) -> np.ndarray:
    """The palette index of every pixel of an (…, 3) array of OpenCV HSV (H 0–179, S and
    V 0–255); neutral pixels from ``white_value`` up are white."""
    hue = hsv[..., 0].astype(np.float32) * 2.0  # degrees
    saturation = hsv[..., 1].astype(np.float32) / 255.0
    value = hsv[..., 2].astype(np.float32) / 255.0
    index = {name: number for number, name in enumerate(PALETTE)}
    names = np.full(hue.shape, index["grey"], dtype=np.int8)
    # Chromatic pixels by hue; dark ones turn navy (blue) or brown (red to orange).
    chromatic = (saturation >= 0.2 + 0.25 * (1.0 - value)) & (value >= 0.14)
    names[chromatic & ((hue < 12) | (hue >= 340))] = index["red"]
    names[chromatic & (hue >= 12) & (hue < 42)] = index["orange"]
    names[chromatic & (hue >= 42) & (hue < 70)] = index["yellow"]
    names[chromatic & (hue >= 70) & (hue < 170)] = index["green"]
    names[chromatic & (hue >= 170) & (hue < 255)] = index["blue"]
    names[chromatic & (hue >= 255) & (hue < 290)] = index["purple"]
    names[chromatic & (hue >= 290) & (hue < 340)] = index["pink"]
    # A pale red is pink; a dark red or orange is brown, a dark yellow olive (green).
    pale = chromatic & (saturation < PINK_SATURATION) & (value > PINK_VALUE)
    names[pale & ((hue < 12) | (hue >= 330))] = index["pink"]
    dark = chromatic & (value < 0.55)
    names[dark & (hue >= 12) & (hue < 42)] = index["brown"]
    names[dark & (hue >= 42) & (hue < 70)] = index["green"]
    blue_hue = chromatic & (hue >= NAVY_HUES[0]) & (hue < NAVY_HUES[1])
    if blue_hue.any():
        names[blue_hue & (_lightness(hsv) < NAVY_LIGHTNESS)] = index["navy"]
    achromatic = ~chromatic
    names[achromatic & (value >= white_value)] = index["white"]
    names[achromatic & (value < BLACK_VALUE)] = index["black"]
    names[value < 0.14] = index["black"]
    return names


@dataclass(frozen=True)
class _Light:
    """How one runner's pixels are named: brightened by ``gain``, white from ``white_value``."""

    gain: float = 1.0
    white_value: float = WHITE_VALUE

    def names(self, hsv: np.ndarray) -> np.ndarray:
        if self.gain > 1.0:
            hsv = hsv.copy()
            hsv[..., 2] = np.clip(hsv[..., 2].astype(np.float32) * self.gain, 0, 255).astype(np.uint8)
        return name_colours(hsv, self.white_value)


class OutfitReader(ModelWrapper):
    job = "outfit_colours"
    name = "outfit-colours-hsv"
    version = "1"
    feature = _("Outfit search by colour")
    on_detail = _("Outfit search names the colours of each runner's cap, shirt and shorts; "
                  "it needs no weights.")
    off_detail = _("Outfit colours are not read.")

    @classmethod
    def find_weights(cls) -> tuple[bool, str]:
        return True, "no weights (colour rules in mlpipeline/inference/outfit.py)"

    def load(self) -> None:
        import cv2

        self._cv2 = cv2

    def predict(self, image: Image.Image, faces: Sequence[Sequence[float]],
                bibs: Sequence[Sequence[float]] = ()) -> list[Outfit | None]:
        """The outfit under each face of ``faces`` (x1, y1, x2, y2 in ``image`` pixels), in
        order; None for a face too small to tell. ``bibs``: bib boxes read on the photo."""
        rgb = np.asarray(image.convert("RGB"))
        lab = self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2LAB)
        hsv = self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2HSV)
        # Pixels hidden by a bib or by a nearer runner's face are nobody's clothes.
        hidden = np.zeros(rgb.shape[:2], dtype=bool)
        for box in (*bibs, *faces):
            x1, y1, x2, y2 = _clip(_grown(box, 0.08), rgb.shape)
            hidden[y1:y2, x1:x2] = True
        return [self._outfit(rgb, lab, hsv, hidden, face, bibs) for face in faces]

    def _outfit(self, rgb, lab, hsv, hidden, face, bibs) -> Outfit | None:
        x1, y1, x2, y2 = (float(value) for value in face[:4])
        w, h = x2 - x1, y2 - y1
        if not all(map(math.isfinite, (x1, y1, x2, y2))) or min(w, h) < MIN_FACE:
            return None
        skin = _skin_colour(lab, face)
        centre = (x1 + x2) / 2
        own_bibs = [bib for bib in bibs
                    if _centre_inside(bib, (centre - 1.3 * w, y2, centre + 1.3 * w, y2 + 4.9 * h))]
        has_bib = bool(own_bibs)
        light = _light(hsv, own_bibs[0]) if own_bibs else _Light()
        cap = self._region(rgb, lab, hsv, hidden, skin, centre, w,
                           (centre - CAP_HALF_WIDTH * w, y1 + CAP_TOP * h,
                            centre + CAP_HALF_WIDTH * w, y1 + CAP_BOTTOM * h), face)
        if cap is not None:
            cap = self._judged_cap(rgb, lab, hsv, hidden, skin, centre, w, h, y1, cap)
        bib_zone = None if has_bib else (centre - BIB_HALF_WIDTH * w, y2 + BIB_TOP * h,
                                         centre + BIB_HALF_WIDTH * w, y2 + BIB_BOTTOM * h)
        shirt = self._region(rgb, lab, hsv, hidden, skin, centre, w,
                             (centre - SHIRT_HALF_WIDTH * w, y2 + SHIRT_TOP * h,
                              centre + SHIRT_HALF_WIDTH * w, y2 + SHIRT_BOTTOM * h), None, bib_zone,
                             light)
        legs_top = y2 + LEGS_TOP * h
        if shirt is not None:
            legs_top = self._shirt_end(hsv, lab, hidden, skin, centre, w, h, y2, shirt.colour,
                                       bib_zone, light) or legs_top
        legs = self._region(rgb, lab, hsv, hidden, skin, centre, w,
                            (centre - LEGS_HALF_WIDTH * w, legs_top,
                             centre + LEGS_HALF_WIDTH * w, legs_top + LEGS_HEIGHT * h), None,
                            light=light)
        if cap is not None and cap.confidence < CAP_MIN_CONFIDENCE:
            cap = None
        return Outfit(cap, _kept(shirt), _kept(legs))

    def _shirt_end(self, hsv, lab, hidden, skin, centre, w, h, chin, colour,
                   bib_zone, light=_Light()) -> float | None:
        """The height where the shirt's colour stops, going down the body; None if it never
        does within reach."""
        x1, y1, x2, y2 = _clip((centre - SHIRT_END_HALF_WIDTH * w, chin + SHIRT_END_FROM * h,
                                centre + SHIRT_END_HALF_WIDTH * w, chin + SHIRT_END_TO * h),
                               hsv.shape)
        if x2 - x1 < 3 or y2 - y1 < 6:
            return None
        step = max(1, round((x2 - x1) / 24))
        names = light.names(hsv[y1:y2, x1:x2:step])
        kept = ~hidden[y1:y2, x1:x2:step]
        if skin is not None:
            kept &= np.linalg.norm(lab[y1:y2, x1:x2:step].astype(np.float32) - skin, axis=2) \
                > SKIN_DISTANCE
        if bib_zone is not None:  # an unread bib is no edge of the shirt
            ys = np.arange(y1, y2)[:, None]
            xs = np.arange(x1, x2, step)[None, :]
            in_zone = ((ys >= bib_zone[1]) & (ys <= bib_zone[3])
                       & (xs >= bib_zone[0]) & (xs <= bib_zone[2]))
            kept &= ~(in_zone & (names == PALETTE.index("white")))
        counted = kept.sum(axis=1)
        share = np.where(counted > 0, ((names == PALETTE.index(colour)) & kept).sum(axis=1)
                         / np.maximum(counted, 1), 1.0)
        run = max(2, round(SHIRT_END_RUN * h))
        outside = np.convolve((share < SHIRT_ROW_SHARE).astype(np.int32), np.ones(run, dtype=np.int32),
                              mode="valid")
        found = np.flatnonzero(outside == run)
        return float(y1 + found[0]) if len(found) else None

    def _judged_cap(self, rgb, lab, hsv, hidden, skin, centre, w, h, y1, cap) -> RegionColour:
        """The cap's colour, trusted less where it may be hair or the sky behind the head."""
        confidence = cap.confidence * (HAIR_FACTOR if cap.colour in HAIR_COLOURS else 1.0)
        top, bottom = y1 + CAP_TOP * h, y1 + CAP_BOTTOM * h
        for side in (-1, 1):
            inner, outer = centre + side * BESIDE_CAP_INNER * w, centre + side * BESIDE_CAP_OUTER * w
            beside = self._region(rgb, lab, hsv, hidden, skin, (inner + outer) / 2, w,
                                  (min(inner, outer), top, max(inner, outer), bottom), None)
            if beside is not None and beside.colour == cap.colour:
                confidence *= BACKGROUND_FACTOR
                break
        return RegionColour(cap.colour, round(confidence, 3))

    def _region(self, rgb, lab, hsv, hidden, skin, centre, face_width, region, face,
                bib_zone=None, light=_Light()) -> RegionColour | None:
        cv2 = self._cv2
        x1, y1, x2, y2 = _clip(region, rgb.shape)
        if x2 - x1 < 3 or y2 - y1 < 3:
            return None
        scale = min(1.0, REGION_SIDE / max(x2 - x1, y2 - y1))
        size = (max(3, round((x2 - x1) * scale)), max(3, round((y2 - y1) * scale)))

        def shrunk(array, interpolation=cv2.INTER_AREA):
            return cv2.resize(np.ascontiguousarray(array[y1:y2, x1:x2]), size,
                              interpolation=interpolation)

        region_hsv, region_lab = shrunk(hsv), shrunk(lab).astype(np.float32)
        mask = hidden.astype(np.uint8)
        if face is not None:  # the cap sits above the face: only the face itself is left out
            mask = np.zeros_like(mask)
            fx1, fy1, fx2, fy2 = _clip(_grown(face, 0.0), rgb.shape)
            mask[fy1 + (fy2 - fy1) // 5:fy2, fx1:fx2] = 1
        kept = shrunk(mask, cv2.INTER_NEAREST) == 0
        if skin is not None:
            kept &= np.linalg.norm(region_lab - skin, axis=2) > SKIN_DISTANCE
        # Nearer the body's middle line counts more: the edges hold background.
        xs = x1 + (np.arange(size[0]) + 0.5) / scale
        weight_x = np.clip(1.0 - np.abs(xs - centre) / (2.2 * face_width), 0.15, 1.0)
        weights = np.broadcast_to(weight_x, (size[1], size[0])).astype(np.float32) * kept
        if kept.mean() < MIN_KEPT_SHARE:
            return None
        names = light.names(region_hsv)
        if bib_zone is not None:
            ys = y1 + (np.arange(size[1]) + 0.5) / scale
            in_zone = ((np.abs(xs - centre) <= (bib_zone[2] - bib_zone[0]) / 2)[None, :]
                       & ((ys >= bib_zone[1]) & (ys <= bib_zone[3]))[:, None])
            weights = np.where(in_zone & (names == PALETTE.index("white")),
                               weights * BIB_ZONE_WHITE_WEIGHT, weights)
        votes = np.bincount(names.ravel(), weights=weights.ravel(), minlength=len(PALETTE))
        total = votes.sum()
        if total <= 0:
            return None
        best = int(votes.argmax())
        return RegionColour(PALETTE[best], round(float(votes[best] / total), 3))


def _light(hsv: np.ndarray, bib) -> _Light:
    """The runner's light, told by their bib's paper: it hangs in the same light as the
    shirt, so a white shirt in the shade, as bright as its bib, is still white, and a grey
    one beside white paper is grey. Never darkened, brightened at most MAX_GAIN times."""
    x1, y1, x2, y2 = _clip(bib, hsv.shape)
    if x2 - x1 < 3 or y2 - y1 < 3:
        return _Light()
    paper = float(np.percentile(hsv[y1:y2, x1:x2, 2], REFERENCE_PERCENTILE)) / 255.0
    return _Light(float(min(MAX_GAIN, max(1.0, REFERENCE_WHITE / max(paper, 1e-3)))),
                  WHITE_VALUE_BESIDE_BIB)


def _kept(colour: RegionColour | None) -> RegionColour | None:
    return colour if colour is not None and colour.confidence >= MIN_CONFIDENCE else None


def _skin_colour(lab: np.ndarray, face) -> np.ndarray | None:
    """The median Lab colour of the middle of the face (cheeks, nose): the runner's skin."""
    x1, y1, x2, y2 = (float(value) for value in face[:4])
    w, h = x2 - x1, y2 - y1
    cx1, cy1, cx2, cy2 = _clip((x1 + 0.25 * w, y1 + 0.35 * h, x2 - 0.25 * w, y2 - 0.2 * h),
                               lab.shape)
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return None
    return np.median(lab[cy1:cy2, cx1:cx2].reshape(-1, 3), axis=0).astype(np.float32)


def _grown(box, share: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(value) for value in box[:4])
    dx, dy = (x2 - x1) * share, (y2 - y1) * share
    return x1 - dx, y1 - dy, x2 + dx, y2 + dy


def _clip(box, shape) -> tuple[int, int, int, int]:
    height, width = shape[:2]
    x1, y1, x2, y2 = box
    return (int(max(0, min(width, x1))), int(max(0, min(height, y1))),
            int(max(0, min(width, x2))), int(max(0, min(height, y2))))


def _centre_inside(box, region) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= x <= region[2] and region[1] <= y <= region[3]
