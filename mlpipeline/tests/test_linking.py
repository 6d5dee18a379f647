import numpy as np
import pytest

from mlpipeline.linking import (
    FaceLink,
    Neighbours,
    assign_bibs_to_faces,
    cluster_faces,
    drop_ambiguous,
    pair_confidence,
    propagate_bibs,
    similar_pairs,
    stable_labels,
)


def runner(x, y, face=40):
    """Face box at (x, y) and the bib box a runner of that face size wears below it."""
    face_box = (x, y, x + face, y + face)
    bib_box = (x - 0.0 * face, y + 3.0 * face, x + face, y + 3.8 * face)
    return bib_box, face_box


def unit(*values):
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_it_links_a_bib_to_the_face_above_it():
    bib, face = runner(100, 50)
    matches = assign_bibs_to_faces([bib], [face])
    assert [(m.bib_index, m.face_index) for m in matches] == [(0, 0)]
    assert 0.5 < matches[0].confidence <= 1.0


def test_it_links_two_runners_side_by_side_to_their_own_faces():
    bib_a, face_a = runner(100, 50)
    bib_b, face_b = runner(160, 55)
    # faces listed in the other order than the bibs
    matches = assign_bibs_to_faces([bib_a, bib_b], [face_b, face_a])
    assert [(m.bib_index, m.face_index) for m in matches] == [(0, 1), (1, 0)]


def test_it_leaves_a_bib_without_a_face_unmatched():
    bib_a, face_a = runner(100, 50)
    bib_b, _ = runner(400, 50)  # this runner's face is hidden
    matches = assign_bibs_to_faces([bib_a, bib_b], [face_a])
    assert [(m.bib_index, m.face_index) for m in matches] == [(0, 0)]


def test_it_leaves_a_face_without_a_bib_unmatched():
    bib, face = runner(100, 50)
    spectator = (400, 40, 440, 80)
    matches = assign_bibs_to_faces([bib], [spectator, face])
    assert [(m.bib_index, m.face_index) for m in matches] == [(0, 1)]


def test_it_refuses_a_face_below_the_bib_or_of_an_implausible_size():
    bib, face = runner(100, 200)
    below = (100, 400, 140, 440)
    huge = (20, 0, 220, 200)
    assert pair_confidence(bib, below) == 0.0
    assert pair_confidence(bib, huge) == 0.0
    assert assign_bibs_to_faces([bib], [below, huge]) == []


def test_it_returns_nothing_without_bibs_or_faces():
    bib, face = runner(100, 50)
    assert assign_bibs_to_faces([], [face]) == []
    assert assign_bibs_to_faces([bib], []) == []


def test_it_clusters_similar_faces_of_different_photos_together():
    embeddings = [unit(1, 0, 0), unit(0.99, 0.1, 0), unit(0, 1, 0)]
    labels = cluster_faces(embeddings, ["p1", "p2", "p3"], [None, None, None], threshold=0.9)
    assert labels[0] == labels[1] != labels[2]


def test_it_never_clusters_two_faces_of_one_photo():
    embeddings = [unit(1, 0, 0), unit(1, 0.01, 0)]
    labels = cluster_faces(embeddings, ["p1", "p1"], None, threshold=0.5)
    assert labels[0] != labels[1]


def test_it_keeps_look_alikes_with_different_bibs_apart():
    embeddings = [unit(1, 0, 0), unit(1, 0.01, 0), unit(1, 0.02, 0)]
    labels = cluster_faces(embeddings, ["p1", "p2", "p3"], ["12", "34", None], threshold=0.5)
    assert labels[0] != labels[1]
    assert labels[2] in (labels[0], labels[1])


