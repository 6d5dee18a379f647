"""A photographer on a phone signs in, drops a batch of photos on the upload page and
watches them upload and get processed; uploads cut off by the network are sent again."""

import re
import time

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from mlpipeline import worker
from photos import services
from photos.models import Photo
from photos.tests.factories import PhotoFactory
from photos.tests.images import image_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # UserFactory's
FINAL_STATES = ["accepted", "duplicate", "rejected", "failed", "partial"]


@pytest.fixture
def event():
    return EventFactory(name="Semi-marathon de Villeurbanne", slug="semi-villeurbanne")


@pytest.fixture
def photographer(event):
    user = UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(user)
    return user


@pytest.fixture
def eager_tasks(settings):
    # The live server runs in this process, so its requests run the tasks themselves,
    # bib, face and CLIP steps included; the models are loaded first, as a worker
    # does when it starts, so the page's timeouts measure processing, not loading.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    worker.preload()


def photo_bytes(seed) -> bytes:
    return image_bytes("JPEG", size=(160, 120), seed=seed)


def write_photos(folder, seeds, prefix="IMG_") -> list:
    paths = []
    for seed in seeds:
        path = folder / f"{prefix}{seed:04d}.jpg"
        path.write_bytes(photo_bytes(seed))
        paths.append(path)
    return paths


def open_upload_page(page, live_server, event, user):
    """Go to the upload page, get sent to the login page, sign in, land back on it."""
    upload_url = f"{live_server.url}/fr/staff/events/{event.slug}/upload/"
    page.goto(upload_url)
    page.wait_for_url(re.compile(r"/fr/accounts/login/\?next="))
    page.fill("#id_login", user.email)  # runners and staff alike sign in by e-mail
    page.fill("#id_password", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(upload_url)


def wait_for_final_rows(page, count, timeout=20_000):
    page.wait_for_function(
        """([count, finals]) => {
             const rows = [...document.querySelectorAll('#upload-list > li')];
             return rows.length === count
               && rows.every((row) => finals.includes(row.dataset.state));
           }""",
        arg=[count, FINAL_STATES], timeout=timeout)


def upload_messages(page) -> dict[str, str]:
    """The (translated) words the page gave its script."""
    return page.evaluate("JSON.parse(document.getElementById('upload-messages').textContent)")


def rows(page) -> dict[str, tuple[str, str]]:
    """The upload list as {file name: (state, status text)}."""
    return {name: (state, status) for name, state, status in page.eval_on_selector_all(
        "#upload-list > li",
        "rows => rows.map(row => [row.querySelector('.upload-name').textContent,"
        " row.dataset.state, row.querySelector('.upload-status').textContent])")}


@pytest.mark.usefixtures("eager_tasks")
def test_it_uploads_a_batch_and_shows_every_photo_processed(live_server, page, event,
                                                            photographer, tmp_path):
    # Sent yesterday from the laptop; today it is in the phone's batch again, renamed.
    services.ingest_file(event, ContentFile(photo_bytes(100)), name="IMG_0100.jpg",
                         photographer=photographer)
    again = tmp_path / "IMG_0100 (copie).jpg"
    again.write_bytes(photo_bytes(100))
    good = write_photos(tmp_path, range(1, 13))
    bad = tmp_path / "notes-de-course.jpg"
    bad.write_text("Départ 9h30, arrivée parc de la Feyssine.")
    open_upload_page(page, live_server, event, photographer)
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))

    page.set_input_files("#upload-input", [*good, bad, again])

    wait_for_final_rows(page, 14)
    shown = rows(page)
    assert {path.name: shown[path.name][0] for path in good} == {
        path.name: "accepted" for path in good}
    state, status = shown[bad.name]
    assert state == "rejected"
    messages = upload_messages(page)
    said = messages["status_reason"] % {"status": messages["rejected"], "reason": ""}
    assert status.startswith(said) and status[len(said):].strip(), f"no reason: {status!r}"
    state, status = shown[again.name]
    assert state == "duplicate"
    assert "IMG_0100.jpg" in status
    expect(page.locator("#overall-progress")).to_have_js_property("value", 100)
    # The panel polls every 2 s; processing ran as each upload was committed.
    ready = page.locator("#processing tr[data-state=ready] td")
    expect(ready).to_have_text("13", timeout=10_000)
    expect(page.locator("#processing tr[data-state=failed] td")).to_have_text("0")
    assert Photo.objects.filter(event=event, state=Photo.State.READY).count() == 13
    assert set(Photo.objects.filter(event=event).values_list("photographer", flat=True)) == {
        photographer.pk}
    # A phone screen: nothing, not even the long file names, sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert script_errors == []


