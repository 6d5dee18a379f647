"""Face-search privacy: event setting, bib claims, opt-out and consent, erasure."""

import pytest
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.test import Client

from accounts import privacy
from accounts.models import BibClaim, ErasureRecord
from accounts.tests.factories import UserFactory
from events.models import Event
from events.tests.factories import EventFactory, StartListEntryFactory
from photos.models import BibTag, Face
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

ON, OPT_IN, OFF = Event.FaceSearch.ON, Event.FaceSearch.OPT_IN, Event.FaceSearch.OFF
CONSENTED, OPTED_OUT = BibClaim.FaceSearch.CONSENTED, BibClaim.FaceSearch.OPTED_OUT


def add_face(event, bib="", cluster=None, tag=True) -> Face:
    """A face in a new photo of ``event``, with the bib tag OCR would have made."""
    photo = PhotoFactory(event=event)
    face = Face.objects.create(photo=photo, event=event, box=[0, 0, 10, 10], score=0.99,
                               embedding=[1.0, 0.0, 0.0], model="test@1", bib=bib,
                               cluster=cluster)
    if bib and tag:
        BibTag.objects.create(photo=photo, bib=bib, confidence=0.9, source=BibTag.Source.OCR,
                              face=face)
    return face


def searchable(*faces) -> list[bool]:
    return [Face.objects.get(pk=face.pk).searchable for face in faces]


@pytest.fixture
def signalled():
    """Faces that went through save() or delete(), the way index updates are triggered."""
    seen = {"saved": [], "deleted": []}

    def saved(sender, instance, **kwargs):
        seen["saved"].append(instance.pk)

    def deleted(sender, instance, **kwargs):
        seen["deleted"].append(instance.pk)

    post_save.connect(saved, sender=Face, dispatch_uid="test-saved")
    post_delete.connect(deleted, sender=Face, dispatch_uid="test-deleted")
    yield seen
    post_save.disconnect(sender=Face, dispatch_uid="test-saved")
    post_delete.disconnect(sender=Face, dispatch_uid="test-deleted")


# --- The rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "claim", "blocked"), [
    (ON, None, False), (ON, CONSENTED, False), (ON, OPTED_OUT, True),
    (OPT_IN, None, True), (OPT_IN, CONSENTED, False), (OPT_IN, OPTED_OUT, True),
    (OFF, None, True), (OFF, CONSENTED, True),
])
def test_it_decides_whether_a_bib_can_be_found_by_face(setting, claim, blocked):
    event = EventFactory(face_search=setting)
    if claim:
        privacy.claim_bib(UserFactory(), event, "42", claim)

    assert privacy.is_face_search_blocked(event, "42") is blocked
    assert privacy.is_face_search_blocked(event, "43") is (setting != ON)


def test_it_lets_an_opt_out_win_over_someone_elses_consent_for_the_same_bib():
    event = EventFactory(face_search=OPT_IN)
    privacy.claim_bib(UserFactory(username="real"), event, "42", OPTED_OUT)
    privacy.claim_bib(UserFactory(username="squatter"), event, "42", CONSENTED)

    assert privacy.is_face_search_blocked(event, "42")


def test_it_makes_new_events_opt_in():
    assert Event().face_search == OPT_IN


# --- Opting out and in --------------------------------------------------------------------


def test_it_takes_every_face_of_a_runner_out_of_search_at_once_when_they_opt_out():
    event = EventFactory(face_search=ON)
    runner = UserFactory(username="camille")
    with_bib = add_face(event, bib="42", cluster=7)
    same_runner_bib_hidden = add_face(event, cluster=7)
    someone_else = add_face(event, bib="43", cluster=8)
    same_bib_other_event = add_face(EventFactory(face_search=ON), bib="42")

    claim = privacy.claim_bib(runner, event, "42", OPTED_OUT)

    assert claim.face_search == OPTED_OUT
    assert searchable(with_bib, same_runner_bib_hidden, someone_else, same_bib_other_event) == [
        False, False, True, True]


