"""The public pages pass axe-core's automated accessibility check, in French and English,
on a phone: no serious or critical violation. axe-core comes from npm (package.json,
`make browser-deps`); it is injected by the browser driver, never served by the site.

The run also saves phone-sized screenshots of the home and event pages into test-results/.
"""

import datetime
import io
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from events.models import Event, Organisation
from events.tests.factories import EventFactory, RaceFactory, StartListEntryFactory
from photos.derivatives import make_derivatives
from photos.models import BibTag, Photo
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
RESULTS = ROOT / "test-results"
BLOCKING = ("serious", "critical")
START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 30))


def logo_png() -> bytes:
    image = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    image.paste((20, 90, 170, 255), (10, 10, 110, 110))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def ready_photo(event, seed, minute) -> Photo:
    image = Image.new("RGB", (600, 400), ((seed * 53) % 256, (seed * 97) % 256, 140))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=None, height=None,
                         original=ContentFile(buffer.getvalue(), name=f"{seed}.jpg"),
                         captured_at=START + datetime.timedelta(minutes=minute))
    make_derivatives(photo)
    return photo


@pytest.fixture
def site(own_cache):
    today = timezone.localdate()
    club = Organisation.objects.create(name="Lyon Athlé", slug="lyon-athle",
                                       description="Club de course à pied depuis 1972.")
    # A light accent (the site darkens it for text) and a logo: the branded event page.
    event = EventFactory(name="Semi-marathon de Lyon", name_en="Lyon Half Marathon",
                         slug="semi-lyon", location="Lyon", date=START.date(),
                         face_search=Event.FaceSearch.ON, accent_colour="#ffcc00",
                         organisation=club, logo=ContentFile(logo_png(), name="club.png"),
                         face_search_policy="Les visages sont effacés six mois après la course.",
                         description="Départ place Bellecour, arrivée au parc de la Tête d'Or.")
    RaceFactory(event=event, name="Semi-marathon", distance_km=21.1)
    StartListEntryFactory(event=event, bib="1234", first_name="Marie", last_name="Durand")
    photos = [ready_photo(event, seed, seed) for seed in range(6)]
    Photo.objects.filter(pk__in=[photos[1].pk, photos[4].pk]).update(featured=True)
    BibTag.objects.create(photo=photos[2], bib="1234", source=BibTag.Source.OCR, confidence=0.9,
                          confirmed=True)
    EventFactory(name="Trail des Monts d'Or", slug="trail", location="Saint-Didier",
                 date=today + datetime.timedelta(days=20))
    return event, photos


@pytest.fixture
def checked_page(page):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make browser-deps` (npm ci) first.")
    # An init script is injected by the browser driver: the site's CSP, which allows only its
    # own scripts, does not apply to it, and no page of the site ever loads axe itself.
    page.add_init_script(path=str(AXE))
    return page


def violations(page) -> list[str]:
    found = page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ['violations']});
      return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(v['targets'])}"
            for v in found if v["impact"] in BLOCKING]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_public_pages_have_no_serious_accessibility_violation(live_server, checked_page, site,
                                                                 language):
    page = checked_page
    _event, photos = site
    paths = {
        "home": f"/{language}/",
        "home-search": f"/{language}/?q=lyon",
        "event": f"/{language}/events/semi-lyon/",
        "bib-results": f"/{language}/events/semi-lyon/?bib=1234",
        "bib-empty": f"/{language}/events/semi-lyon/?bib=999",
        "by-time": f"/{language}/events/semi-lyon/by-time/?at=09:45",
        "photo": f"/{language}/events/semi-lyon/photos/{photos[2].pk}/?bib=1234",
        "sign-in": f"/{language}/accounts/login/",
        "organiser": f"/{language}/organisers/lyon-athle/",
        "not-found": f"/{language}/events/no-such-race/",
    }
    RESULTS.mkdir(exist_ok=True)
    failures = {}
    for name, path in paths.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == (404 if name == "not-found" else 200), path
        assert page.locator("html").get_attribute("lang") == language
        page.evaluate("Promise.all([...document.images].map(img => img.decode().catch(() => null)))")
        if name in ("home", "event", "organiser"):
            page.screenshot(path=str(RESULTS / f"{name}-phone-{language}.png"), full_page=True)
        if found := violations(page):
            failures[path] = found

    # The lightbox, open over the event page.
    page.goto(f"{live_server.url}/{language}/events/semi-lyon/")
    page.locator("#results a.photo-link").first.click()
    expect(page.locator("#lightbox")).to_be_visible()
    if found := violations(page):
        failures["lightbox"] = found

    assert failures == {}
    # The checker itself works: an image without alt text on this page is caught.
    page.evaluate("document.querySelector('main').append(Object.assign(new Image(), {src: '/x.png'}))")
    page.keyboard.press("Escape")
    assert any("image-alt" in found for found in violations(page))
