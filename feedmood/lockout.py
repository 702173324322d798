"""Failed-login lockout for every password login (API token endpoint and admin login alike).

Each failed ``authenticate()`` (Django's ``user_login_failed`` signal) counts against the
username and against the client IP in the cache (Redis in production, shared by every
process).  After ``FEEDMOOD_LOGIN_MAX_FAILURES`` failures for a username, or
``FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP`` from one client, further attempts are refused
without checking the password until ``FEEDMOOD_LOGIN_LOCKOUT_SECONDS`` after the first
failure of the window.  A refused attempt checks no password and counts against nothing, so a flood of
attempts at a locked account costs one cache round trip each.  A successful login clears the username's count.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from feedmood.cache import counter_add
from feedmood.throttling import client_ident


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"login-failures:{kind}:{digest}"


def _subjects(username: str | None, request: Any) -> list[tuple[str, int]]:
    """Cache keys and their failure limits for this attempt."""
    subjects = []
    if username:
        subjects.append((_key("user", username), int(settings.FEEDMOOD_LOGIN_MAX_FAILURES)))
    if request is not None:
        subjects.append((_key("ip", client_ident(request) or ""), int(settings.FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP)))
    return subjects


#: Set on a request whose login the lockout refused: its ``user_login_failed`` is not counted again.
_REFUSED = "_feedmood_login_locked_out"


def login_lockout_seconds(*, username: str | None, request: Any) -> int:
    """Seconds until this username/client may try a password again (0: not locked); one cache round trip."""
    subjects = _subjects(username, request)
    stored = cache.get_many([f"{key}:{part}" for key, _ in subjects for part in ("count", "start")])
    now = time.time()
    remaining = 0
    for key, limit in subjects:
        if (stored.get(f"{key}:count") or 0) >= limit:
            started = stored.get(f"{key}:start") or now
            remaining = max(remaining, int(started + settings.FEEDMOOD_LOGIN_LOCKOUT_SECONDS - now) + 1)
    return remaining


def login_failure_record(*, username: str | None, request: Any) -> None:
    """Count one failed login against the username and the client (atomic increments: parallel guesses all count)."""
    period = int(settings.FEEDMOOD_LOGIN_LOCKOUT_SECONDS)
    for key, _ in _subjects(username, request):
        cache.add(f"{key}:start", time.time(), timeout=period)  # the window opens at the first failure
        counter_add(cache, f"{key}:count", 1, period)


def login_success_record(*, username: str | None) -> None:
    if username:
        key = _key("user", username)
        cache.delete_many([f"{key}:count", f"{key}:start"])


class LockoutModelBackend(ModelBackend):
    """Django's model backend that refuses locked-out usernames and clients before checking the password."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any):
        if username is None:
            username = kwargs.get(self._username_field())
        if login_lockout_seconds(username=username, request=request):
            if request is not None:
                setattr(request, _REFUSED, True)  # Django still sends user_login_failed: not a new failure
            raise PermissionDenied("Too many failed logins.")  # authenticate() stops here: no password check
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


@receiver(user_login_failed, dispatch_uid="feedmood.lockout.failed")
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if getattr(request, _REFUSED, False):
        return
    login_failure_record(username=credentials.get("username"), request=request)


@receiver(user_logged_in, dispatch_uid="feedmood.lockout.succeeded")
def _on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    login_success_record(username=user.get_username())
