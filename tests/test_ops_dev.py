"""Dev traps: ``make worker`` refuses to start without a broker that answers, with a clear message."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.ops_tools import free_port
from tests.test_settings import PROJECT_DIR

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("make") is None, reason="needs make")]


def make(target: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(["make", "-s", target], cwd=PROJECT_DIR, env={**base, **env}, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


@pytest.mark.parametrize("target", ["worker", "beat"])
def test_refuses_without_a_broker(target: str) -> None:
    for env in ({}, {"CELERY_BROKER_URL": "memory://"}):
        out = make(target, **env)
        assert out.returncode == 2 and "Set CELERY_BROKER_URL (or REDIS_URL)" in out.stderr, out


def test_refuses_when_the_broker_does_not_answer() -> None:
    port = free_port()
    out = make("worker", CELERY_BROKER_URL=f"redis://:s3cret@127.0.0.1:{port}/0")
    assert out.returncode == 2 and f"127.0.0.1:{port} does not answer" in out.stderr, out
    assert "s3cret" not in out.stderr
