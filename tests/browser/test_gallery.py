"""A runner on a phone finds their photos: bib search on the event page, the photo's own
page, then a selfie (a real face: scikit-image's public-domain astronaut) from a file."""

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
# Set to a folder to keep screenshots of each step (phone, and desktop at the end).
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture(autouse=True)
def _fresh_throttle(own_cache):
    """Selfie searches are throttled per address in the cache: this test starts from zero.
    The thumbnails are served by the site's own /media/ (SERVE_MEDIA, on in tests)."""



def scene(seed, runner=False, size=(1800, 1200)) -> Image.Image:
    """A made-up race photo: a sky-to-road gradient, and the astronaut's head where asked."""
    picture = Image.merge("RGB", (Image.linear_gradient("L").rotate(90).resize(size),
                                  Image.radial_gradient("L").resize(size),
                                  Image.new("L", size, 90 + (seed * 53) % 140)))
    if runner:
        head = ASTRONAUT.crop((120, 0, 330, 260)).resize((420, 520))
        picture.paste(head, (300 + seed * 90, 250))
    return picture


def ready_photo(event, seed, minute, runner=False, size=(1800, 1200)) -> Photo:
    """A photo through the real derivative step (watermarked preview and thumbnail)."""
    image = scene(seed, runner, size)
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                         original=ContentFile(encoded(image), name=f"{seed}.jpg"),
                         captured_at=START + datetime.timedelta(minutes=minute))
    make_derivatives(photo)
    if runner:
        detector, embedder = loaded.face_detector(), loaded.face_embedder()
        found = detector(image)
        for face, vector in zip(found, embedder(image, found)):
            Face.objects.create(photo=photo, event=event, box=list(face.box), score=face.score,
                                embedding=vector.tolist(), model=embedder.signature, bib="1234")
    return photo


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"gallery-{name}.png"), full_page=True)


def image_loaded(locator) -> bool:
    return locator.evaluate("img => img.complete && img.naturalWidth > 0")


