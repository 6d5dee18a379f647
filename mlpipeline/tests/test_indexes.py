import pickle

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import translation

from events.tests.factories import EventFactory
from mlpipeline import ann, indexes
from photos.models import Face
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

MODEL = "test-faces@1"
DIMENSION = 16


def unit(seed: int, dimension: int = DIMENSION) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=dimension)
    return (vector / np.linalg.norm(vector)).tolist()


def add_face(event, seed: int, model: str = MODEL, dimension: int = DIMENSION) -> Face:
    photo = PhotoFactory(event=event)
    return Face.objects.create(photo=photo, event=event, box=[0, 0, 10, 10], score=0.99,
                               embedding=unit(seed, dimension), model=model)


def ids_in_index(event, model=MODEL) -> set[int]:
    path = indexes.index_path(event.pk, indexes.FACES, model)
    return set(indexes._read(path)["ids"].tolist()) if path.exists() else set()


@pytest.fixture(params=["graph", "inverted"])
def structure(request, monkeypatch):
    """Runs a test with each of ``ann``'s structures: the inverted file from 16 vectors (the
    fewest its 16-code quantisers can be trained on) instead of a hundred thousand."""
    if request.param == "inverted":
        monkeypatch.setattr(ann, "INVERTED_FROM", 16)
        return ann.Inverted
    return ann.Graph


def structure_of(event, model=MODEL):
    return type(indexes._read(indexes.index_path(event.pk, indexes.FACES, model))["index"])


def test_it_builds_an_index_that_finds_each_face_as_its_own_nearest(structure):
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(30)]

    indexes.sync(event.pk, indexes.FACES)

    for face in faces:
        (best, similarity), *_ = indexes.nearest(event.pk, indexes.FACES, MODEL, face.embedding, 3)
        assert best == face.pk
        assert similarity == pytest.approx(1.0, abs=1e-5)
    assert indexes.check(event.pk) == []
    assert structure_of(event) is structure


def test_it_applies_additions_and_removals_incrementally(structure):
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(20)]
    indexes.sync(event.pk, indexes.FACES)

    faces[0].delete()
    faces[1].searchable = False
    faces[1].save()
    newcomer = add_face(event, 99)
    result = indexes.sync(event.pk, indexes.FACES)

    assert (result.added, result.removed) == (1, 2)
    assert ids_in_index(event) == {face.pk for face in faces[2:]} | {newcomer.pk}
    hits = [face_id for face_id, _s in indexes.nearest(event.pk, indexes.FACES, MODEL,
                                                       faces[1].embedding, 30)]
    assert faces[1].pk not in hits and faces[0].pk not in hits
    assert newcomer.pk in hits and len(hits) == 19
    assert indexes.check(event.pk) == []
    assert structure_of(event) is structure


def test_a_face_that_leaves_and_comes_back_is_found_again(structure):
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(20)]
    indexes.sync(event.pk, indexes.FACES)
    faces[3].searchable = False  # opted out...
    faces[3].save()
    indexes.sync(event.pk, indexes.FACES)
    faces[3].searchable = True  # ...and back
    faces[3].save()

    assert indexes.sync(event.pk, indexes.FACES).added == 1

    (best, similarity), *_ = indexes.nearest(event.pk, indexes.FACES, MODEL, faces[3].embedding, 3)
    assert (best, similarity) == (faces[3].pk, pytest.approx(1.0, abs=1e-5))
    assert indexes.check(event.pk) == []


def test_an_event_index_becomes_an_inverted_file_as_it_grows_and_a_graph_again_as_it_shrinks(
        monkeypatch):
    monkeypatch.setattr(ann, "INVERTED_FROM", 40)
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(30)]
    indexes.sync(event.pk, indexes.FACES)
    assert structure_of(event) is ann.Graph

    faces += [add_face(event, seed) for seed in range(30, 45)]
    assert indexes.sync(event.pk, indexes.FACES).rebuilt == [MODEL]
    assert structure_of(event) is ann.Inverted
    for face in faces[:4]:  # under 40 but not under half of it: no flapping
        face.delete()
    assert indexes.sync(event.pk, indexes.FACES).rebuilt == []
    assert structure_of(event) is ann.Inverted

    for face in faces[4:30]:
        face.delete()
    assert indexes.sync(event.pk, indexes.FACES).rebuilt == [MODEL]
    assert structure_of(event) is ann.Graph
    assert ids_in_index(event) == {face.pk for face in faces[30:]}
    assert indexes.check(event.pk) == []


