"""The staff upload pages through Django's test client: who may use them, what the
upload endpoint answers for good, repeated, bad and zipped files, the processing panel
and the organisers' retry of failed photos."""

import re

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from photos import services, tasks
from photos.models import Photo, PhotoStep
from photos.tests.factories import PhotoFactory
from photos.tests.images import jpeg, make_zip

pytestmark = pytest.mark.django_db

VIEWS = ["upload", "upload_file", "processing_status", "retry_failed"]


# --- People and helpers -----------------------------------------------------------------


@pytest.fixture
def event():
    return EventFactory(name="Trail des Monts d'Or", slug="trail-monts-d-or")


@pytest.fixture
def eager_tasks(settings):
    """Tasks run in the process that sends them: the real pipeline, no worker needed."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def url(name, slug) -> str:
    # English URLs: the reasons in the answers are then the source strings.
    with translation.override("en"):
        return reverse(f"photos:{name}", kwargs={"slug": slug})


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def upload(client, slug, name, data, **extra):
    return client.post(url("upload_file", slug), {"file": ContentFile(data, name=name)}, **extra)



def state_counts(html: str) -> dict[str, int]:
    """The processing panel's table as {state: count}."""
    rows = re.findall(r'<tr data-state="(\w+)"><th scope="row">[^<]*</th><td>(\d+)</td></tr>', html)
    return {state: int(count) for state, count in rows}


def failed_photo(event, *, original=b"this is not a picture", name="IMG_0666.JPG"):
    """A photo whose derivatives step failed for real: its original cannot be decoded."""
    photo = PhotoFactory(event=event, original=ContentFile(original, name="broken.jpg"),
                         original_name=name)
    services.enqueue_processing(photo.pk)
    photo.refresh_from_db()
    assert photo.state == Photo.State.FAILED
    return photo


def replace_original(photo, data):
    storage, name = photo.original.storage, photo.original.name
    storage.delete(name)
    assert storage.save(name, ContentFile(data)) == name


# --- Permissions ----------------------------------------------------------------------------

ALLOWED = {
    "anonymous": set(),
    "runner": set(),
    "outsider": set(),  # a photographer of another race
    "staff": set(),  # an organiser of another race
    "photographer": {"upload", "upload_file", "processing_status"},
    "owner": set(VIEWS),
    "admin": set(VIEWS),
}


def call(client, view, slug):
    if view == "upload_file":
        return upload(client, slug, "IMG_0001.jpg", jpeg(seed=1))
    if view == "retry_failed":
        return client.post(url(view, slug))
    return client.get(url(view, slug))


@pytest.mark.usefixtures("eager_tasks")
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("who", list(ALLOWED))
def test_it_lets_only_the_events_staff_use_each_upload_view(who, view, event, people):
    broken = failed_photo(event, original=b"damaged")
    replace_original(broken, jpeg(seed=99))  # a retry that really runs makes it ready

    response = call(client_for(people[who]), view, event.slug)

    broken.refresh_from_db()
    allowed = view in ALLOWED[who]
    if allowed:
        assert response.status_code == 200
    elif who == "anonymous":
        assert response.status_code == 302
        with translation.override("en"):
            login = reverse("account_login")
        assert response["Location"].startswith(f"{login}?next=")
    else:
        assert response.status_code == 403
    # A refused request changes nothing.
    uploaded = Photo.objects.filter(original_name="IMG_0001.jpg").exists()
    assert uploaded == (allowed and view == "upload_file")
    retried = broken.state == Photo.State.READY
    assert retried == (allowed and view == "retry_failed")


@pytest.mark.parametrize("view", VIEWS)
def test_it_answers_404_for_an_unknown_event(view, people):
    for who in ("photographer", "admin"):
        response = call(client_for(people[who]), view, "no-such-race")

        assert response.status_code == 404


def test_it_shows_the_upload_page_with_its_endpoint_and_the_processing_panel(event, people):
    response = client_for(people["photographer"]).get(url("upload", event.slug))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-endpoint="{url("upload_file", event.slug)}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert f'hx-get="{url("processing_status", event.slug)}"' in html
    assert 'id="upload-messages"' in html
    assert escape(event.name) in html


def test_it_refuses_anything_but_get_on_the_pages_and_post_on_the_actions(event, people):
    client = client_for(people["owner"])

    assert client.post(url("upload", event.slug)).status_code == 405
    assert client.get(url("upload_file", event.slug)).status_code == 405
    assert client.post(url("processing_status", event.slug)).status_code == 405
    assert client.get(url("retry_failed", event.slug)).status_code == 405


