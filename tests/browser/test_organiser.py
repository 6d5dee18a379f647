"""An organiser at a laptop in the admin: imports a start list with bad rows and reads the
report, confirms and rejects readings in the review queue by keyboard, bulk-tags photos in
the grid. Screenshots go to /work/notes/shots/ (SCREENSHOT_DIR) when it is set or exists."""

import io
import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.models import StartListEntry
from events.tests.factories import EventFactory, RaceFactory
from photos.derivatives import _watermark_font_path, make_derivatives
from photos.models import BibTag, Photo, RejectedReading, TagChange
from tests.browser.signing import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 900}
SHOTS = os.environ.get("SCREENSHOT_DIR", "")


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # Sign-in attempts and import previews live in the cache: this test's own.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "browser-organiser"}}


@pytest.fixture
def desk(browser):
    context = browser.new_context(viewport=LAPTOP)
    tab = context.new_page()
    yield tab
    context.close()


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"organiser-{name}.png"), full_page=True)


@pytest.fixture
def event():
    event = EventFactory(name="Corrida de Noël", slug="corrida-noel")
    RaceFactory(event=event, name="10 km")
    return event


@pytest.fixture
def organiser(event):
    user = UserFactory(username="olivia", role=User.Role.ORGANISER)
    event.organisers.add(user)
    return user


def runner_photo(event, bib: str, seed: int) -> Photo:
    """A drawn runner: a head over a white bib with ``bib`` on it; box as the reader gives it."""
    image = Image.new("RGB", (900, 600), (60 + seed * 20 % 120, 110, 70))
    draw = ImageDraw.Draw(image)
    draw.ellipse((400, 60, 500, 180), fill=(224, 180, 150))
    draw.rectangle((360, 190, 540, 560), fill=(30, 60, 160))
    draw.rectangle((380, 260, 520, 350), fill="white")
    font = ImageFont.truetype(str(_watermark_font_path()), 60)
    draw.text((392, 270), bib, fill="black", font=font)
    data = io.BytesIO()
    image.save(data, "JPEG", quality=90)
    photo = Photo.objects.create(event=event, content_hash=f"{seed:064d}",
                                 original=ContentFile(data.getvalue(), name=f"r{seed}.jpg"),
                                 original_name=f"IMG_{seed:04d}.JPG", state=Photo.State.READY)
    make_derivatives(photo)
    photo.refresh_from_db()
    return photo


def test_an_organiser_imports_a_start_list_with_bad_rows_and_reads_the_report(
        live_server, desk, event, organiser, tmp_path):
    export = tmp_path / "inscrits.csv"
    export.write_bytes(("Dossard;Prénom;Nom;Course;E-mail\n"
                        "101;Léa;Dupré;10 km;lea@example.org\n"
                        "101;Léo;Double;10 km;\n"
                        ";Sans;Dossard;10 km;\n"
                        "0102;Max;Zéro;Marathon;\n"
                        "103;Nina;Mail;10 km;pas-une-adresse\n").encode("cp1252"))
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/change/")
    desk.get_by_role("link", name="Importer une liste des inscrits").first.click()
    desk.set_input_files("#start-list-file", str(export))
    desk.get_by_role("button", name="Vérifier le fichier").click()

    report = desk.locator(".import-report")
    expect(desk.get_by_role("heading", name="Aperçu : rien n’est encore écrit")).to_be_visible()
    expect(report).to_contain_text("Le dossard 101 figure déjà ligne 2.")
    expect(report).to_contain_text("Pas de dossard.")
    expect(report).to_contain_text("Course « Marathon » inconnue")
    expect(report).to_contain_text("« pas-une-adresse » n’est pas une adresse e-mail")
    expect(desk.locator(".import-preview")).to_contain_text("Lu en Windows-1252")
    assert not StartListEntry.objects.exists()
    shot(desk, "import-preview")

    desk.get_by_role("button", name="Importer les lignes valides").click()

    expect(desk.locator(".messagelist")).to_contain_text("2 nouveaux")
    assert sorted(StartListEntry.objects.values_list("bib", "last_name")) == [
        ("101", "Dupré"), ("103", "Mail")]
    shot(desk, "import-done")