def test_it_creates_the_later_faces_of_an_opted_out_runner_unsearchable():
    event = EventFactory(face_search=ON)
    add_face(event, bib="42", cluster=7)
    privacy.claim_bib(UserFactory(), event, "42", OPTED_OUT)

    linked_later = add_face(event)
    linked_later.bib = "42"
    linked_later.save()
    same_cluster_later = add_face(event, cluster=7)

    assert searchable(linked_later, same_cluster_later) == [False, False]
    assert privacy.is_face_search_blocked(event, "42")


def test_it_makes_faces_searchable_on_an_opt_in_event_only_after_consent():
    event = EventFactory(face_search=OPT_IN)
    mine = add_face(event, bib="42", cluster=3)
    mine_bib_hidden = add_face(event, cluster=3)
    unclaimed = add_face(event, bib="43")
    nobody_known = add_face(event)
    assert searchable(mine, mine_bib_hidden, unclaimed, nobody_known) == [False] * 4

    claim = privacy.claim_bib(UserFactory(), event, "42", CONSENTED)

    assert searchable(mine, mine_bib_hidden, unclaimed, nobody_known) == [
        True, True, False, False]

    privacy.set_face_search(claim, OPTED_OUT)

    assert searchable(mine, mine_bib_hidden) == [False, False]


def test_it_applies_a_changed_event_setting_to_every_face():
    event = EventFactory(face_search=ON)
    faces = [add_face(event, bib="42"), add_face(event)]

    event.face_search = OFF
    event.save()
    assert searchable(*faces) == [False, False]

    # However the setting is written: the database applies it.
    Event.objects.filter(pk=event.pk).update(face_search=ON)
    assert searchable(*faces) == [True, True]


def test_a_changed_event_setting_rewrites_the_faces_without_touching_their_indexes():
    """Each face's new version stays on its page (a HOT update): no index entry is written,
    so the event model's HNSW graph is not searched again for every face (photos
    migration 0011). On full pages a big event's setting took minutes to change."""
    from mlpipeline.inference.sface import SFaceEmbedder

    event = EventFactory(face_search=ON)
    photo = PhotoFactory(event=event)
    vector = [1.0] + [0.0] * 127
    faces = Face.objects.bulk_create([
        Face(photo=photo, event=event, box=[0, 0, 10, 10], score=0.99, embedding=vector,
             model=SFaceEmbedder.signature)
        for _ in range(200)])  # about twenty pages of faces with a 128-d vector

    def hot_updates() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_get_xact_tuples_updated('photos_face'::regclass), "
                           "pg_stat_get_xact_tuples_hot_updated('photos_face'::regclass)")
            return cursor.fetchone()

    updated, hot = hot_updates()
    event.face_search = OFF
    event.save()

    assert searchable(faces[0], faces[-1]) == [False, False]
    updated_now, hot_now = hot_updates()
    assert (updated_now - updated, hot_now - hot) == (len(faces), len(faces))


def test_a_changed_event_setting_decides_the_faces_once_not_once_more_each():
    """racephoto_refresh_faces decides every face of the event in one query; the row guard
    lets its writes through instead of asking the rule again for each face (accounts
    migration 0004): that second opinion was most of the time at a big event."""
    event = EventFactory(face_search=OFF)
    privacy.claim_bib(UserFactory(), event, "7", face_search=CONSENTED)  # the rule's full path
    faces = [add_face(event, bib="42"), add_face(event), add_face(event, bib="7")]

    def rule_runs() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL track_functions = 'pl'")
            cursor.execute("SELECT coalesce(pg_stat_get_xact_function_calls("
                           "'racephoto_faces_blocked(bigint, bigint[], text[], integer[])'"
                           "::regprocedure), 0)")
            return cursor.fetchone()[0]

    before = rule_runs()
    event.face_search = ON
    event.save()

    assert searchable(*faces) == [True, True, True]
    assert rule_runs() == before + 1  # the whole event at once, and not once more a face
    # A face written by anyone else is still guarded on its own.
    Face.objects.filter(pk=faces[1].pk).update(searchable=False)
    Face.objects.filter(pk=faces[1].pk).update(searchable=True)
    assert rule_runs() == before + 2


