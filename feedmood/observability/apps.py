"""Django app that wires observability into the project when it starts."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "feedmood.observability"
    label = "observability"
    verbose_name = "FeedMood observability"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from feedmood.observability import metrics, request_id

        request_id.connect_celery_signals()
        request_finished.connect(request_id.clear_after_response, dispatch_uid="observability.clear_request_id")
        if find_spec("emotion.signals") is not None:
            from emotion.signals import analysis_finished

            analysis_finished.connect(metrics.record_analysis, dispatch_uid="observability.record_analysis")
