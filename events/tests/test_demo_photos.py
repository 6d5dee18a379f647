"""The demo's race photos: drawn the same way every time, and found by the real pipeline."""

import hashlib
import io
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import translation

from events.demo import loader, scenes
from events.services import _DEMO_FIRST_BIB, _DEMO_RUNNERS, load_demo_event
from mlpipeline import loaded
from mlpipeline.bibrules import forget_event_rules
from photos.admin import off_start_list_url
from photos.models import BibTag, Face, Photo
from search.services import photos_by_bib, photos_by_selfie

START_LIST = {str(bib) for bib in range(_DEMO_FIRST_BIB, _DEMO_FIRST_BIB + len(_DEMO_RUNNERS))}


def test_every_registered_demo_runner_is_on_the_start_list_and_one_is_not():
    registered = {runner.bib for runner in scenes.RUNNERS} - scenes.UNREGISTERED_BIBS
    assert registered <= START_LIST
    assert not scenes.UNREGISTERED_BIBS & START_LIST
    assert len({runner.face for runner in scenes.RUNNERS}) == len(scenes.RUNNERS)


def test_each_registered_runner_is_in_several_photos_and_some_need_face_linking():
    for runner in scenes.RUNNERS:
        photos = scenes.photos_of(runner.bib)
        if runner.bib in scenes.UNREGISTERED_BIBS:
            continue
        assert len(photos) >= 3, runner.bib
        assert any(runner.bib in photo.bibs_shown for photo in photos)
    turned = [photo for photo in scenes.PHOTOS if photo.bibs_present - photo.bibs_shown]
    assert len(turned) >= 6
    assert any(len(photo.runners) == 3 for photo in scenes.PHOTOS)
    assert 24 <= len(scenes.PHOTOS) <= 40


def test_outfits_use_the_named_colours_and_say_them_in_words():
    for runner in scenes.RUNNERS:
        assert {runner.shirt, runner.shorts, runner.cap or "red"} <= set(scenes.COLOURS)
    assert scenes.RUNNER_BY_BIB["103"].outfit == "red shirt, black shorts, white cap"
    assert len({runner.shirt for runner in scenes.RUNNERS}) >= 6


def test_a_photo_is_drawn_the_same_every_time_and_differs_from_the_next():
    first, second = scenes.PHOTOS[0], scenes.PHOTOS[1]
    digest = hashlib.sha256(scenes.jpeg_bytes(first)).hexdigest()
    assert hashlib.sha256(scenes.jpeg_bytes(first)).hexdigest() == digest
    assert hashlib.sha256(scenes.jpeg_bytes(second)).hexdigest() != digest
    image = scenes.render(first)
    assert image.size == scenes.SIZE and image.mode == "RGB"


def test_every_face_source_is_credited():
    credits = (scenes.FACES_DIR / "CREDITS.md").read_text()
    for runner in scenes.RUNNERS:
        assert runner.face.removesuffix(".jpg") in credits


# --- Through the real pipeline ------------------------------------------------------------

# Bib 102 read twice and hidden once (face linking must carry it there), and a runner whose
# bib 257 is not on the start list.
SMALL_DEMO = tuple(scenes.PHOTOS[number - 1] for number in (1, 13, 23, 12))


@pytest.fixture
def fresh_models(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights: that step is "unavailable"
    loaded.forget()
    forget_event_rules()
    yield
    loaded.forget()


@pytest.mark.django_db
def test_a_small_demo_goes_through_the_pipeline_and_bib_search_finds_the_runner(
        fresh_models, admin_client):
    event = load_demo_event().event
    result = loader.load_demo_photos(event, photos=SMALL_DEMO)
    assert [photo.original_name for photo in result.added] == [p.name for p in SMALL_DEMO]

    loader.process_here(event, [photo.pk for photo in result.added])

    by_name = {photo.original_name: photo for photo in Photo.objects.filter(event=event)}
    assert {photo.state for photo in by_name.values()} == {Photo.State.READY}
    found = {match.photo_id for match in photos_by_bib(event, "102")}
    assert found == {by_name[name].pk for name in ("demo-01.jpg", "demo-13.jpg", "demo-23.jpg")}
    [linked] = BibTag.objects.filter(photo=by_name["demo-23.jpg"])
    assert (linked.bib, linked.source) == ("102", BibTag.Source.FACE_LINK)
    assert {match.photo_id for match in photos_by_bib(event, "103")} == {by_name["demo-13.jpg"].pk}

    # A selfie of runner 102 (his face cut from a photo) finds the photos he is in.
    face = Face.objects.filter(photo=by_name["demo-01.jpg"]).get()
    x1, y1, x2, y2 = face.box
    margin = (x2 - x1) * 0.6
    selfie = io.BytesIO()
    scenes.render(scenes.PHOTOS[0]).crop(
        (x1 - margin, y1 - margin, x2 + margin, y2 + margin)).save(selfie, "JPEG")
    selfie.seek(0)
    assert {match.photo_id for match in photos_by_selfie(event, selfie)} == {
        by_name[name].pk for name in ("demo-01.jpg", "demo-13.jpg", "demo-23.jpg")}

    # 257 is not on the start list: nobody finds it, the organiser is told and can review it.
    assert photos_by_bib(event, "257") == []
    dropped = BibTag.objects.filter(photo__event=event).off_start_list()
    assert {(tag.photo.original_name, tag.bib) for tag in dropped} == {("demo-12.jpg", "257")}
    page = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))
    html = page.content.decode()  # the admin speaks the site's language, French
    assert "1 dossard lu absent de la liste des inscrits : le vérifier" in html
    assert off_start_list_url(event).replace("&", "&amp;") in html
    review = admin_client.get(off_start_list_url(event))
    assert [tag.bib for tag in review.context["cl"].result_list] == ["257"]
    assert by_name["demo-12.jpg"].thumbnail.url in review.content.decode()
    status = admin_client.get(reverse("photos:processing_status", args=[event.slug]))
    assert "1 dossard lu n’est pas sur la liste des inscrits" in status.content.decode()

    # Loading again adds nothing.
    again = loader.load_demo_photos(event, photos=SMALL_DEMO)
    assert (again.added, again.already_there) == ([], len(SMALL_DEMO))


@pytest.mark.django_db
@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_the_command_adds_the_photos_once_and_says_where_to_follow_them():
    def run():
        out = StringIO()
        with translation.override("en"):
            call_command("load_demo", stdout=out, stderr=StringIO())
        return out.getvalue()

    first, second = run(), run()

    assert f"Drew and added {len(scenes.PHOTOS)} demo photos" in first
    assert "/staff/events/demo-10k-lyon/upload/" in first
    assert f"The {len(scenes.PHOTOS)} demo photos are already there." in second
    assert Photo.objects.count() == len(scenes.PHOTOS)
    # Queued for the worker; `load_demo --sync` would process these ones here.
    event = Photo.objects.first().event
    assert loader.unfinished(event) == sorted(Photo.objects.values_list("pk", flat=True))
