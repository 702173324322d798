"""When did a user's home feed last change? Lets page 1 reuse a recent ranked snapshot.

Ranking page 1 from scratch costs ~15 ms of CPU (candidates over ~500 followed
accounts, mood stage, diversity). A user who opens the feed again within
``SNAPSHOT_REUSE_SECONDS`` gets the snapshot ranked for them moments ago, unless
something that feeds their ranking changed since. Every such write stamps
"changed at" for the users it affects -- a fan-out of one timestamp per user,
not of the post:

- a post is created, or its face affect is (re)computed -> its author and every
  follower (``recommender.tasks.feed_changed``, on the ``default`` queue);
- a follow or unfollow -> the follower (at once, after commit), also as a change
  of their *network*, which drops their cached candidates (``recommender.candidates``);
- every mood and post affect switched to a new model version, or a user's
  readings erased (their posts' affect must leave every cache) -> everyone;
- a post is deleted -> its author and every follower, like a new post.

Mood, policy, strength and page size are kept with the user's latest snapshot
(in the cached value, never in a key name) and must match for a reuse, so a new
selfie reading or a settings change never serves an old ranking. Likes do not
re-rank within the window, and popular posts from outside the network are
themselves cached for ``POPULAR_CACHE_SECONDS``.

A built page (the hydrated posts of one offset of one snapshot) is kept for
``PAGE_CACHE_SECONDS``: it is served again only if it was built after every
stamp above for the user and after their own last like or unlike
(:func:`mark_reacted`), so the user always sees their own likes, and a deleted
post leaves the pages of its author's followers once the stamp task has run;
other people's likes show up to ``PAGE_CACHE_SECONDS`` late.

A missing stamp means "no change within the window": stamps outlive the reuse
window, so an expired stamp can only be older than any snapshot still reusable.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from feedmood.cache import set_each
from recommender import conf


def current_ms() -> int:
    """Wall-clock time in milliseconds, the unit of every stamp."""
    return int(time.time() * 1000)


def reuse_ms() -> int:
    return int(conf.get("SNAPSHOT_REUSE_SECONDS") * 1000)


def _stamp_timeout() -> int:
    """Seconds a stamp is kept: past every cache it can invalidate (0: no cache to invalidate)."""
    longest = max(reuse_ms() // 1000, int(conf.get("CANDIDATES_TTL")), int(conf.get("PAGE_CACHE_SECONDS")))
    return longest + 60 if longest else 0


def changed_key(namespace: str, user_id: int) -> str:
    return f"{namespace}:feed-changed:{user_id}"


def network_changed_key(namespace: str, user_id: int) -> str:
    return f"{namespace}:network-changed:{user_id}"


def everyone_key(namespace: str) -> str:
    return f"{namespace}:feed-changed:*"


def reacted_key(namespace: str, user_id: int) -> str:
    return f"{namespace}:feed-reacted:{user_id}"


def latest_key(namespace: str, user_id: int) -> str:
    """The user's latest snapshots by parameters (kept in the value: no mood in key names)."""
    return f"{namespace}:feed:{user_id}:latest"


def mark_changed(namespace: str, user_ids: Iterable[int], *, at_ms: int | None = None) -> int:
    """Stamp the feeds of ``user_ids`` as changed now; returns how many were stamped."""
    timeout = _stamp_timeout()
    ids = sorted(set(user_ids))
    if not timeout or not ids:
        return 0
    stamp = current_ms() if at_ms is None else at_ms
    for start in range(0, len(ids), 1000):
        cache.set_many({changed_key(namespace, uid): stamp for uid in ids[start : start + 1000]}, timeout)
    return len(ids)


def mark_network_changed(namespace: str, user_id: int) -> None:
    """The user followed or unfollowed someone: their feed and their candidate set changed."""
    timeout = _stamp_timeout()
    if timeout:
        now = current_ms()
        cache.set_many({changed_key(namespace, user_id): now, network_changed_key(namespace, user_id): now}, timeout)


def mark_all_changed(namespace: str) -> None:
    """Stamp every user's feed and candidate set as changed now (model switch, erased readings)."""
    timeout = _stamp_timeout()
    if timeout:
        cache.set(everyone_key(namespace), current_ms(), timeout)


def mark_reacted(namespace: str, user_id: int) -> None:
    """The user liked or unliked a post: their pages built before now show an old ``liked_by_me``."""
    timeout = _stamp_timeout()
    if timeout:
        cache.set(reacted_key(namespace, user_id), current_ms(), timeout)


def page_check_keys(namespace: str, user_id: int) -> list[str]:
    """The stamps a built page of this user must predate (read with the page, in one round trip)."""
    return [changed_key(namespace, user_id), everyone_key(namespace), reacted_key(namespace, user_id)]