def test_an_organiser_confirms_and_rejects_in_the_review_queue_by_keyboard(
        live_server, desk, event, organiser):
    StartListEntry.objects.create(event=event, bib="418")
    readings = []
    for seed, bib in enumerate(("417", "418", "9")):
        photo = runner_photo(event, bib, seed)
        # The box in the original's pixels, where the drawn bib is.
        readings.append(BibTag.objects.create(
            photo=photo, bib=bib, confidence=0.42, source=BibTag.Source.OCR,
            confirmed=bib == "418", box=[380, 260, 520, 350]))
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/review/")
    items = desk.locator(".review-item")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_be_focused()
    expect(items.nth(0).locator(".review-crop img")).to_be_visible()
    shot(desk, "review-queue")

    desk.keyboard.press("y")  # the first one is right
    expect(items.nth(0).locator("[data-decision]")).to_have_text("Confirmé")
    expect(items.nth(1)).to_be_focused()
    desk.keyboard.press("n")  # the second one is not
    expect(items.nth(1).locator("[data-decision]")).to_have_text("Rejeté")
    expect(desk.locator("[data-status]")).to_contain_text("ne reviendra pas")
    desk.keyboard.press("u")  # changed my mind about the second
    expect(items.nth(1).locator("[data-decision]")).to_have_text("")
    desk.keyboard.press("ArrowDown")
    expect(items.nth(2)).to_be_focused()
    desk.keyboard.press("n")
    expect(items.nth(2).locator("[data-decision]")).to_have_text("Rejeté")
    shot(desk, "review-decided")

    # The queue shows readings off the start list first, then the unsure one.
    off_list, listed_unsure, off_list_too = readings
    assert BibTag.objects.get(pk=off_list.pk).source == BibTag.Source.MANUAL
    assert BibTag.objects.filter(pk=off_list_too.pk, source=BibTag.Source.OCR).exists()  # undone
    assert not BibTag.objects.filter(pk=listed_unsure.pk).exists()
    assert list(RejectedReading.objects.values_list("bib", flat=True)) == ["418"]


def test_an_organiser_bulk_tags_photos_in_the_grid(live_server, desk, event, organiser):
    photos = [runner_photo(event, bib, seed) for seed, bib in enumerate(("", "", "", "55"))]
    BibTag.objects.create(photo=photos[3], bib="55", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True)
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/tagging/")
    cards = desk.locator(".photo-card")
    expect(cards).to_have_count(4)
    expect(cards.nth(0)).to_be_focused()
    desk.keyboard.press("Space")
    desk.keyboard.press("ArrowRight")
    desk.keyboard.press("Space")
    expect(desk.locator("[data-selected-count]")).to_have_text("Photos sélectionnées : 2")
    desk.keyboard.type("1234")
    expect(desk.locator("#bib-input")).to_have_value("1234")
    desk.keyboard.press("Enter")

    expect(desk.locator("[data-status]")).to_have_text("Dossard 1234 ajouté à 2 photos.")
    expect(cards.nth(0).locator(".tag-chip")).to_contain_text("1234")
    expect(cards.nth(1).locator(".tag-chip")).to_contain_text("à la main")
    shot(desk, "grid-tagged")

    cards.nth(3).focus()
    desk.keyboard.press("u")
    expect(desk.locator("[data-status]")).to_have_text("Dernière modification annulée sur 2 photos.")
    expect(cards.nth(0).locator(".tag-none")).to_be_visible()

    desk.keyboard.press("Escape")  # clears the selection
    expect(desk.locator("[data-selected-count]")).to_have_text("")
    desk.keyboard.type("55")
    desk.keyboard.press("Shift+Enter")  # nothing selected: the photo in focus
    expect(desk.locator("[data-status]")).to_contain_text("Dossard 55 retiré de 1 photo.")
    shot(desk, "grid-removed")

    assert not BibTag.objects.filter(bib__in=["1234", "55"]).exists()
    assert RejectedReading.objects.filter(photo=photos[3], bib="55").exists()
    assert list(TagChange.objects.order_by("pk").values_list("action", flat=True)) == [
        "add", "add", "undo", "undo", "remove"]


