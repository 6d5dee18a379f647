"""The lightbox on a phone and by keyboard: a tile opens its photo over the page, ←/→ and
swipes go through the grid (and past its "more" link), Esc closes and gives the focus back;
without JavaScript the tile is still a link to the photo's page, which ←/→ also browse."""

import datetime
import io
import os
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from events.tests.factories import EventFactory
from photos.derivatives import make_derivatives
from photos.models import BibTag, Photo
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 30))
# Set to a folder to keep screenshots of the lightbox and the timeline (phone and desktop).
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


def shot(page, name, full_page=False):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"lightbox-{name}.png"), full_page=full_page)


def ready_photo(event, seed, minute) -> Photo:
    """A small made-up photo through the real derivative step (watermarked preview, thumbnail)."""
    image = Image.new("RGB", (600, 400), ((seed * 53) % 256, (seed * 97) % 256, 140))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                         original=ContentFile(buffer.getvalue(), name=f"{seed}.jpg"),
                         captured_at=START + datetime.timedelta(minutes=minute))
    make_derivatives(photo)
    return photo


@pytest.fixture
def event_with_photos():
    event = EventFactory(name="Semi de Lyon", slug="semi-lyon", date=START.date())
    # Newest first in the gallery: photos[0] is the newest. 26 = one page (24) and two more.
    photos = [ready_photo(event, seed, 100 - seed) for seed in range(26)]
    BibTag.objects.create(photo=photos[1], bib="1234", source=BibTag.Source.OCR, confidence=0.9,
                          confirmed=True)
    return event, photos


def src_of(page) -> str:
    return page.locator("#lightbox .lightbox-image").get_attribute("src")


def test_a_runner_browses_the_gallery_in_the_lightbox_by_keyboard_and_swipe(
        live_server, page, event_with_photos):
    event, photos = event_with_photos
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(f"{live_server.url}/fr/events/semi-lyon/")
    tiles = page.locator("#results a.photo-link")
    expect(tiles).to_have_count(24)
    lightbox = page.locator("#lightbox")
    expect(lightbox).to_be_hidden()

    tiles.nth(0).focus()
    page.keyboard.press("Enter")

    expect(lightbox).to_be_visible()
    assert page.url.endswith("/fr/events/semi-lyon/")  # over the page, not a new one
    assert src_of(page) == photos[0].preview.url
    expect(lightbox.get_by_role("link", name="Ouvrir la page de la photo (pour la partager)")
           ).to_have_attribute("href", f"/fr/events/semi-lyon/photos/{photos[0].pk}/")
    expect(lightbox.get_by_role("button", name="Photo précédente")).to_be_disabled()
    page.wait_for_function("() => document.querySelector('#lightbox img').naturalWidth > 0")
    # The neighbour is asked for before the runner gets there.
    page.wait_for_function(f"""() => performance.getEntriesByType('resource')
                                .some(e => e.name.endsWith('{photos[1].preview.url}'))""")

    page.keyboard.press("ArrowRight")
    assert src_of(page) == photos[1].preview.url
    expect(lightbox.locator("[data-lightbox-bibs]")).to_have_text("Dossards sur cette photo : 1234")
    page.wait_for_function("() => document.querySelector('#lightbox img').naturalWidth > 0")
    shot(page, "phone")
    if SHOTS:
        page.set_viewport_size({"width": 1280, "height": 800})
        shot(page, "desktop")
        page.set_viewport_size({"width": 390, "height": 844})
    page.keyboard.press("ArrowLeft")
    assert src_of(page) == photos[0].preview.url
    expect(lightbox.locator("[data-lightbox-bibs]")).to_be_hidden()

    # The focus stays inside: however many tabs, it never reaches the page below.
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('lightbox').contains(document.activeElement)")

    # A swipe to the left is the next photo.
    page.evaluate("""() => {
      const figure = document.querySelector('#lightbox .lightbox-figure');
      const at = (type, x) => figure.dispatchEvent(new PointerEvent(type,
        {bubbles: true, pointerType: 'touch', clientX: x, clientY: 300}));
      at('pointerdown', 300); at('pointerup', 120);
    }""")
    assert src_of(page) == photos[1].preview.url

    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    # Back on the tile of the photo last seen, where the runner left off. The dialog's
    # "close" event (which moves the focus there) comes a moment after it is hidden.
    page.wait_for_function("suffix => String(document.activeElement.href).endsWith(suffix)",
                           arg=f"/photos/{photos[1].pk}/")
    assert page.url.endswith("/fr/events/semi-lyon/")

    # At the end of what is loaded, "next" fetches the grid's next page in place.
    tiles.nth(23).click()
    expect(lightbox).to_be_visible()
    page.keyboard.press("ArrowRight")
    expect(tiles).to_have_count(26)
    page.wait_for_function(
        f"() => document.querySelector('#lightbox img').getAttribute('src') === '{photos[24].preview.url}'")
    # The phone's back button closes the lightbox and stays on the page.
    page.go_back()
    expect(lightbox).to_be_hidden()
    assert page.url.endswith("/fr/events/semi-lyon/")

    # The shareable page, and back from it to the gallery in one step.
    tiles.nth(1).click()
    lightbox.get_by_role("link", name="Ouvrir la page de la photo (pour la partager)").click()
    page.wait_for_url(re.compile(rf"/fr/events/semi-lyon/photos/{photos[1].pk}/$"))
    page.go_back()
    page.wait_for_url(re.compile(r"/fr/events/semi-lyon/$"))
    assert page.evaluate("() => history.state") is None  # not the lightbox's own entry
    assert errors == []


def test_the_photo_page_browses_by_keyboard(live_server, page, event_with_photos):
    _event, photos = event_with_photos

    page.goto(f"{live_server.url}/en/events/semi-lyon/photos/{photos[1].pk}/")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(rf"/photos/{photos[2].pk}/$"))
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(re.compile(rf"/photos/{photos[1].pk}/$"))


def test_without_javascript_a_tile_opens_the_photo_page(live_server, browser, event_with_photos):
    _event, photos = event_with_photos
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/en/events/semi-lyon/")
        page.locator("#results a.photo-link").first.click()
        page.wait_for_url(re.compile(rf"/en/events/semi-lyon/photos/{photos[0].pk}/$"))
        expect(page.locator(".photo-large img")).to_be_visible()
    finally:
        context.close()


def test_the_whole_event_by_time_jumps_to_a_quarter_hour(live_server, page, event_with_photos):
    _event, photos = event_with_photos  # 10:45 (seed 25) to 11:10 (seed 0)

    page.goto(f"{live_server.url}/en/events/semi-lyon/")
    page.get_by_role("link", name="Bib not found? Browse the whole event by time").click()
    page.get_by_label("Jump to").select_option("11:00")
    page.get_by_role("button", name="Show").click()

    page.wait_for_url(re.compile(r"/en/events/semi-lyon/by-time/\?at=11%3A00#results$"))
    first = page.locator("#results a.photo-link").first
    shot(page, "by-time-phone", full_page=True)
    # Seed n was taken 100 - n minutes after 09:30: 11:00 is seed 10.
    expect(first).to_have_attribute("href", f"/en/events/semi-lyon/photos/{photos[10].pk}/?from=by-time")
    first.click()
    expect(page.locator("#lightbox")).to_be_visible()
    page.keyboard.press("ArrowRight")  # oldest first: the next one is later in the day
    assert src_of(page) == photos[9].preview.url
