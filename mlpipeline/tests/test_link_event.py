import numpy as np
import pytest
from django.db import OperationalError, connection

from events.tests.factories import EventFactory
from mlpipeline import event_linking, tasks
from mlpipeline.inference import registry
from mlpipeline.inference.dlib_resnet import DlibFaceEmbedder
from mlpipeline.inference.sface import SFaceEmbedder
from photos.models import BibTag, Face
from photos.tests.factories import PhotoFactory
from search.services import photos_by_bib

pytestmark = pytest.mark.django_db

DLIB = DlibFaceEmbedder.signature


def runner_vector(runner: int, jitter: int) -> list[float]:
    """Faces of one runner: a shared direction plus a little noise per photo."""
    base = np.random.default_rng(runner).normal(size=128)
    noise = np.random.default_rng(1000 + 10 * runner + jitter).normal(size=128) * 0.01
    vector = base / np.linalg.norm(base) + noise
    return (vector / np.linalg.norm(vector)).tolist()


def face(event, photo, runner, jitter, bib="") -> Face:
    return Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                               embedding=runner_vector(runner, jitter), model=DLIB, bib=bib)


def ocr_tag(photo, bib, face_row=None):
    return BibTag.objects.create(photo=photo, bib=bib, confidence=0.9, source=BibTag.Source.OCR,
                                 confirmed=True, face=face_row)


def test_it_gives_a_read_bib_to_the_same_runners_other_photos():
    event = EventFactory()
    read, hidden, stranger_photo = (PhotoFactory(event=event) for _ in range(3))
    ocr_tag(read, "512", face(event, read, runner=1, jitter=0, bib="512"))
    alice_hidden = face(event, hidden, runner=1, jitter=1)
    face(event, stranger_photo, runner=2, jitter=0)

    result = event_linking.link_event(event.pk)

    [link] = BibTag.objects.filter(source=BibTag.Source.FACE_LINK)
    assert (link.photo_id, link.bib, link.face_id) == (hidden.pk, "512", alice_hidden.pk)
    assert link.confidence > 0.95
    assert result.face_link_tags == 1 and result.clusters == 2
    assert {m.photo_id for m in photos_by_bib(event, "512")} == {read.pk, hidden.pk}


def test_it_never_merges_look_alikes_whose_bibs_differ():
    event = EventFactory()
    first, second, third = (PhotoFactory(event=event) for _ in range(3))
    ocr_tag(first, "10", face(event, first, runner=5, jitter=0, bib="10"))
    ocr_tag(second, "20", face(event, second, runner=5, jitter=1, bib="20"))  # a twin
    face(event, third, runner=5, jitter=2)

    event_linking.link_event(event.pk)

    # The unlabelled photo could be either twin: it gets no bib rather than a wrong one.
    assert not BibTag.objects.filter(source=BibTag.Source.FACE_LINK).exists()
    clusters = set(Face.objects.filter(bib__in=["10", "20"]).values_list("cluster", flat=True))
    assert len(clusters) == 2


def test_it_recomputes_links_when_the_source_tag_goes_away():
    event = EventFactory()
    read, hidden = PhotoFactory(event=event), PhotoFactory(event=event)
    source = face(event, read, runner=3, jitter=0, bib="77")
    tag = ocr_tag(read, "77", source)
    face(event, hidden, runner=3, jitter=1)
    event_linking.link_event(event.pk)
    assert BibTag.objects.filter(source=BibTag.Source.FACE_LINK, photo=hidden).exists()

    tag.delete()
    Face.objects.filter(pk=source.pk).update(bib="")
    event_linking.link_event(event.pk)
    event_linking.link_event(event.pk)  # twice: nothing changes

    assert not BibTag.objects.filter(source=BibTag.Source.FACE_LINK).exists()


def test_it_leaves_a_photo_alone_when_its_bib_is_already_tagged():
    event = EventFactory()
    read, also_read = PhotoFactory(event=event), PhotoFactory(event=event)
    ocr_tag(read, "9", face(event, read, runner=4, jitter=0, bib="9"))
    face(event, also_read, runner=4, jitter=1)
    BibTag.objects.create(photo=also_read, bib="9", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)

    event_linking.link_event(event.pk)

    assert list(BibTag.objects.filter(photo=also_read).values_list("source", flat=True)) == [
        BibTag.Source.MANUAL]


