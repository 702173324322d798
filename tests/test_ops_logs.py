"""Logs: JSON lines that parse and carry the request id into Celery tasks, one line per event, no tokens."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import ImageAnalysis
from feedmood.observability.logs import ContextFilter, logging_config
from tests.test_settings import PROJECT_DIR, _clean_env
from tests.worker_tools import wait_for

REQUEST_ID = "req-ops-test-0001"
TOKEN = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Records of the ``django.request`` and ``feedmood`` loggers, formatted as production does (JSON)."""
    import logging.config

    config = logging_config(log_format="json", level="INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.config.DictConfigurator(config).configure_custom(dict(config["formatters"]["main"])))
    handler.addFilter(ContextFilter())
    loggers = [logging.getLogger("django.request"), logging.getLogger("feedmood.ops_test")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield stream
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db
def test_request_log_lines_are_json_with_the_request_id(api_client, json_lines: io.StringIO) -> None:
    response = api_client.get(f"/api/posts/999999/?token={TOKEN}", HTTP_X_REQUEST_ID=REQUEST_ID,
                              HTTP_AUTHORIZATION=f"Token {TOKEN}")  # fmt: skip
    assert response.status_code in (401, 404) and response["X-Request-ID"] == REQUEST_ID
    lines = parsed(json_lines)
    assert lines and all(line["request_id"] == REQUEST_ID for line in lines)
    assert {"level", "logger", "message", "asctime"} <= set(lines[0])
    assert "/api/posts/999999/" in lines[0]["request"]  # Django's extra field, a string now
    assert TOKEN not in json_lines.getvalue()  # not even in the query string of that field


@pytest.mark.django_db
def test_a_bad_request_id_is_replaced_not_echoed(api_client) -> None:
    response = api_client.get("/api/health/live", HTTP_X_REQUEST_ID="<script>")
    assert response["X-Request-ID"] != "<script>" and len(response["X-Request-ID"]) == 32


def test_tokens_in_messages_are_masked(json_lines: io.StringIO) -> None:
    logging.getLogger("feedmood.ops_test").warning("client sent Authorization: Token %s", TOKEN)
    line = parsed(json_lines)[0]
    assert TOKEN not in json.dumps(line) and line["message"].endswith("Token [redacted]")


@pytest.mark.slow
def test_django_request_warnings_are_logged_once() -> None:
    script = "import django; django.setup()\nfrom django.test import Client\nClient().get('/api/no-such-endpoint/')\n"
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
                         env=_clean_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="1"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("Not Found: /api/no-such-endpoint/") == 1, out.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.celery_worker(queues=("fer", "default"), env={"LOG_FORMAT": "json"})
def test_worker_logs_are_json_and_carry_the_request_id(
    celery_worker_process, consenting_user, fer_model, upload, face_jpeg, client_for
) -> None:
    response = client_for(consenting_user).post("/api/selfies/", {"image": upload(face_jpeg)}, format="multipart",
                                                HTTP_X_REQUEST_ID=REQUEST_ID)  # fmt: skip
    assert response.status_code == 202 and response["X-Request-ID"] == REQUEST_ID
    wait_for(lambda: ImageAnalysis.objects.filter(status="done").exists(), 60, "the analysis",
             celery_worker_process.log)  # fmt: skip
    wait_for(lambda: any("analyze_image[" in line and "succeeded" in line for line in celery_worker_process.log()
                         .splitlines()), 10, "the task's log line", celery_worker_process.log)  # fmt: skip

    log = celery_worker_process.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]  # the banner is plain text
    analysis_lines = [r for r in records if r.get("task_name") == "emotion.tasks.analyze_image"]
    assert analysis_lines and all(r["request_id"] == REQUEST_ID for r in analysis_lines), analysis_lines
    assert any("succeeded" in r["message"] for r in analysis_lines)
    assert "probabilities" not in log and "happiness" not in log
