"""Photos found by time (photos.timing), sequence neighbours (photos.sequences), and their
admin pages: the import, positions and clocks, the suggestion queue and its answers."""

import datetime as dt
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from events.models import PhotographerTiming, StartListEntry, TimingPoint, TimingResult
from events.tests.factories import EventFactory
from mlpipeline import event_linking
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder
from photos import sequences, tagging, timing
from photos.models import BibTag, Face, Photo, RejectedReading, TagChange, TagSuggestion
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 5, 10, 8, 0, tzinfo=dt.UTC)
DLIB = DlibFaceEmbedder.signature


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def client(client):
    client.cookies["django_language"] = "en"  # the admin follows the site's language cookie
    return client


@pytest.fixture
def event():
    return EventFactory(slug="trail", date=START.date())


@pytest.fixture
def finish(event):
    point = TimingPoint.objects.create(event=event, name="Finish")
    # Runners cross the mat 20 s apart, 101 at 08:01:00.
    for index, bib in enumerate(("101", "102", "103", "104")):
        TimingResult.objects.create(point=point, bib=bib,
                                    passed_at=START + dt.timedelta(minutes=1, seconds=20 * index))
    return point


def vector(runner: int, jitter: int = 0) -> list[float]:
    base = np.random.default_rng(runner).normal(size=128)
    noise = np.random.default_rng(1000 + 10 * runner + jitter).normal(size=128) * 0.01
    value = base / np.linalg.norm(base) + noise
    return (value / np.linalg.norm(value)).tolist()


def shot(event, photographer, seconds, face=None, bib_on_face="", name=None) -> Photo:
    """A photo taken ``seconds`` after START by the camera's clock, with one face (a runner
    number for its vector) or none."""
    photo = PhotoFactory(event=event, photographer=photographer, state=Photo.State.READY,
                         captured_at=START + dt.timedelta(seconds=seconds),
                         **({"original_name": name} if name else {}))
    if face is not None:
        Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                            embedding=vector(face, int(seconds)), model=DLIB, bib=bib_on_face)
    return photo


def place(event, photographer, point, position=0.0, window=5.0, clock=0.0):
    return PhotographerTiming.objects.create(event=event, photographer=photographer, point=point,
                                             position_seconds=position, window_seconds=window,
                                             clock_offset_seconds=clock)


def tags(event, source=BibTag.Source.TIMING):
    return sorted(BibTag.objects.filter(photo__event=event, source=source)
                  .values_list("photo__original_name", "bib"))


def suggested(event, source=TagSuggestion.Source.TIMING):
    return sorted(TagSuggestion.objects.filter(photo__event=event, source=source)
                  .values_list("photo__original_name", "bib"))


# --- Timing ------------------------------------------------------------------------------


def test_a_photo_in_one_runners_window_is_tagged_and_two_windows_give_suggestions(
        event, people, finish):
    paula = people["photographer"]
    # Standing 10 s before the mat: 101 passes her at 08:00:50.
    place(event, paula, finish, position=-10, window=4)
    shot(event, paula, 52, face=1, name="alone.jpg")  # 101 only
    shot(event, paula, 52, name="nobody-seen.jpg")  # 101's window, but no face found
    shot(event, paula, 30, face=2, name="between.jpg")  # no window
    place_wide = PhotographerTiming.objects.get(photographer=paula)
    outcome = timing.recompute(event.pk)

    assert tags(event) == [("alone.jpg", "101")]
    assert suggested(event) == [("nobody-seen.jpg", "101")]
    assert outcome.tags == 1 and outcome.suggestions == 1 and outcome.photos == 3

    # A wide window takes in 101 and 102 (20 s apart): suggestions, never a tag.
    place_wide.window_seconds = 19
    place_wide.save()
    timing.recompute(event.pk)
    assert tags(event) == []
    assert ("alone.jpg", "101") in suggested(event) and ("alone.jpg", "102") in suggested(event)


