"""Request hardening that must run before any view reads the request.

- ``RequestLimitsMiddleware``: a body whose ``Content-Length`` is above
  ``FEEDMOOD_MAX_REQUEST_BYTES`` is refused with 413 before a byte of it is read
  (so nothing is spooled to memory or a temp file), and a NUL character in the
  URL path is a 400 (PostgreSQL cannot compare text with NUL characters).
- ``RateLimitHeadersMiddleware``: adds ``RateLimit-Limit``, ``RateLimit-Remaining``
  and ``RateLimit-Reset`` to responses of throttled endpoints (the tightest limit
  that applied, recorded by ``feedmood.throttling``).
- ``ThrottleBoxMiddleware``: answers 429 before authentication to a client a throttle
  refused on the same view and method until that throttle frees a request
  (``feedmood.throttle_box``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from feedmood import throttle_box
from feedmood.throttling import RATE_LIMIT_ATTRIBUTE, RateLimitState


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = self.refusal(request)
        return refused if refused is not None else self.get_response(request)

    @staticmethod
    def refusal(request: HttpRequest) -> HttpResponse | None:
        """The 4xx answer for a request that must not reach a view, or ``None``."""
        if "\x00" in request.path_info:
            return JsonResponse({"detail": "The URL contains a NUL character."}, status=400)
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        if length < 0:
            return JsonResponse({"detail": "Content-Length is negative."}, status=400)
        limit = int(settings.FEEDMOOD_MAX_REQUEST_BYTES)
        if length > limit:
            return JsonResponse(
                {"detail": f"Request body too large ({length} bytes; the limit is {limit})."}, status=413
            )
        return None


class RateLimitHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state: RateLimitState | None = getattr(request, RATE_LIMIT_ATTRIBUTE, None)
        if state is not None:
            response["RateLimit-Limit"] = str(state.limit)
            response["RateLimit-Remaining"] = str(state.remaining)
            response["RateLimit-Reset"] = str(state.reset)
        return response


class ThrottleBoxMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        throttle_box.remember(request, response.status_code)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        return throttle_box.answer(request, view_func)
