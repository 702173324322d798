"""Helpers shared by the tests that drive real Celery worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

PROJECT_DIR = Path(__file__).resolve().parents[1]

#: Skip tests that drive real worker processes unless the broker is Redis (CI sets it, see .ci/run).
needs_redis_broker = pytest.mark.skipif(
    not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")),
    reason="needs CELERY_BROKER_URL=redis://... (see .ci/run)",
)


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str, poll: float = 0.1
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test with the worker log on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{log()[-4000:]}")


def child_pids(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (a Celery worker's pool children), read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def start_worker(
    env: dict[str, str],
    queues: str,
    log_path: Path,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    beat: bool = False,
) -> subprocess.Popen:
    """Start `celery worker` on `queues` (comma-separated) in its own session and wait until it is ready.

    ``beat=True`` embeds beat (``-B``): the periodic housekeeping runs as in production.
    """
    cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-c", str(concurrency),
           "--pool=prefork", "-n", f"pytest-{uuid.uuid4().hex[:8]}@%h", "--loglevel=INFO",
           "--without-gossip", "--without-mingle", "--prefetch-multiplier=1", *(["-B"] if beat else [])]  # fmt: skip
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env={**env, **(extra_env or {})}, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    wait_for(lambda: " ready." in log_path.read_text(errors="replace") or proc.poll() is not None, 60,
             "worker ready", lambda: log_path.read_text(errors="replace"))  # fmt: skip
    assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
    return proc


def stop_worker(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a worker started by :func:`start_worker` (SIGKILL takes its whole process group)."""
    if proc.poll() is not None:
        return
    try:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(sig)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
