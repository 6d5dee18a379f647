"""/healthz and /metrics against the real database and broker, and with each of them down.

/healthz tells anyone its status; the checks behind it (file paths, host names,
process ids) only an operator with the token or a signed-in platform admin sees.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.db import connection

from racephoto.observability import (
    TASK_DURATION_KEY_PREFIX,
    record_task_duration,
    worker_key,
    write_heartbeat,
)
from racephoto.redis import get_redis

HEALTH_TOKEN = "probe-details"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = HEALTH_TOKEN
    settings.METRICS_TOKEN = ""


def health_details(client):
    return client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")


@pytest.fixture
def heartbeat():
    hostname = f"test-worker-{uuid.uuid4().hex[:8]}"
    write_heartbeat(hostname, interval=5)
    yield hostname
    get_redis().delete(worker_key(hostname))


@pytest.mark.django_db
def test_it_reports_ok_when_database_broker_worker_and_models_answer(client, heartbeat, settings,
                                                                      tmp_path):
    settings.MODELS_DIR = tmp_path
    (tmp_path / "open_clip-ViT-B-32.bin").write_bytes(b"weights")

    response = health_details(client)

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert heartbeat in body["checks"]["workers"]["hostnames"]
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_it_reports_degraded_without_a_worker_or_clip_weights(client, settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # empty: no CLIP weights
    for key in get_redis().scan_iter(match="racephoto:worker:*"):
        get_redis().delete(key)

    response = health_details(client)

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["workers"] == {"ok": False, "count": 0, "hostnames": []}
    clip = next(m for m in body["checks"]["models"]["models"] if m["job"] == "image_text_embedding")
    assert clip["available"] is False
    assert "CLIP" in clip["detail"]


@pytest.mark.django_db
def test_it_reports_a_stopped_broker_as_unhealthy(client, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/no-valkey-here.sock"

    response = health_details(client)

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["error"]


def test_it_reports_a_stopped_database_as_unhealthy(client, django_db_blocker, tmp_path):
    # A socket directory with no server in it: exactly what libpq sees when PostgreSQL is down.
    with django_db_blocker.unblock():
        saved = dict(connection.settings_dict)
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)
        try:
            response = health_details(client)
        finally:
            connection.close()
            connection.settings_dict.update(saved)

    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["error"]


@pytest.mark.django_db
def test_it_tells_the_public_its_status_and_nothing_else(client, heartbeat, settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # a path that would show in the models' details

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "degraded"}  # no CLIP weights in tmp_path
    assert str(tmp_path) not in response.content.decode()
    assert heartbeat not in response.content.decode()
    assert "Cookie" not in response.get("Vary", "")  # the probe costs no session lookup


@pytest.mark.django_db
def test_it_answers_a_stopped_broker_with_503_and_only_the_status(client, settings, tmp_path):
    settings.REDIS_URL = f"unix://{tmp_path}/no-valkey-here.sock"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}


@pytest.mark.django_db
@pytest.mark.parametrize(("health_token", "metrics_token", "sent", "details"), [
    ("probe-details", "", "probe-details", True),
    ("probe-details", "", "wrong", False),
    ("probe-details", "scrape-me", "scrape-me", False),  # HEALTH_TOKEN set: only it
    ("", "scrape-me", "scrape-me", True),  # no HEALTH_TOKEN: the operators' METRICS_TOKEN
    ("", "", "", False),  # no token configured: no token opens the details
])
def test_it_shows_the_checks_to_the_bearer_of_the_token(client, settings, health_token,
                                                       metrics_token, sent, details):
    settings.HEALTH_TOKEN, settings.METRICS_TOKEN = health_token, metrics_token

    body = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {sent}").json()

    assert ("checks" in body) is details
    assert body["status"] in ("ok", "degraded")


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "details"), [("admin", True), ("owner", False),
                                              ("outsider", False)])
def test_it_shows_the_checks_to_a_signed_in_platform_admin_only(client, who, details,
                                                                  named_people):
    from events.tests.factories import EventFactory

    client.force_login(named_people(EventFactory())[who])

    assert ("checks" in client.get("/healthz").json()) is details


def test_it_answers_503_not_500_to_a_signed_in_visitor_when_the_database_is_down(
        client, django_db_blocker, tmp_path):
    client.cookies["sessionid"] = "a-session-it-cannot-look-up"
    with django_db_blocker.unblock():
        saved = dict(connection.settings_dict)
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)
        try:
            response = client.get("/healthz")
        finally:
            connection.close()
            connection.settings_dict.update(saved)

    assert response.status_code == 503
    assert response.json() == {"status": "unhealthy"}


@pytest.mark.django_db
def test_it_exports_prometheus_metrics(client):
    from events.models import Event
    from photos.models import Photo

    event = Event.objects.create(name="Metrics run", slug="metrics-run", date="2026-05-01")
    Photo.objects.create(event=event, content_hash="a" * 64, state=Photo.State.READY)
    Photo.objects.create(event=event, content_hash="b" * 64, state=Photo.State.FAILED)
    task = f"tests.metric_{uuid.uuid4().hex[:8]}"
    record_task_duration(task, 0.3, "SUCCESS")
    record_task_duration(task, 7.0, "SUCCESS")
    try:
        response = client.get("/metrics")
    finally:
        get_redis().delete(TASK_DURATION_KEY_PREFIX + task)

    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'racephoto_photos{state="ready"} 1' in text
    assert 'racephoto_photos{state="failed"} 1' in text
    assert 'racephoto_photos{state="uploaded"} 0' in text
    assert 'racephoto_queue_depth{queue="celery"}' in text
    assert 'racephoto_queue_depth{queue="events"}' in text
    assert f'racephoto_task_duration_seconds_bucket{{task="{task}",le="0.5"}} 1' in text
    assert f'racephoto_task_duration_seconds_bucket{{task="{task}",le="10"}} 2' in text
    assert f'racephoto_task_duration_seconds_count{{task="{task}"}} 2' in text
    assert f'racephoto_task_duration_seconds_sum{{task="{task}"}} 7.3' in text


@pytest.mark.django_db
def test_it_guards_metrics_with_a_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_sees_a_real_celery_worker_come_and_go(client):
    """End to end: a real worker process writes its heartbeat; /healthz counts it, then not."""
    hostname = f"healthtest-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "CELERY_WORKER_HEARTBEAT_SECONDS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "racephoto", "worker", "--pool=solo",
         "--without-mingle", "--without-gossip", "--loglevel=warning", "-n", hostname,
         "-Q", f"health-{uuid.uuid4().hex[:8]}"],  # a private queue: take no real work
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        seen = False
        while time.monotonic() < deadline and not seen:
            seen = hostname in health_details(client).json()["checks"]["workers"]["hostnames"]
            if worker.poll() is not None:
                pytest.fail(f"worker exited: {worker.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
        assert seen, "the worker's heartbeat never reached /healthz"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    assert hostname not in health_details(client).json()["checks"]["workers"]["hostnames"]
    assert json.loads(get_redis().get(worker_key(hostname)) or "null") is None
