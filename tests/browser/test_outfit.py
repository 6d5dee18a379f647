"""A runner on a phone finds their photos by what they wore, in French and in English, on
the demo's drawn race photos: real face detection, the real outfit model, the real page."""

import datetime
import io
import os
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import expect

from events.demo import scenes
from events.tests.factories import EventFactory
from mlpipeline import loaded, steps
from photos.derivatives import make_derivatives
from photos.models import Face, Outfit, Photo
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = timezone.make_aware(datetime.datetime(2025, 10, 12, 9, 20))
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture(autouse=True)
def _colours_only(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights: the offline colours answer


def demo_photo(event, number) -> Photo:
    """The demo's photo ``number``, ready, its faces found and its outfits read."""
    image = scenes.render(scenes.PHOTOS[number - 1])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                         original=ContentFile(buffer.getvalue(), name=f"demo-{number}.jpg"),
                         captured_at=START + datetime.timedelta(minutes=number))
    make_derivatives(photo)
    for face in loaded.face_detector()(image):
        Face.objects.create(photo=photo, event=event, box=list(face.box), score=face.score)
    steps.read_outfits(photo)
    return photo


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"outfit-{name}.png"), full_page=True)


def test_a_runner_finds_their_photos_by_outfit_in_french_and_in_english(live_server, page):
    event = EventFactory(name="Foulées de Lyon", slug="foulees")
    red_white_cap = demo_photo(event, 2)  # bib 103: red shirt, black shorts, white cap
    blue_black = demo_photo(event, 1)  # bib 102: blue shirt, black shorts
    blue_white = demo_photo(event, 5)  # bib 107: blue shirt, white shorts
    assert Outfit.objects.filter(event=event).count() == 3
    errors = []
    page.on("pageerror", lambda error: errors.append(error))

    page.goto(f"{live_server.url}/fr/events/foulees/")
    page.get_by_label("Votre tenue").fill("maillot rouge casquette blanche")
    page.get_by_role("button", name="Chercher", exact=True).click()

    page.wait_for_url(re.compile(r"/fr/events/foulees/\?.*outfit=maillot\+rouge\+casquette\+"
                                 r"blanche.*#results$"))
    expect(page.locator("#results h2")).to_have_text("Tenue «\u00a0maillot rouge casquette "
                                                     "blanche\u00a0»")
    tiles = page.locator("#results .photo-tile")
    expect(tiles).to_have_count(1)
    expect(tiles.first.locator(".reason")).to_have_text(["maillot rouge", "casquette blanche"])
    assert f"/photos/{red_white_cap.pk}/" in tiles.first.locator("a").get_attribute("href")
    shot(page, "fr-phone")

    page.goto(f"{live_server.url}/en/events/foulees/")
    page.get_by_label("What you wore").fill("blue shirt")
    page.get_by_role("button", name="Search", exact=True).click()

    page.wait_for_url(re.compile(r"/en/events/foulees/\?.*outfit=blue\+shirt.*#results$"))
    expect(tiles).to_have_count(2)
    # The photo pages follow the search (?from=...): compare the photos, not the query.
    hrefs = {tiles.nth(i).locator("a").get_attribute("href").split("?")[0] for i in range(2)}
    assert hrefs == {f"/en/events/foulees/photos/{photo.pk}/" for photo in (blue_black, blue_white)}
    expect(tiles.nth(0).locator(".reason")).to_have_text("blue shirt")
    shot(page, "en-phone")

    page.get_by_label("What you wore").fill("polka dots")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results [role=alert]")).to_contain_text("Not understood: “polka”, “dots”.")
    page.set_viewport_size({"width": 1280, "height": 900})
    shot(page, "error-desktop")
    assert not errors
