"""The runner's pages through Django's test client: bib search on the event page, the
gallery and its pages, a page per photo, and selfie search with a real face.

The face is scikit-image's bundled astronaut photo (public domain, installed offline),
found and embedded by the real detector and embedder, as the pipeline does for event
photos and the page does for the selfie; the stranger is scikit-image's cameraman.
"""

import datetime
import functools
import io
import os
import re

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from PIL import Image, ImageOps
from rest_framework.test import APIClient
from skimage import data as skimage_data

from accounts import privacy
from accounts.tests.factories import UserFactory
from events.models import Event
from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import indexes, loaded
from photos.models import BibTag, Face, Photo
from photos.tests.factories import PhotoFactory
from photos.tests.images import encoded
from search import services
from search.api import SelfieThrottle
from search.tests.test_selfie_privacy import (  # noqa: F401 (an autouse fixture)
    _no_stale_pending_index_runs,
    files_written_during,
)

pytestmark = pytest.mark.django_db

START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 30))


@pytest.fixture(autouse=True)
def _own_throttle_counts(settings):
    # The selfie throttle counts in the cache: every test starts from zero.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "search-pages"}}
    cache.clear()
    # Privacy changes reach the face index through tasks run on commit.
    settings.CELERY_TASK_ALWAYS_EAGER = True


def url(name, language="en", query="", **kwargs):
    with translation.override(language):
        path = reverse(name, kwargs=kwargs)
    return f"{path}?{query}" if query else path


def ready_photo(event, minute, **fields):
    """A ready photo with its public derivatives, taken ``minute`` minutes after the start."""
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=6000, height=4000,
                         captured_at=START + datetime.timedelta(minutes=minute), **fields)
    photo.preview = f"previews/{photo.pk}.jpg"
    photo.thumbnail = f"thumbnails/{photo.pk}.jpg"
    photo.web = f"web/{photo.pk}.jpg"
    photo.save()
    return photo


def tag(photo, bib, source=BibTag.Source.OCR, confirmed=True, confidence=0.9):
    return BibTag.objects.create(photo=photo, bib=bib, source=source, confirmed=confirmed,
                                 confidence=confidence)


def tile_ids(html) -> list[int]:
    return [int(found) for found in re.findall(r'class="photo-link" href="[^"]*/photos/(\d+)/', html)]


# --- Bib search -------------------------------------------------------------------------

