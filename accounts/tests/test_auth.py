"""Sign-up, e-mail verification, sign-in, password reset and sign-in throttling (allauth)."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def sign_in(client, login, password=PASSWORD, language="en"):
    return client.post(f"/{language}/accounts/login/", {"login": login, "password": password})


def link_in(message) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


def test_it_signs_up_a_runner_by_email_and_signs_them_in_only_once_verified(client):
    response = client.post("/en/accounts/signup/", {
        "email": "camille@example.org", "password1": PASSWORD, "password2": PASSWORD})

    user = User.objects.get(email="camille@example.org")
    assert response.status_code == 302
    assert (user.role, user.is_staff) == (User.Role.RUNNER, False)
    assert not signed_in(client)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["camille@example.org"]

    refused = sign_in(Client(), "camille@example.org")
    assert refused.status_code == 302
    assert refused["Location"] == "/en/accounts/confirm-email/"

    confirm = link_in(mail.outbox[0])
    assert client.post(confirm).status_code == 302
    assert EmailAddress.objects.get(user=user).verified

    browser = Client()
    response = sign_in(browser, "camille@example.org")
    assert response.status_code == 302
    assert response["Location"] == "/en/accounts/profile/"
    assert signed_in(browser)


def test_it_refuses_a_wrong_password_without_saying_whether_the_account_exists(client):
    UserFactory(username="camille", email="camille@example.org")

    wrong_password = sign_in(client, "camille@example.org", "not the password").content.decode()
    unknown = sign_in(Client(), "nobody@example.org", "not the password").content.decode()

    assert not signed_in(client)
    message = "The email address and/or password you specified are not correct."
    assert message in wrong_password
    assert message in unknown


def test_it_throttles_failed_sign_ins_to_an_account_even_with_the_right_password(client):
    UserFactory(username="camille", email="camille@example.org")
    for _attempt in range(5):
        sign_in(client, "camille@example.org", "guess")

    response = sign_in(client, "camille@example.org")

    assert not signed_in(client)
    assert "Too many failed login attempts. Try again later." in response.content.decode()
    # Another account from the same address is not locked out by these failures.
    UserFactory(username="dominique", email="dominique@example.org")
    assert sign_in(client, "dominique@example.org").status_code == 302
    assert signed_in(client)


def test_it_throttles_many_failed_sign_ins_from_one_address_across_accounts(client):
    for number in range(10):
        sign_in(client, f"runner{number}@example.org", "guess")
    UserFactory(username="camille", email="camille@example.org")

    response = sign_in(client, "camille@example.org")

    assert not signed_in(client)
    assert "Too many failed login attempts. Try again later." in response.content.decode()
    # Another address still gets in.
    assert sign_in(Client(REMOTE_ADDR="192.0.2.7"), "camille@example.org").status_code == 302


def test_it_sends_a_password_reset_link_that_sets_a_new_password(client):
    user = UserFactory(username="camille", email="camille@example.org")

    client.post("/en/accounts/password/reset/", {"email": "camille@example.org"})

    assert len(mail.outbox) == 1
    reset_page = client.get(link_in(mail.outbox[0]), follow=True)
    form_url = reset_page.redirect_chain[-1][0]
    response = client.post(form_url, {"password1": "a new long passphrase",
                                      "password2": "a new long passphrase"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a new long passphrase")


def test_it_shows_the_sign_in_pages_in_french_and_english(client):
    french = client.get("/fr/accounts/login/").content.decode()
    english = client.get("/en/accounts/login/").content.decode()

    assert '<html lang="fr">' in french
    assert "Se connecter" in french  # the words of the site header's link
    assert "Mot de passe" in french
    assert "Sign in" in english
    assert 'name="csrfmiddlewaretoken"' in french


def test_it_signs_in_staff_by_username_too(client):
    UserFactory(username="paula", role=User.Role.PHOTOGRAPHER)

    assert sign_in(client, "paula").status_code == 302
    assert signed_in(client)


def test_it_sends_the_admin_login_to_the_sites_sign_in_form(client):
    response = client.get("/admin/login/?next=/admin/photos/photo/")

    assert response.status_code == 302
    assert response["Location"].endswith("/accounts/login/?next=/admin/photos/photo/")
    # The admin's own password form is gone: no unthrottled way to guess passwords.
    assert client.post("/admin/login/", {"username": "a", "password": "b"}).status_code == 302


def test_it_refuses_the_back_office_to_a_signed_in_runner(client):
    client.force_login(UserFactory(username="camille"))

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403


def test_it_does_not_follow_a_foreign_next_url_from_the_admin_login(client):
    client.force_login(UserFactory(username="ada", is_superuser=True))

    response = client.get("/admin/login/?next=https://evil.example/")

    assert response["Location"] == "/admin/"


def test_it_lets_a_signed_in_person_see_their_account_page(client):
    user = UserFactory(username="camille", email="camille@example.org")
    client.force_login(user)

    response = client.get("/en/accounts/profile/")

    assert response.status_code == 200
    assert "camille@example.org" in response.content.decode()
    assert Client().get("/en/accounts/profile/")["Location"].startswith("/en/accounts/login/")
