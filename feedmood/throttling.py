"""Throttles whose rates are read from settings at request time (overridable in tests)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import permissions, throttling
from rest_framework.settings import api_settings


class _SettingsRateMixin:
    scope: str

    def get_rate(self) -> str | None:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}") from None


class UserThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    """Per authenticated user (``user`` rate)."""


class AnonThrottle(_SettingsRateMixin, throttling.AnonRateThrottle):
    """Per client IP for anonymous requests (``anon`` rate)."""


class UploadThrottle(_SettingsRateMixin, throttling.UserRateThrottle):
    """Per user for content-creating requests (``uploads`` rate); reads are not counted."""

    scope = "uploads"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)
