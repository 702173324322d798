"""Celery tasks of the emotion app (``fer`` queue; rescoring and housekeeping on ``batch``).

Tasks are thin: they call a service.  Bad input is a *result* (the analysis
ends ``failed``/``no_face``); only transient infrastructure errors (database
or Redis unavailable) are retried, with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import asdict
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_process_init
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from emotion import face_detector, pipeline, privacy, rescoring
from emotion.analysis import analysis_mark_failed, analysis_run

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, KombuOperationalError)
MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 2
RETRY_BACKOFF_MAX_SECONDS = 60


def retry_countdown(retries: int) -> float:
    """Seconds before the retry after `retries` earlier ones: an exponential step (2, 4, 8, ... s, capped at 60)
    with "equal jitter", half fixed and half random.

    Celery's own full jitter draws from [0, step], so five retries can all come at once and be spent within
    a few seconds of a database outage; here they wait at least 1 + 2 + 4 + 8 + 16 = 31 s in all, and tasks
    that failed together still spread out.
    """
    step = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_SECONDS * 2 ** max(0, retries))
    return step / 2 + random.uniform(0, step / 2)


class RetryingTask(Task):
    """A retry without an explicit countdown (autoretry on TRANSIENT_ERRORS) waits `retry_countdown`."""

    def retry(self, *args: Any, countdown: float | None = None, eta: Any = None, **kwargs: Any) -> Any:
        if countdown is None and eta is None:
            countdown = retry_countdown(self.request.retries)
        return super().retry(*args, countdown=countdown, eta=eta, **kwargs)


class AnalysisTask(RetryingTask):
    """Marks the analysis failed when the task gives up (retries exhausted)."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        analysis_id = args[0] if args else kwargs.get("analysis_id")
        if analysis_id is None:
            return
        try:
            analysis_mark_failed(
                analysis_id=analysis_id, error=f"Analysis could not complete: {type(exc).__name__}. Please try again."
            )
        except Exception:
            logger.warning("Could not mark analysis %s failed", analysis_id, exc_info=True)


#: Options of idempotent tasks: redelivered if a worker dies mid-task, retried with backoff on transient errors.
IDEMPOTENT_RETRYING: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "max_retries": MAX_RETRIES,
}  # the backoff is RetryingTask's: use it as the tasks' base


@shared_task(
    bind=True,
    base=AnalysisTask,
    name="emotion.tasks.analyze_image",
    **IDEMPOTENT_RETRYING,
)
def analyze_image(self: Task, analysis_id: int) -> str | None:
    """Analyse one image; returns the final status (``None`` if nothing was to be done)."""
    analysis = analysis_run(analysis_id)
    return analysis.status if analysis is not None else None


# A chunk is ~chunk_size analyses: far below this, but the global 60 s soft limit must not cut one short.
RESCORE_SOFT_TIME_LIMIT = 600


@shared_task(
    bind=True,
    base=RetryingTask,
    name="emotion.tasks.rescore_chunk",
    **IDEMPOTENT_RETRYING,
    soft_time_limit=RESCORE_SOFT_TIME_LIMIT,
    time_limit=RESCORE_SOFT_TIME_LIMIT + 60,
)
def rescore_chunk(self: Task, job_id: int, lane: int = 0) -> dict[str, Any]:
    """Score one chunk of a rescoring job's lane, then queue the lane's next chunk (``batch`` queue)."""
    result = rescoring.rescoring_run_chunk(job_id, lane)
    while result.more and self.request.is_eager:  # embedded mode: loop rather than recurse
        result = rescoring.rescoring_run_chunk(job_id, lane)
    if result.more:
        rescore_chunk.apply_async(args=(job_id, lane))  # progress is committed: safe to chain
    return asdict(result)


@shared_task(name="emotion.tasks.resume_stalled_rescoring_jobs")
def resume_stalled_rescoring_jobs() -> list[int]:
    """Beat: re-enqueue the lanes of rescoring jobs without progress for a while; returns their ids."""
    return rescoring.rescoring_resume_stalled()


@shared_task(name="emotion.tasks.prune_expired_selfies")
def prune_expired_selfies() -> int:
    """Beat: delete raw selfie files past their retention; returns how many."""
    return privacy.selfies_prune_expired()


@worker_process_init.connect(dispatch_uid="emotion.worker_child_init")
def worker_child_init(**kwargs: Any) -> None:
    """In each forked pool child: single-threaded OpenCV and model, and the face cascade ready.

    A prefork pool already runs one child per core, so one thread per child
    avoids oversubscription (override the model's with FEEDMOOD_INFER_THREADS).  The model itself is loaded by the first
    task (``emotion.inference``), in this child, never in the parent; no
    database access here (the parent's connections are not closed yet).
    """
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("FEEDMOOD_INFER_THREADS", "1")
    pipeline.face_cascade()
    face_detector.blazeface().load()  # this child's own LiteRT interpreter (never the parent's)
