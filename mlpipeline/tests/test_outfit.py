"""The offline outfit model: colours named on drawn runners (known colours, a known face
box), on the demo's runners found by the real face detector, and the pipeline step."""

import io

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from events.demo import scenes
from events.tests.factories import EventFactory
from mlpipeline import loaded
from mlpipeline.inference.outfit import PALETTE, OutfitReader, name_colours
from photos import pipeline
from photos.models import BibTag, Face, Outfit, Photo, PhotoStep
from photos.tests.factories import PhotoFactory, make_photo

RGB = {"white": (238, 238, 232), "black": (24, 24, 28), "grey": (128, 128, 130),
       "red": (200, 30, 40), "orange": (240, 125, 25), "yellow": (245, 210, 40),
       "green": (30, 140, 60), "blue": (40, 90, 210), "navy": (20, 30, 90),
       "purple": (120, 50, 160), "pink": (240, 120, 180), "brown": (110, 65, 30)}
SKIN = (226, 180, 150)


def runner(shirt, shorts, cap=None, background=(120, 170, 225), bib=True, face=80):
    """A drawn runner, as the demo draws them, on a plain background: the image and the
    face box a detector would give (x1, y1, x2, y2). Colours by palette name or RGB."""
    image = Image.new("RGB", (600, 800), background)
    draw = ImageDraw.Draw(image)
    w, h = face * 0.8, face
    x1, y1 = 300 - w / 2, 120
    chin = y1 + h
    draw.rectangle((x1 - 0.2 * w, chin + 2.0 * h, x1 + 1.2 * w, 800), fill=SKIN)  # legs
    draw.rectangle((x1 - 0.6 * w, chin + 1.95 * h, x1 + 1.6 * w, chin + 3.1 * h),
                   fill=RGB.get(shorts, shorts))
    draw.rectangle((x1 - 0.65 * w, chin + 0.1 * h, x1 + 1.65 * w, chin + 2.0 * h),
                   fill=RGB.get(shirt, shirt))
    # An arm across the shirt, in skin: it must not make the shirt skin-coloured.
    draw.line((x1 - 0.6 * w, chin + 1.0 * h, x1 + 0.5 * w, chin + 1.6 * h), fill=SKIN, width=14)
    if bib:
        draw.rectangle((x1 - 0.1 * w, chin + 0.8 * h, x1 + 1.1 * w, chin + 1.8 * h),
                       fill=(250, 250, 248))
        draw.text((x1 + 0.1 * w, chin + 1.1 * h), "1234", fill=(10, 10, 10))
    draw.ellipse((x1, y1 - 0.1 * h, x1 + w, chin), fill=SKIN)  # the face
    draw.ellipse((x1 + 0.2 * w, y1 + 0.35 * h, x1 + 0.35 * w, y1 + 0.45 * h), fill=(40, 30, 30))
    draw.ellipse((x1 + 0.65 * w, y1 + 0.35 * h, x1 + 0.8 * w, y1 + 0.45 * h), fill=(40, 30, 30))
    if cap:
        draw.chord((x1 - 0.05 * w, y1 - 0.55 * h, x1 + 1.05 * w, y1 + 0.3 * h), 180, 360,
                   fill=RGB[cap])
    return image, (x1, y1, x1 + w, chin)


@pytest.fixture(scope="module")
def reader():
    return OutfitReader().ensure_loaded()


@pytest.mark.parametrize("colour", PALETTE)
def test_every_palette_colour_is_named_as_itself(colour):
    hsv = cv2.cvtColor(np.full((4, 4, 3), RGB[colour], dtype=np.uint8), cv2.COLOR_RGB2HSV)
    assert {PALETTE[index] for index in name_colours(hsv).ravel()} == {colour}


