"""emotion.housekeeping: the sweep that re-enqueues analyses whose task message was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from config.celery import app
from emotion import housekeeping
from emotion.models import ImageAnalysis


def test_stale_selection_and_requeue(make_user, monkeypatch) -> None:
    user = make_user(username="hk")
    now = timezone.now()
    old_pending = ImageAnalysis.objects.create(owner=user, source=ImageAnalysis.Source.SELFIE)
    fresh_pending = ImageAnalysis.objects.create(owner=user, source=ImageAnalysis.Source.SELFIE)
    old_processing = ImageAnalysis.objects.create(
        owner=user, source=ImageAnalysis.Source.SELFIE, status="processing", started_at=now - timedelta(hours=2)
    )
    running = ImageAnalysis.objects.create(
        owner=user, source=ImageAnalysis.Source.SELFIE, status="processing", started_at=now
    )
    done = ImageAnalysis.objects.create(owner=user, source=ImageAnalysis.Source.SELFIE, status="done")
    ImageAnalysis.objects.filter(pk__in=[old_pending.pk, done.pk]).update(created_at=now - timedelta(hours=1))

    mine = set(ImageAnalysis.objects.filter(owner=user).values_list("pk", flat=True))
    assert set(housekeeping.stale_analyses()) & mine == {old_pending.pk, old_processing.pk}
    sent = []
    from emotion import tasks

    monkeypatch.setattr(tasks.analyze_image, "apply_async", lambda args, **kw: sent.append((args[0], kw)))
    ids = housekeeping.analyses_requeue_stale(queue="q1")
    assert set(ids) & mine == {old_pending.pk, old_processing.pk} and all(kw == {"queue": "q1"} for _, kw in sent)
    assert fresh_pending.pk not in ids and running.pk not in ids and done.pk not in ids
    assert set(housekeeping.analyses_requeue_stale(pending_seconds=0, processing_seconds=0)) & mine == {
        old_pending.pk,
        fresh_pending.pk,
        old_processing.pk,
        running.pk,
    }


def test_task_registered_routed_and_scheduled() -> None:
    assert "emotion.housekeeping.requeue_stale_analyses" in app.tasks
    assert settings.CELERY_TASK_ROUTES["emotion.housekeeping.requeue_stale_analyses"] == {"queue": "batch"}
    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "emotion.housekeeping.requeue_stale_analyses" in entries
