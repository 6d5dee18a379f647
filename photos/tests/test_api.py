"""The staff REST API (/api/v1/): every endpoint, every named user, token and session auth."""

import pytest
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.factories import PhotoFactory
from photos.tests.images import jpeg

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "runner", "staff", "outsider", "photographer", "owner", "admin"]
EVENT_STAFF = {"photographer", "owner", "admin"}


@pytest.fixture
def event():
    return EventFactory(name="Trail des Monts d'Or", slug="trail-monts-d-or")


@pytest.fixture
def photos(event, people):
    """One photo by the event's photographer, one by a colleague on the same event."""
    colleague = UserFactory(username="claire-colleague", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(colleague)
    return {
        "mine": PhotoFactory(event=event, photographer=people["photographer"],
                             original_name="MINE.JPG"),
        "colleague": PhotoFactory(event=event, photographer=colleague,
                                  original_name="COLLEAGUE.JPG"),
    }


def api_for(user, *, token=True) -> APIClient:
    client = APIClient()
    if user is not None:
        if token:
            key = Token.objects.get_or_create(user=user)[0].key
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        else:
            client.force_login(user)
    return client


def call(client, endpoint, event, photos):
    if endpoint == "photos":
        return client.get(f"/api/v1/events/{event.slug}/photos/")
    if endpoint == "upload":
        return client.post(f"/api/v1/events/{event.slug}/photos/",
                           {"file": ContentFile(jpeg(seed=7), name="NEW.JPG")}, format="multipart")
    if endpoint == "processing":
        return client.get(f"/api/v1/events/{event.slug}/processing/")
    if endpoint == "photo":
        return client.get(f"/api/v1/photos/{photos['mine'].pk}/")
    raise AssertionError(endpoint)


ENDPOINTS = ["photos", "upload", "processing", "photo"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("who", WHO)
def test_it_lets_only_the_events_staff_use_each_staff_endpoint(who, endpoint, event, people,
                                                               photos):
    response = call(api_for(people[who]), endpoint, event, photos)

    if who == "anonymous":
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
    elif who in EVENT_STAFF:
        assert response.status_code == (201 if endpoint == "upload" else 200)
    elif endpoint == "photo":
        assert response.status_code == 404  # someone else's photo looks like no photo
    else:
        assert response.status_code == 403
    if who not in EVENT_STAFF:  # nothing about the photos leaks into a refusal
        assert "MINE.JPG" not in response.content.decode()
    uploaded = Photo.objects.filter(original_name="NEW.JPG").exists()
    assert uploaded == (endpoint == "upload" and who in EVENT_STAFF)


@pytest.mark.parametrize("endpoint", ENDPOINTS[:3])
@pytest.mark.parametrize("who", ["runner", "staff", "outsider"])
def test_it_hides_an_unpublished_event_from_people_who_are_not_its_staff(who, endpoint, event,
                                                                         people, photos):
    event.is_published = False
    event.save()

    response = call(api_for(people[who]), endpoint, event, photos)

    assert response.status_code == 404


@pytest.mark.parametrize("who", ["runner", "owner"])
def test_it_answers_404_for_an_unknown_event(who, people):
    response = api_for(people[who]).get("/api/v1/events/no-such-race/photos/")

    assert response.status_code == 404


def test_it_lists_only_a_photographers_own_photos_and_the_whole_event_for_its_organiser(
        event, people, photos):
    as_photographer = api_for(people["photographer"]).get(f"/api/v1/events/{event.slug}/photos/")
    as_owner = api_for(people["owner"]).get(f"/api/v1/events/{event.slug}/photos/")

    assert [p["original_name"] for p in as_photographer.json()["results"]] == ["MINE.JPG"]
    assert sorted(p["original_name"] for p in as_owner.json()["results"]) == [
        "COLLEAGUE.JPG", "MINE.JPG"]
    assert as_owner.json()["count"] == 2
    # A colleague's photo is a 404 for the photographer, not a 403: no hint it exists.
    colleague_photo = api_for(people["photographer"]).get(
        f"/api/v1/photos/{photos['colleague'].pk}/")
    assert colleague_photo.status_code == 404


def test_it_never_hands_out_originals(event, people, photos):
    body = api_for(people["owner"]).get(f"/api/v1/photos/{photos['mine'].pk}/").json()

    assert "original" not in body
    assert "web" not in body
    assert body["photographer"] == "paula-photographer"
    assert body["event"] == event.slug


def test_it_counts_processing_states_of_the_photos_the_caller_may_see(event, people, photos):
    PhotoFactory(event=event, photographer=people["photographer"], state=Photo.State.READY)

    mine = api_for(people["photographer"]).get(f"/api/v1/events/{event.slug}/processing/").json()
    everything = api_for(people["owner"]).get(f"/api/v1/events/{event.slug}/processing/").json()

    assert mine["total"] == 2
    assert mine["states"]["ready"] == 1
    assert everything["total"] == 3


def test_it_uploads_through_the_api_like_the_upload_page(event, people,
                                                         django_capture_on_commit_callbacks):
    client = api_for(people["photographer"])
    url = f"/api/v1/events/{event.slug}/photos/"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = client.post(url, {"file": ContentFile(jpeg(seed=3), name="A.JPG")},
                            format="multipart")
    again = client.post(url, {"file": ContentFile(jpeg(seed=3), name="B.JPG")}, format="multipart")
    bad = client.post(url, {"file": ContentFile(b"not a photo", name="C.JPG")}, format="multipart")
    nothing = client.post(url, {}, format="multipart")

    photo = Photo.objects.get(event=event, original_name="A.JPG")
    assert (first.status_code, first.json()["results"][0]["status"]) == (201, "accepted")
    assert photo.photographer == people["photographer"]
    assert len(callbacks) == 1  # processing enqueued once the row is committed
    assert (again.status_code, again.json()["results"][0]["status"]) == (200, "duplicate")
    assert (bad.status_code, bad.json()["results"][0]["status"]) == (400, "rejected")
    assert nothing.status_code == 400


def test_it_needs_the_csrf_token_with_session_auth_but_not_with_a_token(event, people):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(people["photographer"])
    token = api_for(people["photographer"])
    token.handler.enforce_csrf_checks = True
    url = f"/api/v1/events/{event.slug}/photos/"

    refused = session.post(url, {"file": ContentFile(jpeg(seed=4), name="S.JPG")},
                           format="multipart")
    accepted = token.post(url, {"file": ContentFile(jpeg(seed=5), name="T.JPG")},
                          format="multipart")

    assert refused.status_code == 403
    assert accepted.status_code == 201


def test_it_refuses_a_revoked_token_and_a_deactivated_account(event, people):
    client = api_for(people["owner"])
    url = f"/api/v1/events/{event.slug}/processing/"
    assert client.get(url).status_code == 200

    people["owner"].is_active = False
    people["owner"].save()
    assert client.get(url).status_code == 401

    people["owner"].is_active = True
    people["owner"].save()
    Token.objects.filter(user=people["owner"]).delete()
    assert client.get(url).status_code == 401


def test_it_follows_the_people_assigned_to_the_event_not_the_token(event, people):
    client = api_for(people["photographer"])
    url = f"/api/v1/events/{event.slug}/processing/"
    assert client.get(url).status_code == 200

    event.photographers.remove(people["photographer"])

    assert client.get(url).status_code == 403


def test_it_works_with_a_session_as_well(event, people):
    response = api_for(people["owner"], token=False).get(f"/api/v1/events/{event.slug}/photos/")

    assert response.status_code == 200
