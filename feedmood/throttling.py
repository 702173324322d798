"""Throttles whose rates are read from settings at request time (overridable in tests).

Clients are identified by DRF's ``get_ident`` with ``NUM_PROXIES`` set (``FEEDMOOD_NUM_PROXIES``,
default 0): a client-sent ``X-Forwarded-For`` cannot pick its own throttle bucket.  Every throttle
records its state for the ``RateLimit-*`` response headers (``feedmood.middleware``) and, when it
refuses, the ``Refusal`` that ``feedmood.throttle_box`` keeps until the throttle frees a request.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework import authentication, permissions, throttling
from rest_framework.settings import api_settings

#: Attribute of the Django ``HttpRequest`` holding the tightest ``RateLimitState`` of the request.
RATE_LIMIT_ATTRIBUTE = "feedmood_rate_limit"
#: Attribute of the Django ``HttpRequest`` holding the ``Refusal`` of its throttles that ends last.
REFUSAL_ATTRIBUTE = "feedmood_throttle_refusal"


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


@dataclass(frozen=True)
class Refusal:
    """A throttle refuses while its oldest request (``oldest``, throttle clock) is within ``duration``."""

    oldest: float
    duration: float
    limit: int

    @property
    def ends(self) -> float:
        return self.oldest + self.duration

    def refuses(self, now: float) -> bool:
        """The throttle's own test: DRF drops history entries ``<= now - duration``."""
        return self.oldest > now - self.duration


def credential(request: HttpRequest) -> tuple[str, str]:
    """What names the client before authentication, as ``(kind, value)``: a hash of the ``Authorization``
    header, else of the session cookie, else the client address as the throttles see it."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header:
        return "authorization", hashlib.sha256(header.encode("utf-8", "surrogateescape")).hexdigest()
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if cookie:
        return "session", hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()
    return "address", str(client_ident(request))


def _authenticated_by(request: Any, kind: str) -> bool:
    """Whether the DRF ``request`` was authenticated by its credential of ``kind`` (anonymous for ``address``)."""
    authenticator = request.successful_authenticator
    if kind == "authorization":
        return isinstance(authenticator, authentication.TokenAuthentication)
    if kind == "session":
        return isinstance(authenticator, authentication.SessionAuthentication)
    return authenticator is None


def note_refusal(request: Any, refusal: Refusal) -> None:
    """Keep on the Django request the refusal that ends last, if the request's credential is what the client
    authenticated with (a header or cookie that does not authenticate names nobody: it is never boxed)."""
    django_request = getattr(request, "_request", request)
    current: Refusal | None = getattr(django_request, REFUSAL_ATTRIBUTE, None)
    if current is not None and current.ends >= refusal.ends:
        return
    if _authenticated_by(request, credential(django_request)[0]):
        setattr(django_request, REFUSAL_ATTRIBUTE, refusal)


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
            if (
                not allowed and self.history and len(self.history) == self.num_requests
            ):  # free exactly when the oldest leaves
                note_refusal(request, Refusal(self.history[-1], self.duration, self.num_requests))
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
