"""The event's admin page edits everything an organiser sets: texts in both languages,
bib rules, watermark."""

import pytest
from django.urls import reverse

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

EDITABLE = ["name", "name_en", "description", "description_en", "bib_min_length",
            "bib_max_length", "bib_min_value", "bib_max_value", "bib_ignore", "watermark_text",
            "watermark_logo"]


def test_it_offers_the_bib_rules_watermark_and_english_texts(admin_client):
    event = EventFactory()

    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]),
                                HTTP_ACCEPT_LANGUAGE="en")

    form = response.context["adminform"].form
    assert [name for name in EDITABLE if name not in form.fields] == []
    html = response.content.decode()
    assert "Bibs have at most this many digits." in html  # each rule says what it does
    assert "Empty: the French name is shown." in html


def test_it_saves_the_bib_rules_and_watermark(admin_client):
    event = EventFactory(name="Semi de Lyon")
    form = admin_client.get(reverse("admin:events_event_change", args=[event.pk])).context[
        "adminform"].form
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value is not None}
    for name in ("watermark_logo", "logo"):  # file fields: nothing uploaded
        data.pop(name, None)
    data.update({"date": event.date.isoformat(), "name_en": "Lyon Half Marathon",
                 "bib_min_length": 3, "bib_max_length": 4, "bib_ignore": "2026, 21",
                 "watermark_text": "© Club de Lyon",
                 "races-TOTAL_FORMS": 0, "races-INITIAL_FORMS": 0,
                 "start_list-TOTAL_FORMS": 0, "start_list-INITIAL_FORMS": 0})

    response = admin_client.post(reverse("admin:events_event_change", args=[event.pk]), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    event.refresh_from_db()
    assert (event.name_en, event.bib_min_length, event.bib_max_length, event.bib_ignore,
            event.watermark_text) == ("Lyon Half Marathon", 3, 4, "2026, 21", "© Club de Lyon")
