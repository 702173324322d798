"""Fault injection with real processes: counts what goes in and what comes out.

1. a Celery worker SIGKILLed mid-batch -> messages redelivered, every analysis final, readings once;
2. Redis crashed and restarted (no persistence: queued messages are LOST) -> the worker reconnects and
   beat's ``requeue_stale_analyses`` sweep brings every analysis to a final state;
3. PostgreSQL backends terminated while tasks run -> tasks retry (asserted from the worker log), all final,
   one set of readings per analysis;
4. a poison message (its task kills the pool child each time) -> redelivered until the attempt limit, then failed.

Tests 1 and 2 run the broker on a throwaway ``redis-server`` the fixture starts on a port of its own;
the shared Redis is never restarted.  Recovery is by the production mechanisms only, with the
timings of ``FAST_SWEEP`` and a 3 s visibility timeout configured in the test (production values in
docs/hardening.md).  Skipped unless the database is PostgreSQL (CI: .ci/run).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection
from django.db.models import Count
from PIL import Image

from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from emotion.tasks import analyze_image
from tests.worker_tools import child_pids, start_worker, stop_worker, wait_for

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
    return statuses


@pytest.fixture
def faults_env(request, transactional_db, settings, tmp_path):
    """The env a worker on the test database needs (borrowed from ``celery_worker_process``), idle worker stopped."""
    request.node.add_marker(pytest.mark.celery_worker(queues=(DUMMY_QUEUE,)))
    worker = request.getfixturevalue("celery_worker_process")
    stop_worker(worker.process)
    return dict(worker.env)


def test_worker_sigkilled_mid_batch(
    faults_env, throwaway_redis, consenting_user, fer_model, face_jpeg, tmp_path
) -> None:
    """Recovery only by production mechanisms: kombu's redelivery of unacked messages (visibility timeout set to
    3 s here; 3600 s in production) and beat's stale sweep (timings ``FAST_SWEEP``) for a message lost outright."""
    n = 12
    ids = make_analyses(consenting_user, face_jpeg, n)
    url = throwaway_redis["url"]
    env = {**faults_env, **throwaway_redis["env"], "CELERY_VISIBILITY_TIMEOUT": "3", **FAST_SWEEP}
    _send_analyses(url, ids)
    log = tmp_path / "w1.log"
    w1 = start_worker(env, "fer", log, concurrency=2)
    try:
        wait_for(
            lambda: 1 <= final_count(ids) < n - 2, 60, "part of the batch", lambda: log.read_text(errors="replace")
        )
    finally:
        stop_worker(w1, signal.SIGKILL)
    done_before = final_count(ids)
    assert done_before < n  # really killed mid-batch
    log2 = tmp_path / "w2.log"
    w2 = start_worker(env, "fer,batch", log2, concurrency=2, beat=True)
    try:
        wait_for(lambda: final_count(ids) == n, 120, "every analysis final", lambda: log2.read_text(errors="replace"))
    finally:
        stop_worker(w2)
    statuses = assert_all_final_once(ids)
    assert statuses == {"done": n}, statuses
    swept = "Re-enqueued" in log2.read_text(errors="replace")
    print(f"SIGKILL mid-batch: in={n} final_before_kill={done_before} beat_sweep_used={swept} out={statuses}")