def test_it_reads_a_file_of_the_first_format_a_bare_hnswlib_index():
    import hnswlib

    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(5)]
    ids, vectors = indexes._vectors(indexes.FACES, event.pk, MODEL)
    old = hnswlib.Index(space="cosine", dim=DIMENSION)
    old.init_index(max_elements=16, ef_construction=200, M=16)
    old.add_items(vectors, ids)
    path = indexes.index_path(event.pk, indexes.FACES, MODEL)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"format": 1, "event_id": event.pk, "kind": indexes.FACES,
                                   "model": MODEL, "dimension": DIMENSION, "ids": ids,
                                   "index": old}))

    (best, _similarity), *_ = indexes.nearest(event.pk, indexes.FACES, MODEL, faces[2].embedding, 2)
    assert best == faces[2].pk
    assert indexes.check(event.pk) == []
    add_face(event, 9)
    assert indexes.sync(event.pk, indexes.FACES).added == 1
    assert indexes._read(path)["format"] == indexes.FILE_FORMAT


def test_it_gives_the_same_answers_incrementally_as_after_a_rebuild(structure):
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(40)]
    indexes.sync(event.pk, indexes.FACES)
    for face in faces[:5]:
        face.delete()
    for seed in range(100, 110):
        add_face(event, seed)
    indexes.sync(event.pk, indexes.FACES)
    queries = [unit(seed) for seed in range(500, 520)]
    incremental = [indexes.nearest(event.pk, indexes.FACES, MODEL, q, 5) for q in queries]

    indexes.rebuild(event.pk)
    rebuilt = [indexes.nearest(event.pk, indexes.FACES, MODEL, q, 5) for q in queries]

    assert [[hit[0] for hit in hits] for hits in incremental] == \
        [[hit[0] for hit in hits] for hits in rebuilt]


def test_it_keeps_models_and_events_apart():
    event, other_event = EventFactory(), EventFactory()
    ours = add_face(event, 1)
    theirs = add_face(other_event, 1)
    other_model = add_face(event, 2, model="other-model@1", dimension=8)

    indexes.sync(event.pk, indexes.FACES)
    indexes.sync(other_event.pk, indexes.FACES)

    assert ids_in_index(event) == {ours.pk}
    assert ids_in_index(event, "other-model@1") == {other_model.pk}
    assert ids_in_index(other_event) == {theirs.pk}
    with pytest.raises(ValueError, match="cannot search"):
        indexes.nearest(event.pk, indexes.FACES, MODEL, unit(1, 8), 1)


def test_it_removes_the_file_of_a_model_with_no_faces_left():
    event = EventFactory()
    face = add_face(event, 1)
    indexes.sync(event.pk, indexes.FACES)
    face.delete()

    indexes.sync(event.pk, indexes.FACES)

    assert not indexes.index_path(event.pk, indexes.FACES, MODEL).exists()
    assert indexes.nearest(event.pk, indexes.FACES, MODEL, unit(1), 5) == []


def test_it_reports_and_repairs_an_index_out_of_step(capsys):
    event = EventFactory()
    faces = [add_face(event, seed) for seed in range(5)]
    indexes.sync(event.pk, indexes.FACES)
    Face.objects.filter(pk=faces[0].pk).update(searchable=False)  # bypasses the signals
    add_face(event, 77)

    with pytest.raises(SystemExit) as exited:
        call_command("check_indexes", event.slug)
    assert exited.value.code == 1
    assert "1 missing, 1 extra" in capsys.readouterr().err

    call_command("rebuild_indexes", event.slug)
    with translation.override("en"):  # the project speaks French unless told otherwise
        call_command("check_indexes", event.slug)
    assert "agree" in capsys.readouterr().out


def test_it_notices_a_vector_that_differs_from_the_database(structure):
    event = EventFactory()
    face, *_others = [add_face(event, seed) for seed in range(1, 20)]
    indexes.sync(event.pk, indexes.FACES)
    Face.objects.filter(pk=face.pk).update(embedding=unit(99))

    [problem] = indexes.check(event.pk)

    assert problem.wrong_vectors == 1
    assert indexes.check(event.pk, vectors=False) == []


