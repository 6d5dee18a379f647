"""Which bib tags runners see (photos.tags.shown_tags), the rule search, linking, the
suggestions and the workspace share."""

import pytest

from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline.bibrules import PROBABLE_MIN_CONFIDENCE
from photos.models import BibTag
from photos.tags import has_start_list, shown_tags
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

OCR, MANUAL, FACE_LINK, TIMING = (BibTag.Source.OCR, BibTag.Source.MANUAL, BibTag.Source.FACE_LINK,
                                  BibTag.Source.TIMING)


def tags(event, *specs):
    """One photo per (bib, source, confirmed, confidence, read_as)."""
    return {spec[0]: BibTag.objects.create(photo=PhotoFactory(event=event), bib=spec[0], source=spec[1],
                                           confirmed=spec[2], confidence=spec[3], read_as=spec[4])
            for spec in specs}


def shown(event, **kwargs) -> set[str]:
    return set(shown_tags(event.pk, **kwargs).values_list("bib", flat=True))


PEOPLE_AND_LINKS = [("10", MANUAL, True, 1.0, ""), ("11", FACE_LINK, False, 0.97, ""),
                    ("12", TIMING, False, 0.8, ""), ("13", OCR, True, 0.4, "")]


def test_with_a_start_list_readings_off_it_are_left_for_staff():
    event = EventFactory()
    StartListEntryFactory(event=event, bib="10")
    tags(event, *PEOPLE_AND_LINKS,
         ("20", OCR, False, 0.99, ""),       # off the list, however sure: staff review it
         ("31", OCR, False, 0.6, "3l"))      # corrected onto a listed bib: shown, probable

    assert has_start_list(event.pk)
    assert shown(event) == {"10", "11", "12", "13", "31"}


def test_without_a_start_list_sure_readings_are_shown_as_probable():
    event = EventFactory()
    tags(event, *PEOPLE_AND_LINKS,
         ("20", OCR, False, PROBABLE_MIN_CONFIDENCE, ""),
         ("21", OCR, False, PROBABLE_MIN_CONFIDENCE - 0.01, ""))

    assert not has_start_list(event.pk)
    assert shown(event) == {"10", "11", "12", "13", "20"}


def test_the_caller_may_say_whether_there_is_a_start_list_and_other_events_never_show():
    event, other = EventFactory(), EventFactory()
    tags(event, ("20", OCR, False, 0.95, ""))
    tags(other, ("99", MANUAL, True, 1.0, ""))

    assert shown(event, start_list=True) == set()
    assert shown(event, start_list=False) == {"20"}
