"""The review queue's pages on a big event, the grid's time range, probable and featured
filters, and the report's CSV files."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from events.models import StartListEntry
from events.tests.factories import EventFactory
from photos import workspace
from photos.models import BibTag, Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return EventFactory(slug="grand-raid")


def url(name, event):
    return reverse(f"admin:events_event_{name}", args=[event.pk])


def unconfirmed(photo, bib, confidence=0.5):
    return BibTag.objects.create(photo=photo, bib=bib, confidence=confidence,
                                 source=BibTag.Source.OCR, confirmed=False)


def test_the_queue_pages_by_keyset_and_deciding_skips_nothing(client, event, people, monkeypatch):
    monkeypatch.setattr(workspace, "QUEUE_PAGE_SIZE", 3)
    photos = [PhotoFactory(event=event) for _ in range(4)]
    tags = [unconfirmed(photo, str(100 + index), confidence=0.3 + index / 100)
            for index, photo in enumerate(photos)]
    tags += [unconfirmed(photos[0], "200", confidence=0.9), unconfirmed(photos[1], "201", 0.9)]
    client.force_login(people["owner"])

    first = client.get(url("review", event))
    shown = [item["tag"].pk for item in first.context["items"]]
    # The person decides the whole first page before asking for the next one: an offset
    # would now skip the three tags that moved up.
    client.post(url("change_tags", event), {"action": "confirm", "tag": shown})
    second = client.get(url("review", event), {"after": first.context["next_cursor"]})

    assert first.context["total"] == 6 and len(shown) == 3
    seen = shown + [item["tag"].pk for item in second.context["items"]]
    assert sorted(seen) == sorted(tag.pk for tag in tags)
    assert second.context["next_cursor"] == ""
    assert "Retour au début de la file" in second.content.decode()


def test_a_mangled_queue_link_starts_again_with_a_message(client, event, people):
    unconfirmed(PhotoFactory(event=event), "7")
    client.force_login(people["owner"])

    response = client.get(url("review", event), {"after": "not-a-cursor"})

    assert response.status_code == 200 and len(response.context["items"]) == 1
    assert "n’est plus valable" in response.content.decode()


def test_a_big_queue_costs_the_same_few_queries_on_any_page(client, event, people,
                                                            django_assert_max_num_queries):
    photos = PhotoFactory.create_batch(30, event=event)
    BibTag.objects.bulk_create([BibTag(photo=photo, bib=str(1000 + index * 10 + copy),
                                       confidence=0.4, source=BibTag.Source.OCR)
                                for index, photo in enumerate(photos) for copy in range(10)])
    client.force_login(people["owner"])
    first = client.get(url("review", event))

    with django_assert_max_num_queries(20):
        deep = client.get(url("review", event), {"after": first.context["next_cursor"]})

    assert len(deep.context["items"]) == workspace.QUEUE_PAGE_SIZE
    assert deep.context["items"][0]["tag"].pk not in {
        item["tag"].pk for item in first.context["items"]}


def shown_in_grid(client, event, **query):
    response = client.get(url("tagging", event), query)
    return {card["photo"].pk for card in response.context["cards"]}, response


def test_the_grid_filters_by_capture_time_range(client, event, people):
    start = timezone.make_aware(datetime(2026, 9, 14, 10, 0))
    early, on_time, late = (PhotoFactory(event=event, captured_at=start + timedelta(minutes=m))
                            for m in (0, 15, 30))
    PhotoFactory(event=event, captured_at=None)
    client.force_login(people["owner"])

    between, _page = shown_in_grid(client, event, taken_from="2026-09-14T10:10",
                                   taken_to="2026-09-14T10:15")
    after, _page = shown_in_grid(client, event, taken_from="2026-09-14T10:15")
    until, _page = shown_in_grid(client, event, taken_to="2026-09-14T10:00")

    assert between == {on_time.pk}
    assert after == {on_time.pk, late.pk}
    assert until == {early.pk}


def test_a_bad_or_reversed_time_range_is_explained_and_ignored(client, event, people):
    PhotoFactory(event=event)
    client.force_login(people["owner"])

    shown, bad = shown_in_grid(client, event, taken_from="tomorrow")
    _shown, reversed_range = shown_in_grid(client, event, taken_from="2026-09-14T11:00",
                                           taken_to="2026-09-14T10:00")

    assert len(shown) == 1
    assert "« tomorrow » n’est pas une date et une heure" in bad.content.decode()
    assert "inversez-les" in reversed_range.content.decode()


def test_the_grid_shows_probable_photos_only(client, event, people):
    StartListEntry.objects.create(event=event, bib="4025")
    corrected, off_list, sure = PhotoFactory.create_batch(3, event=event)
    BibTag.objects.create(photo=corrected, bib="4025", confidence=0.7, source=BibTag.Source.OCR,
                          read_as="3025")
    unconfirmed(off_list, "999")
    BibTag.objects.create(photo=sure, bib="4025", confidence=0.9, source=BibTag.Source.OCR,
                          confirmed=True)
    client.force_login(people["owner"])

    probable, page = shown_in_grid(client, event, probable="1")

    assert probable == {corrected.pk}
    assert "lu 3025, corrigé : probable" in page.content.decode()


def test_the_organiser_features_photos_from_the_grid(client, event, people):
    first, second = PhotoFactory.create_batch(2, event=event)
    client.force_login(people["owner"])

    client.post(url("change_tags", event), {"action": "feature", "photo": [first.pk, second.pk]})
    client.post(url("change_tags", event), {"action": "unfeature", "photo": [second.pk]})
    featured, _page = shown_in_grid(client, event, featured="1")
    foreign = client.post(url("change_tags", event), {
        "action": "feature", "photo": [PhotoFactory(event=EventFactory()).pk]},
        HTTP_ACCEPT="application/json")

    assert featured == {first.pk}
    assert foreign.status_code == 400


def read_csv(response) -> list[list[str]]:
    raw = b"".join(response.streaming_content)
    assert raw.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.parametrize("section", list(workspace.REPORT_CSV))
def test_every_report_section_exports_csv(client, event, people, section):
    PhotoFactory(event=event, photographer=people["photographer"], state=Photo.State.READY)
    client.force_login(people["owner"])

    response = client.get(url("report", event), {"format": "csv", "section": section})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="grand-raid-{section}.csv"' in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header and all(len(row) == len(header) for row in rows)


def test_the_csv_files_are_safe_from_formula_injection_and_list_what_they_say(client, event,
                                                                              people):
    people["photographer"].username = "=HYPERLINK(\"http://evil\")"
    people["photographer"].save()
    untagged = PhotoFactory(event=event, photographer=people["photographer"],
                            original_name="@SUM(A1).jpg")
    tagged = PhotoFactory(event=event)
    BibTag.objects.create(photo=tagged, bib="12", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)
    queued = unconfirmed(tagged, "13", confidence=0.2)
    client.force_login(people["owner"])

    def rows(section):
        return read_csv(client.get(url("report", event), {"format": "csv", "section": section}))

    untagged_rows, queue_rows = rows("untagged"), rows("queue")
    photographers = rows("photographers")

    assert [row[0] for row in untagged_rows[1:]] == [str(untagged.pk)]
    assert untagged_rows[1][1] == "'@SUM(A1).jpg"
    assert untagged_rows[1][2].startswith("'=HYPERLINK")
    assert [row[0] for row in queue_rows[1:]] == [str(queued.pk)]
    assert any(row[0].startswith("'=HYPERLINK") for row in photographers[1:])


def test_an_unknown_report_section_is_not_found(client, event, people):
    client.force_login(people["owner"])

    assert client.get(url("report", event), {"format": "csv", "section": "x"}).status_code == 404
