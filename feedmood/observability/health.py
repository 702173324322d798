"""Readiness checks: database, cache, broker, and a worker that can load the model (a ping task).

Each check returns ``(ok, detail)``; details name the failure's type, never a URL or a credential.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

CheckResult = tuple[bool, str]


def check_database() -> CheckResult:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True, "ok"


def check_cache() -> CheckResult:
    from django.core.cache import cache

    cache.set("health:ready", "1", timeout=10)
    if cache.get("health:ready") != "1":
        return False, "the cache did not return what was stored"
    return True, "ok"


def check_broker() -> CheckResult:
    from kombu import Connection

    url = str(settings.CELERY_BROKER_URL or "memory://")
    with Connection(url, connect_timeout=settings.FEEDMOOD_HEALTH_TIMEOUT_SECONDS,
                    transport_options={"socket_timeout": settings.FEEDMOOD_HEALTH_TIMEOUT_SECONDS}) as conn:  # fmt: skip
        conn.ensure_connection(max_retries=1, timeout=settings.FEEDMOOD_HEALTH_TIMEOUT_SECONDS)
    return True, "ok"


def model_loadable() -> dict[str, object]:
    """Load the active model in this process (cached after the first time); raise if it cannot."""
    from emotion.inference import get_classifier
    from emotion.model_versions import model_version_ensure_active

    version = model_version_ensure_active()
    if version is None:
        raise RuntimeError("no active emotion model")
    classifier = get_classifier(version.artifact_dir)
    return {"model": version.name, "labels": len(classifier.labels)}


def check_worker() -> CheckResult:
    """Send the ping task to the ``fer`` queue and wait for a worker's answer (runs in-process when eager)."""
    from feedmood.observability.tasks import ping_model

    timeout = settings.FEEDMOOD_HEALTH_TIMEOUT_SECONDS
    result = ping_model.apply_async(queue="fer", retry=False, expires=timeout)
    answer = result.get(timeout=timeout, disable_sync_subtasks=False)
    return True, f"{answer['model']} loaded"


READY_CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "worker": check_worker,
}
#: A worker cannot answer through a broker that is down: its check is skipped then.
_NEEDS = {"worker": "broker"}


def run_ready_checks() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check; returns (all ok, per-check ``{"ok", "detail", "ms"}``)."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in READY_CHECKS.items():
        needed = _NEEDS.get(name)
        if needed and not results[needed]["ok"]:
            results[name] = {"ok": False, "detail": f"skipped: {needed} is down", "ms": 0.0}
            continue
        started = time.perf_counter()
        try:
            ok, detail = check()
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}"
        results[name] = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000.0, 1)}
    return all(r["ok"] for r in results.values()), results