def test_it_refuses_selfie_search_on_an_event_with_face_search_off():
    privacy.check_face_search(EventFactory(face_search=ON))
    with pytest.raises(privacy.FaceSearchOff):
        privacy.check_face_search(EventFactory(face_search=OFF))


# --- Erasure ------------------------------------------------------------------------------


def test_it_opts_out_at_once_when_erasure_is_requested_and_erases_once_carried_out(signalled):
    event = EventFactory(face_search=ON)
    other_event = EventFactory(face_search=ON)
    runner = UserFactory(username="camille")
    privacy.claim_bib(runner, event, "42")
    mine = [add_face(event, bib="42", cluster=5), add_face(event, cluster=5)]
    manual_tag = BibTag.objects.create(photo=mine[1].photo, bib="42", confidence=1,
                                       source=BibTag.Source.MANUAL)
    someone_else = add_face(event, bib="43")
    elsewhere = add_face(other_event, bib="42")

    (record,) = privacy.request_erasure(runner)

    assert searchable(*mine) == [False, False]
    assert (record.status, record.user, record.bib) == (ErasureRecord.Status.REQUESTED, runner,
                                                        "42")

    record = privacy.erase(record)

    assert not Face.objects.filter(pk__in=[face.pk for face in mine]).exists()
    assert not BibTag.objects.filter(photo__event=event, bib="42").exists()
    assert not BibTag.objects.filter(pk=manual_tag.pk).exists()
    assert not BibClaim.objects.filter(event=event, bib="42").exists()
    assert set(signalled["deleted"]) == {face.pk for face in mine}
    # Everyone else's data stays, the same bib at another event too.
    assert Face.objects.filter(pk__in=[someone_else.pk, elsewhere.pk]).count() == 2
    assert BibTag.objects.filter(photo__event=other_event, bib="42").exists()
    # The audit record keeps no personal data.
    record.refresh_from_db()
    assert (record.status, record.user, record.bib) == (ErasureRecord.Status.DONE, None, "")
    assert (record.faces_deleted, record.bib_tags_deleted, record.claims_deleted) == (2, 2, 1)
    assert record.event == event and record.completed_at
    # A keyed hash of the event and bib, not the bib.
    assert record.reference == privacy.erasure_reference(event.pk, "42")
    assert len(record.reference) == 64
    # The bib's new faces stay out of search, though the record no longer names it.
    assert privacy.is_face_search_blocked(event, "42")
    assert searchable(add_face(event, bib="42")) == [False]
    assert not privacy.is_face_search_blocked(other_event, "42")
    assert privacy.is_bib_erased(event, "42")
    assert not privacy.is_bib_erased(event, "43")
    assert not privacy.is_bib_erased(other_event, "42")


def test_it_erases_only_once():
    event = EventFactory(face_search=ON)
    runner = UserFactory()
    privacy.claim_bib(runner, event, "42")
    add_face(event, bib="42")
    (record,) = privacy.request_erasure(runner)
    assert privacy.request_erasure(runner)[0].pk == record.pk  # asking twice adds nothing

    privacy.erase(record)
    again = privacy.erase(record)

    assert again.faces_deleted == 1
    assert ErasureRecord.objects.count() == 1


def test_it_logs_no_personal_data_when_erasing(caplog):
    event = EventFactory(face_search=ON)
    runner = UserFactory(username="camille", email="camille@example.org")
    privacy.claim_bib(runner, event, "4242")
    add_face(event, bib="4242")

    with caplog.at_level("INFO"):
        privacy.erase(privacy.request_erasure(runner)[0])

    logged = " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "erased" in logged
    for personal in ("4242", "camille"):
        assert personal not in logged