def test_a_runner_finds_their_photos_by_bib_and_by_selfie_on_a_phone(live_server, page, tmp_path):
    event = EventFactory(name="Semi de Lyon", slug="semi-lyon", face_search=Event.FaceSearch.ON)
    StartListEntryFactory(event=event, bib="1234", first_name="Marie", last_name="Durand")
    mine = [ready_photo(event, seed, minute, runner=True) for seed, minute in ((1, 12), (2, 40))]
    # More than a gallery page (24), small to be quick to make.
    others = [ready_photo(event, seed, seed, size=(600, 400)) for seed in range(3, 29)]
    BibTag.objects.create(photo=mine[0], bib="1234", source=BibTag.Source.OCR, confidence=0.93,
                          confirmed=True)
    BibTag.objects.create(photo=mine[1], bib="1234", source=BibTag.Source.FACE_LINK,
                          confidence=0.71, confirmed=True)
    indexes.sync(event.pk, indexes.FACES)
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))

    page.goto(f"{live_server.url}/fr/events/semi-lyon/")
    grid = page.locator("#results .photo-tile img")
    expect(grid).to_have_count(24)
    assert image_loaded(grid.first)
    shot(page, "event-phone")
    page.get_by_role("link", name="Plus de photos").click()  # htmx: the next page, in place
    expect(grid).to_have_count(len(mine) + len(others))
    expect(page.get_by_role("link", name="Plus de photos")).to_have_count(0)
    assert page.url.endswith("/fr/events/semi-lyon/")

    page.get_by_label("Votre numéro de dossard").fill("1234")
    page.get_by_role("button", name="Chercher", exact=True).click()

    # The panel's outfit field is sent too, empty (search/outfit.py).
    page.wait_for_url(re.compile(r"/fr/events/semi-lyon/\?bib=1234&outfit=#results$"))
    expect(page.locator("#results h2")).to_have_text("Dossard 1234 — Marie D.")
    tiles = page.locator("#results .photo-tile")
    expect(tiles).to_have_count(2)
    expect(tiles.nth(0).locator(".reason")).to_have_text("Dossard lu sur la photo")
    expect(tiles.nth(1).locator(".reason")).to_have_text("Dossard reporté par le visage")
    tiles.nth(0).locator("img").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#results .photo-tile img').naturalWidth > 0")
    shot(page, "bib-results-phone")

    tiles.nth(0).locator("a").click()  # the lightbox (tests/browser/test_lightbox.py), then its page
    page.locator("#lightbox").get_by_role(
        "link", name="Ouvrir la page de la photo (pour la partager)").click()

    page.wait_for_url(re.compile(rf"/fr/events/semi-lyon/photos/{mine[0].pk}/\?bib=1234$"))
    large = page.locator(".photo-large img")
    expect(large).to_be_visible()
    page.wait_for_function("() => document.querySelector('.photo-large img').naturalWidth > 0")
    assert "/media/previews/" in large.get_attribute("src")
    assert page.locator("meta[property='og:image']").get_attribute("content").endswith(
        large.get_attribute("src"))
    expect(page.locator(".photo-nav [rel=next]")).to_have_attribute(
        "href", f"/fr/events/semi-lyon/photos/{mine[1].pk}/?bib=1234")
    shot(page, "photo-phone")

    page.locator(".photo-nav [rel=next]").click()
    page.wait_for_url(re.compile(rf"/photos/{mine[1].pk}/\?bib=1234$"))

    selfie = tmp_path / "selfie.jpg"
    selfie.write_bytes(encoded(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300))))
    page.goto(f"{live_server.url}/fr/events/semi-lyon/#search")
    page.locator("#selfie-file").set_input_files(str(selfie))
    page.get_by_role("button", name="Chercher avec mon selfie").click()

    page.wait_for_url(re.compile(r"/fr/events/semi-lyon/selfie/$"))
    found = page.locator("#results .photo-tile")
    expect(found).to_have_count(2)
    expect(found.locator(".reason").first).to_have_text("Visage semblable à votre selfie")
    shot(page, "selfie-results-phone")

    # A selfie with a friend: the largest face is searched first, the runner picks theirs.
    group = Image.new("RGB", (900, 560), (120, 130, 140))
    group.paste(ASTRONAUT.crop((120, 0, 330, 260)).resize((420, 520)), (20, 20))
    group.paste(ImageOps.grayscale(ASTRONAUT).convert("RGB").crop((120, 0, 330, 260))
                .resize((170, 210)), (600, 40))
    selfie.write_bytes(encoded(group))
    page.locator("#selfie-file").set_input_files(str(selfie))
    page.get_by_role("button", name="Chercher avec mon selfie").click()
    page.wait_for_load_state()
    expect(page.locator(".face-choices img")).to_have_count(2)
    expect(page.locator("#face-1")).to_be_visible()
    expect(page.locator("#face-2")).to_be_hidden()
    page.get_by_role("link", name="Visage 2").click()
    expect(page.locator("#face-2")).to_be_visible()
    expect(page.locator("#face-1")).to_be_hidden()
    shot(page, "selfie-picker-phone")
    assert script_errors == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    if SHOTS:  # the same pages on a desktop screen, for a look at the wider layout
        page.set_viewport_size({"width": 1280, "height": 900})
        for name, path in (("event", "/en/events/semi-lyon/"),
                           ("bib-results", "/en/events/semi-lyon/?bib=1234#results"),
                           ("bib-empty", "/en/events/semi-lyon/?bib=999#results"),
                           ("photo", f"/en/events/semi-lyon/photos/{mine[0].pk}/?bib=1234")):
            page.goto(f"{live_server.url}{path}")
            page.evaluate("Promise.all([...document.images].map(img => img.decode()"
                          ".catch(() => null)))")
            shot(page, f"{name}-desktop")
