"""Start-list import: reading every shape of export, a preview that writes nothing, one commit."""

import time

import pytest
from django.urls import reverse
from django.utils import translation

from events import startlist_import
from events.models import StartListEntry
from events.tests.factories import EventFactory, RaceFactory
from photos.models import BibTag, Face
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    """The reports read in English here (the admin tests below read them in French)."""
    with translation.override("en"):
        yield


@pytest.fixture
def event():
    event = EventFactory(slug="semi-lyon")
    RaceFactory(event=event, name="10 km")
    RaceFactory(event=event, name="Semi-marathon")
    return event


def rows_of(preview):
    return [(row.line, row.bib, row.first_name, row.last_name, row.race.name if row.race else "",
             row.email, row.status) for row in preview.rows]


FRENCH = "Dossard;Prénom;Nom;Course;Courriel\n12;Léa;Dupré;10 km;lea@example.org\n"


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"),
                                           ("cp1252", b""), ("latin-1", b""), ("utf-16", b"")])
def test_it_reads_french_semicolon_exports_in_every_common_encoding(event, encoding, bom):
    preview = startlist_import.read(bom + FRENCH.encode(encoding), event)

    assert rows_of(preview) == [(2, "12", "Léa", "Dupré", "10 km", "lea@example.org", "new")]
    assert preview.delimiter == ";" and not preview.problem_rows


def test_it_reads_english_comma_headers_in_any_order_and_case(event):
    data = b'Email,Last Name,First name,Bib number,Race\nx@example.org,"Smith, Jr",Ann,7,semi-marathon\n'

    preview = startlist_import.read(data, event)

    assert rows_of(preview) == [(2, "7", "Ann", "Smith, Jr", "Semi-marathon", "x@example.org",
                                 "new")]


def test_it_reports_every_bad_row_and_keeps_the_good_ones(event):
    data = ("bib;first name;last name;race;email\n"
            "101;Ana;Ok;10 km;ana@example.org\n"
            ";No;Bib;10 km;\n"
            "101;Twice;Listed;10 km;\n"
            "102;Lost;Runner;Marathon;\n"
            "103;Bad;Mail;10 km;not-an-address\n"
            "0104;Zero;Lead;;\n"
            "a105;Letter;Bib;;\n"
            "1-06;Odd;Bib;;\n"
            "107;AurÃ©lie;Garbled;;\n").encode()

    preview = startlist_import.read(data, event)

    by_line = {row.line: row for row in preview.rows}
    assert by_line[2].ok and not by_line[2].notes
    assert by_line[3].errors == ["No bib."]
    assert by_line[4].errors == ["Bib 101 is already on line 2."]
    assert by_line[5].errors == ["Unknown race “Marathon”: add it to the event first."]
    assert by_line[6].ok and by_line[6].email == "" and "not an e-mail" in by_line[6].notes[0]
    assert (by_line[7].bib, by_line[7].ok) == ("104", True)
    assert "written “104”" in by_line[7].notes[0]
    assert (by_line[8].bib, by_line[8].ok) == ("A105", True)
    assert "letters" in by_line[8].notes[-1]
    assert not by_line[9].ok and "characters a bib cannot have" in by_line[9].errors[0]
    assert by_line[10].ok and "Wrong encoding" in by_line[10].notes[0]
    assert preview.count("rejected") == 4 and len(preview.valid_rows) == 5
    assert not StartListEntry.objects.exists()  # a preview writes nothing


def test_it_points_at_the_lines_not_in_the_files_encoding(event):
    data = ("bib;nom\n1;Zoë\n".encode() + "2;Chloé\n".encode("cp1252") + "3;Loïc\n".encode())

    preview = startlist_import.read(data, event)

    assert [row.last_name for row in preview.rows] == ["Zoë", "Chloé", "Loïc"]
    assert [bool(row.notes) for row in preview.rows] == [False, True, False]
    assert "not in UTF-8" in preview.rows[1].notes[0]


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"  \n\n", "The file is empty."),
    (b"PK\x03\x04\x14\x00\x00\x00", "This is not a text file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a text file"),
    (b"first name;last name\nAna;Ok\n", "No bib column"),
    (b"bib;nom\n", "has a header but no runner"),
])
def test_it_refuses_files_that_are_no_start_list_with_a_reason(event, data, message):
    with pytest.raises(startlist_import.StartListFileError, match=message):
        startlist_import.read(data, event)


def test_it_survives_hostile_cells(event):
    giant = "x" * 200_000
    data = f'bib;nom\n1;"{giant}"\n2;Ok\x00ay\n3;=HYPERLINK("http://x")\n'.encode()

    preview = startlist_import.read(data, event)

    assert "200000 characters" in preview.rows[0].errors[0]
    assert preview.rows[1].last_name == "Okay"
    # Stored as text; it is only ever shown escaped by the templates.
    assert preview.rows[2].last_name == '=HYPERLINK("http://x")'


