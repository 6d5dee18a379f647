"""First impressions on a phone and a laptop: pages fit the screen, errors read as errors,
the 404 speaks French under /fr/, the upload page has words for the device in hand."""

import re
import zipfile

import pytest
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory, RaceFactory, StartListEntryFactory
from photos.tests.images import image_bytes
from tests.browser.signing import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE, LAPTOP = {"width": 390, "height": 844}, {"width": 1366, "height": 768}


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # Sign-in attempts are counted in the cache: start from zero.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "browser-looks"}}


def scroll_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_admin_event_page_fits_a_phone_and_a_laptop_in_french(live_server, page):
    event = EventFactory(name="Semi-marathon de Villeurbanne", slug="semi-villeurbanne")
    for name in ("5 km", "10 km", "Semi-marathon"):
        RaceFactory(event=event, name=name)
    for bib in range(1, 60):
        StartListEntryFactory(event=event, bib=str(bib), first_name="Marie-Charlotte",
                              last_name="de La Tour-Saint-Ygest")
    event.organisers.add(UserFactory(username="olivia", role=User.Role.ORGANISER))
    event.photographers.add(UserFactory(username="paul", role=User.Role.PHOTOGRAPHER))
    admin = UserFactory(username="ada", is_superuser=True)
    sign_in(page, live_server, admin)

    for viewport in (PHONE, LAPTOP):
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}/admin/events/event/{event.pk}/change/")

        assert page.locator("html").get_attribute("lang") == "fr"
        expect(page.locator("#id_bib_max_length")).to_be_visible()
        expect(page.locator("#id_watermark_text")).to_be_visible()
        assert scroll_width(page) <= viewport["width"], viewport


def test_a_wrong_password_shows_as_an_alert_on_a_phone(live_server, page):
    page.goto(f"{live_server.url}/fr/accounts/login/")
    page.fill("#id_login", "camille@example.org")
    page.fill("#id_password", "pas le bon mot de passe")

    page.locator("main form button[type=submit]").click()

    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("incorrect")
    box = alert.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert alert.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"  # --danger
    # The inputs are a finger's size, labelled above, without a placeholder to cut off.
    login = page.locator("#id_login")
    assert login.bounding_box()["height"] >= 44
    assert login.get_attribute("placeholder") is None
    expect(page.get_by_label("Mot de passe", exact=True)).to_be_visible()
    assert scroll_width(page) <= PHONE["width"]


def test_a_missing_page_answers_in_french_under_fr(live_server, page):
    response = page.goto(f"{live_server.url}/fr/events/pas-de-course-ici/")

    assert response.status == 404
    assert page.locator("html").get_attribute("lang") == "fr"
    expect(page.locator("h1")).to_have_text("Page introuvable")
    expect(page.locator(".site-header .brand")).to_be_visible()
    page.get_by_role("link", name="Voir tous les événements").click()
    page.wait_for_url(re.compile(r"/fr/$"))
    assert scroll_width(page) <= PHONE["width"]


@pytest.fixture
def photographer():
    event = EventFactory(name="Semi de Lyon", slug="semi-lyon")
    user = UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(user)
    return user


def test_the_upload_page_speaks_to_a_mouse_and_to_a_finger(live_server, browser, photographer):
    for touch in (False, True):
        context = browser.new_context(viewport=PHONE if touch else LAPTOP, has_touch=touch,
                                      is_mobile=touch)
        page = context.new_page()
        sign_in(page, live_server, photographer)
        page.goto(f"{live_server.url}/fr/staff/events/semi-lyon/upload/")

        pointer_words = page.get_by_text("ou cliquez sur le bouton pour les choisir")
        touch_words = page.get_by_text("Envoyez des photos ou des fichiers ZIP")
        expect(touch_words if touch else pointer_words).to_be_visible()
        expect(pointer_words if touch else touch_words).to_be_hidden()
        expect(page.locator("label.file-button")).to_have_text("Choisir des photos")
        context.close()


def test_the_file_button_takes_the_keyboard_focus(live_server, page, photographer):
    sign_in(page, live_server, photographer)
    page.goto(f"{live_server.url}/fr/staff/events/semi-lyon/upload/")

    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "upload-input":
            break
    else:
        pytest.fail("the file input cannot be reached with the keyboard")

    ring = page.locator("label.file-button").evaluate("e => getComputedStyle(e).outlineStyle")
    assert ring == "solid"


def test_the_upload_summary_counts_files_and_zip_entries_apart(live_server, page,
                                                               photographer, tmp_path):
    archive = tmp_path / "arrivee.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for seed in (1, 2):
            zipped.writestr(f"IMG_{seed:04d}.jpg", image_bytes("JPEG", size=(64, 48), seed=seed))
        zipped.writestr("notes.jpg", b"pas une image")
    single = tmp_path / "IMG_0003.jpg"
    single.write_bytes(image_bytes("JPEG", size=(64, 48), seed=3))
    sign_in(page, live_server, photographer)
    page.goto(f"{live_server.url}/fr/staff/events/semi-lyon/upload/")

    page.set_input_files("#upload-input", [archive, single])

    summary = page.locator("#overall-summary")
    expect(summary).to_have_text(
        "2 sur 2 fichiers envoyés (1 archive ZIP, 4 photos)\u00a0: 3 acceptées, 1 refusée.",
        timeout=20_000)
    zip_row = page.locator("#upload-list > li", has_text="arrivee.zip")
    expect(zip_row.locator(".upload-status")).to_have_text("2 acceptées, 1 refusée")
    expect(zip_row.locator("ul li")).to_contain_text("notes.jpg\u00a0: ")
