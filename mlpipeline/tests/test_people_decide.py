"""What a person decided about a photo's tags survives the machine: re-reading the photo
(steps.read_bibs) and re-linking the event (event_linking.link_event)."""

import pytest

from events.models import StartListEntry
from events.tests.factories import EventFactory
from mlpipeline import event_linking, loaded
from mlpipeline.bibrules import forget_event_rules
from mlpipeline.tests.test_link_event import face, ocr_tag
from mlpipeline.tests.test_steps import bib_photo
from photos import pipeline, tagging
from photos.models import BibTag, PhotoStep
from photos.tests.factories import PhotoFactory, make_photo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_models():
    loaded.forget()
    forget_event_rules()
    yield
    loaded.forget()


def process_again(photo):
    PhotoStep.objects.filter(photo=photo).delete()
    pipeline.process_photo(photo.pk)


def test_a_rejected_reading_never_comes_back_and_a_manual_tag_stays(people_of_event):
    event, people = people_of_event
    StartListEntry.objects.create(event=event, bib="4721")
    photo = make_photo(event, bib_photo("4721"))
    pipeline.process_photo(photo.pk)
    [read] = BibTag.objects.filter(photo=photo)
    assert (read.bib, read.source) == ("4721", BibTag.Source.OCR)

    tagging.reject(people["owner"], event, [read.pk])
    tagging.add_bib(people["owner"], event, [photo.pk], "88")
    process_again(photo)

    assert list(BibTag.objects.filter(photo=photo).values_list("bib", "source")) == [
        ("88", BibTag.Source.MANUAL)]


def test_relinking_keeps_manual_tags_and_never_links_a_rejected_bib(people_of_event):
    event, people = people_of_event
    read, hidden, tagged = (PhotoFactory(event=event) for _ in range(3))
    ocr_tag(read, "512", face(event, read, runner=1, jitter=0, bib="512"))
    face(event, hidden, runner=1, jitter=1)
    face(event, tagged, runner=1, jitter=2)
    event_linking.link_event(event.pk)
    link = BibTag.objects.get(photo=hidden, source=BibTag.Source.FACE_LINK)
    confirmed_link = BibTag.objects.get(photo=tagged, source=BibTag.Source.FACE_LINK)

    tagging.reject(people["owner"], event, [link.pk])
    tagging.confirm(people["owner"], event, [confirmed_link.pk])
    tagging.add_bib(people["owner"], event, [hidden.pk], "77")
    event_linking.link_event(event.pk)

    assert list(BibTag.objects.filter(photo=hidden).values_list("bib", "source")) == [
        ("77", BibTag.Source.MANUAL)]
    assert list(BibTag.objects.filter(photo=tagged).values_list("bib", "source")) == [
        ("512", BibTag.Source.MANUAL)]


@pytest.fixture
def people_of_event(named_people):
    event = EventFactory(slug="relink")
    return event, named_people(event)
