"""Checks behind /healthz and figures behind /metrics.

Database and broker are required: without either, uploads and searches fail,
so the instance reports itself unhealthy (HTTP 503) and a load balancer takes
it out. A missing worker or model only degrades the service: pages still
load, processing waits, so the status is "degraded" with HTTP 200.
"""

import logging
import time

from django.conf import settings
from django.db import connection

from mlpipeline.availability import all_models, outfit_search
from racephoto.observability import DURATION_BUCKETS, TASK_DURATION_KEY_PREFIX, WORKER_KEY_PREFIX
from racephoto.redis import get_redis, json_values

logger = logging.getLogger(__name__)


def check_database() -> dict:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health: database unreachable: %s", exc)
        return {"ok": False, "error": _one_line(exc)}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def check_broker() -> dict:
    started = time.monotonic()
    try:
        get_redis().ping()
    except Exception as exc:
        logger.warning("health: broker unreachable: %s", exc)
        return {"ok": False, "error": _one_line(exc)}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def alive_workers() -> list[dict]:
    return sorted(json_values(WORKER_KEY_PREFIX), key=lambda worker: worker.get("hostname", ""))


def check_workers() -> dict:
    try:
        workers = alive_workers()
    except Exception as exc:
        return {"ok": False, "count": 0, "error": _one_line(exc)}
    return {"ok": bool(workers), "count": len(workers),
            "hostnames": [worker.get("hostname") for worker in workers]}


def check_models() -> dict:
    """Weights present on this machine, and the models each live worker process holds."""
    from mlpipeline.worker import worker_models

    models = [model.as_dict() for model in all_models()]
    try:
        workers = worker_models()
    except Exception as exc:
        workers = [{"error": _one_line(exc)}]
    # Outfit search works either way; which way is for the operator to know.
    return {"ok": all(model["available"] for model in models), "models": models,
            "outfit_search": outfit_search(), "workers": workers}


def health_report() -> tuple[dict, bool]:
    """The /healthz body and whether the instance can serve (database and broker up)."""
    checks = {
        "database": check_database(),
        "broker": check_broker(),
        "workers": check_workers(),
        "models": check_models(),
    }
    serving = checks["database"]["ok"] and checks["broker"]["ok"]
    if not serving:
        status = "unhealthy"
    elif checks["workers"]["ok"] and checks["models"]["ok"]:
        status = "ok"
    else:
        status = "degraded"
    return {"status": status, "checks": checks}, serving


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --- Prometheus -----------------------------------------------------------------


def _labels(**labels) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


def prometheus_metrics() -> str:
    """Current figures in the Prometheus text exposition format (version 0.0.4)."""
    from photos.models import Photo

    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    database = check_database()
    broker = check_broker()
    family("racephoto_up", "gauge", "Whether a required service answers (1) or not (0).")
    lines.append(f"racephoto_up{_labels(service='database')} {int(database['ok'])}")
    lines.append(f"racephoto_up{_labels(service='broker')} {int(broker['ok'])}")

    if database["ok"]:
        counts = Photo.objects.state_counts()
        family("racephoto_photos", "gauge", "Photos by processing state.")
        for state in Photo.State.values:
            lines.append(f"racephoto_photos{_labels(state=state)} {counts[state]}")

    if broker["ok"]:
        client = get_redis()
        family("racephoto_queue_depth", "gauge", "Tasks waiting in a Celery queue.")
        for queue in (settings.CELERY_TASK_DEFAULT_QUEUE, settings.EVENTS_QUEUE):
            lines.append(f"racephoto_queue_depth{_labels(queue=queue)} {client.llen(queue)}")
        family("racephoto_workers", "gauge", "Celery workers with a live heartbeat.")
        lines.append(f"racephoto_workers {len(alive_workers())}")
        _task_duration_lines(client, family, lines)

    return "\n".join(lines) + "\n"


def _task_duration_lines(client, family, lines) -> None:
    keys = sorted(client.scan_iter(match=TASK_DURATION_KEY_PREFIX + "*", count=100))
    family("racephoto_task_duration_seconds", "histogram", "Celery task run time.")
    for key in keys:
        task = key.removeprefix(TASK_DURATION_KEY_PREFIX)
        fields = client.hgetall(key)
        for bound in DURATION_BUCKETS:
            count = fields.get(f"le:{bound}", "0")
            lines.append(f"racephoto_task_duration_seconds_bucket{_labels(task=task, le=bound)} {count}")
        total = fields.get("count", "0")
        lines.append(f"racephoto_task_duration_seconds_bucket{_labels(task=task, le='+Inf')} {total}")
        lines.append(f"racephoto_task_duration_seconds_sum{_labels(task=task)} {fields.get('sum', '0')}")
        lines.append(f"racephoto_task_duration_seconds_count{_labels(task=task)} {total}")