# Close pairs a runner tells apart: navy from blue, grey from white, red from orange and
# pink. Web and kit colours, not the palette's own.
@pytest.mark.parametrize(("rgb", "colour"), [
    ((0, 0, 128), "navy"), ((20, 30, 90), "navy"), ((31, 42, 68), "navy"), ((0, 32, 96), "navy"),
    ((65, 105, 225), "blue"), ((40, 90, 210), "blue"), ((30, 144, 255), "blue"),
    ((0, 120, 200), "blue"), ((135, 206, 235), "blue"), ((70, 130, 180), "blue"),
    ((105, 105, 105), "grey"), ((128, 128, 128), "grey"), ((120, 125, 130), "grey"),
    ((210, 212, 215), "white"), ((245, 245, 245), "white"), ((255, 255, 255), "white"),
    ((214, 39, 40), "red"), ((220, 20, 60), "red"), ((178, 34, 34), "red"),
    ((255, 140, 0), "orange"), ((250, 110, 40), "orange"), ((255, 127, 80), "orange"),
    ((255, 105, 180), "pink"), ((240, 120, 180), "pink"), ((255, 182, 193), "pink"),
    ((219, 112, 147), "pink"),
])
def test_close_colours_are_told_apart(rgb, colour):
    hsv = cv2.cvtColor(np.full((4, 4, 3), rgb, dtype=np.uint8), cv2.COLOR_RGB2HSV)
    assert {PALETTE[index] for index in name_colours(hsv).ravel()} == {colour}


@pytest.mark.parametrize(("shirt", "colour"), [
    ((0, 0, 128), "navy"), ((25, 35, 70), "navy"), ((65, 105, 225), "blue"),
    ((30, 110, 200), "blue"), ((150, 150, 155), "grey"), ((225, 228, 230), "white"),
    ((220, 20, 60), "red"), ((250, 110, 40), "orange"), ((240, 120, 180), "pink"),
])
def test_a_drawn_runners_shirt_of_a_close_colour_is_named_right(reader, shirt, colour):
    image, face = runner(shirt, "black", background=(60, 120, 50))
    x1, y1, x2, chin = face
    w, h = x2 - x1, chin - y1
    bib = (x1 - 0.1 * w, chin + 0.8 * h, x1 + 1.1 * w, chin + 1.8 * h)

    [outfit] = reader(image, [face], [bib])

    assert outfit.shirt.colour == colour


def test_in_the_shade_a_white_shirt_is_still_white_beside_its_bib_and_a_grey_one_grey(reader):
    for shirt, colour in (("white", "white"), ((150, 150, 155), "grey")):
        image, face = runner(shirt, "black", background=(60, 120, 50))
        x1, y1, x2, chin = face
        w, h = x2 - x1, chin - y1
        bib = (x1 - 0.1 * w, chin + 0.8 * h, x1 + 1.1 * w, chin + 1.8 * h)
        shaded = Image.fromarray((np.asarray(image, dtype=np.float32) * 0.62).astype(np.uint8))

        [outfit] = reader(shaded, [face], [bib])

        assert outfit.shirt.colour == colour, shirt


@pytest.mark.parametrize(("shirt", "shorts", "cap"), [
    ("red", "black", "white"), ("blue", "white", None), ("yellow", "navy", "red"),
    ("green", "black", None), ("orange", "blue", "black"), ("purple", "grey", None),
    ("pink", "black", "yellow"), ("black", "red", None), ("navy", "black", None),
])
def test_it_names_a_drawn_runners_cap_shirt_and_shorts(reader, shirt, shorts, cap):
    image, face = runner(shirt, shorts, cap)

    [outfit] = reader(image, [face])

    assert outfit.shirt.colour == shirt and outfit.legs.colour == shorts
    assert (outfit.cap.colour if outfit.cap else None) == cap
    assert 0.3 <= outfit.shirt.confidence <= 1


def test_a_white_shirt_is_white_despite_the_white_bib_and_a_grey_one_grey(reader):
    for shirt in ("white", "grey"):
        image, face = runner(shirt, "black", background=(60, 120, 50))
        [outfit] = reader(image, [face])
        assert outfit.shirt.colour == shirt


def test_the_bib_read_is_masked_out_of_a_coloured_shirt(reader):
    image, face = runner("red", "black", background=(60, 120, 50))
    x1, y1, x2, chin = face
    w, h = x2 - x1, chin - y1
    bib = (x1 - 0.1 * w, chin + 0.8 * h, x1 + 1.1 * w, chin + 1.8 * h)

    [unknown] = reader(image, [face])
    [masked] = reader(image, [face], [bib])

    assert unknown.shirt.colour == masked.shirt.colour == "red"
    assert masked.shirt.confidence > unknown.shirt.confidence


def test_the_sky_behind_a_bare_head_is_no_blue_cap(reader):
    image, face = runner("red", "black", cap=None, background=(40, 90, 210))
    [outfit] = reader(image, [face])
    assert outfit.cap is None and outfit.shirt.colour == "red"


