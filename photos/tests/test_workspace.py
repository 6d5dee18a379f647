"""The organiser's workspace pages: who may open them, the grid's filters and changes,
the review queue, the report and its CSV."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import translation

from events.tests.factories import EventFactory
from photos import workspace
from photos.models import BibTag, Face, Photo, RejectedReading, TagChange
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

PAGES = ["tagging", "review", "report", "import_start_list"]


@pytest.fixture
def event():
    return EventFactory(slug="corrida")


@pytest.fixture
def photos(event, people):
    by_paula = PhotoFactory(event=event, photographer=people["photographer"],
                            state=Photo.State.READY, original_name="paula.jpg")
    by_nobody = PhotoFactory(event=event, state=Photo.State.FAILED, original_name="other.jpg")
    read = BibTag.objects.create(photo=by_paula, bib="31", confidence=0.9,
                                 source=BibTag.Source.OCR, confirmed=False)
    return by_paula, by_nobody, read


def url(name, event):
    return reverse(f"admin:events_event_{name}", args=[event.pk])


@pytest.mark.parametrize("who", ["anonymous", "runner", "outsider", "staff", "photographer",
                                 "owner", "admin"])
def test_only_the_events_organisers_and_platform_admins_open_the_workspace(
        client, event, people, photos, who):
    if people[who]:
        client.force_login(people[who])

    statuses = {name: client.get(url(name, event)).status_code for name in PAGES}
    change = client.post(url("change_tags", event), {"action": "add", "bib": "9",
                                                     "photo": photos[0].pk})

    if who in ("owner", "admin"):
        assert statuses == dict.fromkeys(PAGES, 200)
        assert BibTag.objects.filter(bib="9").exists()
    else:
        assert set(statuses.values()) <= {302, 404}, statuses
        assert change.status_code in (302, 404)
        assert not BibTag.objects.filter(bib="9").exists()


def test_the_grid_filters_by_photographer_state_no_bib_and_unconfirmed(admin_client, event,
                                                                        people, photos):
    by_paula, by_nobody, _read = photos

    def shown(**query):
        response = admin_client.get(url("tagging", event), query)
        return {card["photo"].pk for card in response.context["cards"]}

    assert shown() == {by_paula.pk, by_nobody.pk}
    assert shown(photographer=people["photographer"].pk) == {by_paula.pk}
    assert shown(state=Photo.State.FAILED) == {by_nobody.pk}
    assert shown(unconfirmed="1") == {by_paula.pk}
    # No start list: the 0.9 reading is probable, and runners find probable photos.
    assert shown(nobib="1") == {by_nobody.pk}
    assert shown(probable="1") == {by_paula.pk}
    BibTag.objects.filter(photo=by_paula).update(confidence=0.5)  # below probable: not found
    assert shown(nobib="1") == {by_paula.pk, by_nobody.pk}
    Face.objects.create(photo=by_nobody, event=event, box=[1, 1, 5, 5], score=0.9)
    assert shown(nobib="1", faces="1") == {by_nobody.pk}


def test_the_grid_shows_each_tags_source(client, event, people, photos):
    by_paula, _other, _read = photos
    BibTag.objects.create(photo=by_paula, bib="32", confidence=0.8,
                          source=BibTag.Source.FACE_LINK, confirmed=True)
    BibTag.objects.create(photo=by_paula, bib="33", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)
    client.force_login(people["owner"])

    html = client.get(url("tagging", event)).content.decode()

    for text in ("lu, non confirmé", "lié par le visage", "à la main"):
        assert text in html


def test_bulk_add_then_undo_through_the_page_as_json(client, event, people, photos):
    by_paula, by_nobody, _read = photos
    client.force_login(people["owner"])

    added = client.post(url("change_tags", event),
                        {"action": "add", "bib": "0077", "photo": [by_paula.pk, by_nobody.pk]},
                        HTTP_ACCEPT="application/json")
    body = added.json()

    assert body["changed"] == 2 and body["message"] == "Dossard 77 ajouté à 2 photos."
    assert set(body["tags"]) == {str(by_paula.pk), str(by_nobody.pk)}
    assert "77" in body["tags"][str(by_nobody.pk)]

    undone = client.post(url("change_tags", event), {"action": "undo"},
                         HTTP_ACCEPT="application/json").json()

    assert undone["changed"] == 2
    assert not BibTag.objects.filter(bib="77").exists()


def test_a_tag_chip_removes_its_bib_and_the_reading_never_returns(client, event, people, photos):
    by_paula, _other, _read = photos
    client.force_login(people["owner"])

    response = client.post(url("change_tags", event), {"remove_tag": f"{by_paula.pk}:31",
                                                       "next": url("tagging", event)})

    assert response.status_code == 302 and response["Location"] == url("tagging", event)
    assert not BibTag.objects.filter(photo=by_paula).exists()
    assert RejectedReading.objects.filter(photo=by_paula, bib="31").exists()
    assert TagChange.objects.get().user == people["owner"]


def test_a_bad_bib_or_another_events_photo_is_refused_with_a_reason(client, event, people,
                                                                    photos):
    client.force_login(people["owner"])
    foreign = PhotoFactory(event=EventFactory())

    bad = client.post(url("change_tags", event), {"action": "add", "bib": "4/2",
                                                  "photo": photos[0].pk},
                      HTTP_ACCEPT="application/json")
    elsewhere = client.post(url("change_tags", event), {"action": "add", "bib": "42",
                                                        "photo": foreign.pk},
                            HTTP_ACCEPT="application/json")

    assert bad.status_code == 400 and "chiffres et des lettres" in bad.json()["message"]
    assert elsewhere.status_code == 400 and not BibTag.objects.filter(bib="42").exists()


def test_the_queue_lists_what_a_person_should_look_at(client, event, people, photos):
    by_paula, by_nobody, read = photos
    unsure = BibTag.objects.create(photo=by_nobody, bib="40", confidence=0.35,
                                   source=BibTag.Source.OCR, confirmed=True)
    linked = BibTag.objects.create(photo=by_nobody, bib="41", confidence=0.97,
                                   source=BibTag.Source.FACE_LINK, confirmed=True)
    BibTag.objects.create(photo=by_nobody, bib="42", confidence=0.95, source=BibTag.Source.OCR,
                          confirmed=True)
    BibTag.objects.create(photo=by_nobody, bib="43", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)
    client.force_login(people["owner"])

    page = client.get(url("review", event))

    assert [item["tag"].pk for item in page.context["items"]] == [read.pk, linked.pk, unsure.pk]
    assert page.context["total"] == 3

    client.post(url("change_tags", event), {"action": "confirm", "tag": read.pk})
    client.post(url("change_tags", event), {"action": "reject", "tag": linked.pk})

    assert [tag.pk for tag in workspace.review_queue_tags(event)] == [unsure.pk]
    assert BibTag.objects.get(photo=by_paula, bib="31").source == BibTag.Source.MANUAL


def test_the_crop_is_the_tags_box_out_of_the_public_preview(event):
    photo = PhotoFactory(event=event, width=2000, height=1000,
                         preview=ContentFile(b"x", name="p.jpg"))
    tag = BibTag(photo=photo, bib="1", confidence=1, source="ocr", box=[1000, 500, 1200, 600])

    style = workspace.crop_style(tag, photo)

    # 15 % padding: the box is 260 x 130 px from (970, 485).
    assert style == ("--crop-ratio:2.0000;--crop-width:769.231%;--crop-left:-373.077%;"
                     "--crop-top:-186.538%")
    assert workspace.crop_style(BibTag(photo=photo, bib="1", confidence=1, source="ocr"),
                                photo) == ""


def test_the_report_counts_coverage_by_source_and_exports_csv(client, event, people, photos):
    by_paula, by_nobody, _read = photos
    BibTag.objects.create(photo=by_nobody, bib="50", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)
    client.force_login(people["owner"])

    figures = client.get(url("report", event)).context["figures"]
    with translation.override("en"):
        figures_en = workspace.coverage(event)
    response = client.get(url("report", event), {"format": "csv"})

    # Paula's 0.9 reading is probable (no start list): runners find her photo too.
    assert (figures["total"], figures["findable"], figures["untagged"]) == (2, 2, 0)
    assert figures["probable_only"] == 1
    assert [(row["label"], row["count"]) for row in figures_en["by_source"]] == [
        ("Read from the photo", 1), ("Same runner's face", 0), ("Tagged by hand", 1),
        ("Passing time", 0)]
    assert figures["queue"] == 1
    csv_text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert response["Content-Type"].startswith("text/csv")
    assert "Couverture;Avec un dossard qu’un coureur trouve;2;100,0" in csv_text
    assert "Par photographe;paula-photographer;1;" in csv_text


def test_the_json_answer_carries_the_new_tag_markup(client, event, people, photos):
    client.force_login(people["admin"])
    body = client.post(url("change_tags", event), {"action": "confirm", "tag": photos[2].pk},
                       HTTP_ACCEPT="application/json").content
    assert "à la main" in json.loads(body)["tags"][str(photos[0].pk)]


@pytest.mark.parametrize("who, status", [("owner", 200), ("admin", 200), ("photographer", 404),
                                         ("staff", 404), ("runner", 302)])
def test_the_clean_bib_crop_is_for_the_events_organisers_only(client, event, people, who, status):
    from PIL import Image

    from photos.tests.images import jpeg

    photo = PhotoFactory(event=event, width=96, height=64,
                         web=ContentFile(jpeg(seed=3), name="w.jpg"))  # the 48 x 32 test JPEG
    tag = BibTag.objects.create(photo=photo, bib="12", confidence=0.5, source=BibTag.Source.OCR,
                                box=[20, 20, 60, 40])
    client.force_login(people[who])

    response = client.get(reverse("admin:events_event_bib_crop", args=[event.pk, tag.pk]))

    assert response.status_code == status
    if status == 200:
        crop = Image.open(io.BytesIO(response.content))
        assert crop.width == workspace.CROP_WIDTH and response["Cache-Control"].startswith("private")
