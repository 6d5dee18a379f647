import numpy as np

from mlpipeline.linking import FaceLink, assign_bibs_to_faces, cluster_faces, pair_confidence, propagate_bibs


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
