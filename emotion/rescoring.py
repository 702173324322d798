"""Batch rescoring: re-analyse the stored images with a new model version, then switch to it.

``model_versions.model_version_activate(version)`` (admin action, ``manage.py
activate_model``) calls :func:`rescoring_start`:

- no version is active yet (fresh install): switch at once, no job;
- otherwise a ``RescoringJob`` is created and ``parallelism`` lanes of
  ``emotion.tasks.rescore_chunk`` run on the ``batch`` queue (lane ``i`` takes
  the analyses with ``id % parallelism == i``, in id order).  A chunk scores up
  to ``chunk_size`` analyses after its lane's cursor with
  ``analysis_run(id, model_version=job.model_version)``, which is idempotent
  (readings are unique per analysis, version and face; the previous version's
  readings are kept), then advances the cursor and the counters in one
  transaction with the job row locked.  A chunk whose lane cursor moved in the
  meantime (a redelivered duplicate) commits nothing and ends its chain, so a
  killed worker or a broker restart neither loses nor double-counts work, and
  a re-run continues where the cursor stopped.  Beat's
  ``resume_stalled_rescoring_jobs`` re-enqueues the lanes of jobs without
  progress (e.g. messages lost with a broker restart).
- the previous version stays active (interactive analyses, moods, post
  affect) until the last lane finds nothing left.  It then re-checks every
  lane for analyses created meanwhile and, in the same transaction, switches
  versions.  ``model_activated`` is sent on commit and the recommender
  recomputes every mood and post affect from the new version's readings
  only, so no mood mixes versions.  Analyses that got an interactive result
  from the old model just around the switch are re-analysed afterwards.

Selfies that were not retained (``FEEDMOOD_RETAIN_SELFIES`` off) cannot be
rescored: after the switch those users' moods are unknown until their next
selfie.  While a job runs, an analysis' *current* result (API, admin) may
already be the new version's; moods and the feed never are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, IntegerField, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Mod
from django.utils import timezone

from emotion import model_versions, selectors
from emotion.analysis import analysis_run
from emotion.inference import get_classifier
from emotion.models import FaceReading, ImageAnalysis, ModelVersion, RescoringJob
from feedmood.tasks_utils import apply_async_on_commit, enqueue_on_commit, run_on_commit

logger = logging.getLogger(__name__)

SCORED = (ImageAnalysis.Status.DONE, ImageAnalysis.Status.NO_FACE)
# Analyses created this long before a job started are still checked after the switch (ids commit out of order).
CATCH_UP_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class ChunkResult:
    """What one ``rescoring_run_chunk`` call did."""

    job_id: int
    lane: int
    status: str  # the job's status afterwards ("" if it no longer exists)
    processed: int = 0
    done: int = 0
    failed: int = 0
    more: bool = False  # the lane has more work: run another chunk
    duplicate: bool = False  # another delivery of this lane committed first: nothing was counted


def _rescore_chunk_task() -> Any:
    from emotion.tasks import rescore_chunk

    return rescore_chunk


# --- Starting, cancelling, resuming -----------------------------------------------------------


def rescoring_start(
    version: ModelVersion, *, chunk_size: int | None = None, parallelism: int | None = None
) -> RescoringJob | None:
    """Activate ``version`` through a rescoring job; returns the job (``None`` when no job was needed).

    - no active version: ``version`` is switched to at once (no job);
    - ``version`` already active: nothing to do (an open job for another version is cancelled);
    - a job for ``version`` is already open: that job is returned;
    - otherwise an open job for another version is cancelled and a new one
      starts (completed at once, with the switch, if nothing is rescorable).

    The lanes are enqueued after commit.
    """
    chunk_size = max(1, chunk_size or settings.FEEDMOOD_RESCORING_CHUNK_SIZE)
    parallelism = max(1, parallelism or settings.FEEDMOOD_RESCORING_PARALLELISM)
    with transaction.atomic():
        # Lock order everywhere: open jobs, then model versions.
        list(RescoringJob.objects.select_for_update().filter(status__in=RescoringJob.OPEN_STATUSES))
        active = ModelVersion.objects.select_for_update().filter(is_active=True).first()
        open_job = RescoringJob.objects.select_for_update().filter(status__in=RescoringJob.OPEN_STATUSES).first()
        if open_job is not None:
            if open_job.model_version_id == version.pk:
                return open_job
            _end(open_job, RescoringJob.Status.CANCELLED, f"Superseded: {version.name} was activated.")
        if active is None:
            model_versions.model_version_switch(version)
            return None
        if active.pk == version.pk:
            return None
        job = RescoringJob.objects.create(
            model_version=version,
            previous_version=active,
            total=selectors.rescorable_analyses().count(),
            chunk_size=chunk_size,
            parallelism=parallelism,
            lanes=[{"cursor": 0, "finished": False} for _ in range(parallelism)],
        )
        if job.total == 0:
            _complete(job)
        else:
            for lane in range(parallelism):
                apply_async_on_commit(_rescore_chunk_task(), args=(job.pk, lane))
    logger.info("Rescoring job %s: %s images with %s (%s stays active until it completes)",
                job.pk, job.total, version.name, active.name)  # fmt: skip
    return job


def rescoring_cancel(job: RescoringJob) -> RescoringJob:
    """Stop an open job; the active version stays.  Chunks in flight commit nothing more."""
    with transaction.atomic():
        locked = RescoringJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_open:
            _end(locked, RescoringJob.Status.CANCELLED, "Cancelled.")
    return locked


def rescoring_resume(job_id: int) -> int:
    """Re-enqueue a chunk for every unfinished lane of an open job; returns how many.

    Safe to call any time: a lane whose chain is still alive ends up with two
    deliveries, and the one that commits second discards its chunk.
    """
    with transaction.atomic():
        job = RescoringJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not job.is_open:
            return 0
        lanes = [i for i, state in enumerate(job.lanes) if not state.get("finished")]
        job.heartbeat_at = timezone.now()  # no second resume before this one had a chance
        job.save(update_fields=["heartbeat_at"])
        for lane in lanes:
            apply_async_on_commit(_rescore_chunk_task(), args=(job.pk, lane))
    return len(lanes)


def rescoring_resume_stalled(*, stalled_for: timedelta | None = None) -> list[int]:
    """Resume open jobs without progress for ``stalled_for`` (default ``FEEDMOOD_RESCORING_STALL_MINUTES``)."""
    stalled_for = (
        stalled_for if stalled_for is not None else timedelta(minutes=settings.FEEDMOOD_RESCORING_STALL_MINUTES)
    )
    cutoff = timezone.now() - stalled_for
    stalled = RescoringJob.objects.filter(status__in=RescoringJob.OPEN_STATUSES).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    resumed = [pk for pk in stalled.values_list("pk", flat=True) if rescoring_resume(pk)]
    if resumed:
        logger.warning("Resumed stalled rescoring jobs %s", resumed)
    return resumed


# --- Running chunks ---------------------------------------------------------------------------------


def rescoring_run_chunk(job_id: int, lane: int = 0) -> ChunkResult:
    """Score the next chunk of ``lane`` with the job's version and commit the progress.

    Returns ``more=True`` while the lane has work (the caller queues the next
    chunk).  When the last lane runs dry the job completes and the version
    switch happens (see the module docstring).
    """
    job = RescoringJob.objects.select_related("model_version").filter(pk=job_id).first()
    if job is None:
        return ChunkResult(job_id, lane, "")
    if not job.is_open or lane >= len(job.lanes) or job.lanes[lane].get("finished"):
        return ChunkResult(job_id, lane, job.status)
    version = job.model_version
    try:
        get_classifier(version.artifact_dir)
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(job_id, lane, f"The model {version.name} does not load: {exc}")
    if job.status == RescoringJob.Status.PENDING:
        now = timezone.now()
        RescoringJob.objects.filter(pk=job_id, status=RescoringJob.Status.PENDING).update(
            status=RescoringJob.Status.RUNNING, started_at=now, heartbeat_at=now
        )

    after = int(job.lanes[lane]["cursor"])
    ids = list(_lane_analyses(job.parallelism, lane, after).values_list("pk", flat=True)[: job.chunk_size])
    if not ids:
        return _finish_lane(job_id, lane, after)
    done = failed = 0
    for analysis_id in ids:
        status = _rescore_one(analysis_id, version)
        if status is None:
            continue  # deleted meanwhile
        if status in SCORED:
            done += 1
        else:
            failed += 1
    return _commit_chunk(job_id, lane, after, ids[-1], done, failed)


def _lane_analyses(parallelism: int, lane: int, after: int) -> QuerySet[ImageAnalysis]:
    qs = selectors.rescorable_analyses().filter(pk__gt=after)
    if parallelism > 1:
        qs = qs.annotate(rescoring_lane=Mod(F("pk"), Value(parallelism), output_field=IntegerField()))
        qs = qs.filter(rescoring_lane=lane)
    return qs.order_by("pk")


def _rescore_one(analysis_id: int, version: ModelVersion) -> str | None:
    """Score one analysis with ``version``; its final status (``None`` if it no longer exists)."""
    analysis = analysis_run(analysis_id, model_version=version, notify=False)
    if analysis is not None:
        return analysis.status
    # Already final with this version (an earlier delivery of this chunk), or deleted.
    return ImageAnalysis.objects.filter(pk=analysis_id).values_list("status", flat=True).first()


def _locked_lane(job_id: int, lane: int, after: int) -> tuple[RescoringJob | None, ChunkResult | None]:
    """The job row locked, or the result to return when this delivery must not commit."""
    job = RescoringJob.objects.select_for_update().select_related("model_version").filter(pk=job_id).first()
    if job is None:
        return None, ChunkResult(job_id, lane, "")
    if not job.is_open:
        return None, ChunkResult(job_id, lane, job.status)  # cancelled or failed meanwhile
    state = job.lanes[lane]
    if state.get("finished") or int(state["cursor"]) != after:
        return None, ChunkResult(job_id, lane, job.status, duplicate=True)
    return job, None


def _commit_chunk(job_id: int, lane: int, after: int, last_id: int, done: int, failed: int) -> ChunkResult:
    with transaction.atomic():
        job, early = _locked_lane(job_id, lane, after)
        if job is None:
            return early  # type: ignore[return-value]
        job.lanes[lane]["cursor"] = last_id
        job.done += done
        job.failed += failed
        job.total = max(job.total, job.done + job.failed)
        _touch(job)
        job.save()
    return ChunkResult(job_id, lane, job.status, done + failed, done, failed, more=True)


def _finish_lane(job_id: int, lane: int, after: int) -> ChunkResult:
    """The lane ran dry; the last lane to do so completes the job unless analyses appeared meanwhile."""
    with transaction.atomic():
        job, early = _locked_lane(job_id, lane, after)
        if job is None:
            return early  # type: ignore[return-value]
        job.lanes[lane]["finished"] = True
        more = False
        if all(state.get("finished") for state in job.lanes):
            reopened = [
                i for i, state in enumerate(job.lanes)
                if _lane_analyses(job.parallelism, i, int(state["cursor"])).exists()
            ]  # fmt: skip
            for i in reopened:
                job.lanes[i]["finished"] = False
                if i != lane:
                    apply_async_on_commit(_rescore_chunk_task(), args=(job.pk, i))
            more = lane in reopened
            if not reopened:
                _complete(job)
                return ChunkResult(job_id, lane, job.status)
        _touch(job)
        job.save()
    return ChunkResult(job_id, lane, job.status, more=more)


def _fail(job_id: int, lane: int, error: str) -> ChunkResult:
    with transaction.atomic():
        job = RescoringJob.objects.select_for_update().select_related("model_version").filter(pk=job_id).first()
        if job is None:
            return ChunkResult(job_id, lane, "")
        if job.is_open:
            _end(job, RescoringJob.Status.FAILED, error)
    logger.error("Rescoring job %s failed: %s", job_id, error)
    return ChunkResult(job_id, lane, job.status)


def _touch(job: RescoringJob) -> None:
    """Progress bookkeeping (the caller saves): running, heartbeat and the overall cursor."""
    now = timezone.now()
    if job.status == RescoringJob.Status.PENDING:
        job.status = RescoringJob.Status.RUNNING
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    cursors = [int(state["cursor"]) for state in job.lanes]
    open_lanes = [int(state["cursor"]) for state in job.lanes if not state.get("finished")]
    job.cursor = min(open_lanes) if open_lanes else max(cursors, default=0)


# --- Ending a job --------------------------------------------------------------------------------------


def _complete(job: RescoringJob) -> None:
    """Inside the job's locked transaction: switch to the new version, or fail if it scored too little."""
    processed = job.done + job.failed
    if processed and job.failed / processed > settings.FEEDMOOD_RESCORING_MAX_FAILED_RATIO:
        previous = job.previous_version.name if job.previous_version else "the previous version"
        _end(job, RescoringJob.Status.FAILED,
             f"{job.failed} of {processed} images could not be scored with {job.model_version.name} "
             f"(more than FEEDMOOD_RESCORING_MAX_FAILED_RATIO={settings.FEEDMOOD_RESCORING_MAX_FAILED_RATIO}); "
             f"{previous} stays active.")  # fmt: skip
        return
    for state in job.lanes:
        state["finished"] = True
    _touch(job)
    job.status = RescoringJob.Status.COMPLETED
    job.finished_at = job.heartbeat_at
    job.total = processed
    job.save()
    version = job.model_version
    model_versions.model_version_switch(version)  # sends model_activated on commit
    # Where the job wrote the new version's readings, they are the analysis' current result.
    scored = Exists(FaceReading.objects.filter(analysis=OuterRef("pk"), model_version=version))
    ImageAnalysis.objects.filter(scored, status=ImageAnalysis.Status.DONE).exclude(model_version=version).update(
        model_version=version
    )
    since = job.created_at - CATCH_UP_MARGIN
    run_on_commit(lambda: _catch_up(version.pk, since))
    logger.info(
        "Rescoring job %s completed: %s done, %s failed; %s is active", job.pk, job.done, job.failed, version.name
    )


def _catch_up(version_id: int, since: Any) -> int:
    """After the switch: re-analyse (with the now active version) images that got only an old result meanwhile."""
    from emotion.tasks import analyze_image

    late = (
        selectors.rescorable_analyses()
        .filter(created_at__gte=since, status__in=ImageAnalysis.FINAL_STATUSES)
        .exclude(model_version_id=version_id)
        .values_list("pk", flat=True)
    )
    ids = list(late)
    for analysis_id in ids:
        enqueue_on_commit(analyze_image, analysis_id)
    return len(ids)


def _end(job: RescoringJob, status: str, error: str) -> None:
    """Cancel or fail ``job`` (locked by the caller): analyses point back at the active version's result."""
    job.status = status
    job.error = error
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "finished_at"])
    active = selectors.active_model_version()
    if active is None or active.pk == job.model_version_id:
        return
    moved = ImageAnalysis.objects.filter(model_version_id=job.model_version_id)
    scored_by_active = Exists(FaceReading.objects.filter(analysis=OuterRef("pk"), model_version=active))
    moved.filter(scored_by_active, status=ImageAnalysis.Status.DONE).update(model_version=active)
    moved.filter(status=ImageAnalysis.Status.NO_FACE).update(model_version=active)
