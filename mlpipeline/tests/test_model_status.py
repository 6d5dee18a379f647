import json

import pytest

from events.tests.factories import EventFactory
from mlpipeline import worker
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.clip import ClipEmbedder
from racephoto.health import health_report
from racephoto.redis import get_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return EventFactory(slug="semi-de-lyon")


@pytest.fixture
def published_worker(settings, tmp_path):
    """A worker process's report, as the background thread of mlpipeline.worker writes it."""
    settings.MODELS_DIR = tmp_path  # no CLIP weights there
    clip = ClipEmbedder()
    with pytest.raises(ModelUnavailable):
        clip.ensure_loaded()
    key = "racephoto:worker-models:test-host:4242"
    get_redis().set(key, json.dumps({"hostname": "test-host", "pid": 4242,
                                     "models": [clip.describe()]}), ex=60)
    yield
    get_redis().delete(key)


def test_it_shows_staff_which_models_and_features_are_on(client, published_worker, people):
    client.force_login(people["admin"])

    page = client.get("/admin/models/").content.decode()

    assert "Outfit and text search" in page or "Recherche par tenue" in page
    assert "easyocr-craft-english_g2" in page and "open_clip-ViT-B-32" in page
    assert "test-host" in page and "4242" in page
    assert "weights not found" in page  # the worker's own error, word for word


def _row_of(page: str, model_name: str, table: str) -> str:
    """The table row of ``model_name`` in the section headed ``table`` (an <h2>)."""
    section = page.split(f"<h2>{table}</h2>", 1)[1].split("<h2>", 1)[0]
    return next(row for row in section.split("<tr>") if f"<td>{model_name}</td>" in row)


def test_the_model_status_page_sits_in_the_admin_with_its_user_tools(client, published_worker, people):
    admin_user = people["admin"]
    client.force_login(admin_user)

    page = client.get("/admin/models/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<div id="user-tools">' in page
    assert admin_user.get_short_name() in page or admin_user.get_username() in page
    assert 'action="/admin/logout/"' in page
    assert '<div id="site-name">' in page


def test_it_never_calls_missing_weights_pretrained(client, published_worker, people):
    # No CLIP weights here, and the worker could not load them: whether they are trained
    # weights is unknown, not "yes" (the class's default) nor "no".
    client.force_login(people["admin"])

    page = client.get("/admin/models/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    for table in ("Weights on this machine", "Models loaded by the workers"):
        row = _row_of(page, "open_clip-ViT-B-32", table)
        assert "unknown: no weights loaded" in row
        assert "<td>yes</td>" not in row
    # the OCR weights ship in a package: present, and trained
    assert "<td>yes</td>" in _row_of(page, "easyocr-craft-english_g2-torso", "Weights on this machine")


def test_it_keeps_the_model_status_page_from_non_staff(client, people):
    client.force_login(people["runner"])

    response = client.get("/admin/models/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("who", ["owner", "photographer", "staff", "outsider"])
def test_it_keeps_the_model_status_page_from_event_staff(client, people, who):
    client.force_login(people[who])

    assert client.get("/admin/models/").status_code == 403


def test_it_reports_the_workers_models_in_healthz(published_worker):
    report, serving = health_report()

    models = report["checks"]["models"]
    assert serving
    assert [w["hostname"] for w in models["workers"]] == ["test-host"]
    assert models["workers"][0]["models"][0]["loaded"] is False
    assert models["workers"][0]["models"][0]["pretrained"] is None
    clip = next(m for m in models["models"] if m["job"] == "image_text_embedding")
    assert clip["available"] is False and clip["pretrained"] is None
    assert report["status"] == "degraded"


def test_it_publishes_the_models_of_a_worker_process(settings, tmp_path, monkeypatch):
    settings.MODELS_DIR = tmp_path
    monkeypatch.setattr(worker.loaded, "all_models", lambda: [ClipEmbedder()])

    worker.publish()
    try:
        [report] = [r for r in worker.worker_models() if r["pid"] == worker.os.getpid()]
        assert report["models"][0]["name"] == "open_clip-ViT-B-32"
    finally:
        get_redis().delete(worker.models_key())


def test_the_status_page_and_healthz_say_which_outfit_search_runs(client, settings, tmp_path,
                                                                 people):
    settings.MODELS_DIR = tmp_path
    client.force_login(people["admin"])

    page = client.get("/admin/models/").content.decode()
    row = next(row for row in page.split("<tr") if "data-outfit-search" in row)
    assert 'data-outfit-search="colours"' in row
    assert "outfit-colours-hsv" in page  # the offline model, with no weights to find
    assert health_report()[0]["checks"]["models"]["outfit_search"] == "colours"

    (tmp_path / ClipEmbedder.weights_file).write_bytes(b"weights")  # CLIP's file is here

    page = client.get("/admin/models/").content.decode()
    assert 'data-outfit-search="clip"' in page
    assert health_report()[0]["checks"]["models"]["outfit_search"] == "clip"
