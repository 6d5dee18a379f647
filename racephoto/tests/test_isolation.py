"""Tests never share a queue, a cache or a file with the developer's `make run` (var/).

The worker of `make run` once ran tasks a test run had left on the shared broker,
one of them for an event of the test database, and so wrote
var/indexes/event-536/.faces.lock. racephoto/testing.py keeps the two apart.
"""

import os
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from racephoto import settings as loaded_settings
from racephoto import testing
from racephoto.celery import app as celery_app
from racephoto.embedded import EmbeddedValkey
from racephoto.redis import get_redis

VAR_DIR = Path(settings.VAR_DIR)


def dev_valkey() -> redis.Redis:
    """Database 0 of the embedded Valkey: the one `make run` and its worker use."""
    return redis.Redis.from_url(EmbeddedValkey(VAR_DIR).url, decode_responses=True)


@pytest.mark.skipif(bool(settings.DATABASE_URL), reason="only the embedded Valkey is shared")
def test_it_queues_test_tasks_where_the_dev_worker_never_looks():
    assert settings.CELERY_BROKER_URL != loaded_settings._celery_broker_url(
        EmbeddedValkey(VAR_DIR).url)
    assert get_redis().connection_pool.connection_kwargs["db"] == testing.TEST_VALKEY_DB

    queue = f"isolation-{uuid.uuid4().hex[:8]}"
    with celery_app.connection_for_write() as connection:
        celery_app.send_task("mlpipeline.sync_index", (536, "faces"), queue=queue,
                             connection=connection)
    try:
        assert get_redis().llen(queue) == 1  # the tests' own database...
        assert dev_valkey().llen(queue) == 0  # ...and none of it in the developer's
    finally:
        get_redis().delete(queue)


@pytest.mark.skipif(bool(settings.DATABASE_URL), reason="only the embedded Valkey is shared")
def test_it_caches_in_the_tests_own_database():
    from django.core.cache import cache

    key = f"isolation-{uuid.uuid4().hex[:8]}"
    cache.set(key, "test value", 30)
    try:
        assert not any(dev_valkey().scan_iter(match=f"*{key}*"))
        assert any(get_redis().scan_iter(match=f"*{key}*"))
    finally:
        cache.delete(key)


def test_it_points_every_data_dir_outside_var_even_without_a_test_override():
    """What code running outside a test's settings override would use: a thread still
    at work after its test, a session fixture, a worker started with this environment."""
    for name in ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR"):
        folder = Path(getattr(loaded_settings, name)).resolve()
        assert not folder.is_relative_to(VAR_DIR), f"{name}={folder} is the developer's"


@pytest.mark.parametrize(("path", "developer_data"), [
    ("indexes/event-536/.faces.lock", True),
    ("media/previews/1/1-abc.jpg", True),
    ("run/stack.json", True),
    ("admin-password.txt", True),
    ("postgres/base/1/1259", False),  # the embedded servers' own files
    ("valkey/appendonlydir/x.aof", False),
    ("run/valkey.lock", False),
    ("log/postgres.log", False),
])
def test_the_guard_tells_developer_data_from_the_servers_own_files(path, developer_data):
    assert (testing.var_write(VAR_DIR / path) is not None) is developer_data
    assert testing.var_write("/tmp/elsewhere.txt") is None


def test_the_guard_sees_a_write_into_var_from_this_process(monkeypatch):
    """The audit hook records the write (and the session then fails, pytest_sessionfinish).
    The paths lie in a folder that does not exist, so nothing is created."""
    recorded = []
    monkeypatch.setattr(testing, "_var_writes", recorded)
    missing = VAR_DIR / f"isolation-{uuid.uuid4().hex}"

    with pytest.raises(FileNotFoundError):
        open(missing / "probe.txt", "w")
    with pytest.raises(FileNotFoundError):
        os.mkdir(missing / "folder")
    with pytest.raises(FileNotFoundError):
        open(missing / "read-only.txt")  # reading is no write: not recorded

    assert [(relative, event) for relative, event, _test in recorded] == [
        (f"{missing.name}/probe.txt", "open"),
        (f"{missing.name}/folder", "os.mkdir"),
    ]
    assert {test for _relative, _event, test in recorded} == {
        "racephoto/tests/test_isolation.py::test_the_guard_sees_a_write_into_var_from_this_process"}
