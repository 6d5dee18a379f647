"""The Django admin as the staff back office: every page, every named user.

Organisers see and manage their own events (start lists, photos, drop-folder
imports); photographers only their own photos, read-only; platform admins
everything; runners and strangers nothing. A row outside someone's scope
answers exactly like a row that does not exist.
"""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.models import Event, StartListEntry
from events.tests.factories import EventFactory, StartListEntryFactory
from photos.models import DropFolderFile, Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db

OK, FORBIDDEN, MISSING, LOGIN = "ok", "forbidden", "missing", "login"


@pytest.fixture
def world(named_people):
    event = EventFactory(name="Trail des Monts d'Or", slug="trail-monts-d-or")
    people = named_people(event)
    other = Event.objects.get(slug=f"autre-{event.slug}")
    colleague = UserFactory(username="claire-colleague", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(colleague)
    return {
        "people": people,
        "event": event,
        "other_event": other,
        "entry": StartListEntryFactory(event=event, bib="101", last_name="Ours"),
        "other_entry": StartListEntryFactory(event=other, bib="202", last_name="Theirs"),
        "photo": PhotoFactory(event=event, photographer=people["photographer"],
                              original_name="MINE.JPG"),
        "colleague_photo": PhotoFactory(event=event, photographer=colleague,
                                        original_name="COLLEAGUE.JPG"),
        "other_photo": PhotoFactory(event=other, photographer=people["outsider"],
                                    original_name="THEIRS.JPG"),
        "drop": DropFolderFile.objects.create(event=event, path="ours/IMG_1.JPG", size=1,
                                              mtime_ns=1, status="accepted"),
        "other_drop": DropFolderFile.objects.create(event=other, path="theirs/IMG_2.JPG",
                                                    size=1, mtime_ns=1, status="accepted"),
    }


def admin_url(name, *args) -> str:
    return reverse(f"admin:{name}", args=args)


PAGES = {
    "index": lambda w: admin_url("index"),
    "event_list": lambda w: admin_url("events_event_changelist"),
    "event_add": lambda w: admin_url("events_event_add"),
    "event_change": lambda w: admin_url("events_event_change", w["event"].pk),
    "other_event_change": lambda w: admin_url("events_event_change", w["other_event"].pk),
    "event_delete": lambda w: admin_url("events_event_delete", w["event"].pk),
    "event_history": lambda w: admin_url("events_event_history", w["event"].pk),
    "entry_list": lambda w: admin_url("events_startlistentry_changelist"),
    "entry_add": lambda w: admin_url("events_startlistentry_add"),
    "entry_change": lambda w: admin_url("events_startlistentry_change", w["entry"].pk),
    "other_entry_change": lambda w: admin_url("events_startlistentry_change",
                                              w["other_entry"].pk),
    "photo_list": lambda w: admin_url("photos_photo_changelist"),
    "photo_change": lambda w: admin_url("photos_photo_change", w["photo"].pk),
    "colleague_photo_change": lambda w: admin_url("photos_photo_change",
                                                  w["colleague_photo"].pk),
    "other_photo_change": lambda w: admin_url("photos_photo_change", w["other_photo"].pk),
    "photo_delete": lambda w: admin_url("photos_photo_delete", w["photo"].pk),
    "drop_list": lambda w: admin_url("photos_dropfolderfile_changelist"),
    "drop_change": lambda w: admin_url("photos_dropfolderfile_change", w["drop"].pk),
    "other_drop_change": lambda w: admin_url("photos_dropfolderfile_change", w["other_drop"].pk),
    "user_list": lambda w: admin_url("accounts_user_changelist"),
    "user_change": lambda w: admin_url("accounts_user_change", w["people"]["runner"].pk),
    "token_list": lambda w: admin_url("authtoken_tokenproxy_changelist"),
    "email_list": lambda w: admin_url("account_emailaddress_changelist"),
}

ADMIN = dict.fromkeys(PAGES, OK)
ORGANISER = dict.fromkeys(PAGES, FORBIDDEN) | {
    "index": OK, "event_list": OK, "event_add": OK, "event_change": OK,
    "other_event_change": MISSING, "event_history": OK,
    "entry_list": OK, "entry_add": OK, "entry_change": OK, "other_entry_change": MISSING,
    "photo_list": OK, "photo_change": OK, "colleague_photo_change": OK,
    "other_photo_change": MISSING, "photo_delete": OK,
    "drop_list": OK, "drop_change": OK, "other_drop_change": MISSING,
}
PHOTOGRAPHER = dict.fromkeys(PAGES, FORBIDDEN) | {
    "index": OK, "photo_list": OK, "photo_change": OK,
    "event_history": MISSING,  # Django looks the object up first: none is in their scope
    "colleague_photo_change": MISSING, "other_photo_change": MISSING,
}
EXPECTED = {
    "anonymous": dict.fromkeys(PAGES, LOGIN),
    "runner": dict.fromkeys(PAGES, LOGIN),  # a runner is no staff: sent to sign in
    "staff": ORGANISER | {  # organiser of the other event: its own rows there, none here
        "event_change": MISSING, "other_event_change": OK, "event_history": MISSING,
        "entry_change": MISSING, "other_entry_change": OK,
        "photo_change": MISSING, "colleague_photo_change": MISSING, "other_photo_change": OK,
        "photo_delete": MISSING, "drop_change": MISSING, "other_drop_change": OK,
    },
    "outsider": PHOTOGRAPHER | {
        "photo_change": MISSING, "other_photo_change": OK,
    },
    "photographer": PHOTOGRAPHER,
    "owner": ORGANISER,
    "admin": ADMIN,
}


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def outcome(response) -> str:
    if response.status_code == 200:
        return OK
    if response.status_code == 403:
        return FORBIDDEN
    if response.status_code == 302 and response["Location"].startswith(admin_url("login")):
        return LOGIN
    # Django's answer for an object id it cannot find: back to the index with a message.
    if response.status_code == 302 and response["Location"] == admin_url("index"):
        return MISSING
    return f"{response.status_code} {response.get('Location', '')}"


@pytest.mark.parametrize("who", list(EXPECTED))
def test_it_opens_each_admin_page_only_to_the_right_people(who, world):
    client = client_for(world["people"][who])

    seen = {page: outcome(client.get(url(world))) for page, url in PAGES.items()}

    assert seen == EXPECTED[who]


def test_it_answers_an_out_of_scope_object_like_a_missing_one(world):
    client = client_for(world["people"]["owner"])

    theirs = client.get(PAGES["other_photo_change"](world))
    missing = client.get(admin_url("photos_photo_change", 999_999))

    assert outcome(theirs) == outcome(missing) == MISSING


@pytest.mark.parametrize(("who", "names", "hidden"), [
    ("owner", {"MINE.JPG", "COLLEAGUE.JPG"}, {"THEIRS.JPG", "Autre"}),
    ("photographer", {"MINE.JPG"}, {"COLLEAGUE.JPG", "THEIRS.JPG", "Autre"}),
    ("admin", {"MINE.JPG", "COLLEAGUE.JPG", "THEIRS.JPG"}, set()),
])
def test_it_lists_only_the_photos_and_event_filters_someone_may_see(world, who, names, hidden):
    response = client_for(world["people"][who]).get(PAGES["photo_list"](world))

    html = response.content.decode()
    listed = {photo.original_name for photo in response.context["cl"].result_list}
    assert listed == names
    for text in hidden:  # not in the rows, not in the event filter either
        assert text not in html


def test_it_lists_only_the_organisers_events_and_start_lists(world):
    client = client_for(world["people"]["owner"])

    events = client.get(PAGES["event_list"](world)).context["cl"].result_list
    entries = client.get(PAGES["entry_list"](world))

    assert [event.slug for event in events] == [world["event"].slug]
    assert [entry.bib for entry in entries.context["cl"].result_list] == ["101"]
    assert "Theirs" not in entries.content.decode()


def test_it_keeps_an_organiser_from_moving_a_runner_to_someone_elses_event(world):
    client = client_for(world["people"]["owner"])

    response = client.post(PAGES["entry_change"](world), {
        "event": world["other_event"].pk, "bib": "101", "first_name": "", "last_name": "Ours",
        "race": ""})

    world["entry"].refresh_from_db()
    assert response.status_code == 200  # the form again, with an error
    assert response.context["adminform"].form.errors["event"]
    assert world["entry"].event == world["event"]


def test_it_adds_an_organiser_to_the_event_they_create(world):
    owner = world["people"]["owner"]
    client = client_for(owner)

    response = client.post(PAGES["event_add"](world), {
        "name": "Nouvelle course", "slug": "nouvelle-course", "date": "2027-05-01",
        "location": "", "description": "", "face_search": "opt_in",
        "photographers": [world["people"]["photographer"].pk],
        "races-TOTAL_FORMS": 0, "races-INITIAL_FORMS": 0,
        "start_list-TOTAL_FORMS": 0, "start_list-INITIAL_FORMS": 0,
    })

    assert response.status_code == 302, response.context["adminform"].form.errors
    created = Event.objects.get(slug="nouvelle-course")
    assert list(created.organisers.all()) == [owner]
    assert list(created.photographers.all()) == [world["people"]["photographer"]]


def test_it_lets_only_admins_choose_an_events_organisers(world):
    owner_form = client_for(world["people"]["owner"]).get(PAGES["event_change"](world))
    admin_form = client_for(world["people"]["admin"]).get(PAGES["event_change"](world))

    assert "organisers" not in owner_form.context["adminform"].form.fields
    assert "organisers" in admin_form.context["adminform"].form.fields


def test_it_shows_a_photographer_their_photo_read_only_without_actions(world):
    client = client_for(world["people"]["photographer"])

    change = client.get(PAGES["photo_change"](world))
    listing = client.get(PAGES["photo_list"](world))
    post = client.post(PAGES["photo_list"](world), {
        "action": "delete_selected", "_selected_action": [world["photo"].pk], "post": "yes"})

    assert change.context["has_change_permission"] is False
    assert listing.context["action_form"] is None or "reprocess" not in str(
        listing.context["action_form"])
    assert post.status_code in (200, 302, 403)
    assert Photo.objects.filter(pk=world["photo"].pk).exists()


def test_it_lets_an_organiser_delete_only_their_events_photos(world):
    client = client_for(world["people"]["owner"])

    client.post(PAGES["photo_list"](world), {
        "action": "delete_selected", "post": "yes",
        "_selected_action": [world["photo"].pk, world["other_photo"].pk]})

    assert not Photo.objects.filter(pk=world["photo"].pk).exists()
    assert Photo.objects.filter(pk=world["other_photo"].pk).exists()


def test_it_autocompletes_only_the_organisers_events(world):
    response = client_for(world["people"]["owner"]).get(
        reverse("admin:autocomplete"),
        {"app_label": "events", "model_name": "startlistentry", "field_name": "event", "term": ""})

    assert [item["text"] for item in response.json()["results"]] == [world["event"].name]


def test_it_makes_a_role_the_only_key_to_the_back_office():
    runner = UserFactory(username="camille", is_staff=True)
    photographer = UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)

    assert runner.is_staff is False
    assert photographer.is_staff is True
    photographer.role = User.Role.RUNNER
    photographer.save()
    assert photographer.is_staff is False
    assert StartListEntry.objects.count() == 0


