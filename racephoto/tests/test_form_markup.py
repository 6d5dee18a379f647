"""Forms, allauth's included, are drawn with the site's field markup: a label above each
input, no placeholder standing in for it, errors that read as errors."""

import re

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_cache(settings):
    # Sign-in attempts are counted in the cache: start from zero.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "form-markup"}}


def test_it_labels_the_sign_up_fields_without_placeholders(client):
    html = client.get("/fr/accounts/signup/").content.decode()

    assert html.count('class="field ') == 3
    assert "placeholder=" not in html  # "Mot de passe (confirmatio…" cut off on a phone
    assert '<label for="id_email">Adresse e-mail</label>' in html
    assert re.search(r'<button[^>]*class="btn btn-primary btn-block"[^>]*type="submit"', html)


def test_it_shows_a_wrong_password_as_an_alert(client):
    response = client.post("/fr/accounts/login/", {"login": "nobody@example.org",
                                                   "password": "not the password"})

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<ul class="errorlist nonfield" role="alert">\s*<li>[^<]+</li>', html)


def test_it_marks_the_fields_in_error(client):
    response = client.post("/en/accounts/signup/", {"email": "camille@example",
                                                    "password1": "abc", "password2": "abd"})

    html = response.content.decode()
    email = re.search(r"<input[^>]*id=\"id_email\"[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in email
    assert 'aria-describedby="id_email_error"' in email
    assert re.search(r'<ul class="errorlist" role="alert" id="id_email_error">', html)
    assert re.search(r'<div class="field field-\w+ field-invalid">\s*<label for="id_email">', html)