# --- Pages ---------------------------------------------------------------------------------


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_it_lets_a_runner_claim_a_bib_and_opt_out_from_their_account(settings):
    event = EventFactory(name="Semi de Lyon", face_search=ON)
    face = add_face(event, bib="42")
    runner = UserFactory(username="camille")
    client = client_for(runner)

    response = client.post("/en/accounts/privacy/claim/", {
        "event": event.pk, "bib": " 42 ", "face_search": OPTED_OUT})

    assert response.status_code == 302
    claim = BibClaim.objects.get(user=runner)
    assert (claim.event, claim.bib, claim.face_search) == (event, "42", OPTED_OUT)
    assert searchable(face) == [False]
    page = client.get("/en/accounts/privacy/").content.decode()
    assert "Semi de Lyon" in page and "You do not want to be found by your face." in page

    client.post(f"/en/accounts/privacy/claims/{claim.pk}/", {"face_search": CONSENTED})

    assert searchable(face) == [True]


@pytest.mark.parametrize(("choice", "english", "french"), [
    (CONSENTED, "You agree to be found by your face.",
     "Vous acceptez d’être retrouvé·e par votre visage."),
    (OPTED_OUT, "You do not want to be found by your face.",
     "Vous ne voulez pas être retrouvé·e par votre visage."),
    (BibClaim.FaceSearch.UNDECIDED, "You have not chosen yet.", "Vous n’avez pas encore choisi."),
])
def test_it_tells_the_runner_their_own_choice_in_their_words(choice, english, french):
    runner = UserFactory(username="camille")
    privacy.claim_bib(runner, EventFactory(face_search=ON), "42", choice)
    client = client_for(runner)

    en = client.get("/en/accounts/privacy/").content.decode()
    fr = client.get("/fr/accounts/privacy/").content.decode()

    assert f"<p>{english}</p>" in en
    assert f"<p>{french}</p>" in fr
    # Not the staff's description of the runner in the third person.
    assert "Accepte d’être retrouvé par son visage" not in fr
    assert str(BibClaim.FaceSearch(choice).label) not in en


def test_it_refuses_a_claim_for_a_bib_that_is_not_on_the_start_list():
    event = EventFactory(name="Semi de Lyon")
    StartListEntryFactory(event=event, bib="42")
    client = client_for(UserFactory(username="camille"))

    en = client.post("/en/accounts/privacy/claim/", {
        "event": event.pk, "bib": "43", "face_search": OPTED_OUT})
    fr = client.post("/fr/accounts/privacy/claim/", {
        "event": event.pk, "bib": "43", "face_search": OPTED_OUT})

    assert en.status_code == fr.status_code == 400
    assert "Bib 43 is not on the start list of Semi de Lyon" in en.content.decode()
    assert ("Le dossard 43 n’est pas sur la liste des inscrits de Semi de Lyon"
            in fr.content.decode())
    assert not BibClaim.objects.exists()


def test_it_accepts_a_bib_of_the_start_list_without_a_warning():
    event = EventFactory(name="Semi de Lyon")
    StartListEntryFactory(event=event, bib="A42")
    runner = UserFactory(username="camille")

    response = client_for(runner).post("/en/accounts/privacy/claim/", {
        "event": event.pk, "bib": "a42", "face_search": OPTED_OUT}, follow=True)

    assert BibClaim.objects.get(user=runner).bib == "A42"  # as the start list writes it
    page = response.content.decode()
    assert "Your choice is saved" in page and "no start list" not in page


