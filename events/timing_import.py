"""Reading a timing system's results file (bib and when each runner passed a timing point),
checking every row, then writing it in one go.

Timing software exports in many shapes: the moment each runner crossed the mat as a
time of day (``10:23:45``, ``10:23:45.38``, ``10:23:45,38``) or an ISO datetime with or
without its offset, or only the race times ("chip-time exports": gun time since the
start, chip time since the runner's own start, with or without the time of day each
runner started). :func:`read` turns the bytes into a :class:`Preview` that says, row by
row, what will happen and why, writing nothing; :func:`write` stores the valid rows in
one transaction (COPY, then one ``INSERT … ON CONFLICT``), so a re-import replaces a
runner's time at that point and never duplicates it.

The file is decoded like a start list (:mod:`events.startlist_import`: UTF-8 with or
without BOM, Windows-1252, UTF-16; ``,`` ``;`` or tab). A time without a zone is read in
the event's time zone; every instant is stored as an absolute one.
"""

import csv
import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from events.models import Event, Race, StartListEntry, TimingPoint, TimingResult
from events.startlist_import import (
    HEADER_NAMES as START_LIST_HEADERS,
)
from events.startlist_import import (
    MAX_FIELD_CHARS,
    MAX_ROWS,
    StartListFileError,
    _key,
    open_table,
)
from mlpipeline.bibrules import canonical

BIB, CLOCK, GUN, CHIP, START, POINT, RACE = ("bib", "clock", "gun", "chip", "start", "point",
                                             "race")
# Header names as timing software writes them, compared without case, accents, spaces or
# punctuation (the start list's rule). A bare "time"/"heure" is the moment of passing.
HEADER_NAMES = {
    BIB: START_LIST_HEADERS["bib"] | {"dossardno", "bibno"},
    CLOCK: {"time", "timeofday", "clocktime", "passingtime", "passing", "crossingtime",
            "finishclock", "datetime", "timestamp", "heure", "heuredepassage", "heurepassage",
            "passage", "horaire", "heurearrivee", "heuredarrivee", "dateheure"},
    GUN: {"guntime", "gun", "elapsed", "elapsedtime", "racetime", "officialtime", "temps",
          "tempsofficiel", "tempsbrut", "tempsdecourse", "tempscourse"},
    CHIP: {"chiptime", "chip", "nettime", "net", "tempsnet", "tempspuce", "tempsreel",
           "tempschip"},
    START: {"starttime", "start", "chipstart", "starttimeofday", "depart", "heuredepart",
            "heurededepart"},
    POINT: {"point", "timingpoint", "split", "checkpoint", "location", "mat", "pointdepassage",
            "pointage", "poste"},
    RACE: START_LIST_HEADERS["race"],
}

# How the instants of a file are found, as the preview names them.
KIND_CLOCK, KIND_CHIP_START, KIND_GUN, KIND_CHIP_RACE = "clock", "chip+start", "gun", "chip"
KIND_LABELS = {
    KIND_CLOCK: gettext_lazy("the time of day each runner passed"),
    KIND_CHIP_START: gettext_lazy("each runner's start time plus their chip time"),
    KIND_GUN: gettext_lazy("the race's start time plus the gun time"),
    KIND_CHIP_RACE: gettext_lazy("the race's start time plus the chip time (a runner who "
                                 "crossed the start late is late by as much: widen the window)"),
}

NOT_A_TIME = {"dnf", "dns", "dq", "dsq", "abandon", "abd", "nonpartant", "np", "disq"}
_CLOCK = re.compile(r"^(\d{1,2})[:h](\d{2})(?:[:m'](\d{2})(?:[.,](\d{1,6}))?)?s?$")
_DURATION = re.compile(r"^(?:(\d{1,3})[:h])?(\d{1,2})[:m'](\d{2})(?:[.,](\d{1,6}))?(?:s|\")?$")
_FRENCH_DATETIME = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T]+(.+)$")


class TimingFileError(Exception):
    """The file as a whole cannot be read as timing results (the message says why)."""


@dataclass
class Row:
    line: int
    bib: str = ""
    point: str = ""
    time_text: str = ""
    passed_at: dt.datetime | None = None
    errors: list[str] = field(default_factory=list)  # the row is not imported
    notes: list[str] = field(default_factory=list)  # imported, with this said
    status: str = ""  # new | updated | unchanged | rejected

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class Preview:
    rows: list[Row]
    encoding: str
    delimiter: str
    columns: dict[str, str]  # our field -> the file's header
    kind: str  # KIND_*: how the instants were found
    time_zone: str

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def valid_rows(self) -> list[Row]:
        return [row for row in self.rows if row.ok]

    @property
    def problem_rows(self) -> list[Row]:
        return [row for row in self.rows if row.errors or row.notes]

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[self.kind])

    @property
    def points(self) -> list[str]:
        return sorted({row.point for row in self.valid_rows})


def _columns(header: list[str]) -> dict[str, int]:
    found = {}
    for index, name in enumerate(header):
        key = _key(name)
        for our_field, names in HEADER_NAMES.items():
            if key in names and our_field not in found:
                found[our_field] = index
                break
    return found


