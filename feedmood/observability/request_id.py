"""A request id per HTTP request, sent back as ``X-Request-ID`` and carried into the Celery tasks it queues.

The id comes from the client's (or proxy's) ``X-Request-ID`` when it looks like one, else a new uuid4.
It lives in a context variable that the log filter reads, and rides along in a task message header.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
TASK_HEADER = "feedmood_request_id"
_VALID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

current_request_id: ContextVar[str | None] = ContextVar("feedmood_request_id", default=None)


def request_id_from(header_value: str | None) -> str:
    """The client's id when it is 8-64 safe characters, else a fresh one (never echo arbitrary input)."""
    if header_value and _VALID.match(header_value):
        return header_value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Set the request id for the duration of the request and echo it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Kept until the response is closed (``clear_after_response``): Django logs 4xx/5xx after the middleware.
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def clear_after_response(**kwargs: Any) -> None:
    """``request_finished``: the thread's next log lines belong to no request."""
    current_request_id.set(None)


# --- Celery: publish the id with each task, restore it while the task runs ----------------------


def add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: stamp the current request id on the outgoing message."""
    request_id = current_request_id.get()
    if request_id and headers is not None:
        headers[TASK_HEADER] = request_id


def _task_request_id(task: Any) -> str | None:
    request = getattr(task, "request", None)
    value = getattr(request, TASK_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    return value if isinstance(value, str) and _VALID.match(value) else None


def restore_request_id(task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: the publishing request's id becomes this task's (eager tasks keep the caller's)."""
    request_id = _task_request_id(task)
    if request_id:
        task.request.feedmood_request_token = current_request_id.set(request_id)


def clear_request_id(task: Any = None, **kwargs: Any) -> None:
    """``task_postrun``: forget the task's id so the next task in this process starts clean."""
    token = getattr(getattr(task, "request", None), "feedmood_request_token", None)
    if token is not None:
        try:
            current_request_id.reset(token)
        except ValueError:  # set in another context: just clear it
            current_request_id.set(None)
        task.request.feedmood_request_token = None


def connect_celery_signals() -> None:
    """Wire the handlers above (idempotent; called when the Celery app is created)."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(add_request_id_header, dispatch_uid="feedmood.request_id.publish", weak=False)
    task_prerun.connect(restore_request_id, dispatch_uid="feedmood.request_id.prerun", weak=False)
    task_postrun.connect(clear_request_id, dispatch_uid="feedmood.request_id.postrun", weak=False)