def test_it_sends_again_an_upload_the_network_cut_off(live_server, page, event, photographer,
                                                      tmp_path):
    files = write_photos(tmp_path, range(1, 4))
    flaky = files[1].name
    attempts = []

    def cut_off_the_first_two_tries(route):
        if f'filename="{flaky}"'.encode() not in (route.request.post_data_buffer or b""):
            route.continue_()
            return
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            route.abort("connectionreset")  # the phone lost its signal
        elif len(attempts) == 2:
            route.fulfill(status=502, body="Bad Gateway")  # the proxy lost the app server
        else:
            route.continue_()

    open_upload_page(page, live_server, event, photographer)
    page.route("**/upload/file/", cut_off_the_first_two_tries)

    page.set_input_files("#upload-input", files)

    wait_for_final_rows(page, 3)
    assert {name: state for name, (state, _status) in rows(page).items()} == {
        path.name: "accepted" for path in files}
    assert len(attempts) == 3
    # It waits a little longer before each new try, so a restarting server is not hammered.
    first_wait, second_wait = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert first_wait >= 0.45, first_wait
    assert second_wait >= 0.95, second_wait
    assert Photo.objects.filter(event=event).count() == 3
    expect(page.locator("#retry-uploads")).to_be_hidden()


def test_it_lets_the_photographer_retry_uploads_that_kept_failing(live_server, page, event,
                                                                  photographer, tmp_path):
    files = write_photos(tmp_path, range(1, 3))
    server_down = True

    def down_for_the_second_file(route):
        if server_down and files[1].name.encode() in (route.request.post_data_buffer or b""):
            route.fulfill(status=503, body="Service Unavailable")
        else:
            route.continue_()

    open_upload_page(page, live_server, event, photographer)
    page.route("**/upload/file/", down_for_the_second_file)

    page.set_input_files("#upload-input", files)

    wait_for_final_rows(page, 2)
    assert {name: state for name, (state, _status) in rows(page).items()} == {
        files[0].name: "accepted", files[1].name: "failed"}
    assert "503" in rows(page)[files[1].name][1]

    server_down = False
    page.locator("#retry-uploads").click()

    expect(page.locator("#upload-list > li").nth(1)).to_have_attribute("data-state", "accepted")
    expect(page.locator("#retry-uploads")).to_be_hidden()
    assert Photo.objects.filter(event=event).count() == 2


def test_it_says_so_when_the_session_ended_during_the_upload(live_server, page, event,
                                                             photographer, tmp_path):
    files = write_photos(tmp_path, range(1, 5))
    open_upload_page(page, live_server, event, photographer)
    # Logged out elsewhere (or the session expired) while the page stayed open.
    page.context.clear_cookies(name="sessionid")

    page.set_input_files("#upload-input", files)

    wait_for_final_rows(page, 4, timeout=10_000)
    shown = rows(page)
    assert {state for state, _status in shown.values()} == {"failed"}
    assert {status for _state, status in shown.values()} == {upload_messages(page)["login"]}
    assert not Photo.objects.exists()


@pytest.mark.usefixtures("eager_tasks")
def test_it_lets_an_organiser_retry_failed_photos_from_the_processing_panel(
        live_server, page, event):
    organiser = UserFactory(username="olivier", role=User.Role.ORGANISER)
    event.organisers.add(organiser)
    # Damaged in a disk incident after it was accepted: processing cannot decode it.
    photo = PhotoFactory(event=event, original_name="IMG_0007.jpg",
                         original=ContentFile(b"\xff\xd8\xff truncated", name="7.jpg"))
    services.enqueue_processing(photo.pk)
    photo.refresh_from_db()
    assert photo.state == Photo.State.FAILED
    open_upload_page(page, live_server, event, organiser)
    expect(page.locator("#processing .failures")).to_contain_text("IMG_0007.jpg")
    # Restored from the camera card; the organiser asks for another go.
    photo.original.storage.delete(photo.original.name)
    photo.original.storage.save(photo.original.name, ContentFile(photo_bytes(7)))

    page.locator("#processing button[hx-post]").click()

    expect(page.locator("#processing tr[data-state=ready] td")).to_have_text("1")
    expect(page.locator("#processing .failures")).to_have_count(0)
    photo.refresh_from_db()
    assert photo.state == Photo.State.READY
