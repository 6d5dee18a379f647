"""The public REST API for events: published events for everyone, unpublished ones for their staff."""

import pytest
from rest_framework.test import APIClient

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_it_lists_published_events_to_anyone():
    EventFactory(name="Semi de Lyon", slug="semi-de-lyon")
    EventFactory(name="Secret", slug="secret", is_published=False)

    response = APIClient().get("/api/v1/events/")

    assert response.status_code == 200
    assert [event["slug"] for event in response.json()["results"]] == ["semi-de-lyon"]
    assert response.json()["results"][0]["url"] == "http://testserver/fr/events/semi-de-lyon/"


def test_it_shows_a_published_event():
    EventFactory(name="Semi de Lyon", slug="semi-de-lyon", location="Lyon")

    body = APIClient().get("/api/v1/events/semi-de-lyon/").json()

    assert body["name"] == "Semi de Lyon"
    assert body["location"] == "Lyon"


@pytest.mark.parametrize(("who", "visible"), [
    ("anonymous", False), ("runner", False), ("staff", False), ("outsider", False),
    ("photographer", True), ("owner", True), ("admin", True),
])
def test_it_shows_an_unpublished_event_only_to_its_staff(who, visible, named_people):
    event = EventFactory(name="Secret", slug="secret", is_published=False)
    people = named_people(event)
    client = client_for(people[who])

    detail = client.get("/api/v1/events/secret/")
    listed = [item["slug"] for item in client.get("/api/v1/events/").json()["results"]]

    assert detail.status_code == (200 if visible else 404)
    assert ("secret" in listed) == visible


def test_it_refuses_to_write_events_through_the_api(named_people):
    EventFactory(slug="semi-de-lyon")
    admin = named_people(EventFactory(slug="autre"))["admin"]

    response = client_for(admin).delete("/api/v1/events/semi-de-lyon/")

    assert response.status_code == 405
