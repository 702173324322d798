"""Logging configuration: one JSON object per line in production, plain lines in development.

Every record carries ``request_id`` (and ``task_id``/``task_name`` inside Celery tasks). Messages and
arguments are passed through :func:`feedmood.observability.redaction.redact_text`, so an API token that
slips into a message is masked. Django's own ``django`` handlers are removed: records reach the root
handler once (Django's default config would print each ``django.request`` warning twice in DEBUG).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from feedmood.observability.redaction import redact_text, scrub
from feedmood.observability.request_id import current_request_id

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(task_name)s"
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class ContextFilter(logging.Filter):
    """Add request and task ids to each record and mask credentials in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        task_id = task_name = None
        try:
            from celery import current_task

            if current_task and current_task.request.id:
                task_id, task_name = current_task.request.id, current_task.name
        except Exception:
            pass
        record.task_id, record.task_name = task_id, task_name
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines whose extra fields are masked too (e.g. Django's ``request`` repr holds the query string)."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        plain = {k: v if isinstance(v, (str, int, float, bool, type(None), dict, list)) else str(v)
                 for k, v in log_data.items()}  # fmt: skip
        return scrub(plain)


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """A ``LOGGING`` dict: ``log_format`` is ``json`` or ``human``."""
    formatter = (
        {
            "()": "feedmood.observability.logs.RedactingJsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger"},
        }
        if log_format == "json"
        else {"format": HUMAN_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "feedmood.observability.logs.ContextFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Replace Django's default handlers (console in DEBUG, mail_admins): records propagate to root once.
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.server": {"handlers": [], "level": level, "propagate": True},
            "django.db.backends": {"level": "INFO"},
            "celery": {"level": level},
        },
    }