def _kind(columns: dict[str, int]) -> str:
    if CLOCK in columns:
        return KIND_CLOCK
    if CHIP in columns and START in columns:
        return KIND_CHIP_START
    if GUN in columns:
        return KIND_GUN
    if CHIP in columns:
        return KIND_CHIP_RACE
    raise TimingFileError(_(
        "No time column in the first line. Expected a header such as: bib (or dossard) and "
        "time (heure de passage), or gun time (temps officiel), or chip time (temps net) "
        "with start time (heure de départ)."))


def _fraction(text: str | None) -> int:
    return int((text or "0").ljust(6, "0")[:6])


def parse_clock(text: str, day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """An instant from a time of day (on ``day``) or a datetime; naive ones are ``zone``'s.
    ValueError when the text is neither."""
    text = text.strip()
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds, fraction = match.groups()
        clock = dt.time(int(hours), int(minutes), int(seconds or 0), _fraction(fraction))
        return dt.datetime.combine(day, clock).replace(tzinfo=zone)
    french = _FRENCH_DATETIME.match(text)
    if french:
        day_text, month, year, rest = french.groups()
        when = parse_clock(rest, dt.date(int(year), int(month), int(day_text)), zone)
        return when
    # ISO 8601: 2026-05-10T10:23:45.38+02:00, 2026-05-10 10:23:45, …Z; a comma decimal too.
    if ":" not in text:
        raise ValueError(text)  # a date alone says nothing about the passing
    value = dt.datetime.fromisoformat(text.replace(",", "."))
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


def parse_duration(text: str) -> dt.timedelta:
    """A race time: H:MM:SS(.f), MM:SS(.f), 1h23'45 or 1h23m45s. ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(text)
    hours, minutes, seconds, fraction = match.groups()
    if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
        raise ValueError(text)
    return dt.timedelta(hours=int(hours or 0), minutes=int(minutes), seconds=int(seconds),
                        microseconds=_fraction(fraction))


def _race_start(race: Race | None, event: Event, zone) -> dt.datetime | None:
    if race is None or race.start_time is None:
        return None
    return dt.datetime.combine(event.date, race.start_time).replace(tzinfo=zone)


def read(data: bytes, event: Event, default_point: str) -> Preview:
    """Check every row of ``data`` against the event (its start list, its races, the results
    already stored); writes nothing. Rows without a point column go to ``default_point``."""
    try:
        table = open_table(data)
    except StartListFileError as exc:
        raise TimingFileError(str(exc)) from exc
    default_point = " ".join(default_point.split())[:100]
    if not default_point:
        raise TimingFileError(_("Name the timing point (e.g. Finish)."))
    reader, header, columns = table.reader, table.header, _columns(table.header)
    encoding, delimiter = table.encoding, table.delimiter
    if BIB not in columns:
        raise TimingFileError(_(
            "No bib column in the first line. Expected a header such as: bib (or dossard), "
            "time (heure de passage)."))
    kind = _kind(columns)
    zone = zoneinfo.ZoneInfo(event.time_zone)

    listed = dict(StartListEntry.objects.filter(event=event).values_list("bib", "race_id"))
    races = {race.pk: race for race in event.races.all()}
    races_by_name = {_key(race.name): race for race in races.values()}
    only_race = next(iter(races.values())) if len(races) == 1 else None
    existing = {(_key(point), bib): passed_at for point, bib, passed_at in
                TimingResult.objects.filter(point__event=event)
                .values_list("point__name", "bib", "passed_at")}
    context = {"event": event, "zone": zone, "kind": kind, "listed": listed, "races": races,
               "races_by_name": races_by_name, "only_race": only_race,
               "default_point": default_point}
    rows, seen = [], {}
    first_data_line = table.first_data_line
    try:
        for offset, cells in enumerate(reader):
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise TimingFileError(_("More than %(count)d rows: split the file in parts.")
                                      % {"count": MAX_ROWS})
            rows.append(_row(first_data_line + offset, cells, columns, context, seen))
    except csv.Error as exc:
        raise TimingFileError(_("Line %(line)d cannot be read: %(error)s")
                              % {"line": first_data_line + len(rows), "error": exc}) from exc
    if not rows:
        raise TimingFileError(_("The file has a header but no result."))
    for row in rows:
        if not row.ok:
            row.status = "rejected"
            continue
        before = existing.get((_key(row.point), row.bib))
        row.status = ("new" if before is None else
                      "unchanged" if before == row.passed_at else "updated")
    return Preview(rows=rows, encoding=encoding, delimiter=delimiter,
                   columns={name: header[index].strip() for name, index in columns.items()},
                   kind=kind, time_zone=event.time_zone)


def _row(line, cells, columns, context, seen) -> Row:
    row = Row(line=line)
    values = {}
    for name, index in columns.items():
        value = cells[index].strip() if index < len(cells) else ""
        if len(value) > MAX_FIELD_CHARS:
            row.errors.append(_("A cell is %(count)d characters long: this is not a result row.")
                              % {"count": len(value)})
            return row
        values[name] = value
    row.point = " ".join(values.get(POINT, "").split())[:100] or context["default_point"]

    raw_bib = "".join(values.get(BIB, "").split())
    if not raw_bib:
        row.errors.append(_("No bib."))
    elif not raw_bib.isalnum() or len(raw_bib) > 12:
        row.errors.append(_("The bib “%(bib)s” has characters a bib cannot have.")
                          % {"bib": raw_bib[:20]})
    else:
        row.bib = canonical(raw_bib).upper()
        key = (_key(row.point), row.bib)
        if context["listed"] and row.bib not in context["listed"]:
            row.errors.append(_("Unknown bib %(bib)s: not on the start list.") % {"bib": row.bib})
        elif key in seen:
            row.errors.append(_("Bib %(bib)s is already on line %(line)d for %(point)s.")
                              % {"bib": row.bib, "line": seen[key], "point": row.point})
        else:
            seen[key] = line

    kind = context["kind"]
    time_column = {KIND_CLOCK: CLOCK, KIND_CHIP_START: CHIP, KIND_GUN: GUN,
                   KIND_CHIP_RACE: CHIP}[kind]
    row.time_text = values.get(time_column, "")
    if not row.time_text:
        row.errors.append(_("No time."))
    elif _key(row.time_text) in NOT_A_TIME:
        row.errors.append(_("No time (%(status)s): the runner did not pass this point.")
                          % {"status": row.time_text})
    else:
        try:
            row.passed_at = _passed_at(row, values, context)
        except _NoStart as exc:  # before ValueError, which it is
            row.errors.append(str(exc))
        except ValueError:
            row.errors.append(_("“%(time)s” is not a time: write 10:23:45, 10:23:45.38 or "
                                "2026-05-10T10:23:45+02:00.") % {"time": row.time_text[:40]}
                              if kind == KIND_CLOCK else
                              _("“%(time)s” is not a race time: write 1:23:45 or 1:23:45.38.")
                              % {"time": row.time_text[:40]})
    if row.passed_at is not None:
        local_day = row.passed_at.astimezone(context["zone"]).date()
        if abs((local_day - context["event"].date).days) > 1:
            row.notes.append(_("Passed on %(day)s, not on the day of the event: check the "
                               "date.") % {"day": local_day.isoformat()})
    return row


class _NoStart(ValueError):
    """A race time without a known start to count it from (the message says what to do)."""


def _passed_at(row, values, context) -> dt.datetime:
    event, zone, kind = context["event"], context["zone"], context["kind"]
    if kind == KIND_CLOCK:
        return parse_clock(row.time_text, event.date, zone)
    elapsed = parse_duration(row.time_text)
    if kind == KIND_CHIP_START:
        start_text = values.get(START, "")
        if not start_text:
            raise _NoStart(_("No start time for this runner."))
        try:
            return parse_clock(start_text, event.date, zone) + elapsed
        except ValueError as exc:
            raise _NoStart(_("“%(time)s” is not a start time.") % {"time": start_text[:40]}) from exc
    race_name = values.get(RACE, "")
    if race_name:
        race = context["races_by_name"].get(_key(race_name))
        if race is None:
            raise _NoStart(_("Unknown race “%(race)s”: add it to the event first.")
                           % {"race": race_name[:60]})
    else:
        race = context["races"].get(context["listed"].get(row.bib)) or context["only_race"]
    start = _race_start(race, event, zone)
    if start is None:
        raise _NoStart(_("No start time for this runner's race: set the race's start time "
                         "on the event, or export the time of day of each passing."))
    return start + elapsed


@dataclass(frozen=True)
class WriteResult:
    created: int
    updated: int
    unchanged: int
    rejected: int
    points: tuple[TimingPoint, ...]


def write(preview: Preview, event: Event) -> WriteResult:
    """Store the preview's valid rows, all or none; a bib already timed at that point gets
    the file's time. COPY into a temporary table and one ``INSERT … ON CONFLICT``:
    100,000 rows in about a second."""
    table = TimingResult._meta.db_table
    with transaction.atomic():
        points = {}
        for name in preview.points:
            # A point is found again whatever the case or accents of its name in this file.
            point = next((point for point in TimingPoint.objects.filter(event=event)
                          if _key(point.name) == _key(name)), None)
            points[_key(name)] = point or TimingPoint.objects.create(event=event, name=name)
        rows = [(points[_key(row.point)].pk, row.bib, row.passed_at)
                for row in preview.valid_rows if row.status != "unchanged"]
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE timing_upload (point_id bigint, "
                           "bib varchar(12), passed_at timestamptz) ON COMMIT DROP")
            with cursor.cursor.copy("COPY timing_upload FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} (point_id, bib, passed_at) "
                "SELECT point_id, bib, passed_at FROM timing_upload "
                "ON CONFLICT (point_id, bib) DO UPDATE SET passed_at = EXCLUDED.passed_at")
            cursor.execute("DROP TABLE timing_upload")
    return WriteResult(created=preview.count("new"), updated=preview.count("updated"),
                       unchanged=preview.count("unchanged"), rejected=preview.count("rejected"),
                       points=tuple(points.values()))
