"""Tags people set: bulk add and remove, review, undo, the audit trail, and conflicts."""

import threading

import pytest
from django.db import connection
from django.utils import translation

from events.tests.factories import EventFactory
from photos import tagging
from photos.models import BibTag, RejectedReading, TagChange
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def event():
    return EventFactory(slug="trail")


def tags(photo):
    return list(BibTag.objects.filter(photo=photo).order_by("bib")
                .values_list("bib", "source", "confirmed"))


def test_it_adds_a_bib_to_many_photos_at_once_and_records_who(event, people):
    photos = [PhotoFactory(event=event) for _ in range(3)]
    BibTag.objects.create(photo=photos[0], bib="42", confidence=0.4, source=BibTag.Source.OCR,
                          confirmed=False, box=[1, 2, 3, 4])

    result = tagging.add_bib(people["owner"], event, [p.pk for p in photos], " 042 ")

    assert result.changed == 3
    for photo in photos:
        assert tags(photo) == [("42", BibTag.Source.MANUAL, True)]
    # A reading a person confirms keeps its box: the review crop still works.
    assert BibTag.objects.get(photo=photos[0]).box == [1, 2, 3, 4]
    changes = TagChange.objects.filter(action=TagChange.Action.ADD)
    assert {(c.photo_id, c.bib, c.user.username) for c in changes} == {
        (p.pk, "42", "olivier-owner") for p in photos}
    assert len({c.batch for c in changes}) == 1 and all(c.at for c in changes)


def test_adding_twice_changes_nothing_the_second_time(event, people):
    photo = PhotoFactory(event=event)
    tagging.add_bib(people["owner"], event, [photo.pk], "7")

    again = tagging.add_bib(people["owner"], event, [photo.pk], "7")

    assert (again.changed, again.unchanged) == (0, 1)
    assert TagChange.objects.count() == 1


def test_removing_a_bib_rejects_it_on_those_photos_only(event, people):
    tagged, other = PhotoFactory(event=event), PhotoFactory(event=event)
    BibTag.objects.create(photo=tagged, bib="9", confidence=0.9, source=BibTag.Source.FACE_LINK,
                          confirmed=True)

    result = tagging.remove_bib(people["owner"], event, [tagged.pk, other.pk], "9")

    assert (result.changed, result.unchanged) == (1, 1)
    assert tags(tagged) == []
    assert list(RejectedReading.objects.values_list("photo", "bib")) == [(tagged.pk, "9")]


def test_undo_puts_the_whole_batch_back(event, people):
    photos = [PhotoFactory(event=event) for _ in range(2)]
    BibTag.objects.create(photo=photos[0], bib="5", confidence=0.6, source=BibTag.Source.OCR,
                          confirmed=False)
    tagging.add_bib(people["owner"], event, [p.pk for p in photos], "5")

    result = tagging.undo_last(people["owner"], event)

    assert result.changed == 2
    assert tags(photos[0]) == [("5", BibTag.Source.OCR, False)]
    assert tags(photos[1]) == []
    assert TagChange.objects.filter(action=TagChange.Action.UNDO).count() == 2
    with pytest.raises(tagging.TaggingError, match="Nothing to undo"):
        tagging.undo_last(people["owner"], event)


def test_undo_never_overwrites_what_someone_did_since(event, people):
    photo = PhotoFactory(event=event)
    tagging.add_bib(people["owner"], event, [photo.pk], "5")
    tagging.remove_bib(people["admin"], event, [photo.pk], "5")

    result = tagging.undo_last(people["owner"], event)

    assert result.changed == 0 and "changed again since" in result.conflicts[0]
    assert tags(photo) == [] and RejectedReading.objects.filter(photo=photo, bib="5").exists()


def test_reject_then_confirm_of_a_tag_gone_since_is_a_clear_conflict(event, people):
    photo = PhotoFactory(event=event)
    reading = BibTag.objects.create(photo=photo, bib="3", confidence=0.5,
                                    source=BibTag.Source.OCR, confirmed=False)
    assert tagging.reject(people["owner"], event, [reading.pk]).changed == 1

    late = tagging.confirm(people["admin"], event, [reading.pk])

    assert late.changed == 0 and "reload the page" in late.conflicts[0]
    assert tags(photo) == []


@pytest.mark.parametrize("bib, message", [("", "Type a bib"), ("4 2/1", "only digits and letters"),
                                          ("1" * 13, "at most 12")])
def test_it_refuses_bibs_that_cannot_be(event, people, bib, message):
    photo = PhotoFactory(event=event)
    with pytest.raises(tagging.TaggingError, match=message):
        tagging.add_bib(people["owner"], event, [photo.pk], bib)


def test_bibs_with_letters_are_kept_upper_case(event, people):
    photo = PhotoFactory(event=event)
    tagging.add_bib(people["owner"], event, [photo.pk], "a12")
    assert tags(photo) == [("A12", BibTag.Source.MANUAL, True)]


def test_it_refuses_a_photo_of_another_event(event, people):
    mine, theirs = PhotoFactory(event=event), PhotoFactory(event=EventFactory())
    with pytest.raises(tagging.TaggingError, match="not photos of this event"):
        tagging.add_bib(people["owner"], event, [mine.pk, theirs.pk], "8")
    assert not BibTag.objects.exists()


@pytest.mark.parametrize("bibs", [("11", "22"), ("11", "11")])
@pytest.mark.django_db(transaction=True)
def test_two_organisers_tagging_one_photo_at_once_lose_no_write(bibs):
    from accounts.models import User
    from accounts.tests.factories import UserFactory

    event = EventFactory(slug="duo")
    photo = PhotoFactory(event=event)
    first, second = (UserFactory(username=name, role=User.Role.ORGANISER) for name in ("a", "b"))
    barrier = threading.Barrier(2)
    errors = []

    def tag_as(user, bib):
        try:
            barrier.wait()
            tagging.add_bib(user, event, [photo.pk], bib)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tag_as, args=(first, bibs[0])),
               threading.Thread(target=tag_as, args=(second, bibs[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # The photo's lock makes them take turns: no unique-constraint error, no lost tag; the
    # second of two identical changes finds it done and records nothing.
    assert errors == []
    assert tags(photo) == [(bib, "manual", True) for bib in sorted(set(bibs))]
    assert TagChange.objects.count() == len(set(bibs))