def test_a_bib_search_names_the_runner_briefly_and_says_why_each_photo_matched(client):
    event = EventFactory(slug="semi")
    StartListEntryFactory(event=event, bib="1234", first_name="Marie", last_name="Durand")
    read, carried, by_hand, doubtful, unready = (ready_photo(event, minute) for minute in range(5))
    tag(read, "1234")
    tag(carried, "1234", BibTag.Source.FACE_LINK, confidence=0.7)
    tag(by_hand, "1234", BibTag.Source.MANUAL, confidence=1.0)
    tag(doubtful, "1234", confirmed=False)  # not on the start list: for staff, not runners
    tag(unready, "1234")
    unready.state = Photo.State.OCR
    unready.save()

    response = client.get(url("events:detail", "fr", "bib=01234", slug="semi"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Dossard 1234 — Marie D." in html
    assert "Durand" not in html
    assert sorted(tile_ids(html)) == sorted([read.pk, carried.pk, by_hand.pk])
    reasons = dict(re.findall(r'/photos/(\d+)/\?bib=1234".*?data-reason="([\w-]+)"', html,
                              re.S))
    assert reasons == {str(read.pk): "ocr", str(carried.pk): "face-link",
                       str(by_hand.pk): "manual"}
    assert "Dossard lu sur la photo" in html and "Dossard reporté par le visage" in html
    assert 'value="01234"' in html  # the search stays in the box


def test_a_bib_search_without_photos_says_how_many_are_still_processing(client):
    event = EventFactory(slug="semi")
    for state in (Photo.State.UPLOADED, Photo.State.FACES, Photo.State.FAILED):
        PhotoFactory(event=event, state=state)

    html = client.get(url("events:detail", query="bib=77", slug="semi")).content.decode()

    assert "No photo with bib 77 yet." in html
    assert "Photos are still being processed: 2 left." in html


def test_a_bib_search_without_photos_when_all_are_processed_asks_to_check_the_number(client):
    event = EventFactory(slug="semi")
    tag(ready_photo(event, 1), "12")

    html = client.get(url("events:detail", query="bib=77", slug="semi")).content.decode()

    assert "No photo with bib 77 yet." in html
    assert "Check your number" in html
    assert "still being processed" not in html
    assert 'class="empty-state"' in html


def test_a_malformed_bib_gets_a_clear_message_and_never_a_name(client):
    event = EventFactory(slug="semi")
    StartListEntryFactory(event=event, bib="12", first_name="Marie", last_name="Durand")

    html = client.get(url("events:detail", query="bib=12a", slug="semi")).content.decode()

    assert "A bib number is made of digits only." in html
    assert "Marie" not in html


def test_bib_results_are_paged_and_the_next_page_comes_as_grid_items_for_htmx(client):
    event = EventFactory(slug="semi")
    photos = [ready_photo(event, minute) for minute in range(30)]
    for photo in photos:
        tag(photo, "5")

    first = client.get(url("events:detail", query="bib=5", slug="semi")).content.decode()
    more = re.search(r'class="btn" href="([^"]+)" hx-get', first).group(1).replace("&amp;", "&")
    second = client.get(more, HTTP_HX_REQUEST="true").content.decode()

    assert "30 photos found" in first
    assert len(tile_ids(first)) == 24 and len(tile_ids(second)) == 6
    assert set(tile_ids(first)) | set(tile_ids(second)) == {photo.pk for photo in photos}
    assert "<html" not in second and "More photos" not in second


# --- Gallery ----------------------------------------------------------------------------

def test_the_gallery_shows_ready_photos_newest_first_with_sizes_lazy_loading_and_srcset(client):
    event = EventFactory(slug="semi")
    older, newer = ready_photo(event, 1), ready_photo(event, 50)
    PhotoFactory(event=event, state=Photo.State.FACES)  # not ready
    without_thumbnail = ready_photo(event, 60)
    Photo.objects.filter(pk=without_thumbnail.pk).update(thumbnail="")
    ready_photo(EventFactory(slug="other"), 70)

    html = client.get(url("events:detail", slug="semi")).content.decode()

    assert tile_ids(html) == [newer.pk, older.pk]
    # 6000x4000 gives a 1600 px web version, a 1200x800 preview, a 400x267 thumbnail.
    img = re.search(rf'<img src="/media/thumbnails/{newer.pk}.jpg"[^>]*>', html, re.S).group(0)
    assert 'width="400" height="267"' in img and 'loading="lazy"' in img
    assert f"/media/previews/{newer.pk}.jpg 1200w" in img
    assert "/web/" not in html and "originals/" not in html


def test_the_gallery_pages_with_a_cursor_to_the_last_photo_without_repeating_one(client):
    event = EventFactory(slug="semi")
    photos = [ready_photo(event, minute % 7) for minute in range(50)]  # many share a time
    seen, next_url, pages = [], url("search:photos", slug="semi"), 0
    while next_url:
        html = client.get(next_url).content.decode()
        seen += tile_ids(html)
        found = re.search(r'class="btn" href="([^"]+)" hx-get', html)
        next_url = found and found.group(1).replace("&amp;", "&")
        pages += 1

    assert pages == 3
    assert len(seen) == len(set(seen)) == 50
    expected = sorted(photos, key=lambda photo: (photo.captured_at, photo.pk), reverse=True)
    assert seen == [photo.pk for photo in expected]


def test_a_mangled_gallery_cursor_is_not_found(client):
    EventFactory(slug="semi")

    assert client.get(url("search:photos", query="after=oops", slug="semi")).status_code == 404
    assert client.get(url("search:photos", query="bib=5&start=-1", slug="semi")).status_code == 404


# --- Photo page -------------------------------------------------------------------------

def test_the_photo_page_shows_the_preview_its_confirmed_bibs_and_open_graph_tags(client):
    event = EventFactory(slug="semi")
    photo = ready_photo(event, 3)
    tag(photo, "42")
    tag(photo, "1999", confirmed=False)

    response = client.get(url("search:photo", "fr", slug="semi", photo_id=photo.pk))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<meta property="og:image" content="http://testserver/media/previews/{photo.pk}.jpg">' in html
    assert f'<link rel="canonical" href="http://testserver/fr/events/semi/photos/{photo.pk}/">' in html
    assert 'width="1200" height="800"' in html
    assert ">42</a>" in html and "1999" not in html
    assert "/web/" not in html and "originals/" not in html


def test_the_photo_page_walks_through_the_bib_search_it_came_from(client):
    event = EventFactory(slug="semi")
    first, _unrelated, second, third = (ready_photo(event, minute) for minute in range(4))
    tag(first, "8", BibTag.Source.MANUAL, confidence=1.0)
    tag(second, "8", confidence=0.9)
    tag(third, "8", BibTag.Source.FACE_LINK, confidence=0.6)

    html = client.get(url("search:photo", query="bib=8", slug="semi",
                          photo_id=second.pk)).content.decode()

    assert f'rel="prev" href="/en/events/semi/photos/{first.pk}/?bib=8"' in html
    assert f'rel="next" href="/en/events/semi/photos/{third.pk}/?bib=8"' in html
    assert "2 of 3" in html


def test_the_photo_page_without_a_search_walks_through_the_event_by_time(client):
    event = EventFactory(slug="semi")
    older, middle, newer = ready_photo(event, 1), ready_photo(event, 2), ready_photo(event, 3)

    html = client.get(url("search:photo", slug="semi", photo_id=middle.pk)).content.decode()

    assert f'rel="prev" href="/en/events/semi/photos/{newer.pk}/"' in html
    assert f'rel="next" href="/en/events/semi/photos/{older.pk}/"' in html


@pytest.mark.parametrize("case", ["unready", "no preview", "other event", "unpublished",
                                  "unknown"])
def test_the_photo_page_is_not_found_for_a_photo_a_runner_may_not_see(client, case):
    event = EventFactory(slug="semi", is_published=case != "unpublished")
    photo = ready_photo(EventFactory(slug="other") if case == "other event" else event, 1)
    if case == "unready":
        photo.state = Photo.State.CLIP
    if case == "no preview":
        photo.preview = ""
    photo.save()
    photo_id = photo.pk + 1000 if case == "unknown" else photo.pk

    assert client.get(url("search:photo", slug="semi", photo_id=photo_id)).status_code == 404


# --- Selfie search ----------------------------------------------------------------------

ASTRONAUT = Image.fromarray(skimage_data.astronaut())
CAMERAMAN = Image.fromarray(skimage_data.camera()).convert("RGB")
PEOPLE = {"astronaut": ASTRONAUT, "cameraman": CAMERAMAN}


def race_scene(person, box, at, scale, seed, size=(900, 600)) -> Image.Image:
    """A made-up race photo: a smooth background with ``person``'s head pasted in."""
    scene = Image.merge("RGB", (Image.linear_gradient("L").resize(size),
                                Image.radial_gradient("L").resize(size),
                                Image.new("L", size, (seed * 71) % 256)))
    head = PEOPLE[person].crop(box)
    scene.paste(head.resize((round(head.width * scale), round(head.height * scale))), at)
    return scene


@functools.cache
def faces_in(scene_args) -> list:
    """The faces of a scene, found and embedded as the pipeline does (once per test run)."""
    scene = race_scene(*scene_args)
    detector, embedder = loaded.face_detector(), loaded.face_embedder()
    found = detector(scene)
    assert found, "the scene must show a face"
    return [(list(face.box), face.score, vector.tolist())
            for face, vector in zip(found, embedder(scene, found))]


def photo_with_faces(event, scene_args, minute, bib="") -> Photo:
    """A ready photo of the scene, with its faces stored as the pipeline stores them."""
    photo = ready_photo(event, minute)
    for box, score, vector in faces_in(scene_args):
        Face.objects.create(photo=photo, event=event, box=box, score=score, embedding=vector,
                            model=loaded.face_embedder().signature, bib=bib)
    return photo


@pytest.fixture
def race(django_capture_on_commit_callbacks):
    """An event with the astronaut in two photos and the cameraman in a third."""
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.ON)
    with django_capture_on_commit_callbacks(execute=True):
        astronaut = [photo_with_faces(event, ("astronaut", (120, 0, 330, 260), at, scale, seed),
                                      minute, bib="42")
                     for minute, (at, scale, seed) in enumerate([((400, 150), 1.3, 1),
                                                                 ((100, 80), 1.0, 2)])]
        cameraman = photo_with_faces(event, ("cameraman", (150, 60, 320, 260), (300, 100), 1.2, 3),
                                     5, bib="43")
    indexes.sync(event.pk, indexes.FACES)
    return event, astronaut, cameraman



def selfie_of_astronaut() -> bytes:
    return encoded(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300)))