def test_it_gives_a_cluster_bib_to_the_photos_where_it_was_not_read():
    embeddings = [unit(1, 0, 0), unit(0.99, 0.1, 0), unit(0, 1, 0)]
    links = propagate_bibs([0, 0, 1], ["p1", "p2", "p3"], ["f1", "f2", "f3"],
                           ["123", None, None], embeddings)
    assert len(links) == 1
    link = links[0]
    assert isinstance(link, FaceLink)
    assert (link.photo_id, link.face_id, link.bib) == ("p2", "f2", "123")
    assert 0.9 < link.confidence <= 1.0


def test_it_never_gives_one_bib_to_two_faces_of_a_photo():
    # labels made elsewhere may put two faces of one photo in a cluster
    embeddings = [unit(1, 0, 0), unit(0.98, 0.2, 0), unit(0.99, 0.1, 0)]
    links = propagate_bibs([0, 0, 0], ["p1", "p2", "p2"], ["a", "b", "c"],
                           ["7", None, None], embeddings)
    assert [(link.photo_id, link.face_id) for link in links] == [("p2", "c")]


def test_it_does_not_propagate_a_bib_the_photo_already_has():
    embeddings = [unit(1, 0, 0), unit(0.99, 0.1, 0)]
    links = propagate_bibs([0, 0], ["p1", "p2"], ["a", "b"], ["7", None], embeddings,
                           photo_bibs={"p2": {"7"}})
    assert links == []


def test_it_does_not_propagate_from_a_cluster_with_conflicting_bibs():
    embeddings = [unit(1, 0, 0), unit(0.99, 0.1, 0), unit(0.98, 0.15, 0)]
    links = propagate_bibs([0, 0, 0], ["p1", "p2", "p3"], ["a", "b", "c"],
                           ["7", "8", None], embeddings)
    assert links == []


def test_it_clusters_and_propagates_end_to_end_without_duplicates():
    rng = np.random.default_rng(0)
    centre_a, centre_b = rng.normal(size=16), rng.normal(size=16)
    embeddings, photos, bibs = [], [], []
    for photo in range(4):
        for centre, bib in ((centre_a, "11"), (centre_b, "22")):
            embeddings.append(centre + 0.05 * rng.normal(size=16))
            photos.append(f"p{photo}")
            bibs.append(bib if photo == 0 else None)
    labels = cluster_faces(embeddings, photos, bibs, threshold=0.8)
    links = propagate_bibs(labels, photos, list(range(len(photos))), bibs, embeddings)
    assert len(links) == 6
    assert len({(link.photo_id, link.bib) for link in links}) == 6
    assert all(bibs[link.face_id] is None for link in links)
    assert {link.bib for link in links if link.face_id % 2 == 0} == {"11"}


