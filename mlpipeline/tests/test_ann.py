import pickle

import numpy as np
import pytest

from mlpipeline import ann


def runners(count: int, dimension: int = 64, seed: int = 0) -> np.ndarray:
    """Normalised vectors of runners seen about five times each, as faces in an event are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, count // 5), dimension))
    vectors = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.normal(size=(count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def selfies(vectors, count: int) -> np.ndarray:
    """New photos of runners of the event: some of its vectors, moved a little."""
    rng = np.random.default_rng(1)
    moved = vectors[rng.integers(0, len(vectors), count)] + 0.05 * rng.normal(size=(count, vectors.shape[1]))
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def exact(vectors, labels, query, k):
    scores = vectors @ query
    best = np.argsort(-scores)[:k]
    return [(int(labels[i]), float(scores[i])) for i in best]


def test_an_inverted_file_finds_the_exact_nearest_with_their_exact_similarities():
    vectors = runners(20_000)
    labels = np.arange(1_000, 21_000)
    structure = ann.Inverted(labels, vectors)
    queries = selfies(vectors, 40)

    found = [structure.search(query, 10) for query in queries]
    truth = [exact(vectors, labels, query, 10) for query in queries]

    recall = np.mean([len({a for a, _ in hits} & {a for a, _ in want}) / 10
                      for hits, want in zip(found, truth)])
    assert recall >= 0.9
    for query, hits in zip(queries, found):
        similarities = [similarity for _label, similarity in hits]
        assert similarities == sorted(similarities, reverse=True)
        for label, similarity in hits:  # re-ranked on the exact vectors, not on the codes
            assert similarity == pytest.approx(float(vectors[label - 1_000] @ query), abs=1e-5)
    assert structure.lists == 512  # 4 x sqrt(20,000), as a power of two


def test_removed_labels_never_come_back_and_a_replaced_one_has_its_new_vector():
    vectors = runners(400)
    labels = np.arange(400)
    structure = ann.Inverted(labels, vectors)

    structure.remove(range(0, 400, 2))
    replacement = runners(1, seed=7)
    structure.add(np.array([1]), replacement)
    structure.add(np.array([2]), vectors[2:3])  # an even one back, with its old vector

    everything = structure.search(vectors[3], 400)
    assert {label for label, _s in everything} == set(range(1, 400, 2)) | {2}
    assert structure.search(replacement[0], 1) == [(1, pytest.approx(1.0, abs=1e-5))]
    np.testing.assert_allclose(structure.vectors([1, 2]), np.vstack([replacement, vectors[2:3]]),
                               atol=1e-6)
    assert structure.stored == 402  # dead rows stay until the index is rebuilt


def test_an_inverted_file_survives_the_index_file_unchanged():
    vectors = runners(2_000)
    structure = ann.Inverted(np.arange(2_000), vectors)
    structure.remove([5, 6])
    structure.add(np.arange(2_000, 2_010), runners(10, seed=3))  # grows its spare capacity

    loaded = pickle.loads(pickle.dumps(structure))

    for query in runners(20, seed=4):
        assert loaded.search(query, 10) == structure.search(query, 10)
    assert loaded._rows is None  # a search needs no label-to-row map (a web process loads it)
    assert loaded.stored == structure.stored == 2_010
    assert len(loaded._exact) == 2_010  # the spare capacity is not written
    assert loaded.codes.implem == ann.SINGLE_QUERY_SCAN
    loaded.add(np.array([5]), vectors[5:6])
    assert loaded.search(vectors[5], 1)[0][0] == 5


def test_a_graph_loaded_from_its_file_searches_with_the_products_candidate_list():
    structure = ann.build(np.arange(300), runners(300))
    assert isinstance(structure, ann.Graph)

    loaded = pickle.loads(pickle.dumps(structure))

    assert loaded.index.ef == ann.HNSW_EF_SEARCH
    assert loaded.search(runners(300)[42], 1)[0][0] == 42


def test_the_structure_follows_the_size_of_the_event(monkeypatch):
    monkeypatch.setattr(ann, "INVERTED_FROM", 1_000)
    small, big = ann.build(np.arange(999), runners(999)), ann.build(np.arange(1_000), runners(1_000))

    assert isinstance(small, ann.Graph) and isinstance(big, ann.Inverted)
    assert ann.suits(small, 999) and not ann.suits(small, 1_000)
    # An inverted file stays down to half the threshold, and up to twice what it was trained on.
    assert ann.suits(big, 500) and not ann.suits(big, 499)
    assert ann.suits(big, 2_000) and not ann.suits(big, 2_001)


@pytest.mark.parametrize("count", [300, 2_000])  # a graph, an inverted file
def test_similarities_are_cosines_whatever_the_length_of_the_query(monkeypatch, count):
    monkeypatch.setattr(ann, "INVERTED_FROM", 1_000)
    vectors = runners(count)
    structure = ann.build(np.arange(count), 3.0 * vectors)  # stored vectors need not be unit

    unit = structure.search(vectors[7], 5)
    long = structure.search(25.0 * vectors[7], 5)

    assert [label for label, _s in long] == [label for label, _s in unit]
    assert [s for _label, s in long] == pytest.approx([s for _label, s in unit], abs=1e-5)
    assert unit[0] == (7, pytest.approx(1.0, abs=1e-5))
