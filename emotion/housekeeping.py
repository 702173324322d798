"""Housekeeping: re-enqueue analyses whose task was lost; remove media files no row references.

A task message can disappear without the analysis ever reaching a final
state: Redis restarted without persistence (``--save '' --appendonly no``)
drops queued and unacknowledged messages; a hard time-limit kill after the
claim; a crash between the commit and ``enqueue_on_commit``.  Periodic
``requeue_stale_analyses`` (beat, see ``CELERY_BEAT_SCHEDULE``) finds
analyses stuck in ``pending`` / ``processing`` for too long and enqueues them
again.  Safe because ``analysis_run`` is idempotent: a final analysis is a
no-op and readings are replaced per (analysis, model version), never added.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from emotion.models import ImageAnalysis

logger = logging.getLogger(__name__)


def stale_analyses(
    *, pending_seconds: float | None = None, processing_seconds: float | None = None, now=None
) -> list[int]:
    """Ids of analyses pending or processing for longer than the thresholds, oldest first."""
    now = now or timezone.now()
    if pending_seconds is None:
        pending_seconds = settings.FEEDMOOD_STALE_PENDING_SECONDS
    if processing_seconds is None:  # longer than the hard time limit: a running task is not mistaken for a lost one
        processing_seconds = settings.FEEDMOOD_STALE_PROCESSING_SECONDS
    pending_before = now - timedelta(seconds=pending_seconds)
    processing_before = now - timedelta(seconds=processing_seconds)
    stale = ImageAnalysis.objects.filter(
        Q(status=ImageAnalysis.Status.PENDING, created_at__lte=pending_before)
        | Q(status=ImageAnalysis.Status.PROCESSING, started_at__lte=processing_before)
    ).order_by("created_at", "pk")
    return list(stale.values_list("pk", flat=True))


def analyses_requeue_stale(
    *,
    pending_seconds: float | None = None,
    processing_seconds: float | None = None,
    queue: str | None = None,
    limit: int = 1000,
) -> list[int]:
    """Enqueue ``analyze_image`` again for stale analyses; returns the ids enqueued."""
    from emotion.tasks import analyze_image

    ids = stale_analyses(pending_seconds=pending_seconds, processing_seconds=processing_seconds)[:limit]
    for analysis_id in ids:
        options = {"queue": queue} if queue else {}
        analyze_image.apply_async(args=[analysis_id], **options)
    if ids:
        logger.warning("Re-enqueued %d stale emotion analyses: %s", len(ids), ids[:20])
    return ids


@shared_task(name="emotion.housekeeping.requeue_stale_analyses", ignore_result=True)
def requeue_stale_analyses(pending_seconds: float | None = None, processing_seconds: float | None = None) -> int:
    """Periodic (beat): re-enqueue analyses whose task message was lost."""
    return len(analyses_requeue_stale(pending_seconds=pending_seconds, processing_seconds=processing_seconds))


# --- Orphan media files ---------------------------------------------------------------------------

#: Media directories whose files must each be referenced by a row (post images, stored selfies).
MEDIA_DIRECTORIES = ("posts", "selfies")
#: Files younger than this are left alone: an upload being saved has its file before its row.
ORPHAN_MIN_AGE_SECONDS = 3600
ORPHAN_BATCH = 500


def _referenced(names: list[str]) -> set[str]:
    from feedmood.models import Post

    return set(Post.objects.filter(image__in=names).values_list("image", flat=True)) | set(
        ImageAnalysis.objects.filter(image__in=names).values_list("image", flat=True)
    )


def _old_files(root: Path, min_age_seconds: float) -> Iterator[Path]:
    cutoff = time.time() - min_age_seconds
    for directory in MEDIA_DIRECTORIES:
        for path in sorted((root / directory).rglob("*")):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    yield path
            except FileNotFoundError:  # deleted meanwhile
                continue


def media_orphans_sweep(*, min_age_seconds: float = ORPHAN_MIN_AGE_SECONDS) -> list[str]:
    """Delete media files that no row references (left by a crash between writing a file and its row,
    or an interrupted write), older than ``min_age_seconds``; returns their names."""
    root = Path(settings.MEDIA_ROOT)
    removed: list[str] = []
    batch: list[Path] = []

    def flush() -> None:
        names = [p.relative_to(root).as_posix() for p in batch]
        keep = _referenced(names)
        for path, name in zip(batch, names):
            if name not in keep:
                path.unlink(missing_ok=True)
                removed.append(name)
        batch.clear()

    for path in _old_files(root, min_age_seconds):
        batch.append(path)
        if len(batch) >= ORPHAN_BATCH:
            flush()
    flush()
    if removed:
        logger.warning("Removed %d orphan media files: %s", len(removed), removed[:20])
    return removed


@shared_task(name="emotion.housekeeping.sweep_orphan_media", ignore_result=True)
def sweep_orphan_media() -> int:
    """Periodic (beat): remove media files no row references; returns how many."""
    return len(media_orphans_sweep())
