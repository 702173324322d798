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


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with only ``env`` (plus PATH and the project) set."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=_clean_env(**env), capture_output=True, text=True, timeout=60
    )


def _settings(**env: str) -> dict:
    out = _python(DUMP, **env)
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
    out = _python("import config.settings", FEEDMOOD_MODEL_TTA="sometimes")
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
    out = _python("import config.settings", DEBUG="0")
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


# --- Every setting is declared in config/settings.py ----------------------------------------------------------

APP_PACKAGES = ("feedmood", "emotion", "recommender", "dashboard", "config")


def _app_sources() -> list[Path]:
    return sorted(
        p for package in APP_PACKAGES for p in (PROJECT_DIR / package).rglob("*.py") if "migrations" not in p.parts
    )


def settings_reads(path: Path) -> tuple[set[str], list[str]]:
    """``(names read as settings.NAME, getattr(settings, ...) calls with a default)`` in ``path``."""
    import ast

    names: set[str] = set()
    defaults: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
            if node.attr.isupper():
                names.add(node.attr)
        elif (  # recommender.conf.get("NAME") reads settings.RECOMMENDER_NAME
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) == ("conf", "get")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(f"RECOMMENDER_{node.args[0].value}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "settings"
            and len(node.args) > 2
        ):
            defaults.append(f"{path.name}:{node.lineno}")
    return names, defaults


def test_settings_are_declared_and_read_without_defaults() -> None:
    """Apps read ``settings.X`` for names config/settings.py declares; no ``getattr(settings, X, default)``."""
    from django.conf import settings

    undeclared: list[str] = []
    with_default: list[str] = []
    for path in _app_sources():
        names, defaults = settings_reads(path)
        undeclared += [f"{path.relative_to(PROJECT_DIR)}: {n}" for n in sorted(names) if not hasattr(settings, n)]
        with_default += defaults
    assert not with_default, f"declare these settings in config/settings.py and read settings.X: {with_default}"
    assert not undeclared, f"read but not declared in config/settings.py: {undeclared}"


def test_settings_reader_sees_reads_and_defaults(tmp_path: Path) -> None:
    """The scan above is only as good as its reader."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from django.conf import settings\nA = settings.NOT_DECLARED_X\nB = getattr(settings, 'Y', 1)\n"
        "C = conf.get('TUNABLE')\n"
    )
    names, defaults = settings_reads(probe)
    assert names == {"NOT_DECLARED_X", "RECOMMENDER_TUNABLE"} and defaults == ["probe.py:3"]


def test_recommender_tunables_come_from_the_environment() -> None:
    code = "import json, config.settings as s; print(json.dumps([s.RECOMMENDER_PAGE_SIZE, s.RECOMMENDER_MOOD_STEP]))"
    run = _python(code, RECOMMENDER_PAGE_SIZE="7", RECOMMENDER_MOOD_STEP="0.5")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [7, 0.5]