def test_an_organiser_reads_the_tagging_report(live_server, desk, event, organiser):
    photos = [runner_photo(event, bib, seed) for seed, bib in enumerate(("7", "", ""))]
    BibTag.objects.create(photo=photos[0], bib="7", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True)
    BibTag.objects.create(photo=photos[1], bib="8", confidence=0.4, source=BibTag.Source.OCR,
                          confirmed=False)
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/report/")

    coverage = desk.locator(".report-table").first
    expect(coverage.locator("tr", has_text="Avec un dossard qu’un coureur trouve")).to_contain_text(
        "33,3 %")
    expect(coverage.locator("tr", has_text="Dossards à vérifier")).to_contain_text("1")
    shot(desk, "report")


def test_an_organiser_sees_a_corrected_reading_in_the_queue_and_pages_on(
        live_server, desk, event, organiser, monkeypatch):
    from photos import workspace

    monkeypatch.setattr(workspace, "QUEUE_PAGE_SIZE", 2)
    StartListEntry.objects.create(event=event, bib="4025")
    photos = [runner_photo(event, bib, seed) for seed, bib in enumerate(("3025", "71", "72"))]
    corrected = BibTag.objects.create(photo=photos[0], bib="4025", read_as="3025",
                                      confidence=0.3, source=BibTag.Source.OCR,
                                      box=[380, 260, 520, 350])
    for photo, bib in zip(photos[1:], ("71", "72"), strict=True):
        BibTag.objects.create(photo=photo, bib=bib, confidence=0.5, source=BibTag.Source.OCR,
                              box=[380, 260, 520, 350])
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/review/")
    items = desk.locator(".review-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Lu 3025, corrigé en 4025")
    shot(desk, "review-corrected")
    desk.keyboard.press("y")
    expect(items.nth(0).locator("[data-decision]")).to_have_text("Confirmé")

    desk.get_by_role("link", name="Étiquettes suivantes à vérifier").click()
    expect(desk.locator(".review-item")).to_have_count(1)
    expect(desk.locator(".review-item")).to_contain_text("72")
    assert BibTag.objects.get(pk=corrected.pk).confirmed


def test_an_organiser_sets_up_the_events_branding_and_features_a_photo(
        live_server, desk, event, organiser, tmp_path):
    photo = runner_photo(event, "12", 1)
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (120, 80), (20, 90, 170, 255)).save(logo)
    sign_in(desk, live_server, organiser)

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/change/")
    desk.fill("#id_accent_colour", "#FFDD00")
    desk.set_input_files("#id_logo", str(logo))
    desk.fill("#id_face_search_policy", "Les visages sont effacés un an après la course.")
    desk.locator("input[name=_continue]").click()

    expect(desk.locator(".messagelist")).to_be_visible()
    expect(desk.locator(".field-accent_preview")).to_contain_text("Trop clair")
    shot(desk, "event-branding")
    event.refresh_from_db()
    assert event.accent_colour == "#ffdd00" and event.logo

    desk.goto(f"{live_server.url}/admin/events/event/{event.pk}/tagging/")
    desk.locator(".photo-card").first.locator("[data-select]").check()
    desk.get_by_role("button", name="Mettre à la une de la page de l’événement").click()
    expect(desk.locator(".featured-badge")).to_have_count(1)
    desk.fill("input[name=taken_from]", "2026-09-14T10:00")
    shot(desk, "grid-featured")
    assert Photo.objects.get(pk=photo.pk).featured


def test_the_admin_home_shows_model_status_beside_recent_actions_not_under_them(live_server, desk):
    admin = UserFactory(username="ada", role=User.Role.ADMIN, is_staff=True)
    sign_in(desk, live_server, admin)
    desk.goto(f"{live_server.url}/admin/")
    link = desk.get_by_role("link", name="État des modèles")
    expect(link).to_be_visible()
    recent = desk.locator("#recent-actions-module").bounding_box()
    box = link.bounding_box()
    overlaps = not (box["x"] + box["width"] <= recent["x"] or recent["x"] + recent["width"] <= box["x"]
                    or box["y"] + box["height"] <= recent["y"] or recent["y"] + recent["height"] <= box["y"])
    assert not overlaps, (box, recent)
    # Every model of the payment history has a French name in the list.
    expect(desk.locator("#content-main")).to_contain_text("Changements d’état de paiement")
    shot(desk, "admin-home")
