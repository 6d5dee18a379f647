"""The public search API: the pages' rules over JSON, and a clear answer for every bad call."""

import io

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageOps
from rest_framework.test import APIClient

from events.models import Event
from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import indexes
from mlpipeline.inference.outfit import OutfitReader
from photos.models import BibTag, Face, Outfit, Photo
from photos.tests.factories import PhotoFactory
from photos.tests.images import encoded
from search import public_api, services
from search.api import SelfieThrottle
from search.tests.test_pages import ASTRONAUT, photo_with_faces, ready_photo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "search-public-api"}}
    cache.clear()


@pytest.fixture
def api():
    client = APIClient()
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def event():
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.ON)
    StartListEntryFactory(event=event, bib="42", first_name="Marie", last_name="Dupont")
    return event


def search_url(slug="semi"):
    return f"/api/v1/events/{slug}/search/"


def selfie(data: bytes, name="selfie.jpg"):
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def blank_jpeg(size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 180, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_a_bib_search_answers_public_photos_with_their_reasons_and_the_runners_name(api, event):
    shown = ready_photo(event, 1)
    BibTag.objects.create(photo=shown, bib="42", confidence=0.9, source="ocr", confirmed=True)
    processing = PhotoFactory(event=event, state=Photo.State.UPLOADED)
    BibTag.objects.create(photo=processing, bib="42", confidence=0.9, source="ocr", confirmed=True)

    response = api.get(search_url(), {"bib": "042"})

    assert response.status_code == 200
    body = response.json()
    assert (body["bib"], body["runner"], body["total"]) == ("42", "Marie D.", 1)
    [result] = body["results"]
    assert result["id"] == shown.pk
    assert result["reasons"] == [{"code": "ocr", "label": "Bib read on the photo"}]
    assert result["preview"].endswith(shown.preview.url) and "original" not in result


@pytest.mark.parametrize("query, message", [
    ({}, "Give a bib number"), ({"bib": "  "}, "Give a bib number"),
    ({"bib": "12a"}, "digits only"), ({"bib": "1" * 13}, "at most 12 digits")])
def test_a_bad_bib_query_is_a_clear_400(api, event, query, message):
    response = api.get(search_url(), query)
    assert response.status_code == 400 and message in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/events/nowhere/search/?bib=1",
                                  "/api/v1/events/nowhere/public-photos/",
                                  "/api/v1/events/nowhere/public-photos/1/"])
def test_an_unknown_or_unpublished_event_is_a_clear_404(api, path):
    EventFactory(slug="draft", is_published=False)
    for address in (path, path.replace("nowhere", "draft")):
        response = api.get(address)
        assert response.status_code == 404
        assert response.json()["detail"] == "There is no published event at this address."


def test_the_photo_listing_pages_by_cursor_and_refuses_a_mangled_one(api, event, monkeypatch):
    monkeypatch.setattr(public_api, "PHOTOS_PAGE_SIZE", 2)
    photos = [ready_photo(event, minute) for minute in range(5)]
    PhotoFactory(event=event, state=Photo.State.UPLOADED)  # not ready: never listed

    seen, address = [], "/api/v1/events/semi/public-photos/"
    while address:
        body = api.get(address).json()
        seen += [photo["id"] for photo in body["results"]]
        address = body["next"]
    assert seen == [photo.pk for photo in reversed(photos)]

    response = api.get("/api/v1/events/semi/public-photos/", {"cursor": "not-a-cursor"})
    assert response.status_code == 400 and "cursor" in response.json()["detail"]


def test_photo_detail_shows_a_public_photo_and_its_confirmed_bibs_only(api, event):
    photo = ready_photo(event, 1)
    BibTag.objects.create(photo=photo, bib="42", confidence=0.9, source="ocr", confirmed=True)
    BibTag.objects.create(photo=photo, bib="999", confidence=0.9, source="ocr", confirmed=False)
    hidden = PhotoFactory(event=event, state=Photo.State.UPLOADED)

    body = api.get(f"/api/v1/events/semi/public-photos/{photo.pk}/").json()
    assert (body["id"], body["bibs"]) == (photo.pk, ["42"])
    response = api.get(f"/api/v1/events/semi/public-photos/{hidden.pk}/")
    assert response.status_code == 404 and "no public photo" in response.json()["detail"]