def test_what_people_decided_wins_over_the_timing(event, people, finish):
    paula = people["photographer"]
    place(event, paula, finish)
    read = shot(event, paula, 61, face=1, name="read.jpg")
    rejected = shot(event, paula, 60, face=1, name="rejected.jpg")
    BibTag.objects.create(photo=read, bib="555", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True)
    RejectedReading.objects.create(photo=rejected, bib="101")

    timing.recompute(event.pk)

    # A photo with a bib already found gets a suggestion, not a tag; a rejection is final.
    assert tags(event) == []
    assert suggested(event) == [("read.jpg", "101")]


def test_a_face_link_replaces_a_timing_tag_and_a_timing_tag_is_never_carried_by_face(
        event, people, finish):
    paula = people["photographer"]
    place(event, paula, finish)
    shot(event, paula, 60, face=1, name="a.jpg")  # 101, by timing
    read = shot(event, paula, 300, face=1, bib_on_face="101", name="101-read-later.jpg")
    BibTag.objects.create(photo=read, bib="101", confidence=0.95, source=BibTag.Source.OCR,
                          confirmed=True, face=read.faces.get())
    shot(event, paula, 80, face=2, name="c.jpg")  # 102, by timing
    shot(event, paula, 400, face=2, name="102-again-later.jpg")
    timing.recompute(event.pk)
    assert tags(event) == [("a.jpg", "101"), ("c.jpg", "102")]

    event_linking.link_event(event.pk)
    timing.recompute(event.pk)

    # The face says more than the clock; the clock's guess goes nowhere else.
    assert tags(event, BibTag.Source.FACE_LINK) == [("a.jpg", "101")]
    assert tags(event) == [("c.jpg", "102")]


def test_pointing_at_one_photo_sets_the_clock_of_all_the_photographers_photos(
        event, people, finish):
    paula, owner = people["photographer"], people["owner"]
    place(event, paula, finish, window=3)
    # Her camera runs 95 s slow: 102 (08:01:20) is on the photo her clock says 07:59:45.
    known = shot(event, paula, -15, face=2, name="IMG_0412.JPG")
    later = shot(event, paula, 25, face=4, name="IMG_0420.JPG")  # 104 passed at 08:02:00
    timing.recompute(event.pk)
    assert tags(event) == []

    placement = timing.set_clock_from_photo(owner, event, known, "0102")
    timing.recompute(event.pk)

    assert placement.clock_offset_seconds == 95.0
    assert placement.clock_reference == "IMG_0412.JPG is bib 102"
    assert known.bib_tags.get().source == BibTag.Source.MANUAL  # said by a person
    assert tags(event) == [("IMG_0420.JPG", "104")]
    assert TagChange.objects.filter(photo=known, user=owner).exists()
    assert later.captured_at == Photo.objects.get(pk=later.pk).captured_at  # never rewritten


@pytest.mark.parametrize("change, message", [
    ("no-time", "no capture time"),
    ("no-photographer", "no photographer"),
    ("unknown-bib", "has no time at Finish"),
])
def test_a_clock_cannot_be_set_from_a_photo_that_says_nothing(event, people, finish, change,
                                                              message):
    photo = shot(event, people["photographer"], 0)
    bib = "999" if change == "unknown-bib" else "101"
    if change == "no-time":
        Photo.objects.filter(pk=photo.pk).update(captured_at=None)
    if change == "no-photographer":
        Photo.objects.filter(pk=photo.pk).update(photographer=None)
    photo.refresh_from_db()

    with pytest.raises(timing.TimingError, match=message):
        timing.set_clock_from_photo(people["owner"], event, photo, bib)


# --- Sequences ---------------------------------------------------------------------------