def crowd(runners: int, seed: int = 0, photos_per_runner: int = 6):
    """Faces of ``runners`` runners, a few photos each, several runners per photo:
    (vectors, photo ids, bibs, runner of each face)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(runners, 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    runner_of = np.repeat(np.arange(runners), photos_per_runner)
    vectors = centres[runner_of] + rng.normal(size=(len(runner_of), 64)) * 0.07
    photos = [f"p{index % (len(runner_of) // 3)}" for index in rng.permutation(len(runner_of))]
    bibs = [str(runner) if rng.random() < 0.3 else None for runner in runner_of]
    return vectors, photos, bibs, runner_of


def same_groups(a, b) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_the_hnsw_graph_clusters_like_every_pair_above_the_threshold():
    vectors, photos, bibs, runner_of = crowd(400)
    every_pair = cluster_faces(vectors, photos, bibs, 0.7, k=len(vectors), method="exact")
    graph = cluster_faces(vectors, photos, bibs, 0.7, method="hnsw")
    assert same_groups(every_pair, graph)
    assert len(set(graph.tolist())) >= 400  # faces of one photo never share a cluster


def test_similar_pairs_are_the_pairs_above_the_threshold_most_similar_first():
    vectors, *_ = crowd(50)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    low, high, similarity = similar_pairs(vectors.astype(np.float32), 0.7, k=len(vectors))
    sims = vectors @ vectors.T
    expected = {(i, j) for i, j in zip(*np.nonzero(sims >= 0.7)) if i < j}
    assert set(zip(low.tolist(), high.tolist())) == expected
    assert (np.diff(similarity) <= 0).all()


def test_an_unknown_neighbour_method_is_refused():
    with pytest.raises(ValueError, match="Unknown neighbour method"):
        Neighbours(np.eye(3, dtype=np.float32), "brute")


def test_new_faces_join_the_clusters_that_hold_together():
    vectors, photos, bibs, runner_of = crowd(30)
    before = cluster_faces(vectors[:120], photos[:120], bibs[:120], 0.7)
    previous = [int(label) for label in before] + [None] * (len(vectors) - 120)
    groups = cluster_faces(vectors, photos, bibs, 0.7, clusters=previous, method="hnsw")
    labels = stable_labels(groups, previous)
    assert (labels[:120] == before).all()  # every earlier face keeps its number
    for index in range(120, len(vectors)):
        runner = runner_of[index]
        earlier = [i for i in range(120) if runner_of[i] == runner]
        if earlier and photos[index] not in {photos[i] for i in earlier}:
            assert labels[index] in labels[earlier]


def test_a_cluster_that_no_longer_holds_together_is_made_again():
    a, b = unit(1, 0, 0), unit(0, 1, 0)
    vectors = [a, unit(1, 0.05, 0), b, unit(0.05, 1, 0)]
    photos = ["p1", "p2", "p3", "p4"]
    # One cluster before, of two runners (a face deleted since held them together).
    groups = cluster_faces(vectors, photos, [None] * 4, 0.7, clusters=[5, 5, 5, 5])
    assert groups[0] == groups[1] != groups[2] == groups[3]
    assert stable_labels(groups, [5, 5, 5, 5]).tolist() in ([5, 5, 6, 6], [6, 6, 5, 5])
    # ... and one that now holds two bibs, or two faces of one photo.
    kept = cluster_faces(vectors[:2], photos[:2], [None, None], 0.7, clusters=[3, 3])
    split = cluster_faces(vectors[:2], photos[:2], ["1", "2"], 0.7, clusters=[3, 3])
    same_photo = cluster_faces(vectors[:2], ["p1", "p1"], None, 0.7, clusters=[3, 3])
    assert kept[0] == kept[1] and split[0] != split[1] and same_photo[0] != same_photo[1]


def test_stable_labels_keep_numbers_and_give_new_ones_above_every_other():
    assert stable_labels([0, 0, 1, 2], [7, 7, None, 3], first_free=10).tolist() == [7, 7, 10, 3]
    # Two clusters merged: the number of most faces wins, the other is not reused.
    assert stable_labels([0, 0, 0, 1], [4, 4, 9, None]).tolist() == [4, 4, 4, 10]
    with pytest.raises(ValueError):
        stable_labels([0], [])


def test_a_rival_further_than_the_nearest_faces_still_makes_a_link_ambiguous():
    rng = np.random.default_rng(3)
    base = unit(*([1.0] + [0.0] * 31))
    # The runner read in 60 photos, all nearer the unread face than the look-alike is.
    read = [base + rng.normal(size=32) * 0.01 for _ in range(60)]
    twin = unit(*([0.9] + [0.43] + [0.0] * 30))
    vectors = np.array([base, *read, twin])
    bibs = [None] + ["7"] * 60 + ["8"]
    face_ids = list(range(len(vectors)))
    link = FaceLink("p0", 0, "7", 0.99, 0)
    assert float(vectors[0] @ twin) >= 0.85
    for method in ("exact", "hnsw"):
        assert drop_ambiguous([link], face_ids, bibs, vectors, 0.85, method=method) == []
        assert drop_ambiguous([link], face_ids, bibs[:-1] + [None], vectors, 0.85,
                              method=method) == [link]
