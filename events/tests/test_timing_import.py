"""Reading timing exports: encodings and separators, every time format, the per-row report,
then one transaction that a re-import updates without duplicating."""

import datetime as dt
import time
import zoneinfo

import pytest
from django.utils import translation

from events import timing_import
from events.models import StartListEntry, TimingPoint, TimingResult
from events.tests.factories import EventFactory, RaceFactory

pytestmark = pytest.mark.django_db

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DAY = dt.date(2026, 5, 10)


@pytest.fixture(autouse=True)
def english():
    # The messages are compared in their source language.
    with translation.override("en"):
        yield


@pytest.fixture
def event():
    event = EventFactory(date=DAY, time_zone="Europe/Paris")
    race = RaceFactory(event=event, name="10 km", start_time=dt.time(9, 30))
    for bib in ("101", "102", "103", "104"):
        StartListEntry.objects.create(event=event, bib=bib, race=race)
    return event


def by_line(preview):
    return {row.line: row for row in preview.rows}


def test_a_french_export_with_bad_rows_gets_a_report_row_by_row(event):
    data = ("\ufeffDossard;Heure de passage\n"
            "101;10:23:45\n"
            "0102;10:24:01,5\n"  # leading zero, comma decimals
            "999;10:25:00\n"  # nobody wears it
            "101;10:26:00\n"  # twice
            ";10:27:00\n"
            "103;dix heures\n"
            "104;DNF\n").encode("utf-8")

    preview = timing_import.read(data, event, "Arrivée")

    rows = by_line(preview)
    assert preview.encoding == "UTF-8 with BOM" and preview.delimiter == ";"
    assert preview.kind == timing_import.KIND_CLOCK
    assert rows[2].passed_at == dt.datetime(2026, 5, 10, 10, 23, 45, tzinfo=PARIS)
    assert rows[3].bib == "102"
    assert rows[3].passed_at == dt.datetime(2026, 5, 10, 10, 24, 1, 500000, tzinfo=PARIS)
    assert rows[4].errors == ["Unknown bib 999: not on the start list."]
    assert rows[5].errors == ["Bib 101 is already on line 2 for Arrivée."]
    assert rows[6].errors == ["No bib."]
    assert "is not a time" in rows[7].errors[0]
    assert "did not pass" in rows[8].errors[0]
    assert [preview.count(status) for status in ("new", "rejected")] == [2, 5]
    assert not TimingResult.objects.exists()  # a preview writes nothing


@pytest.mark.parametrize("text, expected", [
    ("10:23:45", dt.datetime(2026, 5, 10, 10, 23, 45, tzinfo=PARIS)),
    ("10:23:45.38", dt.datetime(2026, 5, 10, 10, 23, 45, 380000, tzinfo=PARIS)),
    ("10h23", dt.datetime(2026, 5, 10, 10, 23, tzinfo=PARIS)),
    ("2026-05-10T10:23:45", dt.datetime(2026, 5, 10, 10, 23, 45, tzinfo=PARIS)),
    ("2026-05-10 08:23:45Z", dt.datetime(2026, 5, 10, 8, 23, 45, tzinfo=dt.UTC)),
    ("2026-05-10T10:23:45.5+02:00", dt.datetime(2026, 5, 10, 8, 23, 45, 500000, tzinfo=dt.UTC)),
    ("10/05/2026 10:23:45", dt.datetime(2026, 5, 10, 10, 23, 45, tzinfo=PARIS)),
])
def test_times_of_day_and_datetimes_with_or_without_a_zone(text, expected):
    assert timing_import.parse_clock(text, DAY, PARIS) == expected


@pytest.mark.parametrize("text", ["", "25:00:00", "10:61:00", "2026-05-10", "soon", "10:23:45:12"])
def test_what_is_not_a_time_is_refused(text):
    with pytest.raises(ValueError):
        timing_import.parse_clock(text, DAY, PARIS)