def post_selfie(client, event, *files, language="en"):
    uploads = [SimpleUploadedFile(name, data, content_type="image/jpeg") for name, data in files]
    return client.post(url("search:selfie", language, slug=event.slug),
                       {"selfie": uploads} if uploads else {})


def test_a_selfie_finds_the_runners_photos_and_says_it_was_the_face(client, race):
    event, astronaut, cameraman = race

    response = post_selfie(client, event, ("selfie.jpg", selfie_of_astronaut()), language="fr")

    html = response.content.decode()
    assert response.status_code == 200
    assert sorted(tile_ids(html)) == sorted(photo.pk for photo in astronaut)
    assert cameraman.pk not in tile_ids(html)
    assert html.count('data-reason="face"') == 2 and "Visage semblable à votre selfie" in html
    assert "noindex" in html


def test_a_selfie_is_never_written_to_disk_the_database_a_log_or_a_cache(client, race, settings,
                                                                         tmp_path, caplog):
    event, astronaut, _cameraman = race
    # Larger than Django's in-memory upload limit (2.5 MB): a plain view would spool it.
    pixels = np.random.default_rng(5).integers(0, 255, (1100, 1100, 3), dtype=np.uint8)
    big = Image.fromarray(pixels)
    big.paste(ImageOps.mirror(ASTRONAUT).crop((100, 0, 400, 300)).resize((600, 600)), (250, 250))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    selfie = buffer.getvalue()
    assert len(selfie) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR)
    caplog.set_level("DEBUG")

    with CaptureQueriesContext(connection) as queries:
        response, written = files_written_during(
            lambda: post_selfie(client, event, ("camille-selfie.png", selfie)))

    assert response.status_code == 200, response.content
    assert sorted(tile_ids(response.content.decode())) == sorted(p.pk for p in astronaut)
    assert written == []
    assert os.listdir(settings.FILE_UPLOAD_TEMP_DIR) == []
    assert [query["sql"] for query in queries.captured_queries
            if not query["sql"].lstrip().upper().startswith("SELECT")] == []
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "camille-selfie" not in logged
    assert "no-store" in response["Cache-Control"]


