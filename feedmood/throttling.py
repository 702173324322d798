"""Throttles whose rates are read from settings at request time (overridable in tests).

Clients are identified by DRF's ``get_ident`` with ``NUM_PROXIES`` set (``FEEDMOOD_NUM_PROXIES``,
default 0): a client-sent ``X-Forwarded-For`` cannot pick its own throttle bucket.  Every throttle
records its state for the ``RateLimit-*`` response headers (``feedmood.middleware``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import permissions, throttling
from rest_framework.settings import api_settings

#: Attribute of the Django ``HttpRequest`` holding the tightest ``RateLimitState`` of the request.
RATE_LIMIT_ATTRIBUTE = "feedmood_rate_limit"


@dataclass(frozen=True)
class RateLimitState:
    """One throttle's window after this request: requests allowed, left, and seconds until the window frees up."""

    limit: int
    remaining: int
    reset: int


def record_rate_limit(request: Any, state: RateLimitState) -> None:
    """Keep the state with the fewest requests left on the underlying Django request."""
    django_request = getattr(request, "_request", request)
    current = getattr(django_request, RATE_LIMIT_ATTRIBUTE, None)
    if current is None or (state.remaining, -state.reset) < (current.remaining, -current.reset):
        setattr(django_request, RATE_LIMIT_ATTRIBUTE, state)


class _SettingsRateMixin:
    scope: str

    def get_rate(self) -> str | None:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}") from None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.history = None
        allowed = super().allow_request(request, view)  # type: ignore[misc]
        if self.history is not None:  # the throttle applied (it had a key and a rate)
            oldest_age = self.now - self.history[-1] if self.history else 0.0
            record_rate_limit(request, RateLimitState(
                limit=self.num_requests,
                remaining=max(0, self.num_requests - len(self.history)),
                reset=max(0, math.ceil(self.duration - oldest_age)),
            ))  # fmt: skip
        return allowed


class UserThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    """Per authenticated user (``user`` rate)."""


class AnonThrottle(_SettingsRateMixin, throttling.AnonRateThrottle):
    """Per client IP for anonymous requests (``anon`` rate)."""


class SignupThrottle(_SettingsRateMixin, throttling.AnonRateThrottle):
    """Per client IP for account creation (``signup`` rate), on top of the ``anon`` rate; no rate set: no limit."""

    scope = "signup"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UploadThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    """Per user for content-creating requests (``uploads`` rate); reads are not counted."""

    scope = "uploads"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


def client_ident(request: Any) -> str:
    """The client's address as the throttles see it (honours ``NUM_PROXIES``)."""
    return throttling.BaseThrottle().get_ident(request)
