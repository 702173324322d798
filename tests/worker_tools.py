"""Helpers shared by the tests that drive real Celery worker processes."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str, poll: float = 0.1) -> Any:
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