def test_a_selfie_with_a_bib_combines_both(api, event, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        seen = photo_with_faces(event, ("astronaut", (120, 0, 330, 260), (400, 150), 1.3, 1), 1)
    read = ready_photo(event, 2)
    BibTag.objects.create(photo=read, bib="42", confidence=0.9, source="ocr", confirmed=True)
    indexes.sync(event.pk, indexes.FACES)
    astronaut = encoded(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300)))

    response = api.post(search_url(), {"selfie": selfie(astronaut), "bib": "42"},
                        format="multipart")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["bib"] == "42"
    assert [(r["id"], [reason["code"] for reason in r["reasons"]]) for r in body["results"]] == [
        (read.pk, ["ocr"]), (seen.pk, ["face"])]
    alone = api.post(search_url(), {"selfie": selfie(astronaut)}, format="multipart").json()
    assert [r["id"] for r in alone["results"]] == [seen.pk] and "bib" not in alone


def test_selfie_errors_are_clear(api, event, monkeypatch):
    def post(**data):
        return api.post(search_url(), data, format="multipart")

    response = post()
    assert response.status_code == 400 and "field named “selfie”" in response.json()["detail"]
    response = post(selfie=selfie(b"%PDF-1.7 not a photo", "cv.pdf"))
    assert response.status_code == 400 and "could not be read" in response.json()["detail"]
    response = post(selfie=selfie(blank_jpeg()))
    assert response.status_code == 400 and "No face was found" in response.json()["detail"]
    response = post(selfie=selfie(blank_jpeg()), bib="x1")
    assert response.status_code == 400 and "digits only" in response.json()["detail"]

    monkeypatch.setattr(services, "SELFIE_MAX_BYTES", 1024)
    response = post(selfie=selfie(b"\xff\xd8" + b"0" * 200_000))
    assert response.status_code == 413 and "too large" in response.json()["detail"]


def test_a_selfie_is_refused_where_face_search_is_off(api):
    EventFactory(slug="off", face_search=Event.FaceSearch.OFF)
    response = api.post(search_url("off"), {"selfie": selfie(blank_jpeg())}, format="multipart")
    assert response.status_code == 403 and "Face search is off" in response.json()["detail"]


