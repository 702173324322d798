"""Prometheus: /metrics is staff only and exposes FeedMood's series after a real analysis; workers serve theirs."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from django.conf import settings

from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import ImageAnalysis, RescoringJob
from tests.ops_tools import free_port, sample_labels, sample_value
from tests.worker_tools import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client: Any) -> str:
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics_are_not_public(api_client, make_user, client_for) -> None:
    assert api_client.get("/metrics").status_code == 401
    assert client_for(make_user(username="dora")).get("/metrics").status_code == 403
    staff = client_for(make_user(username="ops", is_staff=True))
    assert "django_http_requests_total_by_method" in scrape(staff)


def test_metrics_expose_the_named_series_after_an_analysis(
    make_user, client_for, consenting_user, fer_model, upload, face_jpeg
) -> None:
    staff = client_for(make_user(username="ops", is_staff=True))
    before = scrape(staff)
    carol = client_for(consenting_user)
    response = carol.post("/api/selfies/?wait=10", {"image": upload(face_jpeg)}, format="multipart")
    assert response.status_code in (200, 202) and ImageAnalysis.objects.get().status == "done"
    assert carol.get("/api/feed/?refresh=1").status_code == 200
    RescoringJob.objects.create(model_version=fer_model, status="running", total=10, done=4, failed=1)
    after = scrape(staff)

    def grew(name: str, **labels: str) -> float:
        return sample_value(after, name, **labels) - sample_value(before, name, **labels)

    assert grew("feedmood_emotion_analyses_total", status="done", source="selfie") == 1
    for stage in ("queue_wait", "decode", "detect", "classify", "total"):
        assert grew("feedmood_emotion_stage_seconds_count", stage=stage) == 1, stage
    assert grew("feedmood_model_inference_seconds_count") == 1
    assert grew("feedmood_feed_ranking_seconds_count") >= 1
    job = {"job": str(RescoringJob.objects.get().pk), "model": fer_model.name}
    assert sample_value(after, "feedmood_rescoring_progress_ratio", **job) == pytest.approx(0.5)
    assert sample_value(after, "feedmood_rescoring_analyses", **job, state="left") == 5
    if str(settings.CELERY_BROKER_URL).startswith("redis://"):
        queues = {labels["queue"] for labels in sample_labels(after, "feedmood_celery_queue_depth")}
        assert queues == {"default", "fer", "batch"}


@pytest.mark.slow
def test_a_worker_serves_its_metrics_on_its_own_port(
    request, tmp_path, consenting_user, fer_model, upload, face_jpeg, client_for
) -> None:
    port = free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    request.node.add_marker(pytest.mark.celery_worker(queues=("fer", "default"), env={
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "FEEDMOOD_WORKER_METRICS_PORT": str(port)}))  # fmt: skip
    worker = request.getfixturevalue("celery_worker_process")
    response = client_for(consenting_user).post("/api/selfies/", {"image": upload(face_jpeg)}, format="multipart")
    assert response.status_code == 202
    wait_for(lambda: ImageAnalysis.objects.filter(status="done").exists(), 60, "the worker's analysis", worker.log)

    # The outcome is counted by the analysis_finished receiver, which runs after the row's commit: the row can be
    # seen done a moment before the counter moves.
    def counted_scrape() -> str | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return text if counted(text) else None

    def counted(text: str) -> float:
        return sample_value(text, "feedmood_emotion_analyses_total", status="done", source="selfie")

    text = wait_for(counted_scrape, 10, "the worker's counter", worker.log)
    assert counted(text) == 1
    assert sample_value(text, "feedmood_model_inference_seconds_count") == 1
