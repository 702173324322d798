"""Dropping cached feed data at once when a person's emotion data is erased.

A person's mood lives in their feed snapshots, cursors and built pages; the face
affect of their posts lives in every cache that ranked those posts: other
users' ranked rows and built pages, cached network candidates, the popular list
and the staff dashboard's aggregates. Erasure (consent withdrawn, readings
erased, account deleted) drops all of these instead of letting them expire:

- the person's own feed keys (``<namespace>:feed:<user id>:*``): their cursors stop working;
- everyone's ranked rows and built pages, candidates and popular lists: they are
  re-ranked from the database on the next request (other users' cursors keep working);
- (the dashboard's cached aggregates are dropped by its own receivers).

Keys are found by pattern (Redis ``SCAN``); erasure is rare, so walking the
namespace's keys then is acceptable.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from django.core.cache import cache

from recommender import cursor as cursors
from recommender import freshness


def drop_matching(*patterns: str) -> int:
    """Delete every cache key matching one of the glob ``patterns`` (unprefixed); returns how many."""
    full = [cache.make_key(p) for p in patterns]
    backend: Any = getattr(cache, "_cache", None)
    if hasattr(backend, "get_client"):  # django.core.cache.backends.redis
        client = backend.get_client(write=True)
        keys = list({key for pattern in full for key in client.scan_iter(match=pattern, count=1000)})
        return sum(client.delete(*keys[i : i + 500]) for i in range(0, len(keys), 500))
    if isinstance(backend, dict):  # locmem (development without Redis)
        with cache._lock:  # type: ignore[attr-defined]
            keys = [k for k in list(backend) if any(fnmatch.fnmatchcase(k, p) for p in full)]
            for key in keys:
                backend.pop(key, None)
                cache._expire_info.pop(key, None)  # type: ignore[attr-defined]
        return len(keys)
    raise NotImplementedError(f"cannot drop keys by pattern from {type(cache).__name__}")


def shared_affect_patterns(namespace: str) -> list[str]:
    """Caches shared between users that may hold anyone's post affect (ranked from it)."""
    return [
        f"{namespace}:feed:*:rows:*",
        f"{namespace}:feed:*:page:*",
        f"{namespace}:candidates:*",
        f"{namespace}:popular:*",
    ]


def drop_shared_affect_caches(namespace: str) -> int:
    """Drop every user's ranked rows and pages, the candidates and the popular lists."""
    return drop_matching(*shared_affect_patterns(namespace))


def drop_for_erased_user(namespace: str, user_id: int) -> int:
    """Everything cached from one person's emotion data, and the shared caches that used it (the dashboard
    drops its own aggregates on the same erasure events: ``dashboard.receivers``)."""
    dropped = drop_matching(f"{cursors.user_keys_prefix(namespace, user_id)}*", *shared_affect_patterns(namespace))
    freshness.mark_all_changed(namespace)
    return dropped
