import json
import logging

import pytest

from racephoto.logging import JsonFormatter, RequestIdFilter, request_id_var


@pytest.mark.django_db
def test_it_gives_every_response_a_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32
    assert first != second


@pytest.mark.django_db
def test_it_keeps_a_proxys_request_id_but_not_a_hostile_one(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc")["X-Request-ID"] == "lb-1234.abc"
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")["X-Request-ID"]
    assert "\n" not in hostile and "Set-Cookie" not in hostile


def test_it_writes_one_json_object_per_line_with_the_request_id():
    record = logging.makeLogRecord({"name": "photos", "levelno": logging.WARNING,
                                    "levelname": "WARNING", "msg": "rejected %s",
                                    "args": ("bad.jpg",), "photo_id": 7})
    token = request_id_var.set("req-42")
    try:
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)

    payload = json.loads(line)
    assert "\n" not in line
    assert payload["message"] == "rejected bad.jpg"
    assert payload["request_id"] == "req-42"
    assert payload["photo_id"] == 7
    assert payload["level"] == "WARNING"


# --- Refusals: one line, no traceback ---------------------------------------------------------


@pytest.fixture
def refusal_world(named_people):
    from events.tests.factories import EventFactory

    event = EventFactory(slug="trail-des-cretes")
    return event, named_people(event)


def refusal_lines(caplog):
    return [record for record in caplog.records if record.name == "django.request"]


@pytest.mark.django_db
def test_it_logs_a_permission_denied_page_as_one_line(client, caplog, refusal_world):
    event, people = refusal_world
    client.force_login(people["outsider"])
    path = f"/fr/staff/events/{event.slug}/upload/"

    with caplog.at_level(logging.INFO):
        assert client.get(path).status_code == 403

    [record] = refusal_lines(caplog)
    assert record.getMessage() == f"GET {path} 403 user={people['outsider'].pk}"
    assert record.levelname == "WARNING"
    assert record.exc_info is None and record.exc_text is None
    payload = json.loads(JsonFormatter().format(record))
    assert "exception" not in payload
    assert (payload["method"], payload["path"], payload["user_id"]) == (
        "GET", path, people["outsider"].pk)


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "status"), [("outsider", 403), ("anonymous", 401)])
def test_it_logs_an_api_refusal_as_one_line_with_the_token_user(client, caplog, refusal_world,
                                                                who, status):
    from rest_framework.authtoken.models import Token

    event, people = refusal_world
    user = people[who]
    headers = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"} if user else {}
    path = f"/api/v1/events/{event.slug}/processing/"

    with caplog.at_level(logging.INFO):
        assert client.get(path, **headers).status_code == status

    [record] = refusal_lines(caplog)
    assert record.getMessage() == f"GET {path} {status} user={user.pk if user else '-'}"
    assert record.exc_info is None


@pytest.mark.django_db
def test_it_still_logs_a_crash_with_its_traceback(client, caplog, monkeypatch):
    from racephoto import views

    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(views, "health_report", broken)
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        assert client.get("/healthz").status_code == 500

    [record] = refusal_lines(caplog)
    assert record.exc_info and record.exc_info[0] is RuntimeError
