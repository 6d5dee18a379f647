"""What a newcomer sees after `make run`: the demo race, processed, and bib search working on it.

A few of the demo's drawn photos go through the real pipeline (ingestion, derivatives,
MTCNN + SFace, EasyOCR, face linking), then a phone opens the event page and searches a
bib. The screenshots are saved in test-results/ for a person to look at.
"""

from pathlib import Path

import pytest

from events.demo import loader, scenes
from events.services import DEMO_EVENT_SLUG, load_demo_event
from mlpipeline import loaded
from mlpipeline.bibrules import forget_event_rules

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "test-results"
# Runner 102 read in two photos and hidden in a third (only face linking finds it there).
DEMO_PHOTOS = tuple(scenes.PHOTOS[number - 1] for number in (1, 13, 23))


@pytest.fixture
def processed_demo(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights here: that step is "unavailable"
    loaded.forget()
    forget_event_rules()
    event = load_demo_event().event
    added = loader.load_demo_photos(event, photos=DEMO_PHOTOS).added
    loader.process_here(event, [photo.pk for photo in added])
    yield event
    loaded.forget()


def test_a_runner_finds_their_demo_photos_by_bib_on_a_phone(processed_demo, live_server, page):
    SHOTS.mkdir(exist_ok=True)

    page.goto(f"{live_server.url}/fr/events/{DEMO_EVENT_SLUG}/")
    page.screenshot(path=str(SHOTS / "demo-event-phone.png"), full_page=True)
    page.get_by_label("Votre numéro de dossard").fill("102")
    page.get_by_role("button", name="Chercher", exact=True).click()

    page.wait_for_selector("text=Dossard 102")
    assert "Lucas B." in page.inner_text("main")  # the start list's name, first name + initial
    tiles = page.locator("#results img[src*='/media/thumbnails/']")  # not the highlights strip
    assert tiles.count() == 3
    for index in range(3):  # every thumbnail really arrives, none is a broken image
        tiles.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=tiles.nth(index).element_handle())
    assert "Dossard reporté par le visage" in page.inner_text("main")  # the hidden-bib photo
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "demo-bib-search-phone.png"), full_page=True)
