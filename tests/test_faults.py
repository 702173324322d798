"""Fault injection with real processes (issue #8): counts what goes in and what comes out.

1. a Celery worker SIGKILLed mid-batch -> messages redelivered, every analysis final, readings once;
2. Redis restarted (no persistence: queued messages are LOST) -> the worker reconnects and the
   ``requeue_stale_analyses`` sweep brings every analysis to a final state;
3. PostgreSQL backends terminated while tasks run -> tasks retry, all final, no duplicates.

Skipped unless CELERY_BROKER_URL is Redis and the database is PostgreSQL (CI: .ci/run).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection
from django.db.models import Count

from emotion import housekeeping
from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from emotion.tasks import analyze_image
from tests.worker_tools import start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not str(settings.CELERY_BROKER_URL).startswith("redis://")
        or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="needs CELERY_BROKER_URL=redis://... and DATABASE_URL=postgres://... (see .ci/run)",
    ),
]

DUMMY_QUEUE = f"faults-idle-{uuid.uuid4().hex[:6]}"
FINAL = ImageAnalysis.FINAL_STATUSES



def make_analyses(user: Any, data: bytes, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        a = ImageAnalysis(owner=user, source=ImageAnalysis.Source.SELFIE)
        a.image.save("selfie.jpg", ContentFile(data), save=False)
        a.save()
        ids.append(a.pk)
    return ids


def final_count(ids: list[int]) -> int:
    return ImageAnalysis.objects.filter(pk__in=ids, status__in=FINAL).count()


def assert_all_final_once(ids: list[int]) -> dict[str, int]:
    rows = list(ImageAnalysis.objects.filter(pk__in=ids).values("pk", "status", "face_count", "error"))
    assert len(rows) == len(ids)
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        assert row["status"] in FINAL, row
    # Exactly one set of readings per analysis: readings == face_count, one per (analysis, version, face).
    per = dict(FaceReading.objects.filter(analysis_id__in=ids).values_list("analysis_id").annotate(n=Count("id")))
    for row in rows:
        assert per.get(row["pk"], 0) == row["face_count"], (row, per.get(row["pk"]))
    dup = (FaceReading.objects.filter(analysis_id__in=ids).values("analysis_id", "model_version_id", "face_index")
           .annotate(n=Count("id")).filter(n__gt=1))
    assert not dup.exists()
    return statuses


@pytest.fixture
def faults_env(request, transactional_db, settings, tmp_path):
    """The env a worker on the test database needs (borrowed from ``celery_worker_process``), idle worker stopped."""
    request.node.add_marker(pytest.mark.celery_worker(queues=(DUMMY_QUEUE,)))
    worker = request.getfixturevalue("celery_worker_process")
    stop_worker(worker.process)
    return dict(worker.env)


def test_worker_sigkilled_mid_batch(faults_env, consenting_user, fer_model, face_jpeg, tmp_path) -> None:
    queue = f"faults-kill-{uuid.uuid4().hex[:6]}"
    n = 12
    ids = make_analyses(consenting_user, face_jpeg, n)
    for pk in ids:
        analyze_image.apply_async(args=[pk], queue=queue)
    log = tmp_path / "w1.log"
    w1 = start_worker(faults_env, queue, log, concurrency=2, extra_env={"CELERY_VISIBILITY_TIMEOUT": "3"})
    try:
        wait_for(lambda: 1 <= final_count(ids) < n - 2, 60, "part of the batch", lambda: log.read_text(errors="replace"))
    finally:
        stop_worker(w1, signal.SIGKILL)
    done_before = final_count(ids)
    assert done_before < n  # really killed mid-batch
    time.sleep(3.5)  # visibility timeout: unacked messages of the dead worker become visible again
    log2 = tmp_path / "w2.log"
    w2 = start_worker(faults_env, queue, log2, concurrency=2, extra_env={"CELERY_VISIBILITY_TIMEOUT": "3"})
    requeued: list[int] = []
    try:
        # Redelivery (acks_late + visibility timeout; kombu restores unacked messages within ~10 s).
        deadline = time.monotonic() + 45
        while final_count(ids) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        if final_count(ids) < n:
            # Kombu's Redis transport pops a message before it records it as unacked: a SIGKILL in
            # that window loses the message itself. Beat's stale-analysis sweep is what recovers it.
            requeued = housekeeping.analyses_requeue_stale(pending_seconds=0, processing_seconds=0, queue=queue)
            assert len(requeued) <= 2, f"more than the in-flight messages were lost: {requeued}"
        wait_for(lambda: final_count(ids) == n, 60, "every analysis final", lambda: log2.read_text(errors="replace"))
    finally:
        stop_worker(w2)
    statuses = assert_all_final_once(ids)
    assert statuses == {"done": n}, statuses
    print(f"SIGKILL mid-batch: in={n} final_before_kill={done_before} swept={len(requeued)} out={statuses}")


def _redis_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args], capture_output=True, text=True, timeout=10)


def _restart_redis() -> None:
    if _redis_cli("ping").stdout.strip() == "PONG":
        return
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                    "--save", "", "--appendonly", "no"], check=False, timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _redis_cli("ping").stdout.strip() != "PONG":
        time.sleep(0.1)


@pytest.mark.skipif(not shutil.which("redis-cli") or not shutil.which("redis-server"), reason="needs redis-cli/redis-server")
@pytest.mark.skipif(not str(settings.CELERY_BROKER_URL).startswith("redis://127.0.0.1:6379"), reason="restarts the local Redis only")
def test_redis_restart_loses_queue_and_sweep_recovers(faults_env, consenting_user, fer_model, face_jpeg, tmp_path) -> None:
    queue = f"faults-redis-{uuid.uuid4().hex[:6]}"
    n = 8
    ids = make_analyses(consenting_user, face_jpeg, n)
    log = tmp_path / "w.log"
    worker = start_worker(faults_env, queue, log, concurrency=1)
    try:
        # Queue the batch while the worker is busy; then Redis dies without persistence.
        for pk in ids:
            analyze_image.apply_async(args=[pk], queue=queue)
        try:
            _redis_cli("shutdown", "nosave")
            time.sleep(1.0)
        finally:
            _restart_redis()
        assert _redis_cli("ping").stdout.strip() == "PONG"
        lost = n - final_count(ids)
        # The worker reconnects to the new Redis (probe through the same queue).
        probe = make_analyses(consenting_user, face_jpeg, 1)
        analyze_image.apply_async(args=probe, queue=queue)
        wait_for(lambda: final_count(probe) == 1, 60, "the worker to reconnect", lambda: log.read_text(errors="replace"))
        assert worker.poll() is None
        time.sleep(1.0)
        stuck = n - final_count(ids)
        # The sweep (beat's requeue_stale_analyses) re-enqueues what the restart lost.
        requeued = housekeeping.analyses_requeue_stale(pending_seconds=0, processing_seconds=0, queue=queue)
        assert set(i for i in ids if not ImageAnalysis.objects.get(pk=i).is_final) <= set(requeued)
        wait_for(lambda: final_count(ids) == n, 90, "every analysis final", lambda: log.read_text(errors="replace"))
    finally:
        _restart_redis()
        stop_worker(worker)
    statuses = assert_all_final_once(ids + probe)
    assert statuses == {"done": n + 1}, statuses
    print(f"Redis restart: in={n} lost_at_restart<={lost} stuck_after_reconnect={stuck} requeued={len(requeued)} out={statuses}")


def test_postgres_connections_dropped_during_tasks(faults_env, consenting_user, fer_model, face_jpeg, tmp_path) -> None:
    queue = f"faults-pg-{uuid.uuid4().hex[:6]}"
    # Workers close their connection after each task, so a backend exists only while a task runs (~15 ms on a
    # fast machine): enough tasks and a tight polling loop make sure some are cut mid-task.
    n = 30
    ids = make_analyses(consenting_user, face_jpeg, n)
    log = tmp_path / "w.log"
    worker = start_worker(faults_env, queue, log, concurrency=2)
    kills = 0
    try:
        for pk in ids:
            analyze_image.apply_async(args=[pk], queue=queue)
        deadline = time.monotonic() + 90
        kill_until = time.monotonic() + 6
        while final_count(ids) < n and time.monotonic() < deadline:
            if time.monotonic() < kill_until:
                with connection.cursor() as cur:
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                    kills += cur.fetchone()[0]
            time.sleep(0.005 if time.monotonic() < kill_until else 0.15)
        assert final_count(ids) == n, log.read_text(errors="replace")[-4000:]
    finally:
        stop_worker(worker)
    statuses = assert_all_final_once(ids)
    assert statuses == {"done": n}, (statuses, list(ImageAnalysis.objects.filter(pk__in=ids).values_list("error", flat=True)))
    attempts = sum(ImageAnalysis.objects.filter(pk__in=ids).values_list("attempts", flat=True))
    assert kills > 0
    print(f"PostgreSQL drops: in={n} backends_terminated={kills} attempts={attempts} out={statuses}")
