"""A runner on a phone opens the site, finds the race and reads its page in both languages."""

import re

import pytest

from events.services import load_demo_event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_takes_a_runner_from_the_home_page_to_the_event_in_both_languages(live_server, page):
    load_demo_event()

    page.goto(f"{live_server.url}/fr/")
    page.get_by_role("link", name=re.compile("10 km de Lyon")).first.click()

    page.wait_for_url(re.compile(r"/fr/events/demo-10k-lyon/$"))
    assert page.locator("h1").inner_text().startswith("10 km de Lyon")
    assert page.locator("html").get_attribute("lang") == "fr"

    page.locator(".lang-switch a[hreflang=en]").click()

    page.wait_for_url(re.compile(r"/en/events/demo-10k-lyon/$"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text().startswith("Lyon 10K")  # the event's English name
    # Mobile first: nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
