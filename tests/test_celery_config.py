"""Celery wiring: queues, routes, reliability options, embedded eager mode."""

from __future__ import annotations

from django.conf import settings

from config.celery import app


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


def test_retry_countdown_waits_at_least_half_of_each_exponential_step() -> None:
    from emotion.tasks import MAX_RETRIES, retry_countdown

    for retries in range(8):
        step = min(60, 2 * 2**retries)
        waits = [retry_countdown(retries) for _ in range(300)]
        assert step / 2 <= min(waits) and max(waits) <= step, (retries, min(waits), max(waits))
        assert max(waits) - min(waits) > step / 10  # still jittered: tasks that failed together spread out
    # A burst outage of a few seconds cannot use up every retry (Celery's full jitter could retry at once).
    assert sum(min(retry_countdown(r) for _ in range(300)) for r in range(MAX_RETRIES)) >= 30


def test_idempotent_tasks_retry_with_the_equal_jitter_backoff() -> None:
    from emotion.tasks import RetryingTask, analyze_image, rescore_chunk

    for task in (analyze_image, rescore_chunk):
        assert isinstance(task, RetryingTask)
        assert not getattr(task, "retry_backoff", False)  # Celery's full-jitter backoff would override ours
        assert task.max_retries == 5 and task.autoretry_for
