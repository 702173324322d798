"""The compose stack starts in order, checks every long-running service, persists Redis, sets no credentials."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.test_settings import PROJECT_DIR

COMPOSE = PROJECT_DIR / "docker-compose.yml"
APP_SERVICES = ("web", "worker", "batch-worker", "beat")


@pytest.fixture(scope="module")
def stack() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_services_wait_for_a_one_shot_migrate(stack: dict) -> None:
    assert stack["migrate"]["command"] == "python manage.py migrate --noinput"
    assert stack["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        assert stack[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert "migrate" not in str(stack[name]["command"]), name  # nobody else migrates


def test_one_image_built_once(stack: dict) -> None:
    built = [name for name, service in stack.items() if "build" in service]
    assert built == ["migrate"]
    assert {stack[name]["image"] for name in (*APP_SERVICES, "migrate")} == {"feedmood:${FEEDMOOD_TAG:-latest}"}


def test_long_running_services_have_health_checks(stack: dict) -> None:
    assert "/api/health/ready" in " ".join(stack["web"]["healthcheck"]["test"])
    for name in ("worker", "batch-worker"):
        assert "inspect ping" in " ".join(stack[name]["healthcheck"]["test"]), name
    assert "celerybeat.pid" in " ".join(stack["beat"]["healthcheck"]["test"])


def test_credentials_come_from_the_environment_without_defaults(stack: dict) -> None:
    env = stack["postgres"]["environment"]
    assert env["POSTGRES_USER"].startswith("${POSTGRES_USER:?") and env["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?")  # fmt: skip
    assert "${POSTGRES_PASSWORD:?" in stack["web"]["environment"]["DATABASE_URL"]
    assert stack["web"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert stack["flower"]["profiles"] == ["flower"] and "FLOWER_BASIC_AUTH" in " ".join(stack["flower"]["entrypoint"])


def test_redis_persists_with_aof(stack: dict) -> None:
    assert "--appendonly yes" in stack["redis"]["command"]
    assert any(volume.endswith(":/data") for volume in stack["redis"]["volumes"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs the docker-compose client")
def test_compose_config_is_valid_and_demands_secrets() -> None:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    run = lambda **env: subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], cwd=PROJECT_DIR,  # noqa: E731
                                       env={**base, **env}, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run(SECRET_KEY="k", POSTGRES_USER="u", POSTGRES_PASSWORD="p").returncode == 0
    missing = run(SECRET_KEY="k", POSTGRES_USER="u")
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
