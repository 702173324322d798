"""Probes: /api/health/live says the process answers; /api/health/ready checks database, cache, broker, worker."""

from __future__ import annotations

import pytest

from emotion.fixtures import fer_model, fer_model_dir  # noqa: F401
from tests.ops_tools import ThrowawayRedis, free_port, throwaway_redis  # noqa: F401

pytestmark = pytest.mark.django_db


def _use_redis(settings, url: str) -> None:
    settings.CACHES = {"default": {"BACKEND": "feedmood.cache.FeedMoodRedisCache", "LOCATION": url}}
    settings.CELERY_BROKER_URL = url
    settings.FEEDMOOD_HEALTH_TIMEOUT_SECONDS = 1.0


def test_live_answers_without_touching_dependencies(api_client, settings) -> None:
    _use_redis(settings, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for path in ("/api/health/live", "/api/health/live/"):
        response = api_client.get(path)
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_fails_when_redis_goes_down(api_client, settings, fer_model, throwaway_redis: ThrowawayRedis) -> None:
    _use_redis(settings, throwaway_redis.url)
    response = api_client.get("/api/health/ready")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True, "cache": True, "broker": True, "worker": True}  # fmt: skip
    assert checks["worker"]["detail"] == f"{fer_model.name} loaded"

    throwaway_redis.stop()
    response = api_client.get("/api/health/ready/")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cache"]["ok"] is False and body["checks"]["broker"]["ok"] is False
    assert body["checks"]["worker"] == {"ok": False, "detail": "skipped: broker is down", "ms": 0.0}
    assert str(throwaway_redis.port) not in response.content.decode()  # failures named, addresses not leaked


def test_ready_fails_when_no_model_can_be_loaded(api_client, settings, throwaway_redis: ThrowawayRedis) -> None:
    from emotion.models import ModelVersion

    _use_redis(settings, throwaway_redis.url)
    ModelVersion.objects.create(name="gone", labels=["neutral"], artifact_path="/nonexistent/model", is_active=True)
    response = api_client.get("/api/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False
