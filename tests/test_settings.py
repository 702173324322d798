"""Env-driven settings (checked in clean subprocesses) and ``check --deploy``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

from feedmood.env import env_bool, env_list

PROJECT_DIR = Path(__file__).resolve().parent.parent
DUMP = """
import json, config.settings as s
print(json.dumps({
    "DEBUG": s.DEBUG, "ENGINE": s.DATABASES["default"]["ENGINE"], "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "EAGER": s.CELERY_TASK_ALWAYS_EAGER, "PROPAGATES": s.CELERY_TASK_EAGER_PROPAGATES,
    "BROKER": s.CELERY_BROKER_URL, "BACKEND": s.CELERY_RESULT_BACKEND, "CACHE": s.CACHES["default"]["BACKEND"],
    "MEDIA_ROOT": str(s.MEDIA_ROOT), "STATIC_ROOT": str(s.STATIC_ROOT), "RETAIN": s.FEEDMOOD_RETAIN_SELFIES,
    "MODEL_DIR": str(s.FEEDMOOD_MODEL_DIR), "SSL_REDIRECT": s.SECURE_SSL_REDIRECT, "HOSTS": s.ALLOWED_HOSTS,
    "THROTTLE": s.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "TTA": s.FEEDMOOD_MODEL_TTA,
}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
    return {**keep, "PYTHONPATH": str(PROJECT_DIR), **extra}


def _settings(**env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", DUMP], cwd=PROJECT_DIR, env=_clean_env(**env), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_defaults() -> None:
    s = _settings()
    assert s["DEBUG"] is True
    assert s["ENGINE"] == "django.db.backends.sqlite3" and s["DB_NAME"] == str(PROJECT_DIR / "db.sqlite3")
    assert s["EAGER"] is True and s["PROPAGATES"] is True and s["BACKEND"] is None
    assert s["CACHE"].endswith("LocMemCache")
    assert s["MEDIA_ROOT"] == str(PROJECT_DIR / "media") and s["STATIC_ROOT"] == str(PROJECT_DIR / "staticfiles")
    assert s["RETAIN"] is False and s["MODEL_DIR"] == str(PROJECT_DIR / "ml" / "artifacts" / "ferplus")
    assert s["THROTTLE"] == {"user": "1000/min", "anon": "100/min", "uploads": "60/min", "signup": "20/hour"}
    assert s["TTA"] is None  # each model card decides


def test_model_tta_setting() -> None:
    assert _settings(FEEDMOOD_MODEL_TTA="off")["TTA"] is False
    assert _settings(FEEDMOOD_MODEL_TTA="On")["TTA"] is True
    assert _settings(FEEDMOOD_MODEL_TTA="card")["TTA"] is None
    out = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=PROJECT_DIR,
        env=_clean_env(FEEDMOOD_MODEL_TTA="sometimes"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "FEEDMOOD_MODEL_TTA='sometimes' is not a boolean" in out.stderr


def test_production_like_env() -> None:
    s = _settings(
        DEBUG="0",
        SECRET_KEY=get_random_secret_key(),
        ALLOWED_HOSTS="a.example.com, b.example.com",
        DATABASE_URL="postgres://u:p@db:5432/feedmood",
        REDIS_URL="redis://cache:6379/0",
        FEEDMOOD_RETAIN_SELFIES="yes",
        FEEDMOOD_MODEL_DIR="/models/fer",
        FEEDMOOD_THROTTLE_USER="5/sec",
    )
    assert s["DEBUG"] is False and s["HOSTS"] == ["a.example.com", "b.example.com"]
    assert s["ENGINE"] == "django.db.backends.postgresql" and s["DB_NAME"] == "feedmood"
    assert s["EAGER"] is False and s["BROKER"] == s["BACKEND"] == "redis://cache:6379/0"
    assert s["CACHE"].endswith("RedisCache") and s["SSL_REDIRECT"] is True
    assert s["RETAIN"] is True and s["MODEL_DIR"] == "/models/fer" and s["THROTTLE"]["user"] == "5/sec"


def test_secret_key_required_in_production() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=PROJECT_DIR,
        env=_clean_env(DEBUG="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "SECRET_KEY must be set" in out.stderr


def test_env_helpers(monkeypatch) -> None:
    monkeypatch.setenv("X_BOOL", "Off")
    assert env_bool("X_BOOL", True) is False
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(Exception, match="not a boolean"):
        env_bool("X_BOOL", True)
    monkeypatch.setenv("X_LIST", " a, ,b ")
    assert env_list("X_LIST", []) == ["a", "b"]


@pytest.mark.slow
def test_check_deploy_is_clean() -> None:
    env = _clean_env(
        DEBUG="0",
        SECRET_KEY=get_random_secret_key() + get_random_secret_key(),
        ALLOWED_HOSTS="feedmood.example.com",
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout, out.stdout + out.stderr
