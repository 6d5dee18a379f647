"""Lifecycle of the embedded PostgreSQL and Valkey: start, start again, survive kill -9, stop."""

import os
import signal
import time

import psycopg
import pytest
import redis

from racephoto.embedded import EmbeddedPostgres, EmbeddedValkey, _pid_alive


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def query_one(server: EmbeddedPostgres, sql: str):
    settings = server.connection_settings("postgres")
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                         dbname="postgres") as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.fixture
def postgres(service_root):
    server = EmbeddedPostgres(service_root)
    yield server
    server.stop()


@pytest.fixture
def valkey(service_root):
    server = EmbeddedValkey(service_root)
    yield server
    server.stop()


def test_it_starts_postgres_with_pgvector_and_reuses_a_running_server(postgres):
    postgres.ensure_running()
    first_pid = postgres.postmaster_pid()
    postgres.ensure_database("racephoto")
    postgres.ensure_database("racephoto")  # twice is fine

    postgres.ensure_running()  # a second process would do exactly this

    assert postgres.postmaster_pid() == first_pid
    assert query_one(postgres, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'") == 1
    assert query_one(postgres, "SELECT count(*) FROM pg_database WHERE datname = 'racephoto'") == 1


def test_it_restarts_postgres_after_a_crash_left_a_stale_pid_file(postgres):
    postgres.ensure_running()
    postgres.ensure_database("racephoto")
    crashed = postgres.postmaster_pid()
    os.kill(crashed, signal.SIGKILL)
    wait_gone(crashed)
    assert (postgres.pgdata / "postmaster.pid").exists()
    assert not postgres.is_running()

    postgres.ensure_running()

    assert postgres.postmaster_pid() != crashed
    assert query_one(postgres, "SELECT count(*) FROM pg_database WHERE datname = 'racephoto'") == 1


def test_it_recovers_from_an_interrupted_initdb(postgres):
    postgres.pgdata.mkdir(parents=True)
    (postgres.pgdata / "half-written").write_text("initdb was killed here")

    postgres.ensure_running()

    assert query_one(postgres, "SELECT 1") == 1


def test_it_stops_postgres(postgres):
    postgres.ensure_running()
    pid = postgres.postmaster_pid()
    postgres.stop()
    wait_gone(pid)
    assert not postgres.is_running()
    postgres.stop()  # stopping a stopped server is not an error


def test_it_keeps_valkey_data_across_a_crash(valkey):
    url = valkey.ensure_running()
    client = redis.Redis.from_url(url)
    client.set("queued-photo", "42")
    client.execute_command("BGREWRITEAOF")
    time.sleep(0.5)  # let the append-only file reach the disk
    crashed = int(valkey.pid_path.read_text())
    os.kill(crashed, signal.SIGKILL)
    wait_gone(crashed)
    assert valkey.socket_path.exists()  # the stale socket the next start must cope with

    assert valkey.ensure_running() == url
    assert int(valkey.pid_path.read_text()) != crashed
    assert redis.Redis.from_url(url).get("queued-photo") == b"42"


def test_it_stops_valkey_and_starting_twice_reuses_it(valkey):
    valkey.ensure_running()
    pid = int(valkey.pid_path.read_text())
    valkey.ensure_running()
    assert int(valkey.pid_path.read_text()) == pid
    valkey.stop()
    wait_gone(pid)
    assert not valkey.is_running()
