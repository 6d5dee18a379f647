"""A runner on a phone finds all their photos: the bib, the same face where the number is
hidden, then their selfie sent with the bib (a real face: scikit-image's astronaut)."""

import datetime
import os
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image, ImageOps
from playwright.sync_api import expect
from skimage import data as skimage_data

from events.models import Event
from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import indexes, loaded
from photos.derivatives import make_derivatives
from photos.models import BibTag, Face, Photo
from photos.tests.factories import PhotoFactory
from photos.tests.images import encoded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 30))
ASTRONAUT = Image.fromarray(skimage_data.astronaut())
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture(autouse=True)
def _fresh_throttle(own_cache):
    """Selfie searches are throttled per address in the cache: this test starts from zero."""



def race_photo(event, seed, minute, runner=False, cluster=None) -> Photo:
    size = (1200, 800)
    image = Image.merge("RGB", (Image.linear_gradient("L").rotate(90).resize(size),
                                Image.radial_gradient("L").resize(size),
                                Image.new("L", size, 90 + (seed * 53) % 140)))
    if runner:
        image.paste(ASTRONAUT.crop((120, 0, 330, 260)).resize((300, 370)), (200 + seed * 60, 150))
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                         original=ContentFile(encoded(image), name=f"{seed}.jpg"),
                         captured_at=START + datetime.timedelta(minutes=minute))
    make_derivatives(photo)
    if runner:
        detector, embedder = loaded.face_detector(), loaded.face_embedder()
        found = detector(image)
        for face, vector in zip(found, embedder(image, found)):
            Face.objects.create(photo=photo, event=event, box=list(face.box), score=face.score,
                                embedding=vector.tolist(), model=embedder.signature,
                                cluster=cluster)
    return photo


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"allphotos-{name}.png"), full_page=True)


def test_a_bib_search_finds_the_hidden_number_photos_and_combines_with_a_selfie(
        live_server, page, tmp_path):
    event = EventFactory(name="Semi de Lyon", slug="semi-lyon", face_search=Event.FaceSearch.ON)
    StartListEntryFactory(event=event, bib="1234", first_name="Marie", last_name="Durand")
    # The runner read on one photo, the same face (one cluster) with the number hidden on
    # another, and a third photo of the face that linking left out of the cluster.
    read, hidden = (race_photo(event, seed, minute, runner=True, cluster=7)
                    for seed, minute in ((1, 10), (2, 20)))
    faced = race_photo(event, 3, 30, runner=True)
    race_photo(event, 4, 40)
    first_face = read.faces.get()
    Face.objects.filter(pk=first_face.pk).update(bib="1234")
    BibTag.objects.create(photo=read, bib="1234", source=BibTag.Source.OCR, confidence=0.93,
                          confirmed=True, face=first_face)
    indexes.sync(event.pk, indexes.FACES)
    errors = []
    page.on("pageerror", lambda error: errors.append(error))

    page.goto(f"{live_server.url}/fr/events/semi-lyon/?bib=1234#results")
    tiles = page.locator("#results .photo-tile")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0).locator(".reason")).to_have_text("Dossard lu sur la photo")
    expect(tiles.nth(1).locator(".reason")).to_have_text("Même visage, dossard caché")
    shot(page, "bib-phone")

    selfie = tmp_path / "selfie.jpg"
    selfie.write_bytes(encoded(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300))))
    expect(page.get_by_text("Votre selfie est cherché avec le dossard 1234.")).to_be_visible()
    page.locator("#selfie-file").set_input_files(str(selfie))
    page.get_by_role("button", name="Chercher avec mon selfie").click()

    page.wait_for_url(re.compile(r"/fr/events/semi-lyon/selfie/$"))
    expect(page.locator("#results h2")).to_have_text("Dossard 1234 — Marie D., et votre selfie")
    found = page.locator("#results .photo-tile")
    expect(found).to_have_count(3)
    assert [found.nth(i).locator("a").get_attribute("href").split("/")[-2]
            for i in range(3)] == [str(read.pk), str(hidden.pk), str(faced.pk)]
    expect(found.nth(0).locator(".reason").first).to_have_text("Dossard lu sur la photo")
    expect(found.nth(2).locator(".reason")).to_have_text("Visage semblable à votre selfie")
    shot(page, "combined-phone")
    assert errors == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    if SHOTS:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/en/events/semi-lyon/?bib=1234#results")
        shot(page, "bib-desktop")