def test_a_face_too_small_or_off_the_photo_gives_what_can_be_seen(reader):
    image, face = runner("green", "black")
    tiny = (10, 10, 18, 19)
    low = (250, 760, 314, 840)  # chin below the frame: no shirt to see

    small, bottom = reader(image, [tiny, low])

    assert small is None
    assert bottom is not None and bottom.shirt is None and bottom.legs is None


# --- The demo's runners, found by the real face detector -----------------------------------

def test_it_names_the_demo_runners_shirts_as_the_demo_drew_them(reader):
    detector = loaded.face_detector()
    checked = 0
    for photo in scenes.PHOTOS[12:18]:  # pairs of runners side by side
        image = scenes.render(photo)
        faces = sorted(detector(image), key=lambda face: face.box[0])
        appearances = sorted(photo.runners, key=lambda appearance: appearance.x)
        assert len(faces) == len(appearances)
        for appearance, outfit in zip(appearances, reader(image, [face.box for face in faces])):
            drawn = scenes.RUNNER_BY_BIB[appearance.bib]
            assert outfit.shirt.colour == drawn.shirt, (photo.name, drawn)
            checked += 1
    assert checked == 12


# --- The pipeline step -------------------------------------------------------------------

def demo_photo(event, number=2) -> Photo:
    """The demo's photo ``number`` (one runner: red shirt, black shorts, white cap)."""
    return make_photo(event, scenes.jpeg_bytes(scenes.PHOTOS[number - 1]),
                      name=f"demo-{number}.jpg")


@pytest.mark.django_db
def test_the_step_stores_each_runners_colours_and_running_it_again_changes_nothing(settings,
                                                                                  tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP: the outfit step does not need it
    photo = demo_photo(EventFactory())

    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    [face] = Face.objects.filter(photo=photo)
    [outfit] = Outfit.objects.filter(photo=photo)
    assert (outfit.face, outfit.event_id, outfit.shirt, outfit.cap) == (face, photo.event_id,
                                                                        "red", "white")
    assert outfit.model == OutfitReader.signature
    assert PhotoStep.objects.get(photo=photo, step="outfit").status == PhotoStep.Status.DONE
    assert pipeline.run_step(photo.pk, "outfit") == pipeline.StepOutcome.SKIPPED

    # Redone (a new version of the model): replaced, not added to.
    assert pipeline.redo(Photo.objects.filter(pk=photo.pk), "outfit") == 1
    assert pipeline.photos_needing_work(Photo.objects.filter(pk=photo.pk)) == [photo.pk]
    photo.refresh_from_db()
    assert photo.state == Photo.State.OCR
    assert pipeline.process_photo(photo.pk) == Photo.State.READY
    [again] = Outfit.objects.filter(photo=photo)
    assert again.pk != outfit.pk and (again.shirt, again.cap) == ("red", "white")
    # The faces found again (a new face model) take their outfits with them, and get new ones.
    pipeline.redo(Photo.objects.filter(pk=photo.pk), "faces")
    pipeline.process_photo(pipeline.photos_needing_work(Photo.objects.filter(pk=photo.pk))[0])
    assert Outfit.objects.filter(photo=photo).count() == 1
    assert Outfit.objects.get(photo=photo).face_id == Face.objects.get(photo=photo).pk


@pytest.mark.django_db
def test_photos_processed_before_the_step_existed_get_their_outfits(settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    image, face = runner("blue", "black")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    event = EventFactory()
    photo = PhotoFactory(event=event, state=Photo.State.READY,
                         original=ContentFile(buffer.getvalue(), name="old.jpg"))
    for step in ("derivatives", "faces", "ocr", "clip"):
        PhotoStep.objects.create(photo=photo, step=step, status=PhotoStep.Status.DONE)
    Face.objects.create(photo=photo, event=event, box=list(face), score=0.99)
    BibTag.objects.create(photo=photo, bib="1234", source=BibTag.Source.OCR, confidence=0.9,
                          confirmed=True)

    assert pipeline.photos_needing_work(Photo.objects.filter(event=event)) == [photo.pk]
    assert pipeline.process_photo(photo.pk) == Photo.State.READY

    assert list(Outfit.objects.filter(photo=photo).values_list("shirt", "legs")) == [
        ("blue", "black")]
