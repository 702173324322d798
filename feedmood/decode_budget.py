"""Per-user budget of image pixels decoded in the request path.

Validating an upload decodes it whole (``feedmood.images``), and the cost grows with its pixel
count, not its byte size: a 36-megapixel 16-bit PNG compresses to under 100 KB and takes about a
second of CPU to decode.  The ``uploads`` throttle counts requests, so one account posting such
images as fast as the throttle allows could keep a CPU busy on its own.  This budget charges
each upload's pixels, read from the header *before* the full decode, against the uploader's
``FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE`` (fixed one-minute windows in the shared cache, so across
processes); an upload that would go over it is answered 429 with ``Retry-After`` and not decoded.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled

from feedmood.cache import counter_add

WINDOW_SECONDS = 60


class DecodeBudgetExceeded(Throttled):
    """The uploader's pixel budget for this minute is spent (the API answers 429 with ``Retry-After``)."""

    default_detail = "Too many image pixels uploaded in the last minute."


def decode_budget_charge(*, user_id: int, pixels: int) -> None:
    """Count ``pixels`` against ``user_id``'s budget for this minute, or raise ``DecodeBudgetExceeded``.

    A refused upload is not counted: the budget measures decoding actually done.
    """
    budget = int(settings.FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE)
    if budget <= 0:  # 0: no budget
        return
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"decode-pixels:{user_id}:{window}"
    if counter_add(cache, key, pixels, 2 * WINDOW_SECONDS) > budget:
        cache.decr(key, pixels)
        raise DecodeBudgetExceeded(wait=math.ceil((window + 1) * WINDOW_SECONDS - now))