def test_a_hidden_frame_of_a_burst_gets_the_bib_of_its_neighbour(event, people):
    paula, other = people["photographer"], people["owner"]
    read = shot(event, paula, 0, face=1, bib_on_face="7", name="read.jpg")
    BibTag.objects.create(photo=read, bib="7", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True, face=read.faces.get())
    shot(event, paula, 1.5, name="hidden.jpg")  # no face found: a back, an arm
    shot(event, paula, 8, face=1, name="same-face-later.jpg")  # beyond the burst, same face
    shot(event, paula, 8.5, face=2, name="someone-else-later.jpg")
    shot(event, other, 1.0, name="other-photographer.jpg")
    accounted = shot(event, paula, 2, face=3, bib_on_face="8", name="everyone-read.jpg")
    BibTag.objects.create(photo=accounted, bib="8", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True, face=accounted.faces.get())

    count = sequences.recompute(event.pk)

    found = {item.photo.original_name: item for item in
             TagSuggestion.objects.filter(source=TagSuggestion.Source.SEQUENCE, bib="7")}
    assert set(found) == {"hidden.jpg", "same-face-later.jpg"}
    assert found["hidden.jpg"].from_photo == read and not found["hidden.jpg"].same_face
    assert found["same-face-later.jpg"].same_face
    assert found["same-face-later.jpg"].score > found["hidden.jpg"].score
    # Bib 8 of everyone-read.jpg goes to the faceless frame 0.5 s away, not to read.jpg,
    # where the one face is 7's.
    assert suggested(event, TagSuggestion.Source.SEQUENCE) == [
        ("hidden.jpg", "7"), ("hidden.jpg", "8"), ("same-face-later.jpg", "7")]
    assert count == 3


def test_an_answered_suggestion_is_not_offered_until_undone(event, people):
    paula, owner = people["photographer"], people["owner"]
    read = shot(event, paula, 0, name="read.jpg")
    BibTag.objects.create(photo=read, bib="7", confidence=0.9, source=BibTag.Source.MANUAL,
                          confirmed=True)
    hidden = shot(event, paula, 1, name="hidden.jpg")
    sequences.recompute(event.pk)
    still_open = TagSuggestion.objects.still_open

    tagging.reject_suggested(owner, event, [(hidden.pk, "7")])
    assert not still_open().exists()
    sequences.recompute(event.pk)
    assert not TagSuggestion.objects.exists()  # a rejection is never suggested again

    tagging.undo_last(owner, event)
    sequences.recompute(event.pk)
    assert list(still_open().values_list("bib", flat=True)) == ["7"]
    tagging.accept_suggested(owner, event, [(hidden.pk, "7")])
    assert hidden.bib_tags.get().source == BibTag.Source.MANUAL
    assert not still_open().exists()


# --- Pages -------------------------------------------------------------------------------


def url(name, event, *args):
    return reverse(f"admin:events_event_{name}", args=[event.pk, *args])


@pytest.mark.parametrize("who", ["anonymous", "runner", "outsider", "staff", "photographer",
                                 "owner", "admin"])
def test_only_the_events_organisers_and_admins_open_the_timing_pages(client, event, people, who,
                                                                     finish):
    photo = shot(event, people["photographer"], 0, name="x.jpg")
    suggestion = TagSuggestion.objects.create(photo=photo, bib="101", source="timing", score=1,
                                              seconds=0, passed_at=START, point="Finish")
    if people[who]:
        client.force_login(people[who])

    pages = [client.get(url(name, event)).status_code for name in ("timing", "suggestions")]
    answer = client.post(url("decide_suggestions", event),
                         {"action": "confirm", "suggestion": suggestion.pk})

    if who in ("owner", "admin"):
        assert pages == [200, 200]
        assert BibTag.objects.filter(photo=photo, bib="101", source="manual").exists()
    else:
        assert set(pages) <= {302, 404} and answer.status_code in (302, 404)
        assert not BibTag.objects.exists()


def test_the_import_previews_bad_rows_then_writes_and_suggests(client, event, people):
    StartListEntry.objects.bulk_create([StartListEntry(event=event, bib=bib)
                                        for bib in ("101", "102")])
    paula = people["photographer"]
    shot(event, paula, 61, face=1, name="finish.jpg")
    client.force_login(people["owner"])
    data = b"Dossard;Heure\n101;10:01:00\n102;10:01:02\n102;10:05:00\n999;10:03:00\n"

    preview = client.post(url("import_timing", event), {
        "file": SimpleUploadedFile("chrono.csv", data), "point": "Arrivée"})

    text = preview.content.decode()
    assert preview.status_code == 200
    assert "Bib 102 is already on line 3 for Arrivée." in text
    assert "Unknown bib 999: not on the start list." in text
    assert not TimingResult.objects.exists()
    token = preview.context["token"]

    done = client.post(url("import_timing", event), {"token": token}, follow=True)

    messages = [str(message) for message in done.context["messages"]]
    assert "2 new" in messages[0] and "2 rows left out" in messages[0]
    assert "1 photographer placed at Arrivée" in messages[0]
    # Paris time 10:01:00 is 08:01:00 UTC: 101 and 102 (2 s apart) both fit the window.
    assert suggested(event) == [("finish.jpg", "101"), ("finish.jpg", "102")]


