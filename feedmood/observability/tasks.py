"""The readiness ping: a worker answers only if it can load the active emotion model."""

from __future__ import annotations

from celery import shared_task

PING_TASK = "feedmood.observability.ping_model"


@shared_task(name=PING_TASK, ignore_result=False, acks_late=False)
def ping_model() -> dict[str, object]:
    """Load (or reuse) the active model in this worker process; returns its name and label count."""
    from feedmood.observability.health import model_loadable

    return model_loadable()