def test_calls_are_throttled_per_address_with_a_clear_429(api, event, monkeypatch):
    monkeypatch.setattr(public_api.PublicThrottle, "THROTTLE_RATES", {"public_api": "2/min"})
    for _ in range(2):
        assert api.get(search_url(), {"bib": "42"}).status_code == 200
    response = api.get(search_url(), {"bib": "42"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response.json()["detail"].startswith("Too many requests from your address: try again in")
    other = APIClient(REMOTE_ADDR="10.0.0.9")
    assert other.get(search_url(), {"bib": "42"}).status_code == 200


def test_selfie_searches_have_their_own_tighter_cap(api, event, monkeypatch):
    monkeypatch.setattr(SelfieThrottle, "THROTTLE_RATES", {"selfie": "1/min"})
    data = {"selfie": selfie(blank_jpeg())}
    assert api.post(search_url(), data, format="multipart").status_code == 400
    response = api.post(search_url(), {"selfie": selfie(blank_jpeg())}, format="multipart")
    assert response.status_code == 429 and "Too many requests" in response.json()["detail"]


def test_the_error_messages_follow_the_language(api, event):
    response = api.get(search_url(), {"bib": "12a"}, HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 400 and "chiffres" in response.json()["detail"]


# --- Outfit ------------------------------------------------------------------------------

@pytest.fixture
def no_clip(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights: the stored colours answer


def dressed(photo, shirt, cap=""):
    face = Face.objects.create(photo=photo, event=photo.event, box=[10, 10, 50, 60], score=0.99)
    Outfit.objects.create(photo=photo, event=photo.event, face=face, model=OutfitReader.signature,
                          shirt=shirt, shirt_confidence=0.8, cap=cap,
                          cap_confidence=0.8 if cap else 0.0)


def found(body) -> list:
    return [(result["id"], [reason["code"] for reason in result["reasons"]])
            for result in body["results"]]


def test_an_outfit_search_answers_the_photos_of_runners_dressed_so_with_why(api, event, no_clip):
    both, shirt, other = (ready_photo(event, minute) for minute in range(3))
    dressed(both, "red", cap="white")
    dressed(shirt, "red")
    dressed(other, "blue")

    response = api.get(search_url(), {"outfit": "maillot rouge casquette blanche", "lang": "fr"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["outfit"], body["outfit_mode"], body["total"]) == (
        "maillot rouge casquette blanche", "colours", 2)
    assert found(body) == [(both.pk, ["outfit:shirt:red", "outfit:cap:white"]),
                           (shirt.pk, ["outfit:shirt:red"])]
    assert [reason["label"] for reason in body["results"][0]["reasons"]] == [
        "maillot rouge", "casquette blanche"]
    assert "bib" not in body


def test_an_outfit_with_a_bib_ranks_the_photos_matching_both_first(api, event, no_clip):
    tagged_red, tagged_blue, red = (ready_photo(event, minute) for minute in range(3))
    for photo in (tagged_red, tagged_blue):
        BibTag.objects.create(photo=photo, bib="42", confidence=0.9, source="ocr", confirmed=True)
    dressed(tagged_red, "red")
    dressed(tagged_blue, "blue")
    dressed(red, "red")

    body = api.get(search_url(), {"bib": "42", "outfit": "red shirt"}).json()

    assert (body["bib"], body["runner"], body["outfit"]) == ("42", "Marie D.", "red shirt")
    assert found(body) == [(tagged_red.pk, ["ocr", "outfit:shirt:red"]), (tagged_blue.pk, ["ocr"]),
                           (red.pk, ["outfit:shirt:red"])]
    assert body["results"][0]["reasons"][1]["label"] == "red shirt"


def test_a_selfie_with_an_outfit_and_a_bib_combines_all_three(
        api, event, no_clip, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        seen = photo_with_faces(event, ("astronaut", (120, 0, 330, 260), (400, 150), 1.3, 1), 1)
    read, red = ready_photo(event, 2), ready_photo(event, 3)
    BibTag.objects.create(photo=read, bib="42", confidence=0.9, source="ocr", confirmed=True)
    dressed(red, "red")
    dressed(seen, "red")
    indexes.sync(event.pk, indexes.FACES)
    astronaut = encoded(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300)))

    response = api.post(search_url(), {"selfie": selfie(astronaut), "bib": "42",
                                       "outfit": "red shirt"}, format="multipart")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["bib"], body["outfit"]) == ("42", "red shirt")
    assert found(body) == [(seen.pk, ["face", "outfit:shirt:red"]), (read.pk, ["ocr"]),
                           (red.pk, ["outfit:shirt:red"])]


@pytest.mark.parametrize("query, message", [
    ({"outfit": "   "}, "Give a bib number (?bib=1234), an outfit (?outfit=red+shirt) or both"),
    ({"outfit": "casquette"}, "Describe the outfit with colours (white"),
    ({"outfit": "rotes Hemd"}, "Not understood: “rotes”, “hemd”."),
    ({"outfit": "red " * 60}, "at most 200 characters"),
    ({"outfit": "red shirt", "lang": "de"}, "The language “de” is not supported: give lang=en "
                                            "or lang=fr."),
    ({"outfit": "red shirt", "bib": "12a"}, "digits only"),
])
def test_a_bad_outfit_query_is_a_clear_400(api, event, no_clip, query, message):
    response = api.get(search_url(), query)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_an_outfit_error_follows_lang(api, event, no_clip):
    response = api.get(search_url(), {"outfit": "maillot à pois", "lang": "fr"},
                       HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Non compris\u00a0: “pois”.")


def test_a_selfie_with_an_unreadable_outfit_is_refused_before_any_face_is_looked_for(
        api, event, no_clip, monkeypatch):
    def no_detection(*args, **kwargs):
        raise AssertionError("the selfie was searched")

    monkeypatch.setattr(services, "selfie_search", no_detection)
    response = api.post(search_url(), {"selfie": selfie(blank_jpeg()), "outfit": "licorne"},
                        format="multipart")
    assert response.status_code == 400 and "Not understood: “licorne”" in response.json()["detail"]
    response = api.post(f"{search_url()}?lang=xx", {"selfie": selfie(blank_jpeg())},
                        format="multipart")
    assert response.status_code == 400 and "“xx” is not supported" in response.json()["detail"]


def test_the_schema_and_its_docs_page_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/events/{slug}/search/", "/api/v1/events/{slug}/public-photos/",
                 "/api/v1/events/{slug}/public-photos/{photo_id}/"):
        assert path in paths
    assert {"get", "post"} <= set(paths["/api/v1/events/{slug}/search/"])
    search = paths["/api/v1/events/{slug}/search/"]
    assert {"bib", "outfit", "lang"} <= {parameter["name"] for parameter in search["get"]["parameters"]}
    selfie_form = search["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "$ref" in selfie_form or "outfit" in selfie_form.get("properties", {})
    docs = client.get("/api/docs/")
    html = docs.content.decode()
    assert docs.status_code == 200 and "swagger-ui" in html
    assert "//cdn" not in html and "unpkg" not in html and "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/" in html