def test_it_never_leaves_a_torn_file_when_writing_fails(monkeypatch):
    event = EventFactory()
    add_face(event, 1)
    indexes.sync(event.pk, indexes.FACES)
    path = indexes.index_path(event.pk, indexes.FACES, MODEL)
    before = path.read_bytes()
    add_face(event, 2)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(indexes.os, "fsync", crash)
    with pytest.raises(OSError):
        indexes.sync(event.pk, indexes.FACES)

    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_it_rebuilds_an_unreadable_index_file():
    event = EventFactory()
    face = add_face(event, 1)
    path = indexes.index_path(event.pk, indexes.FACES, MODEL)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage")

    result = indexes.sync(event.pk, indexes.FACES)

    assert result.rebuilt == [MODEL]
    assert ids_in_index(event) == {face.pk}


def test_it_updates_the_index_from_signals_after_commit(settings,
                                                        django_capture_on_commit_callbacks):
    # Through Django's settings, restored after the test: setting celery_app.conf directly
    # would pin the value for every later test, whatever their settings say.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = EventFactory()
    with django_capture_on_commit_callbacks(execute=True):
        face = add_face(event, 1)
    assert ids_in_index(event) == {face.pk}

    with django_capture_on_commit_callbacks(execute=True):
        face.searchable = False
        face.save()
    assert ids_in_index(event) == set()
    assert indexes.check(event.pk) == []


def test_it_answers_the_same_query_with_pgvector(settings, structure):
    event = EventFactory()
    for seed in range(20):
        add_face(event, seed, model="dlib-resnet-v1@1", dimension=128)
    indexes.sync(event.pk, indexes.FACES)
    query = unit(12345, 128)
    from_hnswlib = indexes.nearest(event.pk, indexes.FACES, "dlib-resnet-v1@1", query, 5)

    settings.SEARCH_BACKEND = "pgvector"
    from_pgvector = indexes.nearest(event.pk, indexes.FACES, "dlib-resnet-v1@1", query, 5)

    assert [face_id for face_id, _s in from_pgvector] == [face_id for face_id, _s in from_hnswlib]
    for (_a, ours), (_b, theirs) in zip(from_hnswlib, from_pgvector):
        assert ours == pytest.approx(theirs, abs=1e-4)


def test_every_embedding_model_of_the_registry_has_its_partial_index():
    # A new model needs a migration creating its index: without one pgvector
    # search still answers, by scanning every face (or photo) of every event.
    from django.db import connection

    from mlpipeline.inference import registry
    from photos.models import pgvector_index_name

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes "
                       "WHERE tablename IN ('photos_face', 'photos_photo')")
        definitions = dict(cursor.fetchall())
    for prefix, dimensions in (("face", registry.face_vector_dimensions()),
                               ("photo_clip", registry.clip_vector_dimensions())):
        for signature, dimension in dimensions.items():
            definition = definitions[pgvector_index_name(prefix, signature)]
            assert f"vector({dimension})" in definition and f"'{signature}'" in definition


@pytest.mark.django_db
def test_a_sync_for_an_event_that_is_gone_leaves_nothing_behind(settings, tmp_path):
    settings.INDEX_DIR = tmp_path / "indexes"
    event = EventFactory()
    event_id = event.pk
    event.delete()  # its sync was queued before the delete and runs after it

    assert indexes.sync(event_id, indexes.FACES) == indexes.SyncResult()
    assert not (tmp_path / "indexes").exists()


def test_a_selfie_query_asks_for_more_neighbours_only_while_they_all_match():
    similarities = [0.95 - 0.001 * rank for rank in range(1000)]  # 0.95 down to 0.851
    asked = []

    def search(k):
        asked.append(k)
        return [(rank, similarity) for rank, similarity in enumerate(similarities[:k])]

    few = indexes.candidates(search, threshold=0.9305, limit=500)
    assert asked == [indexes.FIRST_CANDIDATES] and len(few) == 20

    asked.clear()
    many = indexes.candidates(search, threshold=0.8605, limit=500)
    assert asked == [64, 128] and len(many) == 90  # 0.95 down to 0.861

    asked.clear()
    capped = indexes.candidates(search, threshold=0.0, limit=500)
    assert asked == [64, 128, 256, 500] and len(capped) == 500
