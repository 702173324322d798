"""Helpers to run work after the current transaction commits.

Use ``enqueue_on_commit(task, *args, **kwargs)`` instead of ``task.delay()`` inside
services so a worker never sees rows that are not committed yet (or rolled back).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def _robust() -> bool:
    # A failing callback (Redis down, a broken receiver) must not turn an already
    # committed request into a 500: it is logged instead.  Tests set
    # FEEDMOOD_ON_COMMIT_PROPAGATE=True so such bugs fail loudly there.
    return not settings.FEEDMOOD_ON_COMMIT_PROPAGATE


def run_on_commit(fn: Callable[[], Any], *, using: str | None = None) -> None:
    """``transaction.on_commit`` with FeedMood's robustness policy."""
    transaction.on_commit(fn, using=using, robust=_robust())


def apply_async_on_commit(
    task: Task,
    *,
    args: tuple | list = (),
    kwargs: dict[str, Any] | None = None,
    using: str | None = None,
    **options: Any,
) -> None:
    """Call ``task.apply_async(args, kwargs, **options)`` once the transaction commits."""
    args, kwargs = tuple(args), dict(kwargs or {})
    run_on_commit(lambda: task.apply_async(args=args, kwargs=kwargs, **options), using=using)


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Enqueue ``task(*args, **kwargs)`` after commit (like ``delay`` but transaction-safe)."""
    apply_async_on_commit(task, args=args, kwargs=kwargs)
