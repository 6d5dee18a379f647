"""Roles are the only source of permissions: a Group or per-user permission row, however it
got into the database, opens nothing to an organiser or a photographer (accounts/backends.py).
"""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from accounts.models import BibClaim, User
from accounts.tests.factories import UserFactory
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

# The pages Django's own permission checks keep to platform admins (no role opens them).
ADMIN_ONLY_PAGES = (
    "accounts_user_changelist", "accounts_bibclaim_changelist", "accounts_erasurerecord_changelist",
    "authtoken_tokenproxy_changelist", "account_emailaddress_changelist",
    "djstripe_webhookendpoint_changelist", "djstripe_webhookeventtrigger_changelist",
    "events_organisation_changelist",
)


@pytest.fixture
def every_permission():
    group = Group.objects.create(name="Tout")
    group.permissions.set(Permission.objects.all())
    return group


def with_rows(user, group):
    """``user`` in ``group`` and given every permission row of their own too."""
    user.groups.add(group)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="events"))
    return User.objects.get(pk=user.pk)  # no permission cache


@pytest.fixture
def staff(named_people, every_permission):
    people = named_people(EventFactory(slug="trail-des-rows"))
    return {who: with_rows(people[who], every_permission)
            for who in ("runner", "photographer", "owner")}


@pytest.mark.parametrize("who", ["runner", "photographer", "owner"])
def test_a_permission_row_grants_nothing(staff, who):
    user = staff[who]

    assert not user.has_perm("events.change_event")
    assert not user.has_perm("accounts.change_user")
    assert not user.has_perms(["events.view_event"])
    assert not user.has_module_perms("accounts")
    assert user.get_all_permissions() == set()
    assert user.get_group_permissions() == set()


@pytest.mark.parametrize("who", ["photographer", "owner"])
def test_a_permission_row_opens_no_admin_page_past_the_role(staff, who):
    client = Client()
    client.force_login(staff[who])

    for name in ADMIN_ONLY_PAGES:
        assert client.get(reverse(f"admin:{name}")).status_code == 403, name
    user_page = reverse("admin:accounts_user_change", args=[staff[who].pk])
    assert client.get(user_page).status_code == 403
    # Nor may they make themselves a superuser with the "change user" row.
    client.post(user_page, {"username": staff[who].username, "is_superuser": "on",
                            "is_active": "on", "role": User.Role.ADMIN})
    assert not User.objects.get(pk=staff[who].pk).is_superuser
    # The admin's home lists only what the role opens.
    apps = {app["app_label"] for app in client.get(reverse("admin:index")).context["app_list"]}
    assert apps.isdisjoint({"accounts", "authtoken", "account", "djstripe"}), apps


@pytest.mark.parametrize("backend", settings.AUTHENTICATION_BACKENDS)
def test_a_row_adds_no_holder_to_the_list_of_who_holds_a_permission(staff, backend):
    superuser = UserFactory(username="root", is_superuser=True)

    assert list(User.objects.with_perm("events.change_event", backend=backend)) == [superuser]
    assert not User.objects.with_perm("events.change_event", include_superusers=False,
                                      backend=backend).exists()


def test_a_superuser_keeps_every_permission(every_permission):
    superuser = UserFactory(username="root", is_superuser=True)

    assert superuser.has_perm("accounts.change_user")
    assert superuser.get_all_permissions() == {
        f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}


def test_a_platform_admin_keeps_every_permission_without_rows():
    admin = UserFactory(username="ada", role=User.Role.ADMIN)

    assert admin.has_perm("accounts.view_bibclaim") and admin.has_module_perms("djstripe")
    BibClaim.objects.create(user=admin, event=EventFactory(), bib="7")
    client = Client()
    client.force_login(admin)
    assert client.get(reverse("admin:accounts_bibclaim_changelist")).status_code == 200


@pytest.mark.parametrize("credentials", [{"username": "olivia"}, {"email": "olivia@example.org"}])
def test_people_still_sign_in_by_username_and_by_email(credentials):
    UserFactory(username="olivia", role=User.Role.ORGANISER)

    assert Client().login(password="correct horse battery staple", **credentials)
