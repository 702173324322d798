"""Celery wiring: queues, routes, reliability options, embedded eager mode."""

from __future__ import annotations

from django.conf import settings

from feedmood.celery import app


def test_app_configured_from_django_settings() -> None:
    conf = app.conf
    assert conf.task_default_queue == "default"
    assert {q.name for q in conf.task_queues} == {"default", "fer", "batch"}
    assert conf.task_routes["emotion.tasks.*"] == {"queue": "fer"}
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (60, 90)
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"


def test_tasks_autodiscovered() -> None:
    # What a worker does at start-up: import every installed app's tasks module.
    app.loader.import_default_modules()
    assert "feedmood.tasks.ping" in app.tasks
    assert "feedmood.tasks.recount_likes" in app.tasks
