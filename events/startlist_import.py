"""Reading an organiser's start-list file, checking every row, then writing it in one go.

Registration platforms and spreadsheets export start lists in many shapes: UTF-8 with
or without a BOM, Windows-1252 from an old Excel, UTF-16 from Excel's "Unicode text",
``;`` as separator in French locales, headers in French or English. :func:`read` turns
the bytes into a :class:`Preview` that says, row by row, what will happen and why,
without writing anything; :func:`write` then applies the valid rows in one transaction
(COPY, then one ``INSERT … ON CONFLICT``, so a re-import updates names and never
duplicates a bib). Nothing here imports the photos: what an import changes for stored
readings is :mod:`mlpipeline.start_list`'s job.
"""

import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from events.models import Event, Race, StartListEntry
from mlpipeline.bibrules import canonical

#: a start list of a big marathon is a few MB; this leaves room and stops a runaway upload
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
#: one cell of a real start list is a name; a bigger one is a broken or hostile file
MAX_FIELD_CHARS = 10_000

BIB, FIRST_NAME, LAST_NAME, RACE, EMAIL = "bib", "first_name", "last_name", "race", "email"
# Header names as registration exports write them, compared without case, accents,
# spaces or punctuation.
HEADER_NAMES = {
    BIB: {"bib", "bibnumber", "bibno", "dossard", "numerodossard", "nodossard", "numero", "no",
          "num", "number", "n"},
    FIRST_NAME: {"firstname", "first", "givenname", "forename", "prenom"},
    LAST_NAME: {"lastname", "last", "surname", "familyname", "nom", "nomdefamille"},
    RACE: {"race", "course", "epreuve", "distance", "parcours", "event"},
    EMAIL: {"email", "mail", "emailaddress", "courriel", "adressemail", "adresseemail"},
}
FIELD_LIMITS = {BIB: 12, FIRST_NAME: 100, LAST_NAME: 100, EMAIL: 254}
# UTF-8 read as Windows-1252: "Ã©" for "é". A row showing it was mis-encoded upstream.
MOJIBAKE = re.compile("[ÃÂ][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u017d\u017e\u0178]")


class StartListFileError(Exception):
    """The file as a whole cannot be read as a start list (the message says why)."""


@dataclass
class Row:
    line: int
    bib: str = ""
    first_name: str = ""
    last_name: str = ""
    race: Race | None = None
    email: str = ""
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
    kept_elsewhere: int = 0  # listed runners the file does not mention: they stay

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def valid_rows(self) -> list[Row]:
        return [row for row in self.rows if row.ok]

    @property
    def problem_rows(self) -> list[Row]:
        return [row for row in self.rows if row.errors or row.notes]


def _key(header: str) -> str:
    text = unicodedata.normalize("NFKD", header.strip().lower())
    return "".join(char for char in text if char.isalnum())