def cached_page(namespace: str, user_id: int, page_key: str) -> Any | None:
    """The page stored under ``page_key`` by :func:`remember_page`, unless the user's feed
    changed or they reacted to a post after it was built."""
    return page_if_valid(cache.get_many([page_key, *page_check_keys(namespace, user_id)]), namespace, user_id, page_key)


def page_if_valid(found: dict[str, Any], namespace: str, user_id: int, page_key: str) -> Any | None:
    """:func:`cached_page` from already fetched values of ``page_key`` and :func:`page_check_keys`."""
    if page_key not in found:
        return None
    built_ms, page = found[page_key]
    if any(found.get(key, -1) >= built_ms for key in page_check_keys(namespace, user_id)):
        return None
    return page


def page_entry(page_key: str, page: Any, *, built_ms: int) -> dict[str, tuple[Any, int]]:
    """What :func:`remember_page` writes, as ``{key: (value, timeout)}`` ({} with the page cache off)."""
    seconds = int(conf.get("PAGE_CACHE_SECONDS"))
    return {page_key: ((built_ms, page), seconds)} if seconds else {}


def remember_page(page_key: str, page: Any, *, built_ms: int) -> None:
    """Keep a built page for ``PAGE_CACHE_SECONDS`` (``built_ms``: when its rows were read)."""
    set_each(cache, page_entry(page_key, page, built_ms=built_ms))


def network_check_keys(namespace: str, user_id: int) -> list[str]:
    """The stamps a user's cached candidates must predate (read with them, in one round trip)."""
    return [network_changed_key(namespace, user_id), everyone_key(namespace)]


def network_changed_since(namespace: str, user_id: int, since_ms: int, found: dict[str, Any] | None = None) -> bool:
    """Whether the user's follows (or everyone's affect) changed at or after ``since_ms`` (``found``: the
    values of :func:`network_check_keys`, already read with something else)."""
    keys = network_check_keys(namespace, user_id)
    found = cache.get_many(keys) if found is None else found
    return any(found.get(key, -1) >= since_ms for key in keys)


#: How many parameter sets (policy, strength, page size, mood) a user's latest snapshots are kept for.
LATEST_KEPT = 4


def reusable_snapshot(namespace: str, user_id: int, params: str, *, now_ms: int) -> tuple[int, str] | None:
    """``(snapshot_ms, snapshot_id)`` of this user's last snapshot with these ``params``, if it
    may still be served."""
    return latest_snapshots(namespace, user_id).reusable(params, now_ms=now_ms)


@dataclass(frozen=True)
class LatestSnapshots:
    """A user's latest snapshots by parameters, with the stamps that may void them (one read)."""

    namespace: str
    user_id: int
    latest: dict[str, tuple[int, str]]
    stamps: tuple[int, ...]

    def reusable(self, params: str, *, now_ms: int) -> tuple[int, str] | None:
        """``(snapshot_ms, snapshot_id)`` of the snapshot with these ``params``, if it may still be served."""
        latest = self.latest.get(params)
        if latest is None:
            return None
        latest_ms, snapshot_id = latest
        if not (0 <= now_ms - latest_ms <= reuse_ms()):
            return None
        if any(stamp >= latest_ms for stamp in self.stamps):
            return None
        return int(latest_ms), snapshot_id

    def entry(self, params: str, snapshot_ms: int, snapshot_id: str) -> dict[str, tuple[Any, int]]:
        """What :func:`remember_snapshot` writes for a new snapshot, as ``{key: (value, timeout)}``
        (the parameters, mood included, are kept in the value: no mood in key names)."""
        window = reuse_ms()
        if not window:
            return {}
        latest = {p: v for p, v in self.latest.items() if p != params}
        kept = dict(list(latest.items())[-(LATEST_KEPT - 1) :]) if LATEST_KEPT > 1 else {}
        return {
            latest_key(self.namespace, self.user_id): ({**kept, params: (snapshot_ms, snapshot_id)}, window // 1000 + 1)
        }


def latest_snapshots(namespace: str, user_id: int) -> LatestSnapshots:
    """The user's :class:`LatestSnapshots` (no read when snapshots are never reused)."""
    if not reuse_ms():
        return LatestSnapshots(namespace, user_id, {}, ())
    keys = [latest_key(namespace, user_id), changed_key(namespace, user_id), everyone_key(namespace)]
    found = cache.get_many(keys)
    return LatestSnapshots(namespace, user_id, found.get(keys[0]) or {}, tuple(found.get(k, -1) for k in keys[1:]))


def remember_snapshot(namespace: str, user_id: int, params: str, snapshot_ms: int, snapshot_id: str) -> None:
    """Record a freshly ranked snapshot as the one to reuse for these ``params``."""
    if reuse_ms():
        latest = cache.get(latest_key(namespace, user_id)) or {}
        set_each(cache, LatestSnapshots(namespace, user_id, latest, ()).entry(params, snapshot_ms, snapshot_id))