def test_reimporting_updates_names_without_duplicating(event):
    startlist_import.write(startlist_import.read(b"bib;prenom;nom\n1;Lea;Dupre\n2;Max;Roy\n",
                                                 event), event)
    preview = startlist_import.read(b"bib;prenom;nom\n1;L\xc3\xa9a;Dupr\xc3\xa9\n2;Max;Roy\n"
                                    b"3;Nina;Vu\n", event)

    result = startlist_import.write(preview, event)

    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert list(StartListEntry.objects.filter(event=event).values_list(
        "bib", "first_name", "last_name")) == [("1", "Léa", "Dupré"), ("2", "Max", "Roy"),
                                               ("3", "Nina", "Vu")]


def test_a_failed_write_leaves_nothing_half_imported(event):
    StartListEntry.objects.create(event=event, bib="1", last_name="Before")
    preview = startlist_import.read(b"bib;nom\n1;A\n2;B\n3;C\n4;D\n", event)
    preview.rows[3].last_name = "x" * 500  # past the column's size: the database refuses

    with pytest.raises(Exception):  # noqa: B017 (the database's own error)
        startlist_import.write(preview, event)

    assert list(StartListEntry.objects.filter(event=event).values_list("bib", "last_name")) == [
        ("1", "Before")]


def test_100000_runners_import_in_seconds(event, capsys):
    lines = ["dossard;prénom;nom;course;e-mail"] + [
        f"{bib};Prénom{bib};Nom{bib};10 km;r{bib}@example.org" for bib in range(1, 100_001)]
    data = "\n".join(lines).encode("utf-8")

    started = time.monotonic()
    preview = startlist_import.read(data, event)
    read_seconds = time.monotonic() - started
    result = startlist_import.write(preview, event)
    total = time.monotonic() - started
    again = time.monotonic()
    startlist_import.write(startlist_import.read(data, event), event)
    reimport = time.monotonic() - again

    with capsys.disabled():
        print(f"\n100,000-row start list: read {read_seconds:.2f} s, read+write {total:.2f} s, "
              f"re-import (all unchanged) {reimport:.2f} s")
    assert result.created == 100_000
    assert StartListEntry.objects.filter(event=event).count() == 100_000
    assert total < 30  # "in seconds", with room for a loaded two-core CI machine


# --- Through the admin ------------------------------------------------------------------


def upload(client, event, data, name="inscrits.csv"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("admin:events_event_import_start_list", args=[event.pk]),
                       {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def test_an_organiser_previews_then_commits_and_stored_readings_get_confirmed(
        client, event, people, own_cache, django_capture_on_commit_callbacks, monkeypatch):
    from mlpipeline import tasks

    scheduled = []
    monkeypatch.setattr(tasks, "schedule", lambda task, *args: scheduled.append((task.name, args)))
    photo = PhotoFactory(event=event, width=1000, height=800)
    runner_face = Face.objects.create(photo=photo, event=event, box=[400, 100, 500, 220],
                                      score=0.99)
    reading = BibTag.objects.create(photo=photo, bib="4025", confidence=0.8,
                                    source=BibTag.Source.OCR, confirmed=False,
                                    box=[390, 300, 520, 370])
    noise = BibTag.objects.create(photo=photo, bib="2026", confidence=0.8,
                                  source=BibTag.Source.OCR, confirmed=False)
    client.force_login(people["owner"])

    preview = upload(client, event, "Dossard;Prénom;Nom\n4025;Léa;Dupré\n;Sans;Dossard\n"
                     .encode("cp1252"))

    html = preview.content.decode()
    assert preview.status_code == 200
    assert "Aperçu : rien n’est encore écrit" in html
    assert "Pas de dossard." in html
    assert not StartListEntry.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(reverse("admin:events_event_import_start_list", args=[event.pk]),
                           {"token": preview.context["token"]}, follow=True)

    assert "1 nouveaux" in done.content.decode() or "1 nouveau" in done.content.decode()
    assert list(StartListEntry.objects.values_list("bib", "first_name")) == [("4025", "Léa")]
    reading.refresh_from_db()
    noise.refresh_from_db()
    runner_face.refresh_from_db()
    assert (reading.confirmed, reading.face_id, runner_face.bib) == (True, runner_face.pk, "4025")
    assert noise.confirmed is False
    assert scheduled == [("mlpipeline.link_event", (event.pk,))]  # re-linked, nothing re-read


@pytest.mark.parametrize("who", ["runner", "outsider", "staff", "photographer"])
def test_only_the_events_organisers_and_admins_import(client, event, people, who):
    client.force_login(people[who])

    response = upload(client, event, b"bib;nom\n1;A\n")

    assert response.status_code in (302, 404)
    assert not StartListEntry.objects.exists()


def test_a_platform_admin_imports(client, event, people, own_cache):
    client.force_login(people["admin"])

    preview = upload(client, event, b"bib;nom\n1;A\n")
    client.post(reverse("admin:events_event_import_start_list", args=[event.pk]),
                {"token": preview.context["token"]})

    assert StartListEntry.objects.filter(event=event).count() == 1


def test_another_persons_preview_cannot_be_committed(client, event, people, own_cache):
    client.force_login(people["owner"])
    token = upload(client, event, b"bib;nom\n1;A\n").context["token"]
    client.force_login(people["admin"])

    client.post(reverse("admin:events_event_import_start_list", args=[event.pk]), {"token": token})

    assert not StartListEntry.objects.exists()
