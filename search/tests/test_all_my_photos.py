"""All my photos: a bib search follows the runner's face clusters, a bib and a selfie
combine, and an event without a start list shows its confident readings as probable."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from accounts import privacy
from accounts.models import BibClaim
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import event_linking, loaded
from mlpipeline.bibrules import PROBABLE_MIN_CONFIDENCE
from photos.models import BibTag, Face
from photos.tests.factories import PhotoFactory
from search import services
from search.services import (
    REASON_CLUSTER,
    REASON_FACE,
    REASON_PROBABLE,
    REASON_SELFIE_CLUSTER,
    Match,
    SearchError,
    SelfieResult,
    photo_ids_by_bib,
    photos_by_bib,
)

pytestmark = pytest.mark.django_db
OCR, FACE_LINK, MANUAL = BibTag.Source.OCR, BibTag.Source.FACE_LINK, BibTag.Source.MANUAL


@pytest.fixture(autouse=True)
def in_english():
    with translation.override("en"):
        yield


def vector(seed) -> list[float]:
    value = np.random.default_rng(seed).normal(size=128)
    return (value / np.linalg.norm(value)).tolist()


def face(event, photo, cluster, bib="", seed=0) -> Face:
    return Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                               embedding=vector(seed), model=loaded.face_embedder().signature,
                               bib=bib, cluster=cluster)


def tag(photo, bib, source=OCR, confirmed=True, confidence=0.9, face_row=None) -> BibTag:
    return BibTag.objects.create(photo=photo, bib=bib, source=source, confirmed=confirmed,
                                 confidence=confidence, face=face_row)


def by_photo(matches) -> dict[int, tuple[str, ...]]:
    return {match.photo_id: match.reasons for match in matches}


@pytest.fixture
def listed_event():
    event = EventFactory(face_search="on")
    for bib in ("512", "77"):
        StartListEntryFactory(event=event, bib=bib)
    return event


def test_a_bib_search_returns_read_linked_manual_and_cluster_photos_most_certain_first(
        listed_event):
    event = listed_event
    read, linked, manual, hidden, stranger = (PhotoFactory(event=event) for _ in range(5))
    tag(read, "512", face_row=face(event, read, cluster=1, bib="512"))
    tag(linked, "512", FACE_LINK, confidence=0.97, face_row=face(event, linked, cluster=1))
    tag(manual, "512", MANUAL, confidence=1.0)
    face(event, hidden, cluster=1)  # the runner again, number hidden: nobody tagged it
    face(event, stranger, cluster=2)
    tag(PhotoFactory(event=event), "512", confirmed=False)  # off the list: staff review only

    matches = photos_by_bib(event, "0512")

    assert by_photo(matches) == {manual.pk: (MANUAL,), read.pk: (OCR,),
                                 linked.pk: (FACE_LINK,), hidden.pk: (REASON_CLUSTER,)}
    assert [match.photo_id for match in matches] == [manual.pk, read.pk, linked.pk, hidden.pk]


def test_an_opted_out_runner_is_not_found_through_their_face(listed_event):
    event = listed_event
    read, linked, hidden = (PhotoFactory(event=event) for _ in range(3))
    tag(read, "512", face_row=face(event, read, cluster=1, bib="512"))
    tag(linked, "512", FACE_LINK, face_row=face(event, linked, cluster=1))
    face(event, hidden, cluster=1)
    assert set(by_photo(photos_by_bib(event, "512"))) == {read.pk, linked.pk, hidden.pk}

    privacy.claim_bib(UserFactory(), event, "512", BibClaim.FaceSearch.OPTED_OUT)

    # The bib read on the photo is still theirs; nothing found by face is shown.
    assert by_photo(photos_by_bib(event, "512")) == {read.pk: (OCR,)}


def test_clusters_are_followed_through_searchable_faces_only():
    # Opt-in: until the runner agrees, none of their faces is searchable.
    event = EventFactory(face_search="opt_in")
    StartListEntryFactory(event=event, bib="512")
    read, hidden = PhotoFactory(event=event), PhotoFactory(event=event)
    tag(read, "512", face_row=face(event, read, cluster=1, bib="512"))
    face(event, hidden, cluster=1)
    assert set(by_photo(photos_by_bib(event, "512"))) == {read.pk}

    privacy.claim_bib(UserFactory(), event, "512", BibClaim.FaceSearch.CONSENTED)
    assert set(by_photo(photos_by_bib(event, "512"))) == {read.pk, hidden.pk}


def test_a_cluster_holding_another_runners_bib_is_not_followed(listed_event):
    event = listed_event
    read, other_read, hidden = (PhotoFactory(event=event) for _ in range(3))
    tag(read, "512", face_row=face(event, read, cluster=1, bib="512"))
    tag(other_read, "77", face_row=face(event, other_read, cluster=1, bib="77"))
    face(event, hidden, cluster=1)
    assert set(by_photo(photos_by_bib(event, "512"))) == {read.pk}


def test_many_bibs_are_searched_at_once_with_the_same_results_and_queries_as_one(listed_event):
    event = listed_event
    for bib in ("900", "33", "4"):
        StartListEntryFactory(event=event, bib=bib)
    photos = [PhotoFactory(event=event) for _ in range(12)]
    # 512: read, carried over by face, by hand, and its runner's cluster 1.
    tag(photos[0], "512", face_row=face(event, photos[0], cluster=1, bib="512"))
    tag(photos[1], "512", FACE_LINK, confidence=0.97, face_row=face(event, photos[1], cluster=1))
    tag(photos[2], "512", MANUAL, confidence=1.0)
    face(event, photos[3], cluster=1)
    # 77 and 33: their faces fell in one cluster (two runners alike), followed by neither.
    tag(photos[4], "77")
    tag(photos[5], "33", face_row=face(event, photos[5], cluster=2, bib="33"))
    tag(photos[6], "77", face_row=face(event, photos[6], cluster=2, bib="77"))
    # 900: seeded by a face linked to the bib on a photo that shows it, then opted out.
    tag(photos[7], "900")
    face(event, photos[7], cluster=3, bib="900")
    face(event, photos[8], cluster=3)
    privacy.claim_bib(UserFactory(), event, "900", BibClaim.FaceSearch.OPTED_OUT)
    tag(photos[9], "900", FACE_LINK, face_row=face(event, photos[9], cluster=3))
    # 4: a cluster of its own, seeded by the tag's face.
    tag(photos[10], "4", face_row=face(event, photos[10], cluster=4))
    face(event, photos[11], cluster=4)
    bibs = ["512", "0512", "77", "33", "900", "4", "5", "12a", ""]

    def one_by_one(bib):
        try:
            return set(by_photo(photos_by_bib(event, bib)))
        except SearchError:
            return set()

    expected = {bib: one_by_one(bib) for bib in bibs}
    with CaptureQueriesContext(connection) as one:
        photo_ids_by_bib(event, ["512"])
    with CaptureQueriesContext(connection) as many:
        found = photo_ids_by_bib(event, bibs)

    assert found == expected
    assert expected["512"] == {photos[0].pk, photos[1].pk, photos[2].pk, photos[3].pk}
    assert expected["900"] == {photos[7].pk}
    assert expected["4"] == {photos[10].pk, photos[11].pk}
    assert (expected["77"], expected["33"]) == ({photos[4].pk, photos[6].pk}, {photos[5].pk})
    assert expected["12a"] == expected["5"] == set()
    assert len(many) == len(one)


@pytest.mark.parametrize("bib, message", [("", "Type your bib number"),
                                          ("12a", "digits only"), ("١٢", "digits only"),
                                          ("1" * 13, "at most 12 digits")])
def test_a_malformed_bib_is_refused_clearly(listed_event, bib, message):
    with pytest.raises(SearchError, match=message):
        photos_by_bib(listed_event, bib)


def test_without_a_start_list_confident_readings_are_shown_as_probable():
    event = EventFactory(face_search="on")
    sure, unsure, hidden = (PhotoFactory(event=event) for _ in range(3))
    tag(sure, "88", confirmed=False, confidence=PROBABLE_MIN_CONFIDENCE,
        face_row=face(event, sure, cluster=3, bib="88"))
    tag(unsure, "88", confirmed=False, confidence=PROBABLE_MIN_CONFIDENCE - 0.01)
    face(event, hidden, cluster=3)

    assert by_photo(photos_by_bib(event, "88")) == {
        sure.pk: (OCR, REASON_PROBABLE), hidden.pk: (REASON_CLUSTER, REASON_PROBABLE)}

    # A start list makes the same unconfirmed reading one off the list: not shown.
    StartListEntryFactory(event=event, bib="1")
    assert photos_by_bib(event, "88") == []


def test_linking_without_a_start_list_carries_probable_readings_only_and_keeps_them_probable():
    event = EventFactory(face_search="on")
    model = loaded.face_embedder().signature
    sure, hidden, unsure, hidden_too = (PhotoFactory(event=event) for _ in range(4))

    def runner_face(photo, runner, bib=""):
        return Face.objects.create(photo=photo, event=event, box=[10, 10, 50, 50], score=0.99,
                                   embedding=vector(runner), model=model, bib=bib)

    tag(sure, "88", confirmed=False, confidence=0.99, face_row=runner_face(sure, 1, "88"))
    runner_face(hidden, 1)
    tag(unsure, "99", confirmed=False, confidence=0.31, face_row=runner_face(unsure, 2, "99"))
    runner_face(hidden_too, 2)

    event_linking.link_event(event.pk)

    [link] = BibTag.objects.filter(source=FACE_LINK)
    assert (link.photo_id, link.bib, link.confirmed) == (hidden.pk, "88", False)
    assert by_photo(photos_by_bib(event, "88"))[hidden.pk] == (FACE_LINK, REASON_PROBABLE)
    assert photos_by_bib(event, "99") == []


def test_bib_and_selfie_combine_with_every_reason_and_the_selfies_clusters(listed_event):
    event = listed_event
    read, both, selfie_only, selfie_cluster = (PhotoFactory(event=event) for _ in range(4))
    tag(read, "512", face_row=face(event, read, cluster=1, bib="512"))
    tag(both, "512", FACE_LINK, confidence=0.8, face_row=face(event, both, cluster=1))
    face(event, selfie_only, cluster=5)
    face(event, selfie_cluster, cluster=5)
    selfie = SelfieResult([Match(both.pk, 0.7, (REASON_FACE,)),
                           Match(selfie_only.pk, 0.6, (REASON_FACE,))], 1, (), frozenset({5}))

    combined = services.combine(event, photos_by_bib(event, "512"), selfie)

    assert [(match.photo_id, match.reasons) for match in combined] == [
        (read.pk, (OCR,)), (both.pk, (FACE_LINK, REASON_FACE)),
        (selfie_only.pk, (REASON_FACE,)), (selfie_cluster.pk, (REASON_SELFIE_CLUSTER,))]
