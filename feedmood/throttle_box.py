"""The refusal box: a client a throttle has refused is answered 429 at once until its wait ends.

Without it every refused request pays the whole stack to be refused again (session, DRF request,
token authentication = a database query, a Redis round trip per throttle). When a
``feedmood.throttling`` throttle refuses a request, the pair (credential, view + method) is kept
in this process until the moment that throttle frees a request (its oldest entry leaves the
window), and ``feedmood.middleware.ThrottleBoxMiddleware`` answers that pair's next requests with
the throttle's own 429 (message, ``Retry-After``, ``RateLimit-*``) before authentication.

The credential is what names the client before authentication: a hash of the ``Authorization``
header, else of the session cookie, else the client address as the throttles see it
(``NUM_PROXIES``). A refusal is boxed only when that credential is what the request was
authenticated with (or, for the address, when it was anonymous): a header or cookie that does not
authenticate never gets an entry, so no client can get another one refused. The box holds at most
``FEEDMOOD_REFUSAL_BOX_SIZE`` pairs (least recently used leave first; 0 turns it off) and is per
process: each server process lets one request through per freed slot and boxes the rest.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, throttling

from feedmood.throttling import REFUSAL_ATTRIBUTE, RateLimitState, Refusal, credential, record_rate_limit

#: Attribute of the Django request: its box key (credential, view, method), set before the view.
KEY_ATTRIBUTE = "feedmood_throttle_box_key"


def clock() -> float:
    """The throttles' clock (``SimpleRateThrottle.timer``), so the box ends exactly when they free a request."""
    return float(throttling.SimpleRateThrottle.timer())


class RefusalBox:
    """A bounded, thread-safe LRU map of box keys to refusals; expired entries are dropped when met."""

    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, Refusal] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: Hashable, refusal: Refusal) -> None:
        size = self._size()
        if size <= 0:
            return
        with self._lock:
            self._entries[key] = refusal
            self._entries.move_to_end(key)
            while len(self._entries) > size:
                self._entries.popitem(last=False)

    def get(self, key: Hashable, now: float) -> Refusal | None:
        """The refusal still in force for ``key`` at ``now``, or None."""
        if not self._entries:
            return None
        with self._lock:
            refusal = self._entries.get(key)
            if refusal is None:
                return None
            if not refusal.refuses(now):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return refusal

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


box = RefusalBox(lambda: int(settings.FEEDMOOD_REFUSAL_BOX_SIZE))


@receiver(setting_changed)
def _clear_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    """New rates, caches or box size: what the box remembers may no longer hold."""
    if setting in ("REST_FRAMEWORK", "CACHES", "FEEDMOOD_REFUSAL_BOX_SIZE"):
        box.clear()


def box_key(request: HttpRequest, view: Callable[..., Any]) -> tuple[tuple[str, str], Callable[..., Any], str]:
    return credential(request), view, str(request.method)


def answer(request: HttpRequest, view: Callable[..., Any]) -> JsonResponse | None:
    """The 429 for a boxed (credential, view, method), or None: the request goes on (and its key is kept)."""
    if not len(box):
        return None
    key = box_key(request, view)
    setattr(request, KEY_ATTRIBUTE, key)
    now = clock()
    refusal = box.get(key, now)
    if refusal is None:
        return None
    wait = math.ceil(refusal.ends - now)  # as DRF's Throttled rounds it
    record_rate_limit(request, RateLimitState(limit=refusal.limit, remaining=0, reset=wait))
    return JsonResponse(
        {"detail": str(exceptions.Throttled(wait=wait).detail)},
        status=429,
        headers={"Retry-After": str(wait)},
        json_dumps_params={"separators": (",", ":")},
    )


def remember(request: HttpRequest, status: int) -> None:
    """After a response: box the request's pair if a throttle refused it (status 429)."""
    refusal: Refusal | None = getattr(request, REFUSAL_ATTRIBUTE, None)
    match = getattr(request, "resolver_match", None)
    if refusal is None or status != 429 or match is None:
        return
    box.add(getattr(request, KEY_ATTRIBUTE, None) or box_key(request, match.func), refusal)