# --- One platform-admin rule ---------------------------------------------------------------


@pytest.mark.parametrize("flags", [{"role": User.Role.ADMIN}, {"is_superuser": True}])
@pytest.mark.parametrize("active", [True, False])
def test_every_check_agrees_on_who_is_a_platform_admin(flags, active):
    from django.contrib.auth.models import AnonymousUser

    from accounts.models import is_platform_admin

    event = EventFactory()
    PhotoFactory(event=event)
    user = UserFactory(username="ada-admin", is_active=active, **flags)

    # A deactivated admin keeps the role but none of its powers, wherever it is asked.
    assert is_platform_admin(user) is active
    assert user.is_platform_admin is active
    assert event.can_manage(user) is active and event.can_upload(user) is active
    assert Event.objects.managed_by(user).exists() is active
    assert Photo.objects.visible_to(user).exists() is active
    assert user.has_perm("events.change_event") is active
    assert not is_platform_admin(AnonymousUser())


def test_the_role_is_the_only_access_rule_the_admin_offers(admin_client):
    # No "Groups" page and no groups or per-user permissions on a person's page: neither
    # grants anything (accounts/backends.py, test_permission_rows.py).
    assert admin_client.get("/admin/auth/group/").status_code == 404
    ada = UserFactory(username="ada-organiser", role=User.Role.ORGANISER)
    form = admin_client.get(reverse("admin:accounts_user_change", args=[ada.pk])).context["adminform"].form
    assert {"groups", "user_permissions"}.isdisjoint(form.fields)
    assert {"role", "is_active", "is_superuser"} <= set(form.fields)