def test_it_accepts_a_bib_when_the_event_has_no_start_list_and_says_it_could_not_check():
    event = EventFactory(name="Semi de Lyon")
    runner = UserFactory(username="camille")
    client = client_for(runner)

    en = client.post("/en/accounts/privacy/claim/", {
        "event": event.pk, "bib": "42", "face_search": OPTED_OUT}, follow=True)
    fr = client.post("/fr/accounts/privacy/claim/", {
        "event": event.pk, "bib": "43", "face_search": OPTED_OUT}, follow=True)

    assert set(BibClaim.objects.filter(user=runner).values_list("bib", flat=True)) == {"42",
                                                                                       "43"}
    # shown as a warning, not as a success
    assert ('<li class="notice notice-warning" role="status">Semi de Lyon has no start list, '
            "so we could not check that bib 42 is yours") in en.content.decode()
    assert ("Semi de Lyon n’a pas de liste des inscrits : nous n’avons pas pu vérifier que "
            "le dossard 43 est bien le vôtre.") in fr.content.decode()


def test_it_keeps_a_runner_from_changing_someone_elses_claim():
    event = EventFactory(face_search=ON)
    face = add_face(event, bib="42")
    claim = privacy.claim_bib(UserFactory(username="camille"), event, "42", CONSENTED)

    response = client_for(UserFactory(username="mallory")).post(
        f"/en/accounts/privacy/claims/{claim.pk}/", {"face_search": OPTED_OUT})

    assert response.status_code == 404
    claim.refresh_from_db()
    assert claim.face_search == CONSENTED
    assert searchable(face) == [True]


def test_it_refuses_a_claim_on_an_unpublished_event_and_a_bad_bib():
    hidden = EventFactory(is_published=False)
    client = client_for(UserFactory())

    unpublished = client.post("/en/accounts/privacy/claim/", {
        "event": hidden.pk, "bib": "42", "face_search": OPTED_OUT})
    bad_bib = client.post("/en/accounts/privacy/claim/", {
        "event": EventFactory().pk, "bib": "<script>", "face_search": OPTED_OUT})

    assert unpublished.status_code == bad_bib.status_code == 400
    assert not BibClaim.objects.exists()


@pytest.mark.parametrize("path", ["/en/accounts/privacy/", "/en/accounts/privacy/claim/",
                                  "/en/accounts/privacy/erasure/"])
def test_it_sends_anonymous_visitors_to_sign_in(path):
    client = Client()
    response = client.post(path) if path.endswith(("claim/", "erasure/")) else client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/en/accounts/login/")


def test_it_takes_an_erasure_request_from_the_account_page():
    event = EventFactory(face_search=ON)
    runner = UserFactory()
    privacy.claim_bib(runner, event, "42", CONSENTED)
    face = add_face(event, bib="42")
    client = client_for(runner)

    response = client.post("/en/accounts/privacy/erasure/", follow=True)

    assert "Your faces are out of search already" in response.content.decode()
    assert ErasureRecord.objects.get().status == ErasureRecord.Status.REQUESTED
    assert searchable(face) == [False]


def test_it_says_to_claim_a_bib_before_asking_for_erasure():
    response = client_for(UserFactory()).post("/en/accounts/privacy/erasure/", follow=True)

    assert "Claim your bib first" in response.content.decode()
    assert not ErasureRecord.objects.exists()


@pytest.mark.parametrize(("setting", "english", "french"), [
    (ON, "unless they opt out", "sauf s’ils s’y opposent"),
    (OPT_IN, "only runners who agreed can be found", "seuls les coureurs qui ont accepté"),
    (OFF, "Face search is off for this event", "La recherche par visage est désactivée"),
])
def test_it_explains_face_search_on_the_public_event_page(setting, english, french):
    event = EventFactory(face_search=setting)

    en = Client().get(f"/en/events/{event.slug}/").content.decode()
    fr = Client().get(f"/fr/events/{event.slug}/").content.decode()

    assert english in " ".join(en.split())
    assert french in " ".join(fr.split())
    if setting != OFF:
        assert "never stored or logged" in " ".join(en.split())


# --- Admin ----------------------------------------------------------------------------------