# --- The upload endpoint ------------------------------------------------------------------


@pytest.mark.usefixtures("eager_tasks")
def test_it_accepts_a_jpeg_and_processes_it_once_committed(
        event, people, django_capture_on_commit_callbacks):
    client = client_for(people["photographer"])

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload(client, event.slug, "IMG_0001.jpg", jpeg(seed=1))

    photo = Photo.objects.get(event=event)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"results": [
        {"name": "IMG_0001.jpg", "status": "accepted", "reason": "", "photo": photo.pk}]}
    assert len(callbacks) == 1
    assert photo.photographer == people["photographer"]
    assert photo.original_name == "IMG_0001.jpg"
    assert photo.state == Photo.State.READY
    assert photo.preview and photo.thumbnail
    assert PhotoStep.objects.get(photo=photo).status == PhotoStep.Status.DONE


def test_it_recognises_the_same_file_sent_again_as_a_duplicate(event, people):
    client = client_for(people["photographer"])
    first = upload(client, event.slug, "IMG_0001.jpg", jpeg(seed=1)).json()["results"][0]

    again = upload(client, event.slug, "copy of IMG_0001.jpg", jpeg(seed=1))

    result = again.json()["results"][0]
    assert again.status_code == 200
    assert result["status"] == "duplicate"
    assert result["photo"] == first["photo"]
    assert result["name"] == "copy of IMG_0001.jpg"
    assert "IMG_0001.jpg" in result["reason"]
    assert Photo.objects.filter(event=event).count() == 1


def test_it_rejects_a_text_file_named_like_a_jpeg_with_a_reason(event, people):
    response = upload(client_for(people["photographer"]), event.slug, "IMG_0002.jpg",
                      b"Dear photographer, this is not a photo.\n")

    result = response.json()["results"][0]
    assert response.status_code == 200
    assert result["status"] == "rejected"
    assert result["photo"] is None
    assert result["reason"].strip()
    assert not Photo.objects.exists()


def test_it_gives_one_result_per_file_of_a_zip(event, people):
    archive = make_zip(("day/IMG_0010.jpg", jpeg(seed=10)), ("day/IMG_0011.jpg", jpeg(seed=11)),
                       ("day/readme.txt", b"Photos by Paula"))

    response = upload(client_for(people["photographer"]), event.slug, "day.zip", archive)

    results = {result["name"]: result for result in response.json()["results"]}
    assert response.status_code == 200
    assert {name: result["status"] for name, result in results.items()} == {
        "day/IMG_0010.jpg": "accepted", "day/IMG_0011.jpg": "accepted",
        "day/readme.txt": "rejected"}
    assert results["day/readme.txt"]["reason"].strip()
    assert set(Photo.objects.filter(event=event).values_list("original_name", flat=True)) == {
        "day/IMG_0010.jpg", "day/IMG_0011.jpg"}


def test_it_rejects_a_zip_without_any_photo_instead_of_answering_nothing(event, people):
    archive = make_zip(("__MACOSX/._IMG_0010.jpg", b"resource fork"), (".DS_Store", b"\0\0"))

    response = upload(client_for(people["photographer"]), event.slug, "empty.zip", archive)

    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["name"] == "empty.zip"
    assert result["status"] == "rejected"
    assert "no photo" in result["reason"]
    assert not Photo.objects.exists()


def test_it_answers_a_clear_json_error_when_no_file_is_sent(event, people):
    response = client_for(people["photographer"]).post(
        url("upload_file", event.slug), {"photo": ContentFile(jpeg(), name="IMG_0001.jpg")})

    assert response.status_code == 400
    assert "“file”" in response.json()["error"]
    assert not Photo.objects.exists()


def test_it_enforces_csrf_on_the_upload_endpoint(event, people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["photographer"])

    refused = upload(client, event.slug, "IMG_0001.jpg", jpeg(seed=1))

    assert refused.status_code == 403
    assert not Photo.objects.exists()

    # What the page's script does: the token from the page, sent back in a header.
    page = client.get(url("upload", event.slug))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    accepted = upload(client, event.slug, "IMG_0001.jpg", jpeg(seed=1), HTTP_X_CSRFTOKEN=token)

    assert accepted.status_code == 200
    assert accepted.json()["results"][0]["status"] == "accepted"


# --- Processing panel and retries -------------------------------------------------------