def test_faces_of_a_retired_model_version_are_still_linked_with_that_versions_threshold():
    assert registry.match_threshold(DLIB) == DlibFaceEmbedder.match_threshold
    assert registry.match_threshold("dlib-resnet-v1@1") == 0.95
    with pytest.raises(ValueError, match="No known face model"):
        registry.match_threshold("dlib-resnet-v1@999")
    # An event processed before the version bump: its faces were never embedded again.
    event = EventFactory()
    first, second = PhotoFactory(event=event), PhotoFactory(event=event)
    for photo, jitter in ((first, 1), (second, 2)):
        Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                            embedding=runner_vector(7, jitter), model="dlib-resnet-v1@1")
    result = event_linking.link_event(event.pk)
    assert result.faces == 2 and result.clusters == 1


def test_sface_links_runners_at_its_stricter_linking_threshold():
    sface = SFaceEmbedder.signature
    assert registry.link_threshold(sface) == 0.70 > registry.match_threshold(sface)
    assert registry.link_threshold(DLIB) == registry.match_threshold(DLIB)

    def at(similarity: float, axis: int) -> list[float]:
        vector = np.zeros(128)
        vector[0], vector[axis] = similarity, np.sqrt(1 - similarity**2)
        return vector.tolist()

    event = EventFactory()
    read, close, doubtful = (PhotoFactory(event=event) for _ in range(3))
    faces = {}
    for photo, vector in ((read, at(1.0, 1)), (close, at(0.8, 2)), (doubtful, at(0.65, 3))):
        faces[photo.pk] = Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50],
                                              score=0.99, embedding=vector, model=sface)
    faces[read.pk].bib = "512"
    faces[read.pk].save()
    ocr_tag(read, "512", faces[read.pk])

    event_linking.link_event(event.pk)

    # 0.65 would be a selfie match, but not enough to carry a bib unseen.
    linked = BibTag.objects.filter(source=BibTag.Source.FACE_LINK).values_list("photo_id", flat=True)
    assert list(linked) == [close.pk]


def test_the_linking_task_runs_again_when_postgresql_breaks_a_deadlock(monkeypatch):
    # Worker processes writing a new photo's tags can deadlock with linking; PostgreSQL
    # then fails one of them, and the links must still be made.
    event = EventFactory()
    read, hidden = PhotoFactory(event=event), PhotoFactory(event=event)
    ocr_tag(read, "512", face(event, read, runner=1, jitter=0, bib="512"))
    face(event, hidden, runner=1, jitter=1)
    real, calls = event_linking.link_event, []

    def deadlocked_once(event_id, full=False):
        calls.append(event_id)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(event_id, full=full)

    monkeypatch.setattr(event_linking, "link_event", deadlocked_once)

    result = tasks.link_event.apply(args=(event.pk,), throw=False)  # retries run inline

    assert result.successful()

    assert calls == [event.pk, event.pk]
    assert BibTag.objects.filter(photo=hidden, bib="512", source=BibTag.Source.FACE_LINK).exists()