def test_a_bad_position_is_refused_with_a_reason_and_a_good_one_recomputes(client, event, people,
                                                                          finish):
    paula = people["photographer"]
    shot(event, paula, 50, face=1, name="before-the-mat.jpg")
    client.force_login(people["owner"])
    prefix = f"p{paula.pk}"

    bad = client.post(url("place_photographer", event, paula.pk), {
        f"{prefix}-point": finish.pk, f"{prefix}-position_seconds": "-10",
        f"{prefix}-window_seconds": "0", f"{prefix}-clock_offset_seconds": "0"})
    assert bad.status_code == 200
    assert "The window is a number of seconds above 0." in bad.content.decode()

    client.post(url("place_photographer", event, paula.pk), {
        f"{prefix}-point": finish.pk, f"{prefix}-position_seconds": "-10",
        f"{prefix}-window_seconds": "4", f"{prefix}-clock_offset_seconds": "0"})
    assert tags(event) == [("before-the-mat.jpg", "101")]


def test_the_clock_form_names_an_unknown_photo(client, event, people, finish):
    paula = people["photographer"]
    shot(event, paula, 0, name="IMG_1.JPG")
    place(event, paula, finish)
    client.force_login(people["owner"])

    page = client.post(url("set_clock", event, paula.pk), {f"c{paula.pk}-photo": "IMG_9.JPG",
                                                            f"c{paula.pk}-bib": "101"})
    assert "No photo of this photographer is called “IMG_9.JPG”." in page.content.decode()

    client.post(url("set_clock", event, paula.pk), {f"c{paula.pk}-photo": "img_1.jpg",
                                                     f"c{paula.pk}-bib": "101"})
    assert PhotographerTiming.objects.get(photographer=paula).clock_offset_seconds == 60.0


def test_the_suggestion_queue_says_why_and_answers_as_json(client, event, people, finish):
    paula = people["photographer"]
    place(event, paula, finish, window=25)
    photo = shot(event, paula, 70, face=1, name="pack.jpg")  # 101 and 102, 10 s either side
    timing.recompute(event.pk)
    client.force_login(people["owner"])

    page = client.get(url("suggestions", event))
    text = page.content.decode()
    # 08:01:00 UTC in the event's time zone (Paris, summer time).
    assert "Passed Finish at 10:01:00, 10.0 s from this photo" in text
    assert "2 suggestions to review." in text

    first = TagSuggestion.objects.get(bib="101")
    answer = client.post(url("decide_suggestions", event),
                         {"action": "reject", "suggestion": first.pk},
                         HTTP_ACCEPT="application/json")
    assert json.loads(answer.content)["changed"] == 1
    assert RejectedReading.objects.filter(photo=photo, bib="101").exists()
    gone = client.post(url("decide_suggestions", event),
                       {"action": "confirm", "suggestion": 10**9}, HTTP_ACCEPT="application/json")
    assert gone.status_code == 400
    assert "reload the page" in json.loads(gone.content)["message"]
    review = client.get(url("review", event)).content.decode()
    assert "1 suggestion from the timing and from bursts" in review


def test_a_photo_read_without_a_bib_has_its_suggestions_redone_by_the_task(event, people,
                                                                          finish):
    from mlpipeline import tasks

    paula = people["photographer"]
    place(event, paula, finish)
    shot(event, paula, 60, face=1, name="new.jpg")

    result = tasks.suggest_event(event.pk)  # what read_bibs schedules when it reads no bib

    assert result == {"sequence": 0, "timing_tags": 1, "timing": 0}
    assert tags(event) == [("new.jpg", "101")]
