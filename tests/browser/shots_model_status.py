import re

import pytest

from accounts.tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_shots(page, browser, live_server, settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    user = UserFactory(username="ada", is_staff=True, is_superuser=True)
    page.goto(f"{live_server.url}/admin/models/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("#id_login", user.email)
    page.fill("#id_password", "correct horse battery staple")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/models/"))
    page.screenshot(path="/work/notes/shots/registry-model-status-phone.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.screenshot(path="/work/notes/shots/registry-model-status-desktop.png", full_page=True)
