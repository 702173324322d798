"""The Prometheus scrape endpoint: staff only (a staff user's API token or admin session)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAdminUser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from feedmood.observability.metrics import render_latest


class _FirstRenderer(BaseContentNegotiation):
    """Scrapers send OpenMetrics ``Accept`` headers: always answer in the text format (errors as JSON)."""

    def select_parser(self, request: Request, parsers: list) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class _ErrorAsJsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return JSONRenderer().render(data)


class MetricsApi(APIView):
    """Prometheus text exposition of the web processes' metrics, queue depths and rescoring progress."""

    permission_classes = [IsAdminUser]
    throttle_classes: list = []
    renderer_classes = [_ErrorAsJsonRenderer]
    content_negotiation_class = _FirstRenderer
    schema = None  # operators' endpoint: not part of the public API schema

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(render_latest(), content_type=CONTENT_TYPE_LATEST)