@pytest.fixture
def throwaway_redis(tmp_path) -> Iterator[dict[str, Any]]:
    """A private ``redis-server`` (no persistence) on a free port of its own; ``restart()`` kills and restarts it.

    Only this process is ever shut down: the shared Redis the other tests use is never touched.
    """
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [
        "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    url = f"redis://127.0.0.1:{port}/0"
    # ``env``: what a worker needs to use this Redis as its broker, result backend and cache
    state: dict[str, Any] = {
        "url": url,
        "env": {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url, "REDIS_URL": url},
    }

    def start() -> None:
        state["proc"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _redis_answers(state["url"]), 15, f"redis-server on port {port}")

    def restart() -> None:
        state["proc"].kill()  # like a crash: nothing saved, every queued and unacked message lost
        state["proc"].wait(timeout=10)
        start()

    start()
    state["restart"] = restart
    try:
        yield state
    finally:
        state["proc"].kill()
        state["proc"].wait(timeout=10)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _send_analyses(broker_url: str, ids: list[int]) -> None:
    """Enqueue ``analyze_image`` (routed to ``fer`` as in production) on another broker: the throwaway Redis."""
    from config.celery import app

    with app.connection_for_write(broker_url) as conn:
        for pk in ids:
            analyze_image.apply_async(args=[pk], connection=conn)


#: Housekeeping timings configured for the Redis-restart test (production: 600 s pending, 240 s processing, every 300 s).
FAST_SWEEP = {
    "FEEDMOOD_STALE_PENDING_SECONDS": "4",
    # above the slowest single analysis on a busy 2-core machine (the child's first task loads the model), so a
    # running analysis is never taken for a lost one
    "FEEDMOOD_STALE_PROCESSING_SECONDS": "30",
    "FEEDMOOD_REQUEUE_STALE_EVERY_SECONDS": "2",
}


def test_redis_restart_loses_queue_and_beat_sweep_recovers(
    faults_env, throwaway_redis, consenting_user, fer_model, face_jpeg, tmp_path
) -> None:
    n = 8
    ids = make_analyses(consenting_user, face_jpeg, n)
    url = throwaway_redis["url"]
    env = {**faults_env, **throwaway_redis["env"], **FAST_SWEEP}
    log = tmp_path / "w.log"
    worker = start_worker(env, "fer,batch", log, concurrency=1, beat=True)
    try:
        _send_analyses(url, ids)
        throwaway_redis["restart"]()  # the queued batch is gone with the old process
        lost = n - final_count(ids)
        # No hand-run sweep: the worker reconnects and beat's requeue_stale_analyses re-enqueues the lost ones.
        wait_for(lambda: final_count(ids) == n, 120, "every analysis final", lambda: log.read_text(errors="replace"))
        assert worker.poll() is None
    finally:
        stop_worker(worker)
    text = log.read_text(errors="replace")
    assert lost > 0, "the restart lost nothing: the test did not exercise recovery"
    assert "Re-enqueued" in text, "the analyses were not recovered by the beat sweep"
    statuses = assert_all_final_once(ids)
    errors = list(ImageAnalysis.objects.filter(pk__in=ids).exclude(error="").values_list("error", "attempts"))
    assert statuses == {"done": n}, (statuses, errors)
    print(f"Redis restart: in={n} not_final_at_restart={lost} out={statuses}")


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
                    cur.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    kills += cur.fetchone()[0]
            time.sleep(0.005 if time.monotonic() < kill_until else 0.15)
        assert final_count(ids) == n, log.read_text(errors="replace")[-4000:]
    finally:
        stop_worker(worker)
    statuses = assert_all_final_once(ids)
    assert statuses == {"done": n}, (
        statuses,
        list(ImageAnalysis.objects.filter(pk__in=ids).values_list("error", flat=True)),
    )
    attempts = sum(ImageAnalysis.objects.filter(pk__in=ids).values_list("attempts", flat=True))
    assert kills > 0
    retries = log.read_text(errors="replace").count("Retry in")
    assert retries > 0, "no task retried: the terminated backends never hit a running task"
    print(f"PostgreSQL drops: in={n} backends_terminated={kills} retries={retries} attempts={attempts} out={statuses}")


def _slow_16bit_png(side: int = 4000) -> bytes:
    """A 16-bit grey gradient: a small file whose decode keeps a worker busy for a while."""
    row = np.linspace(0, 65535, side, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(np.tile(row, (side, 1))).save(buf, format="PNG")
    return buf.getvalue()


def test_poison_message_ends_failed_after_the_attempt_limit(
    faults_env, throwaway_redis, consenting_user, fer_model, tmp_path
) -> None:
    """A task that kills its pool child every time (here: SIGKILL from the test, like the OOM killer) is
    redelivered (acks_late, reject_on_worker_lost) until FEEDMOOD_ANALYSIS_MAX_ATTEMPTS=3, then ends failed."""
    [pk] = make_analyses(consenting_user, _slow_16bit_png(), 1)
    url = throwaway_redis["url"]
    env = {**faults_env, **throwaway_redis["env"], "FEEDMOOD_ANALYSIS_MAX_ATTEMPTS": "3"}
    log = tmp_path / "w.log"
    worker = start_worker(env, "fer", log, concurrency=1)
    kills = 0
    try:
        _send_analyses(url, [pk])
        deadline = time.monotonic() + 120
        while not ImageAnalysis.objects.get(pk=pk).is_final and time.monotonic() < deadline:
            row = ImageAnalysis.objects.get(pk=pk)
            if row.status == ImageAnalysis.Status.PROCESSING and row.attempts > kills:
                for child in child_pids(worker.pid):
                    os.kill(child, signal.SIGKILL)
                kills += 1
            time.sleep(0.02)
        assert worker.poll() is None
    finally:
        stop_worker(worker)
    row = ImageAnalysis.objects.get(pk=pk)
    assert row.status == ImageAnalysis.Status.FAILED, (
        row.status,
        row.attempts,
        log.read_text(errors="replace")[-3000:],
    )
    assert row.attempts == 3 and kills == 3, (row.attempts, kills)
    assert "abandoned after 3 attempts" in row.error
    print(f"Poison message: children killed={kills} attempts={row.attempts} status={row.status}")
