"""An organiser at a laptop imports the finish mat's timing results with bad rows, reads the
report, then accepts and rejects the suggestions the timing makes, by keyboard, in the
review queue. The timing pages are also looked at on a phone. Screenshots go to
SCREENSHOT_DIR (/work/notes/shots/ in the team's runs) when it is set."""

import datetime as dt
import io
import os
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.models import StartListEntry, TimingResult
from events.tests.factories import EventFactory
from photos.derivatives import make_derivatives
from photos.models import BibTag, Face, Photo, RejectedReading
from tests.browser.signing import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SHOTS = os.environ.get("SCREENSHOT_DIR", "")
# 10:01:00 in Paris on race day (summer time).
FINISH = dt.datetime(2026, 5, 10, 8, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # Sign-in attempts and import previews live in the cache: this test's own.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "browser-timing"}}


def tab(browser, viewport):
    return browser.new_context(viewport=viewport).new_page()


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"timing-{name}.png"), full_page=True)


@pytest.fixture
def event():
    event = EventFactory(name="Corrida de Noël", slug="corrida-noel", date=FINISH.date(),
                         time_zone="Europe/Paris")
    StartListEntry.objects.bulk_create([
        StartListEntry(event=event, bib=bib, first_name=name, last_name="Martin")
        for bib, name in (("101", "Léa"), ("102", "Hugo"), ("103", "Inès"), ("104", "Noé"))])
    return event


@pytest.fixture
def organiser(event):
    user = UserFactory(username="olivia", role=User.Role.ORGANISER)
    event.organisers.add(user)
    return user


def finish_photo(event, photographer, seconds: float, seed: int) -> Photo:
    """A drawn runner without a readable bib, ``seconds`` after 10:01:00, with a face found."""
    image = Image.new("RGB", (900, 600), (70, 110 + seed * 30, 80))
    draw = ImageDraw.Draw(image)
    draw.ellipse((400, 60, 500, 180), fill=(224, 180, 150))
    draw.rectangle((360, 190, 540, 560), fill=(160, 40, 40))
    data = io.BytesIO()
    image.save(data, "JPEG", quality=90)
    photo = Photo.objects.create(
        event=event, photographer=photographer, content_hash=f"{seed:064d}",
        original=ContentFile(data.getvalue(), name=f"f{seed}.jpg"),
        original_name=f"IMG_{seed:04d}.JPG", state=Photo.State.READY,
        captured_at=FINISH + dt.timedelta(seconds=seconds))
    make_derivatives(photo)
    Face.objects.create(photo=photo, event=event, box=[400, 60, 500, 180], score=0.99)
    photo.refresh_from_db()
    return photo


def test_an_organiser_imports_timing_results_and_accepts_the_suggestions(
        live_server, browser, event, organiser, tmp_path):
    paula = UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)
    pack = finish_photo(event, paula, 1, seed=1)  # 101 and 102 cross 2 s apart
    alone = finish_photo(event, paula, 120, seed=2)  # 103 alone
    export = tmp_path / "chrono.csv"
    export.write_bytes(("Dossard;Nom;Heure de passage\n"
                        "101;Léa;10:01:00\n"
                        "102;Hugo;10:01:02\n"
                        "103;Inès;10:03:00,4\n"
                        "102;Hugo;10:09:00\n"
                        "999;Inconnu;10:04:00\n"
                        "104;Noé;pas une heure\n").encode("cp1252"))
    desk = tab(browser, LAPTOP)
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/change/")
    desk.get_by_role("link", name="Chronométrage").first.click()
    shot(desk, "empty-desktop")
    desk.set_input_files("#timing-file", str(export))
    expect(desk.locator("#timing-point")).to_have_value("Arrivée")
    desk.get_by_role("button", name="Vérifier le fichier").click()

    report = desk.locator(".import-report")
    expect(desk.get_by_role("heading", name="Aperçu : rien n’est encore écrit")).to_be_visible()
    expect(report).to_contain_text("Le dossard 102 figure déjà ligne 3 pour Arrivée.")
    expect(report).to_contain_text("Dossard 999 inconnu : absent de la liste des inscrits.")
    expect(report).to_contain_text("« pas une heure » n’est pas une heure")
    expect(desk.locator(".import-preview")).to_contain_text("Lu en Windows-1252")
    expect(desk.locator(".import-preview")).to_contain_text("lues en Europe/Paris")
    assert not TimingResult.objects.exists()
    shot(desk, "import-preview-desktop")

    desk.get_by_role("button", name="Importer les lignes valides").click()

    messages = desk.locator(".messagelist")
    expect(messages).to_contain_text("3 nouveaux")
    expect(messages).to_contain_text("3 lignes écartées")
    expect(messages).to_contain_text("1 photographe placé à Arrivée")
    expect(messages).to_contain_text("Chronométrage : 1 photo taguée, 2 suggestions à vérifier.")
    assert BibTag.objects.get(photo=alone).source == BibTag.Source.TIMING
    shot(desk, "page-desktop")

    # The lone runner's timing tag waits in the review queue; the pack's two in suggestions.
    desk.get_by_role("link", name="File de vérification").first.click()
    expect(desk.locator(".review-item")).to_have_count(1)
    expect(desk.locator(".review-item")).to_contain_text("le seul coureur devant le photographe")
    desk.get_by_role("link", name=re.compile("2 suggestions du chronométrage")).click()

    items = desk.locator(".review-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_be_focused()
    expect(items.nth(0)).to_contain_text("Passé à Arrivée à 10:01:00")
    expect(items.nth(0).locator(".timing-evidence")).to_contain_text("Léa Martin")
    shot(desk, "suggestions-desktop")

    # The same pages on a phone: nothing wider than the screen.
    phone = tab(browser, PHONE)
    sign_in(phone, live_server, organiser)
    phone.goto(f"{live_server.url}/admin/events/event/{event.pk}/review/suggestions/")
    expect(phone.locator(".review-item")).to_have_count(2)
    shot(phone, "suggestions-phone")
    widths = [phone.evaluate("document.documentElement.scrollWidth")]
    phone.goto(f"{live_server.url}/admin/events/event/{event.pk}/timing/")
    expect(phone.locator(".placement-card")).to_contain_text("paula")
    widths.append(phone.evaluate("document.documentElement.scrollWidth"))
    shot(phone, "page-phone")
    phone.set_input_files("#timing-file", str(export))
    phone.get_by_role("button", name="Vérifier le fichier").click()
    expect(phone.locator(".import-report")).to_be_visible()
    widths.append(phone.evaluate("document.documentElement.scrollWidth"))
    shot(phone, "import-preview-phone")
    assert max(widths) <= PHONE["width"], widths

    desk.keyboard.press("y")
    expect(items.nth(0).locator("[data-decision]")).to_have_text("Accepté")
    expect(items.nth(1)).to_be_focused()
    desk.keyboard.press("n")
    expect(items.nth(1).locator("[data-decision]")).to_have_text("Rejeté")
    expect(desk.locator("[data-status]")).to_contain_text("ne reviendra pas")
    shot(desk, "suggestions-decided-desktop")

    assert BibTag.objects.get(photo=pack).bib == "101"
    assert BibTag.objects.get(photo=pack).source == BibTag.Source.MANUAL
    assert list(RejectedReading.objects.values_list("photo_id", "bib")) == [(pack.pk, "102")]
