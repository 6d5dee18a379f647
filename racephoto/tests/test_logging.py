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