def test_a_group_selfie_searches_the_largest_face_first_and_lets_the_runner_pick_theirs(
        client, race):
    event, astronaut, cameraman = race
    group = Image.new("RGB", (900, 560), (120, 130, 140))
    group.paste(CAMERAMAN.crop((150, 60, 320, 260)).resize((170, 200)), (20, 20))
    group.paste(ASTRONAUT.crop((120, 0, 330, 260)).resize((420, 520)), (400, 20))

    html = post_selfie(client, event, ("group.jpg", encoded(group))).content.decode()

    assert "We found 2 faces in your selfie and searched the largest one first." in html
    crops = re.findall(r'<a href="#face-(\d)"><img src="data:image/jpeg;base64,', html)
    assert crops == ["1", "2"]
    first, second = html.split('id="face-1"')[1].split('id="face-2"')
    assert sorted(tile_ids(first)) == sorted(photo.pk for photo in astronaut)
    assert tile_ids(second) == [cameraman.pk]


def test_a_selfie_without_a_face_says_so_and_how_to_retake_it(client, race):
    event, _astronaut, _cameraman = race

    response = post_selfie(client, event, ("wall.jpg", encoded(Image.new("RGB", (640, 480),
                                                                        (200, 180, 160)))))

    html = response.content.decode()
    assert response.status_code == 400
    assert "No face was found in the selfie" in html and "face the camera" in html
    assert tile_ids(html) == []


def test_a_selfie_search_without_a_file_or_with_a_bad_file_is_refused_clearly(client, race):
    event, _astronaut, _cameraman = race

    empty = post_selfie(client, event)
    not_a_photo = post_selfie(client, event, ("notes.jpg", b"%PDF-1.7 not a photo"))

    assert empty.status_code == 400
    assert "Take a selfie or choose a photo of your face first." in empty.content.decode()
    assert not_a_photo.status_code == 400
    assert "could not be read" in not_a_photo.content.decode()


