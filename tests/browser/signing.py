"""Signing in through the site's own login page, as the browser tests' people do."""

import re

from accounts.tests.factories import PASSWORD


def sign_in(page, live_server, user, language="fr"):
    """Sign ``user`` (made by UserFactory) in by username; back on their profile page."""
    page.goto(f"{live_server.url}/{language}/accounts/login/")
    page.fill("#id_login", user.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/{language}/accounts/profile/$"))