def test_the_events_time_zone_applies_to_naive_times(event):
    event.time_zone = "America/New_York"
    event.save()

    preview = timing_import.read(b"bib,time\n101,10:00:00\n", event, "Finish")

    assert preview.rows[0].passed_at == dt.datetime(2026, 5, 10, 14, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("text, expected", [
    ("1:23:45", dt.timedelta(hours=1, minutes=23, seconds=45)),
    ("01:23:45.6", dt.timedelta(hours=1, minutes=23, seconds=45, microseconds=600000)),
    ("52:10", dt.timedelta(minutes=52, seconds=10)),
    ("1h23'45", dt.timedelta(hours=1, minutes=23, seconds=45)),
    ("1h23m45s", dt.timedelta(hours=1, minutes=23, seconds=45)),
    ("26:03:00", dt.timedelta(hours=26, minutes=3)),  # an ultra
])
def test_race_times(text, expected):
    assert timing_import.parse_duration(text) == expected


def test_a_gun_time_export_counts_from_the_races_start(event):
    preview = timing_import.read(b"Bib,Name,Gun Time\n101,Ana,0:52:10\n102,Bo,1:02:03.4\n",
                                 event, "Finish")

    assert preview.kind == timing_import.KIND_GUN
    assert [row.passed_at for row in preview.rows] == [
        dt.datetime(2026, 5, 10, 10, 22, 10, tzinfo=PARIS),
        dt.datetime(2026, 5, 10, 10, 32, 3, 400000, tzinfo=PARIS)]


def test_a_chip_time_export_with_start_times_counts_from_each_runners_start(event):
    preview = timing_import.read(
        b"Dossard;Heure de depart;Temps net\n101;09:31:40;0:50:00\n102;;0:51:00\n", event, "Arrivée")

    assert preview.kind == timing_import.KIND_CHIP_START
    assert preview.rows[0].passed_at == dt.datetime(2026, 5, 10, 10, 21, 40, tzinfo=PARIS)
    assert preview.rows[1].errors == ["No start time for this runner."]


def test_a_race_without_a_start_time_is_said_on_each_row(event):
    event.races.update(start_time=None)

    preview = timing_import.read(b"bib;chip time\n101;0:50:00\n", event, "Finish")

    assert preview.kind == timing_import.KIND_CHIP_RACE
    assert "No start time for this runner's race" in preview.rows[0].errors[0]


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"PK\x03\x04\x00\x00binary", "This is not a text file"),
    (b"name;time\nAna;10:00:00\n", "No bib column"),
    (b"bib;name\n101;Ana\n", "No time column"),
    (b"bib;time\n", "no result"),
])
def test_files_that_are_no_timing_results_are_refused_with_a_reason(event, data, message):
    with pytest.raises(timing_import.TimingFileError, match=message):
        timing_import.read(data, event, "Finish")


def test_a_latin1_file_with_a_point_column_is_read(event):
    data = "Dossard;Point;Heure\n101;Départ;09:31:00\n101;Arrivée;10:22:00\n".encode("cp1252")

    preview = timing_import.read(data, event, "Finish")

    assert preview.encoding == "Windows-1252"
    assert preview.points == ["Arrivée", "Départ"]
    assert all(row.ok for row in preview.rows)


def test_write_is_one_transaction_and_a_reimport_updates_without_duplicating(event):
    first = timing_import.read(b"bib;time\n101;10:00:00\n102;10:00:05\n", event, "Finish")
    result = timing_import.write(first, event)
    assert (result.created, result.updated) == (2, 0)

    again = timing_import.read(b"bib;time\n101;10:00:00\n102;10:00:07\n103;10:01:00\n",
                               event, "finish")  # the same point, whatever its case
    assert [row.status for row in again.rows] == ["unchanged", "updated", "new"]
    timing_import.write(again, event)

    assert TimingPoint.objects.filter(event=event).count() == 1
    assert dict(TimingResult.objects.values_list("bib", "passed_at")) == {
        "101": dt.datetime(2026, 5, 10, 10, 0, tzinfo=PARIS),
        "102": dt.datetime(2026, 5, 10, 10, 0, 7, tzinfo=PARIS),
        "103": dt.datetime(2026, 5, 10, 10, 1, tzinfo=PARIS)}


def test_a_hundred_thousand_rows_read_and_write_in_seconds():
    event = EventFactory(date=DAY)
    lines = ["bib;time"] + [f"{bib};{10 + bib // 3600 % 10:02d}:{bib // 60 % 60:02d}:{bib % 60:02d}.5"
                            for bib in range(1, 100_001)]
    data = "\n".join(lines).encode()

    started = time.monotonic()
    preview = timing_import.read(data, event, "Finish")
    timing_import.write(preview, event)
    elapsed = time.monotonic() - started

    assert TimingResult.objects.filter(point__event=event).count() == 100_000
    assert elapsed < 30, elapsed  # a few seconds alone; the bound leaves room for a busy machine