def _decode(data: bytes) -> tuple[list[str], str, set[int]]:
    """The file's lines, the encoding named for the organiser, and the lines (1-based)
    that were not in the file's main encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").splitlines(), "UTF-16", set()
        except UnicodeDecodeError as exc:
            raise StartListFileError(_("The file says it is UTF-16 but is not.")) from exc
    if b"\x00" in data[:65536] or data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        # A spreadsheet (XLSX/ODS are ZIPs, XLS is OLE) or another binary file.
        raise StartListFileError(_(
            "This is not a text file. Save the spreadsheet as CSV (comma or semicolon "
            "separated) and import that file."))
    name = "UTF-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data, name = data[3:], _("UTF-8 with BOM")
    try:
        return data.decode("utf-8").splitlines(), name, set()
    except UnicodeDecodeError:
        pass
    # Not UTF-8 as a whole: decide line by line, so a file pasted together from two
    # exports is read right and the odd lines are pointed out.
    lines, legacy = [], set()
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            # Windows-1252 leaves five bytes undefined; Latin-1 reads every byte.
            try:
                lines.append(raw.decode("cp1252"))
            except UnicodeDecodeError:
                lines.append(raw.decode("latin-1"))
            legacy.add(number)
    non_ascii_utf8 = sum(1 for number, line in enumerate(lines, start=1)
                         if number not in legacy and not line.isascii())
    if non_ascii_utf8 == 0:
        return lines, "Windows-1252", set()  # a plain legacy file: nothing to point out
    return lines, "UTF-8", legacy


def _delimiter(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (";", ",", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _columns(header: list[str]) -> dict[str, int]:
    found = {}
    for index, name in enumerate(header):
        key = _key(name)
        for our_field, names in HEADER_NAMES.items():
            if key in names and our_field not in found:
                found[our_field] = index
    return found


@dataclass
class Table:
    """A CSV file opened for reading: its header line (each import names its own columns),
    the rows after it, and what was found."""

    reader: Iterator[list[str]]
    header: list[str]
    encoding: str
    delimiter: str
    legacy_lines: set
    first_data_line: int


def open_table(data: bytes) -> Table:
    """Decode ``data`` (encoding, separator) and read its header line; shared by the start
    list and the timing import. Raises :class:`StartListFileError` with the reason."""
    if not data.strip():
        raise StartListFileError(_("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise StartListFileError(_("The file is larger than %(size)d MB: split it in parts.")
                                 % {"size": MAX_FILE_BYTES // (1024 * 1024)})
    lines, encoding, legacy_lines = _decode(data)
    header_index = next((index for index, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise StartListFileError(_("The file is empty."))
    delimiter = _delimiter(lines[header_index])
    # Fields are checked one by one by the callers; the csv module's own limit would fail
    # the whole file on one giant cell.
    csv.field_size_limit(MAX_FILE_BYTES)
    reader = csv.reader((line.replace("\x00", "") for line in lines[header_index:]),
                        delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise StartListFileError(_("The first line cannot be read: %(error)s")
                                 % {"error": exc}) from exc
    return Table(reader=reader, header=header, encoding=encoding,
                 delimiter=delimiter, legacy_lines=legacy_lines,
                 first_data_line=header_index + 2)


def read(data: bytes, event: Event) -> Preview:
    """Check every row of ``data`` against the event (its races, its start list); writes nothing."""
    table = open_table(data)
    reader, header, columns = table.reader, table.header, _columns(table.header)
    encoding, delimiter, legacy_lines = table.encoding, table.delimiter, table.legacy_lines
    if BIB not in columns:
        raise StartListFileError(_(
            "No bib column in the first line. Expected a header such as: "
            "bib (or dossard), first name (prénom), last name (nom), race (course), e-mail."))

    races = {_key(race.name): race for race in event.races.all()}
    existing = {entry[0]: entry[1:] for entry in StartListEntry.objects.filter(event=event)
                .values_list("bib", "first_name", "last_name", "race_id", "email")}
    rows, seen = [], {}
    first_data_line = table.first_data_line
    try:
        for offset, cells in enumerate(reader):
            line = first_data_line + offset
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise StartListFileError(_("More than %(count)d runners: split the file in parts.")
                                         % {"count": MAX_ROWS})
            rows.append(_row(line, cells, columns, races, seen, line in legacy_lines))
    except csv.Error as exc:
        raise StartListFileError(_("Line %(line)d cannot be read: %(error)s")
                                 % {"line": first_data_line + len(rows), "error": exc}) from exc
    if not rows:
        raise StartListFileError(_("The file has a header but no runner."))

    for row in rows:
        if not row.ok:
            row.status = "rejected"
            continue
        before = existing.get(row.bib)
        after = (row.first_name, row.last_name, row.race.pk if row.race else None, row.email)
        row.status = "new" if before is None else ("unchanged" if before == after else "updated")
    listed = {row.bib for row in rows if row.ok}
    return Preview(rows=rows, encoding=encoding, delimiter=delimiter,
                   columns={name: header[index].strip() for name, index in columns.items()},
                   kept_elsewhere=sum(1 for bib in existing if bib not in listed))


def _row(line, cells, columns, races, seen, legacy_encoding) -> Row:
    row = Row(line=line)
    values = {}
    for name, index in columns.items():
        value = cells[index].strip() if index < len(cells) else ""
        if len(value) > MAX_FIELD_CHARS:
            row.errors.append(_("A cell is %(count)d characters long: this is not a start list row.")
                              % {"count": len(value)})
            return row
        values[name] = value
    if legacy_encoding:
        row.notes.append(_("This line is not in UTF-8 like the rest of the file: it was read as "
                           "Windows-1252, check its accents."))
    elif any(MOJIBAKE.search(value) for value in values.values()):
        row.notes.append(_("Wrong encoding: the accents look garbled (“Ã©” for “é”). "
                           "Export the file again in UTF-8."))

    raw_bib = "".join(values.get(BIB, "").split())
    if not raw_bib:
        row.errors.append(_("No bib."))
    elif not raw_bib.isalnum():
        row.errors.append(_("The bib “%(bib)s” has characters a bib cannot have.") % {"bib": raw_bib})
    else:
        row.bib = canonical(raw_bib).upper()
        if row.bib != raw_bib:
            row.notes.append(_("Bib “%(raw)s” is written “%(bib)s”, as the photos are searched.")
                             % {"raw": raw_bib, "bib": row.bib})
        if not row.bib.isdigit():
            row.notes.append(_("The bib has letters: bibs read on photos are digits only, so "
                               "photos are found by hand or by face for this runner."))
        if len(row.bib) > FIELD_LIMITS[BIB]:
            row.errors.append(_("The bib is longer than %(count)d characters.")
                              % {"count": FIELD_LIMITS[BIB]})
        elif row.bib in seen:
            row.errors.append(_("Bib %(bib)s is already on line %(line)d.")
                              % {"bib": row.bib, "line": seen[row.bib]})
        else:
            seen[row.bib] = line

    row.first_name = values.get(FIRST_NAME, "")
    row.last_name = values.get(LAST_NAME, "")
    for name in (FIRST_NAME, LAST_NAME):
        if len(values.get(name, "")) > FIELD_LIMITS[name]:
            row.errors.append(_("A name is longer than %(count)d characters.")
                              % {"count": FIELD_LIMITS[name]})
    race_name = values.get(RACE, "")
    if race_name:
        row.race = races.get(_key(race_name))
        if row.race is None:
            row.errors.append(_("Unknown race “%(race)s”: add it to the event first.")
                              % {"race": race_name})
    email = values.get(EMAIL, "")
    if email:
        try:
            if len(email) > FIELD_LIMITS[EMAIL]:
                raise ValidationError("too long")
            validate_email(email)
            row.email = email
        except ValidationError:
            row.notes.append(_("“%(email)s” is not an e-mail address: the runner is imported "
                               "without one.") % {"email": email[:80]})
    return row


@dataclass(frozen=True)
class WriteResult:
    created: int
    updated: int
    unchanged: int
    rejected: int


def write(preview: Preview, event: Event) -> WriteResult:
    """Write the preview's valid rows, all or none; rows already listed get the file's names.

    The rows are streamed into a temporary table with COPY and merged in one
    ``INSERT … ON CONFLICT (event, bib) DO UPDATE``: 100,000 runners take about a second
    to write, where ORM batches took several.
    """
    rows = [(row.bib, row.first_name, row.last_name, row.race.pk if row.race else None, row.email)
            for row in preview.valid_rows if row.status != "unchanged"]
    table = StartListEntry._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Same column sizes as the table: a value too long fails here, before any write.
        cursor.execute(
            "CREATE TEMPORARY TABLE start_list_upload (bib varchar(12), first_name varchar(100), "
            "last_name varchar(100), race_id bigint, email varchar(254)) ON COMMIT DROP")
        with cursor.cursor.copy("COPY start_list_upload FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} (event_id, bib, first_name, last_name, race_id, email) "
            "SELECT %s, bib, first_name, last_name, race_id, email FROM start_list_upload "
            "ON CONFLICT (event_id, bib) DO UPDATE SET first_name = EXCLUDED.first_name, "
            "last_name = EXCLUDED.last_name, race_id = EXCLUDED.race_id, email = EXCLUDED.email",
            [event.pk])
        cursor.execute("DROP TABLE start_list_upload")
        # The bib rules (start list included) are cached by (updated_at, count).
        Event.objects.filter(pk=event.pk).update(updated_at=timezone.now())
    return WriteResult(created=preview.count("new"), updated=preview.count("updated"),
                       unchanged=preview.count("unchanged"), rejected=preview.count("rejected"))