def test_a_selfie_above_the_size_limit_is_refused_without_being_read(client, race, monkeypatch):
    event, _astronaut, _cameraman = race
    monkeypatch.setattr(services, "SELFIE_MAX_BYTES", 1024 * 1024)
    pixels = np.random.default_rng(9).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 1024 * 1024 + 64 * 1024

    response = post_selfie(client, event, ("huge.png", buffer.getvalue()))

    assert response.status_code == 413
    assert "The selfie is too large (at most 1 MB)." in response.content.decode()


def test_the_selfie_form_needs_the_pages_csrf_token(race):
    event, _astronaut, _cameraman = race
    client = Client(enforce_csrf_checks=True)

    refused = post_selfie(client, event, ("selfie.jpg", selfie_of_astronaut()))
    page = client.get(url("events:detail", slug=event.slug)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    accepted = client.post(url("search:selfie", slug=event.slug), {
        "csrfmiddlewaretoken": token,
        "selfie": SimpleUploadedFile("s.jpg", selfie_of_astronaut(), "image/jpeg")})

    assert refused.status_code == 403
    assert accepted.status_code == 200


def test_selfie_searches_are_throttled_per_address_with_a_clear_message(client, race,
                                                                        monkeypatch):
    event, _astronaut, _cameraman = race
    # DRF reads the rates once, when the throttle class is defined.
    monkeypatch.setattr(SelfieThrottle, "THROTTLE_RATES", {"selfie": "2/min"})

    statuses = [post_selfie(client, event, ("s.jpg", selfie_of_astronaut())).status_code
                for _ in range(2)]
    throttled = post_selfie(client, event, ("s.jpg", selfie_of_astronaut()))
    api = APIClient().post(f"/api/v1/events/{event.slug}/selfie-search/", {
        "selfie": SimpleUploadedFile("s.jpg", selfie_of_astronaut(), "image/jpeg")},
        format="multipart")

    assert statuses == [200, 200]
    assert throttled.status_code == 429
    assert "Too many selfie searches from your connection" in throttled.content.decode()
    assert int(throttled["Retry-After"]) > 0
    assert api.status_code == 429  # the page and the API count together


def test_a_reloaded_selfie_results_page_goes_back_to_the_search(client):
    EventFactory(slug="semi")

    response = client.get(url("search:selfie", slug="semi"))

    assert response.status_code == 302 and response["Location"] == "/en/events/semi/#search"


def test_face_search_off_hides_the_selfie_form_and_refuses_a_selfie(client):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.OFF)

    page = client.get(url("events:detail", slug="semi")).content.decode()
    refused = post_selfie(client, event, ("selfie.jpg", selfie_of_astronaut()))

    assert 'name="selfie"' not in page
    assert "Face search is off for this event" in page
    assert refused.status_code == 403
    assert 'name="selfie"' not in refused.content.decode()


def test_opt_in_explains_how_to_opt_in_and_finds_only_runners_who_agreed(
        client, django_capture_on_commit_callbacks):
    event = EventFactory(slug="semi", face_search=Event.FaceSearch.OPT_IN)
    with django_capture_on_commit_callbacks(execute=True):
        photo = photo_with_faces(event, ("astronaut", (120, 0, 330, 260), (400, 150), 1.3, 1), 1,
                                 bib="42")
    indexes.sync(event.pk, indexes.FACES)

    page = client.get(url("events:detail", "fr", slug="semi")).content.decode()
    before = post_selfie(client, event, ("s.jpg", selfie_of_astronaut())).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        privacy.claim_bib(UserFactory(), event, "42", privacy.BibClaim.FaceSearch.CONSENTED)
    after = post_selfie(client, event, ("s.jpg", selfie_of_astronaut())).content.decode()

    assert 'name="selfie"' in page and 'capture="user"' in page
    assert "ne retrouve que les coureurs qui ont accepté" in page
    assert url("accounts:privacy", "fr") in page
    assert tile_ids(before) == [] and "No photo matches your selfie yet." in before
    assert tile_ids(after) == [photo.pk]
