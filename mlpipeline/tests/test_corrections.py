"""A reading the bib rules corrected onto a listed bib is probable, not confirmed, until a
face link, another frame of the burst or a person confirms it (mlpipeline.corrections)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from events.models import StartListEntry
from events.tests.factories import EventFactory
from mlpipeline import event_linking, loaded, steps
from mlpipeline.bibrules import BibRules, forget_event_rules
from mlpipeline.start_list import confirm_listed_readings
from mlpipeline.tests.test_link_event import face, ocr_tag
from mlpipeline.tests.test_steps import bib_photo
from photos import tagging
from photos.models import BibTag
from photos.tests.factories import PhotoFactory, make_photo
from search.services import REASON_PROBABLE, photos_by_bib

pytestmark = pytest.mark.django_db


class Reading:
    def __init__(self, text, confidence, box=(0, 0, 10, 10)):
        self.text, self.confidence, self.box = text, confidence, box


def test_the_rules_keep_what_was_read_and_leave_a_correction_unconfirmed():
    rules = BibRules(start_list=frozenset({"4025", "77"}))

    [corrected] = rules.accept([Reading("3025", 0.9)])
    [exact] = rules.accept([Reading("77", 0.9)])

    assert (corrected.text, corrected.read_as, corrected.confirmed) == ("4025", "3025", False)
    assert (exact.read_as, exact.confirmed) == ("", True)


def test_the_bib_read_exactly_outranks_a_correction_onto_it_on_the_same_photo():
    rules = BibRules(start_list=frozenset({"4025"}))

    [tag] = rules.accept([Reading("3025", 0.99, (0, 0, 10, 10)),
                          Reading("4025", 0.5, (100, 100, 110, 110))])

    assert (tag.read_as, tag.confirmed, tag.confidence) == ("", True, 0.5)


@pytest.fixture
def event():
    event = EventFactory(slug="partial-list")
    StartListEntry.objects.create(event=event, bib="4025")
    StartListEntry.objects.create(event=event, bib="512")
    return event


def corrected_tag(photo, bib="4025", read_as="3025"):
    return BibTag.objects.create(photo=photo, bib=bib, confidence=0.72, source=BibTag.Source.OCR,
                                 confirmed=False, read_as=read_as, box=[10, 60, 50, 80])


def test_the_bib_step_stores_a_correction_unconfirmed_and_linked_to_no_face(event):
    loaded.forget()
    forget_event_rules()
    photo = make_photo(event, bib_photo("3025"))

    steps.read_bibs(photo)

    [tag] = BibTag.objects.filter(photo=photo)
    assert (tag.bib, tag.read_as, tag.confirmed, tag.face_id) == ("4025", "3025", False, None)
    loaded.forget()


def test_a_correction_is_shown_as_probable_and_queued_with_what_was_read(event, admin_client):
    photo = PhotoFactory(event=event)
    tag = corrected_tag(photo)

    [match] = photos_by_bib(event, "4025")
    page = admin_client.get(workspace_url(event, "review"))

    assert match.photo_id == photo.pk and REASON_PROBABLE in match.reasons
    [item] = page.context["items"]
    assert item["tag"].pk == tag.pk
    assert item["reason"].startswith("Lu 3025, corrigé en 4025")


def workspace_url(event, name):
    return reverse(f"admin:events_event_{name}", args=[event.pk])


def test_importing_the_list_again_does_not_confirm_a_correction(event):
    tag = corrected_tag(PhotoFactory(event=event))

    assert confirm_listed_readings(event.pk) == 0

    tag.refresh_from_db()
    assert (tag.bib, tag.confirmed) == ("4025", False)


def test_a_list_that_now_holds_what_was_read_turns_the_correction_into_that_bib(event):
    tag = corrected_tag(PhotoFactory(event=event))
    StartListEntry.objects.create(event=event, bib="3025")

    assert confirm_listed_readings(event.pk) == 1

    tag.refresh_from_db()
    assert (tag.bib, tag.read_as, tag.confirmed) == ("3025", "", True)


def test_a_face_link_confirms_the_correction_and_is_not_written_twice(event):
    read, corrected_photo = PhotoFactory(event=event), PhotoFactory(event=event)
    ocr_tag(read, "4025", face(event, read, runner=1, jitter=0, bib="4025"))
    runner_face = face(event, corrected_photo, runner=1, jitter=1)
    tag = corrected_tag(corrected_photo)

    event_linking.link_event(event.pk)

    tag.refresh_from_db()
    runner_face.refresh_from_db()
    assert (tag.confirmed, tag.face_id, runner_face.bib) == (True, runner_face.pk, "4025")
    assert list(BibTag.objects.filter(photo=corrected_photo).values_list("bib", "source")) == [
        ("4025", BibTag.Source.OCR)]


def test_another_runners_face_does_not_confirm_it_and_it_is_not_carried_by_face(event):
    read, corrected_photo, elsewhere = (PhotoFactory(event=event) for _ in range(3))
    ocr_tag(read, "4025", face(event, read, runner=1, jitter=0, bib="4025"))
    face(event, corrected_photo, runner=2, jitter=0)  # the unlisted 3025 runner
    face(event, elsewhere, runner=2, jitter=1)
    tag = corrected_tag(corrected_photo)

    event_linking.link_event(event.pk)

    tag.refresh_from_db()
    assert tag.confirmed is False
    assert not BibTag.objects.filter(photo=elsewhere).exists()


def burst_photos(event, photographer, seconds_apart):
    start = timezone.now().replace(microsecond=0)
    return [PhotoFactory(event=event, photographer=photographer,
                         captured_at=start + timedelta(seconds=offset))
            for offset in (0, seconds_apart)]


@pytest.mark.parametrize(("seconds_apart", "same_photographer", "confirmed"), [
    (3, True, True), (60, True, False), (3, False, False)])
def test_the_same_bib_read_on_a_frame_of_the_same_burst_confirms_it(
        event, named_people, seconds_apart, same_photographer, confirmed):
    people = named_people(event)
    first, second = burst_photos(event, people["photographer"], seconds_apart)
    if not same_photographer:
        second.photographer = people["owner"]
        second.save()
    BibTag.objects.create(photo=first, bib="4025", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True)
    tag = corrected_tag(second)

    event_linking.link_event(event.pk)

    tag.refresh_from_db()
    assert tag.confirmed is confirmed


def test_a_burst_of_corrections_does_not_confirm_itself(event, named_people):
    people = named_people(event)
    first, second = burst_photos(event, people["photographer"], 2)
    one, two = corrected_tag(first), corrected_tag(second)

    event_linking.link_event(event.pk)

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.confirmed, two.confirmed) == (False, False)


def test_a_person_confirms_it_and_undo_brings_the_correction_back(event, named_people):
    people = named_people(event)
    tag = corrected_tag(PhotoFactory(event=event))

    tagging.confirm(people["owner"], event, [tag.pk])
    confirmed = BibTag.objects.get(pk=tag.pk)
    tagging.undo_last(people["owner"], event)
    undone = BibTag.objects.get(pk=tag.pk)

    assert (confirmed.source, confirmed.confirmed) == (BibTag.Source.MANUAL, True)
    assert (undone.source, undone.confirmed, undone.read_as) == (BibTag.Source.OCR, False, "3025")
