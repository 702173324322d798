"""The whole flow through a REAL Celery worker on Redis, including workers killed mid-task.

Skipped unless CELERY_BROKER_URL is redis://... (CI sets it; see .ci/run).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from emotion.tasks import analyze_image
from tests.worker_tools import child_pids, needs_redis_broker, start_worker, stop_worker, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    needs_redis_broker,
]

# A private queue: no other worker on the same Redis can steal the test's message.
KILL_QUEUE = f"fer-kill-test-{uuid.uuid4().hex[:8]}"
VISIBILITY_TIMEOUT = 3  # seconds before an unacked message of a dead worker is redelivered


def analysis_state(analysis_id: int) -> tuple[str, int]:
    row = ImageAnalysis.objects.filter(pk=analysis_id).values_list("status", "attempts").get()
    return row[0], row[1]


@pytest.mark.celery_worker(queues=("fer", "default", "batch"))
def test_selfie_flow_through_a_real_worker(
    celery_worker_process, consenting_user, fer_model, client_for, upload, face_jpeg
) -> None:
    client = client_for(consenting_user)
    response = client.post("/api/selfies/?wait=10", {"image": upload(face_jpeg)}, format="multipart")
    assert response.status_code in (200, 202), response.content
    analysis_id = response.json()["id"]
    wait_for(
        lambda: ImageAnalysis.objects.filter(pk=analysis_id, status__in=ImageAnalysis.FINAL_STATUSES).exists(),
        60, "the worker to finish the analysis", celery_worker_process.log,
    )  # fmt: skip

    data = client.get(f"/api/analyses/{analysis_id}/").json()
    assert data["status"] == "done", data
    assert data["face_count"] == 1 and len(data["faces"]) == 1 and data["attempts"] == 1
    assert data["timings_ms"]["queue_wait"] is not None and data["timings_ms"]["classify"] is not None
    assert client.get("/api/me/emotions/").json()["count"] == 1
    # The worker deleted the raw selfie from the shared media directory.
    assert not any((Path(settings.MEDIA_ROOT) / "selfies").iterdir())
    log = celery_worker_process.log()
    assert "emotion.tasks.analyze_image" in log and "succeeded" in log


@pytest.mark.celery_worker(queues=(KILL_QUEUE,), env={"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)})
def test_killed_workers_lose_nothing(celery_worker_process, consenting_user, fer_model, face_jpeg) -> None:
    """SIGKILL the pool child, then the whole worker, mid-task: the analysis still ends done, once.

    The task blocks deterministically: its selfie is a named pipe (FIFO), so
    the worker claims the analysis (status ``processing``) and then waits in
    ``open()`` until we decide what happens.
    """
    worker = celery_worker_process
    name = f"selfies/{uuid.uuid4().hex}.jpg"
    fifo = Path(settings.MEDIA_ROOT) / name
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    analysis = ImageAnalysis.objects.create(owner=consenting_user, source=ImageAnalysis.Source.SELFIE, image=name)
    analyze_image.apply_async(args=[analysis.pk], queue=KILL_QUEUE)
    wait_for(lambda: analysis_state(analysis.pk) == ("processing", 1), 60, "the first claim", worker.log)

    # 1. The pool child dies (OOM killer, segfault): reject_on_worker_lost requeues at once.
    children = wait_for(lambda: child_pids(worker.process.pid), 10, "the pool child", worker.log)
    for child in children:
        os.kill(child, signal.SIGKILL)
    wait_for(lambda: analysis_state(analysis.pk) == ("processing", 2), 60, "redelivery to a new child", worker.log)
    assert "WorkerLostError" in worker.log()

    # 2. The whole worker dies: the message stays unacked in Redis until the visibility timeout.
    killed_at = time.monotonic()
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    fifo.unlink()
    fifo.write_bytes(face_jpeg)  # the real selfie takes the pipe's place
    assert analysis_state(analysis.pk) == ("processing", 2)
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 0.5 - (time.monotonic() - killed_at)))

    log_path = worker.log_path.with_name("celery-worker-2.log")
    second = start_worker(worker.env, KILL_QUEUE, log_path)
    try:
        wait_for(
            lambda: analysis_state(analysis.pk)[0] in ImageAnalysis.FINAL_STATUSES,
            90, "the redelivered task to finish", lambda: log_path.read_text(errors="replace"),
        )  # fmt: skip
    finally:
        stop_worker(second)

    analysis.refresh_from_db()
    assert analysis.status == ImageAnalysis.Status.DONE, analysis.error
    assert analysis.attempts == 3 and analysis.face_count == 1
    assert FaceReading.objects.filter(analysis=analysis).count() == 1  # no duplicates
    assert not fifo.exists()  # deleted after the analysis