def test_it_lets_a_platform_admin_carry_out_erasures_from_the_admin(named_people):
    event = EventFactory(face_search=ON)
    StartListEntryFactory(event=event, bib="42", first_name="Camille", last_name="Martin")
    runner = UserFactory(username="camille")
    privacy.claim_bib(runner, event, "42")
    add_face(event, bib="42")
    (record,) = privacy.request_erasure(runner)
    admin = named_people(event)["admin"]
    client = client_for(admin)

    listing = client.get("/admin/accounts/erasurerecord/")
    response = client.post("/admin/accounts/erasurerecord/", {
        "action": "carry_out", "_selected_action": [record.pk]}, follow=True,
        HTTP_ACCEPT_LANGUAGE="en")

    assert "Camille Martin" in listing.content.decode()  # to check the claim first
    assert "1 erasure carried out." in response.content.decode()
    assert not Face.objects.filter(event=event).exists()
    record.refresh_from_db()
    assert record.status == ErasureRecord.Status.DONE


@pytest.mark.parametrize("who", ["owner", "photographer", "staff", "outsider", "runner"])
@pytest.mark.parametrize("page", ["/admin/accounts/erasurerecord/", "/admin/accounts/bibclaim/"])
def test_it_keeps_claims_and_erasures_to_platform_admins(who, page, named_people):
    people = named_people(EventFactory())

    response = client_for(people[who]).get(page)

    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")


