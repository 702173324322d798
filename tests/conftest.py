"""Shared pytest fixtures for FeedMood.

Fixtures other apps are expected to reuse:

- ``api_client`` / ``user`` / ``auth_client`` / ``make_user`` / ``client_for``: DRF clients.
- ``image_bytes``: factory building real JPEG/PNG/WebP/GIF bytes with Pillow.
- ``celery_worker_process``: a real ``celery worker`` subprocess bound to the
  pytest-django test database (skips unless ``CELERY_BROKER_URL`` is Redis and
  answers).  Configure with ``@pytest.mark.celery_worker(queues=("fer",), env={...})``
  or indirect parametrisation (``request.param`` dict with the same keys).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from PIL import Image
from rest_framework.test import APIClient

from tests.factories import UserFactory

PROJECT_DIR = Path(__file__).resolve().parent.parent


# --- Global test settings -------------------------------------------------------------


@pytest.fixture(autouse=True)
def _test_settings(settings: Any, tmp_path: Path) -> None:
    """Fast hashing, a private media dir, a fresh cache and loud on-commit errors for every test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FEEDMOOD_ON_COMMIT_PROPAGATE = True  # on-commit errors fail tests instead of being logged
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture(autouse=True)
def _celery_eager(settings: Any) -> Iterator[None]:
    """Tasks run in-process in tests, whatever the env says; ``celery_worker_process`` opts out."""
    from config.celery import app as celery_app

    saved = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


# --- API clients ------------------------------------------------------------------------


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    """``make_user(username=..., password=..., **profile_fields)``."""

    def _make(**kwargs: Any) -> Any:
        profile_fields = {
            k: kwargs.pop(k)
            for k in list(kwargs)
            if k in {"display_name", "emotion_consent", "mood_policy", "mood_strength", "mood_half_life_hours"}
        }
        user = UserFactory(**kwargs)
        if profile_fields:
            for name, value in profile_fields.items():
                setattr(user.profile, name, value)
            user.profile.save()
        return user

    return _make


@pytest.fixture
def user(make_user: Callable[..., Any]) -> Any:
    return make_user(username="alice", display_name="Alice")


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """Build an APIClient authenticated with the user's token."""
    from feedmood.accounts import token_issue

    def _client(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_issue(user=user)}")
        return client

    return _client


@pytest.fixture
def auth_client(user: Any, client_for: Callable[[Any], APIClient]) -> APIClient:
    return client_for(user)


# --- Images ---------------------------------------------------------------------------------


def make_image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (16, 12), mode: str = "RGB", color: Any = None, **save: Any
) -> bytes:
    """Real image bytes generated with Pillow (no files, no downloads)."""
    if color is None:
        color = {
            "RGB": (200, 30, 60),
            "RGBA": (200, 30, 60, 128),
            "L": 128,
            "LA": (128, 200),
            "CMYK": (0, 255, 255, 0),
        }.get(mode, 1)
    img = Image.new(mode, size, color)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


@pytest.fixture
def image_bytes() -> Callable[..., bytes]:
    return make_image_bytes


# --- Real Celery worker -------------------------------------------------------------------------


@dataclass
class CeleryWorkerProcess:
    """Handle on a running ``celery worker`` subprocess."""

    process: subprocess.Popen
    hostname: str
    queues: tuple[str, ...]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    db_shared: bool = True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping())
    except Exception:
        return False


def test_database_url() -> tuple[str | None, bool]:
    """URL of the database the tests run on, and whether another process can share it."""
    from django.db import connection

    sd = connection.settings_dict
    name = str(sd["NAME"])
    if connection.vendor == "postgresql":
        auth = quote(sd.get("USER") or "", safe="")
        if sd.get("PASSWORD"):
            auth += ":" + quote(sd["PASSWORD"], safe="")
        host = sd.get("HOST") or "localhost"
        port = f":{sd['PORT']}" if sd.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(name, safe='')}", True
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            return None, False
        return f"sqlite:///{name}", True
    return None, False


test_database_url.__test__ = False  # not a test


@pytest.fixture
def celery_worker_process(
    request: pytest.FixtureRequest, transactional_db: None, settings: Any, tmp_path: Path
) -> Iterator[CeleryWorkerProcess]:
    """Start a real Celery worker against Redis and the test database; stop it afterwards.

    Tests using it run with committed transactions (``transactional_db``) so the
    worker sees their rows.  Results are read from the Redis result backend.
    """
    opts: dict[str, Any] = {
        "queues": ("default", "fer", "batch"),
        "concurrency": 1,
        "pool": "prefork",
        "env": {},
        "ready_timeout": 60,
        "loglevel": "INFO",
    }
    marker = request.node.get_closest_marker("celery_worker")
    if marker is not None:
        opts.update(marker.kwargs)
    if getattr(request, "param", None):
        opts.update(request.param)

    broker = str(django_settings.CELERY_BROKER_URL or "")
    if not broker.startswith(("redis://", "rediss://")):
        pytest.skip("celery worker tests need CELERY_BROKER_URL=redis://...")
    if not _redis_answers(broker):
        pytest.skip(f"Redis at {broker} does not answer")
    if not django_settings.CELERY_RESULT_BACKEND:
        pytest.skip("celery worker tests need a result backend (CELERY_RESULT_BACKEND or a redis broker)")

    from config.celery import app as celery_app

    queues = tuple(opts["queues"])
    hostname = f"pytest-{uuid.uuid4().hex[:8]}@%h"
    db_url, db_shared = test_database_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=str(django_settings.CELERY_RESULT_BACKEND),
        CELERY_TASK_ALWAYS_EAGER="0",
        MEDIA_ROOT=str(django_settings.MEDIA_ROOT),
        CONN_MAX_AGE="0",
    )
    if db_url:
        env["DATABASE_URL"] = db_url
    env.update({k: str(v) for k, v in opts["env"].items()})

    log_path = tmp_path / "celery-worker.log"
    cmd = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "-Q", ",".join(queues), "-c", str(opts["concurrency"]), f"--pool={opts['pool']}",
        "-n", hostname, f"--loglevel={opts['loglevel']}", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            cmd, cwd=PROJECT_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = CeleryWorkerProcess(process, hostname, queues, log_path, env, db_shared)

    celery_app.conf.task_always_eager = False  # restored by the autouse _celery_eager fixture
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        deadline = time.monotonic() + opts["ready_timeout"]
        while " ready." not in worker.log():
            if process.poll() is not None:
                pytest.fail(f"celery worker exited with {process.returncode}:\n{worker.log()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready after {opts['ready_timeout']}s:\n{worker.log()[-4000:]}")
            time.sleep(0.2)
        yield worker
    finally:
        _stop(process)


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Warm shutdown (SIGTERM), then kill the whole process group if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