@pytest.mark.usefixtures("eager_tasks")
def test_it_shows_counts_and_failure_reasons_in_the_processing_panel(event, people):
    mine = {"event": event, "photographer": people["photographer"]}
    PhotoFactory.create_batch(2, state=Photo.State.READY, **mine)
    PhotoFactory(state=Photo.State.UPLOADED, **mine)
    broken = failed_photo(event, name="IMG_0666.JPG")
    broken.photographer = people["photographer"]
    broken.save()
    PhotoFactory(state=Photo.State.READY)  # another event's photo is not counted

    response = client_for(people["photographer"]).get(url("processing_status", event.slug))

    html = response.content.decode()
    assert response.status_code == 200
    assert state_counts(html) == {state: 0 for state in Photo.State.values} | {
        "ready": 2, "uploaded": 1, "failed": 1}
    assert "2 of 4 photos ready, 1 in progress, 1 failed." in " ".join(html.split())
    assert broken.failure_reason
    assert f"<strong>IMG_0666.JPG</strong>: {escape(broken.failure_reason)}" in html
    # Only organisers retry: a photographer sees the failure but no button.
    assert url("retry_failed", event.slug) not in html

    as_organiser = client_for(people["owner"]).get(url("processing_status", event.slug))

    assert f'hx-post="{url("retry_failed", event.slug)}"' in as_organiser.content.decode()


@pytest.mark.usefixtures("eager_tasks")
def test_it_counts_only_a_photographers_own_photos_but_the_whole_event_for_organisers(
        event, people):
    colleague = UserFactory(username="claire-colleague", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(colleague)
    PhotoFactory(event=event, photographer=people["photographer"], state=Photo.State.READY)
    theirs = failed_photo(event, name="IMG_THEIRS.JPG")
    theirs.photographer = colleague
    theirs.save()

    as_photographer = client_for(people["photographer"]).get(
        url("processing_status", event.slug)).content.decode()
    as_organiser = client_for(people["owner"]).get(
        url("processing_status", event.slug)).content.decode()

    assert state_counts(as_photographer)["ready"] == 1
    assert state_counts(as_photographer)["failed"] == 0
    assert "IMG_THEIRS.JPG" not in as_photographer
    assert state_counts(as_organiser)["failed"] == 1
    assert "IMG_THEIRS.JPG" in as_organiser


@pytest.mark.usefixtures("eager_tasks")
def test_it_sends_failed_photos_back_for_processing(event, people):
    broken = failed_photo(event, name="IMG_0666.JPG")
    step = PhotoStep.objects.get(photo=broken)
    assert (step.status, step.attempts) == (PhotoStep.Status.FAILED, 1)
    still_broken = failed_photo(event, original=b"still not a picture", name="IMG_0667.JPG")
    ready = PhotoFactory(event=event, with_original=True, state=Photo.State.READY)
    # Someone puts a good original back for the first one; the second stays damaged.
    replace_original(broken, jpeg(seed=42))

    response = client_for(people["owner"]).post(url("retry_failed", event.slug))

    html = response.content.decode()
    assert response.status_code == 200
    assert "2 photos sent back for processing." in html
    broken.refresh_from_db()
    assert broken.state == Photo.State.READY
    assert broken.failure_reason == ""
    assert broken.preview and broken.thumbnail
    step = PhotoStep.objects.get(photo=broken)
    assert (step.status, step.attempts) == (PhotoStep.Status.DONE, 1)
    # The damaged one went through the pipeline again: a new attempt, failed again.
    still_broken.refresh_from_db()
    assert still_broken.state == Photo.State.FAILED
    step = PhotoStep.objects.get(photo=still_broken)
    assert (step.status, step.attempts) == (PhotoStep.Status.FAILED, 1)
    # A photo that had not failed is left alone.
    assert not PhotoStep.objects.filter(photo=ready).exists()
    assert state_counts(html)["ready"] == 2
    assert state_counts(html)["failed"] == 1


def test_it_resets_failed_photos_to_uploaded_when_queued_for_a_worker(
        event, people, settings, monkeypatch):
    """With real workers the photo waits in the queue: reset, its failed step forgotten."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    broken = failed_photo(event)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued = []
    # The broker is not under test here: only what is handed to it.
    monkeypatch.setattr(tasks.process_photo, "delay", queued.append)

    response = client_for(people["admin"]).post(url("retry_failed", event.slug))

    broken.refresh_from_db()
    assert response.status_code == 200
    assert queued == [broken.pk]
    assert broken.state == Photo.State.UPLOADED
    assert broken.failure_reason == ""
    assert not PhotoStep.objects.filter(photo=broken).exists()
    assert state_counts(response.content.decode())["uploaded"] == 1