def test_it_applies_a_face_search_change_made_in_the_event_admin(named_people):
    event = EventFactory(face_search=ON, slug="semi")
    face = add_face(event, bib="42")
    owner = named_people(event)["owner"]
    client = client_for(owner)
    form = client.get(f"/admin/events/event/{event.pk}/change/").context["adminform"].form
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value is not None}
    data.update({"date": event.date.isoformat(), "face_search": OFF,
                 "photographers": [user.pk for user in event.photographers.all()],
                 "races-TOTAL_FORMS": 0, "races-INITIAL_FORMS": 0,
                 "start_list-TOTAL_FORMS": 0, "start_list-INITIAL_FORMS": 0})
    for name in ("watermark_logo", "logo"):  # file fields: nothing uploaded
        data.pop(name, None)

    response = client.post(f"/admin/events/event/{event.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert searchable(face) == [False]


# --- The rule holds for every write -----------------------------------------------------
# The database applies it (migration 0003): a write site that forgets the rule cannot make
# an opted-out runner's face searchable, whatever it writes with.


@pytest.fixture
def opted_out_runner():
    """An event where the runner wearing 42 opted out; their face in cluster 7 is known."""
    event = EventFactory(face_search=ON)
    known = add_face(event, bib="42", cluster=7)
    privacy.claim_bib(UserFactory(), event, "42", OPTED_OUT)
    return event, known


def test_bulk_create_cannot_make_an_opted_out_face_searchable(opted_out_runner):
    event, _known = opted_out_runner
    photo = PhotoFactory(event=event)
    created = Face.objects.bulk_create([
        Face(photo=photo, event=event, box=[0, 0, 1, 1], score=0.9, bib="42", searchable=True),
        Face(photo=photo, event=event, box=[0, 0, 1, 1], score=0.9, cluster=7, searchable=True),
        Face(photo=photo, event=event, box=[0, 0, 1, 1], score=0.9, bib="43", searchable=True),
    ])

    assert searchable(*created) == [False, False, True]


def test_queryset_update_cannot_make_an_opted_out_face_searchable(opted_out_runner):
    event, known = opted_out_runner
    other, bib_hidden = add_face(event, bib="43"), add_face(event)

    Face.objects.filter(pk=known.pk).update(searchable=True)
    Face.objects.filter(pk=other.pk).update(bib="42")
    Face.objects.bulk_update([Face(pk=bib_hidden.pk, cluster=7)], ["cluster"])

    assert searchable(known, other, bib_hidden) == [False, False, False]


def test_raw_sql_cannot_make_an_opted_out_face_searchable(opted_out_runner):
    event, known = opted_out_runner
    photo = PhotoFactory(event=event)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE photos_face SET searchable = true WHERE id = %s", [known.pk])
        cursor.execute(
            "INSERT INTO photos_face (photo_id, event_id, box, score, model, bib, cluster,"
            " searchable, created_at) VALUES (%s, %s, '[0, 0, 1, 1]', 0.9, '', '', 7, true,"
            " now()) RETURNING id", [photo.pk, event.pk])
        (inserted,) = cursor.fetchone()

    assert searchable(known, Face(pk=inserted)) == [False, False]


def test_a_bulk_write_that_joins_a_cluster_carries_the_opt_out_to_its_other_faces():
    event = EventFactory(face_search=ON)
    privacy.claim_bib(UserFactory(), event, "42", OPTED_OUT)
    bib_hidden = add_face(event, cluster=3)
    newly_read = add_face(event)
    assert searchable(bib_hidden, newly_read) == [True, True]

    # The bib is read on a face that clustering then puts with the bib-hidden one.
    Face.objects.filter(pk=newly_read.pk).update(bib="42")
    Face.objects.bulk_update([Face(pk=newly_read.pk, cluster=3)], ["cluster"])

    assert searchable(bib_hidden, newly_read) == [False, False]


def test_a_bulk_write_lets_a_consented_face_into_search_on_an_opt_in_event():
    event = EventFactory(face_search=OPT_IN)
    privacy.claim_bib(UserFactory(), event, "42", CONSENTED)
    face, bib_hidden = add_face(event), add_face(event, cluster=4)
    assert searchable(face, bib_hidden) == [False, False]

    Face.objects.filter(pk=face.pk).update(bib="42", cluster=4)

    assert searchable(face, bib_hidden) == [True, True]


def test_a_face_that_a_bulk_write_made_unsearchable_leaves_the_index(
        settings, django_capture_on_commit_callbacks):
    from mlpipeline import indexes

    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = EventFactory(face_search=ON)
    with django_capture_on_commit_callbacks(execute=True):
        face = add_face(event)
    assert indexes.nearest(event.pk, indexes.FACES, "test@1", [1.0, 0.0, 0.0], 5)

    with django_capture_on_commit_callbacks(execute=True):
        Face.objects.filter(pk=face.pk).update(bib="42")
        privacy.claim_bib(UserFactory(), event, "42", OPTED_OUT)

    assert indexes.nearest(event.pk, indexes.FACES, "test@1", [1.0, 0.0, 0.0], 5) == []
    assert indexes.check(event.pk) == []


def test_an_opt_out_alone_takes_the_face_out_of_the_index(settings,
                                                           django_capture_on_commit_callbacks):
    from mlpipeline import indexes

    settings.CELERY_TASK_ALWAYS_EAGER = True
    event = EventFactory(face_search=ON)
    with django_capture_on_commit_callbacks(execute=True):
        add_face(event, bib="42")
    with django_capture_on_commit_callbacks(execute=True):
        privacy.claim_bib(UserFactory(), event, "42", OPTED_OUT)

    assert indexes.nearest(event.pk, indexes.FACES, "test@1", [1.0, 0.0, 0.0], 5) == []


def test_a_bulk_delete_takes_the_consent_away_from_the_rest_of_the_cluster():
    event = EventFactory(face_search=OPT_IN)
    privacy.claim_bib(UserFactory(), event, "42", CONSENTED)
    consented, bib_hidden = add_face(event, bib="42", cluster=4), add_face(event, cluster=4)
    assert searchable(consented, bib_hidden) == [True, True]

    with connection.cursor() as cursor:  # no model signals, no Python at all
        cursor.execute("DELETE FROM photos_bibtag WHERE face_id = %s", [consented.pk])
        cursor.execute("DELETE FROM photos_face WHERE id = %s", [consented.pk])

    # Nobody in the cluster is known to have agreed any more.
    assert searchable(bib_hidden) == [False]
