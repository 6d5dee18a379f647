"""One shared Redis client per process, with short timeouts.

Short timeouts matter for /healthz: a dead broker must show up as
"unhealthy" within a second, not hang the probe.
"""

import json
from functools import cache

import redis
from django.conf import settings


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                decode_responses=True)


def get_redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def json_values(prefix: str) -> list[dict]:
    """The JSON reports stored under keys starting with ``prefix`` (heartbeats and the
    like); a key that expires meanwhile or holds something else is skipped."""
    client = get_redis()
    values = []
    for key in client.scan_iter(match=prefix + "*", count=100):
        raw = client.get(key)
        if raw:
            try:
                values.append(json.loads(raw))
            except ValueError:
                continue
    return values
