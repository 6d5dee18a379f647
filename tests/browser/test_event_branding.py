"""A branded event page on a phone and a laptop: the organiser's colour stays readable, the
logo and the highlights show without pushing the search off a phone's first screen, the
language switch keeps the runner's search; the organiser's page lists the club's events.
Screenshots go to SCREENSHOT_DIR when it is set."""

import io
import os
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image
from playwright.sync_api import expect

from events.models import Organisation
from events.tests.factories import EventFactory
from photos.derivatives import make_derivatives
from photos.models import Face, Photo
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("SCREENSHOT_DIR", "")
LAPTOP = {"width": 1366, "height": 900}

CONTRAST = """(element) => {
  const rgb = (text) => text.match(/\\d+/g).slice(0, 3).map(Number).map((v) => {
    v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  const luminance = (text) => { const [r, g, b] = rgb(text); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const style = getComputedStyle(element);
  const [a, b] = [luminance(style.color), luminance(style.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def picture(seed: int) -> bytes:
    image = Image.new("RGB", (900, 600), ((seed * 71) % 256, (seed * 37) % 256, 150))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def logo() -> bytes:
    image = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    image.paste((200, 30, 40, 255), (20, 20, 140, 140))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def event():
    club = Organisation.objects.create(name="Vélo Club Jaune", slug="vc-jaune",
                                       description="Nous organisons des courses depuis 1990.")
    event = EventFactory(name="Fête du Trail", name_en="Trail Festival", slug="fete-trail",
                         location="Annecy", accent_colour="#ffdd00", organisation=club,
                         logo=ContentFile(logo(), name="club.png"),
                         face_search_policy="Nous effaçons les visages un an après la course.")
    EventFactory(name="Ronde d'hiver", slug="ronde", organisation=club)
    for seed in range(8):
        photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                             original=ContentFile(picture(seed), name=f"{seed}.jpg"))
        make_derivatives(photo)
        if seed % 2:
            Face.objects.create(photo=photo, event=event, box=[10, 10, 60, 60], score=0.9)
    return event


def test_a_branded_event_page_reads_well_on_a_phone(live_server, page, event):
    page.goto(f"{live_server.url}/fr/events/fete-trail/")

    band = page.locator(".event-header-branded")
    expect(band).to_be_visible()
    assert band.evaluate(CONTRAST) >= 4.5
    assert page.locator("main a").first.evaluate(
        "(a) => getComputedStyle(a).color") != "rgb(255, 221, 0)"  # darkened for text on white
    expect(page.locator(".event-logo")).to_be_visible()
    expect(page.locator(".event-organiser a")).to_have_text("Vélo Club Jaune")
    highlights = page.locator(".featured-strip li")
    expect(highlights).to_have_count(4)  # the four photos with a face
    # One swipeable row: the search stays near the top of a phone's screen.
    strip = page.locator(".featured-strip").bounding_box()
    assert strip["height"] < 200
    expect(page.locator(".face-search-policy")).to_contain_text("un an après la course")
    page.evaluate("Promise.all([...document.images].map(img => img.decode().catch(() => null)))")
    shot(page, "event-branded-phone")

    page.goto(f"{live_server.url}/fr/events/fete-trail/?bib=1234")
    page.get_by_role("link", name="EN", exact=True).click()
    page.wait_for_url(re.compile(r"/en/events/fete-trail/\?bib=1234$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Trail Festival")


def test_a_branded_event_page_and_the_organisers_page_on_a_laptop(live_server, browser, event):
    context = browser.new_context(viewport=LAPTOP)
    desk = context.new_page()
    desk.goto(f"{live_server.url}/en/events/fete-trail/")
    desk.evaluate("Promise.all([...document.images].map(img => img.decode().catch(() => null)))")
    expect(desk.locator(".featured-strip li").first).to_be_visible()
    shot(desk, "event-branded-laptop")

    desk.locator(".event-organiser a").click()
    desk.wait_for_url(re.compile(r"/en/organisers/vc-jaune/$"))
    expect(desk.locator(".event-card")).to_have_count(2)
    shot(desk, "organiser-laptop")
    desk.goto(f"{live_server.url}/fr/?q=annecy")
    expect(desk.locator("#found .event-card")).to_have_count(1)
    shot(desk, "home-search-laptop")
    context.close()


def test_the_organisers_page_on_a_phone(live_server, page, event):
    page.goto(f"{live_server.url}/fr/organisers/vc-jaune/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vélo Club Jaune")
    expect(page.locator(".event-card")).to_have_count(2)
    shot(page, "organiser-phone")


def test_the_home_search_finds_an_event_without_its_accents(live_server, page, event):
    page.goto(f"{live_server.url}/fr/")
    page.fill("#event-q", "fete")
    page.locator("form.event-search button[type=submit]").click()

    expect(page.locator("#found .event-card")).to_have_count(1)
    expect(page.locator("#found .event-card")).to_contain_text("Fête du Trail")
    shot(page, "home-search-phone")
    page.get_by_role("link", name="EN", exact=True).click()
    page.wait_for_url(re.compile(r"/en/\?q=fete(&date=)?$"))
    expect(page.locator("#found .event-card")).to_contain_text("Trail Festival")