def row_versions(table: str, ids) -> dict[int, str]:
    """PostgreSQL's xmin of each row: it changes whenever the row is written, even to the
    same values."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, xmin::text FROM {table} WHERE id = ANY(%s)", [list(ids)])
        return dict(cursor.fetchall())


def test_relinking_after_a_burst_writes_only_what_changed():
    event = EventFactory()
    photos = [PhotoFactory(event=event) for _ in range(6)]
    # Two runners, each read once and seen again unread, and a third never read.
    ocr_tag(photos[0], "11", face(event, photos[0], runner=1, jitter=0, bib="11"))
    face(event, photos[1], runner=1, jitter=1)
    ocr_tag(photos[2], "22", face(event, photos[2], runner=2, jitter=0, bib="22"))
    face(event, photos[3], runner=2, jitter=1)
    face(event, photos[4], runner=3, jitter=0)
    face(event, photos[5], runner=3, jitter=1)
    first = event_linking.link_event(event.pk)
    assert (first.clusters, first.face_link_tags, first.faces_moved) == (3, 2, 6)
    clusters = dict(Face.objects.filter(event=event).values_list("pk", "cluster"))
    faces_before = row_versions("photos_face", clusters)
    links = BibTag.objects.filter(source=BibTag.Source.FACE_LINK)
    tags_before = row_versions("photos_bibtag", links.values_list("pk", flat=True))

    # A burst: runner 1 again, and a new runner.
    burst = [PhotoFactory(event=event) for _ in range(2)]
    again = face(event, burst[0], runner=1, jitter=2)
    newcomer = face(event, burst[1], runner=4, jitter=0)
    second = event_linking.link_event(event.pk)

    # Only the two new faces were written; every earlier face and tag is untouched.
    assert (second.faces_moved, second.tags_written) == (2, 1)
    assert row_versions("photos_face", clusters) == faces_before
    assert row_versions("photos_bibtag", tags_before) == tags_before
    again.refresh_from_db()
    newcomer.refresh_from_db()
    assert again.cluster == clusters[Face.objects.get(photo=photos[0]).pk]
    assert newcomer.cluster not in clusters.values()
    assert BibTag.objects.get(photo=burst[0], source=BibTag.Source.FACE_LINK).bib == "11"
    assert second.clusters == 4

    # Nothing changed since: a third run writes nothing, a full one moves no face either.
    assert (event_linking.link_event(event.pk).faces_moved,
            event_linking.link_event(event.pk, full=True).faces_moved) == (0, 0)
    assert row_versions("photos_face", clusters) == faces_before


def test_a_manual_tag_still_wins_when_a_burst_is_linked():
    event = EventFactory()
    read, hidden, tagged = (PhotoFactory(event=event) for _ in range(3))
    ocr_tag(read, "512", face(event, read, runner=1, jitter=0, bib="512"))
    face(event, hidden, runner=1, jitter=1)
    event_linking.link_event(event.pk)
    # The organiser tags a new photo by hand before its runner's face is linked.
    face(event, tagged, runner=1, jitter=2)
    BibTag.objects.create(photo=tagged, bib="512", confidence=1, source=BibTag.Source.MANUAL,
                          confirmed=True)

    event_linking.link_event(event.pk)

    assert list(BibTag.objects.filter(photo=tagged).values_list("source", flat=True)) == [
        BibTag.Source.MANUAL]
    assert BibTag.objects.get(photo=hidden).source == BibTag.Source.FACE_LINK


# --- manage.py relink_event: a full re-link -----------------------------------------------


def relink(*args) -> str:
    from io import StringIO

    from django.core.management import call_command
    from django.utils import translation

    out = StringIO()
    with translation.override("en"):
        call_command("relink_event", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_full_relink_joins_a_runner_that_stricter_rules_had_split(monkeypatch):
    event = EventFactory(slug="relink-trail")
    read, hidden = PhotoFactory(event=event), PhotoFactory(event=event)
    ocr_tag(read, "77", face(event, read, runner=1, jitter=0, bib="77"))
    face(event, hidden, runner=1, jitter=1)
    with monkeypatch.context() as strict:  # as under a stricter link threshold
        strict.setattr(registry, "link_threshold", lambda model: 0.9999)
        assert event_linking.link_event(event.pk).clusters == 2

    # Incremental linking keeps clusters that still hold together: still two runners.
    assert event_linking.link_event(event.pk).clusters == 2
    assert not BibTag.objects.filter(photo=hidden).exists()

    output = relink("relink-trail")

    assert output == ("[1/1] relink-trail: faces: 2, runners: 1, faces moved: 1, "
                      f"face-link tags written: 1 ({output.split('(')[1]}")
    assert BibTag.objects.get(photo=hidden).bib == "77"
    assert len(set(Face.objects.filter(event=event).values_list("cluster", flat=True))) == 1


def test_relink_without_an_event_goes_through_every_event_and_their_suggestions(monkeypatch):
    recomputed = []
    monkeypatch.setattr(tasks, "_suggesters", lambda: (
        type("Sequences", (), {"recompute": staticmethod(lambda pk: recomputed.append(("burst", pk)))}),
        type("Timing", (), {"recompute": staticmethod(lambda pk: recomputed.append(("timing", pk)))})))
    first, second = EventFactory(slug="relink-a"), EventFactory(slug="relink-b")

    lines = relink().splitlines()

    assert [line.split(":")[0] for line in lines] == ["[1/2] relink-a", "[2/2] relink-b"]
    assert recomputed == [("burst", first.pk), ("timing", first.pk),
                          ("burst", second.pk), ("timing", second.pk)]


def test_relink_names_an_unknown_event():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No event with slug or id “no-such-race”"):
        relink("no-such-race")


@pytest.mark.django_db(transaction=True)
def test_relink_runs_again_when_the_database_breaks_a_deadlock(monkeypatch):
    event = EventFactory(slug="relink-deadlock")
    calls = []
    real = tasks.link_and_suggest

    def deadlocked_once(event_id, full=False):
        calls.append(full)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return real(event_id, full=full)

    monkeypatch.setattr("mlpipeline.management.commands.relink_event.link_and_suggest", deadlocked_once)
    monkeypatch.setattr("mlpipeline.management.commands.relink_event.time.sleep", lambda seconds: None)

    assert relink("relink-deadlock").startswith("[1/1] relink-deadlock: faces: 0")
    assert calls == [True, True]
    assert not Face.objects.filter(event=event).exists()  # an event without faces relinks too
