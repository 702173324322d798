"""Batch rescoring through REAL Celery workers on Redis: a full job, and a job whose worker is killed mid-way.

Skipped unless CELERY_BROKER_URL is redis://... (CI sets it, with DATABASE_URL on PostgreSQL).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings

from emotion import rescoring
from emotion.fixtures import fer_model, fer_model_dir  # noqa: F401
from emotion.models import ImageAnalysis, ModelVersion, RescoringJob
from recommender.models import MoodState, PostAffect
from tests import rescoring_factories as rf
from tests.rescoring_factories import v1, v2  # noqa: F401
from tests.worker_tools import child_pids, needs_redis_broker, start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    needs_redis_broker,
]

QUEUES = ("batch", "fer", "default")  # everything a rescoring touches: chunks, catch-up analyses, recompute_all
VISIBILITY_TIMEOUT = 3  # seconds before the unacked chunk of a dead worker is redelivered


def job_state(job_id: int) -> tuple[str, int, int]:
    return RescoringJob.objects.filter(pk=job_id).values_list("status", "done", "failed").get()


def claims(analysis_id: int) -> tuple[str, int]:
    return ImageAnalysis.objects.filter(pk=analysis_id).values_list("status", "attempts").get()


@pytest.mark.celery_worker(queues=QUEUES, concurrency=2, env={"FEEDMOOD_RETAIN_SELFIES": "1"})
def test_full_rescoring_job_through_a_real_worker(celery_worker_process, v1, v2, settings, make_user) -> None:
    worker = celery_worker_process
    settings.FEEDMOOD_RETAIN_SELFIES = True
    author = make_user(username="author")
    fan = make_user(username="fan", emotion_consent=True)
    analyses = [rf.post_analysis(author, kind) for kind in ("one", "three", "none", "one", "one", "one", "one", "one")]
    analyses += [rf.selfie_analysis(fan), rf.selfie_analysis(fan)]
    # The seeding's own mood/affect updates (default queue) land first: only the switch is under test.
    wait_for(lambda: PostAffect.objects.filter(model_version=v1).count() == 8, 30, "post affect with v1", worker.log)
    wait_for(lambda: MoodState.objects.filter(user=fan, model_version=v1).exists(), 30, "mood with v1", worker.log)

    job = rescoring.rescoring_start(v2, chunk_size=3, parallelism=2)
    assert job.is_open and job.total == 10
    wait_for(lambda: job_state(job.pk)[0] in ("completed", "failed"), 90, "the job to finish", worker.log)
    # recompute_all (batch queue, after the switch) moves every mood, then every post affect, to v2.
    wait_for(lambda: PostAffect.objects.filter(model_version=v2).count() == 8, 30, "recompute_all", worker.log)

    job.refresh_from_db()
    assert job.status == "completed", job.error
    assert job.total == job.done + job.failed == 10 and job.failed == 0
    assert job.started_at <= job.finished_at and job.cursor == max(a.pk for a in analyses)
    assert ModelVersion.objects.get(is_active=True) == v2
    rf.assert_scored_once(analyses, v1, v2)
    assert all(a.model_version_id == v2.pk for a in analyses)
    assert set(PostAffect.objects.filter(source="faces").values_list("model_version_id", flat=True)) == {v2.pk}
    assert MoodState.objects.get(user=fan).model_version == v2
    log = worker.log()
    assert "emotion.tasks.rescore_chunk" in log and "recommender.tasks.recompute_all" in log
    assert "batch" in worker.queues


@pytest.mark.celery_worker(queues=QUEUES, env={"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)})
def test_rescoring_survives_killed_workers(celery_worker_process, v1, v2, make_user) -> None:
    """SIGKILL the pool child, then the whole worker, while a chunk is in flight: the job completes, exactly once.

    The chunk blocks deterministically: one post image is swapped for a named
    pipe (FIFO), so the worker claims that analysis and waits in ``open()``
    until we decide what happens.
    """
    worker = celery_worker_process
    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(9)]
    wait_for(lambda: PostAffect.objects.filter(model_version=v1).count() == 9, 30, "post affect with v1", worker.log)
    blocked, before = analyses[4], analyses[3]  # the second chunk: [3], [4], [5]
    image_path = Path(settings.MEDIA_ROOT) / blocked.post.image.name
    image_path.unlink()
    os.mkfifo(image_path)

    job = rescoring.rescoring_start(v2, chunk_size=3, parallelism=1)
    wait_for(lambda: claims(blocked.pk) == ("processing", 2), 60, "the chunk to block on the pipe", worker.log)
    assert job_state(job.pk) == ("running", 3, 0)  # the first chunk is committed
    assert claims(before.pk) == ("done", 2)  # scored by v2 inside the uncommitted chunk

    # 1. The pool child dies (OOM killer, segfault): reject_on_worker_lost requeues the chunk at once.
    for child in wait_for(lambda: child_pids(worker.process.pid), 10, "the pool child", worker.log):
        os.kill(child, signal.SIGKILL)
    wait_for(lambda: claims(blocked.pk) == ("processing", 3), 60, "redelivery to a new child", worker.log)
    assert "WorkerLostError" in worker.log()

    # 2. The whole worker dies: the chunk stays unacked in Redis until the visibility timeout.
    killed_at = time.monotonic()
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    image_path.unlink()
    image_path.write_bytes(rf.image("one"))  # the real image takes the pipe's place
    assert job_state(job.pk) == ("running", 3, 0)
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - killed_at)))

    log_path = worker.log_path.with_name("celery-worker-2.log")
    second = start_worker(worker.env, ",".join(QUEUES), log_path)
    try:
        wait_for(
            lambda: job_state(job.pk)[0] in ("completed", "failed"),
            90, "the resumed job to finish", lambda: log_path.read_text(errors="replace"),
        )  # fmt: skip
        wait_for(
            lambda: PostAffect.objects.filter(model_version=v2).count() == 9,
            30, "recompute_all", lambda: log_path.read_text(errors="replace"),
        )  # fmt: skip
    finally:
        stop_worker(second)

    job.refresh_from_db()
    assert job.status == "completed", job.error
    assert (job.total, job.done, job.failed) == (9, 9, 0)  # nothing lost, nothing counted twice
    assert job.cursor == analyses[-1].pk and ModelVersion.objects.get(is_active=True) == v2
    rf.assert_scored_once(analyses, v1, v2)  # exactly one set of v2 readings each, v1's kept
    assert claims(before.pk) == ("done", 2)  # the redelivered chunks did not score it again
    assert claims(blocked.pk) == ("done", 4)  # v1, then three claims by v2 (two killed)
