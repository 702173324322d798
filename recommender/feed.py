"""The home feed: candidates -> pure ranking -> cached snapshot -> cursor page.

``feed_page`` is a read (a selector) that caches its ranked snapshot so the
following pages come from exactly the same order (see ``recommender.cursor``),
and so a first page requested again soon, with nothing changed in between,
is served from it too (see ``recommender.freshness``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from feedmood.cache import set_each
from feedmood.models import Profile
from feedmood.observability.metrics import FEED_RANKING_SECONDS
from recommender import candidates as candidate_source
from recommender import conf, freshness, selectors
from recommender import cursor as cursors
from recommender.mood import Mood, coarse_mood
from recommender.ranking import Policy, Source, rank_feed


class Entry(NamedTuple):
    """One ranked post of a snapshot (the cache stores these as plain tuples)."""

    post_id: int
    author_id: int
    source: str
    base_score: float
    mood_delta: float
    base_position: int
    reason: str

    @property
    def score(self) -> float:
        return self.base_score + self.mood_delta


@dataclass(frozen=True)
class FeedItem:
    """A post of the page with its snapshot entry and absolute position."""

    post: selectors.FeedPost
    entry: Entry
    position: int


@dataclass
class FeedPage:
    """One page plus the mood and policy it was ranked with (``note`` says why not, if not)."""

    items: list[FeedItem]
    mood: Mood
    policy: str
    strength: float
    policy_source: str
    applied: bool
    note: str
    snapshot: datetime
    next_cursor: str | None
    total: int
    #: Page 1 came from the user's recent snapshot (nothing changed since) instead of a new ranking.
    reused: bool = False


def _mood_key(mood: Mood) -> cursors.MoodKey | None:
    if not mood.known:
        return None
    return cursors.MoodKey(mood.label, mood.valence, mood.arousal, mood.confidence)


def _mood_from_key(key: cursors.MoodKey | None, reason: str) -> Mood:
    if key is None:
        return Mood.unknown(reason)
    return Mood(known=True, label=key.label, valence=key.valence, arousal=key.arousal, confidence=key.confidence)


def effective_strength(strength: float) -> float:
    """The strength the feed applies: rounded to ``STRENGTH_STEP`` so a viewer cannot tune it finely
    to measure how far another author's post moves."""
    step = conf.get("STRENGTH_STEP")
    return min(1.0, max(0.0, round(strength / step) * step)) if step else strength


def plain_note(mood: Mood, policy: str, strength: float) -> str:
    """Why the mood stage left the base ranking alone ("" when it was applied)."""
    if not mood.known:
        return f"plain base ranking: mood unknown ({mood.reason or 'no recent selfie'})"
    if policy == Policy.OFF:
        return "plain base ranking: mood policy is off"
    if strength == 0.0:
        return "plain base ranking: mood strength is 0"
    return ""


@FEED_RANKING_SECONDS.time()
def rank_snapshot(*, user: AbstractBaseUser, cur: cursors.Cursor) -> list[tuple[Any, ...]]:
    """Rank the user's candidates as of the cursor's snapshot with its mood and policy."""
    mood = coarse_mood(_mood_from_key(cur.mood, cur.mood_reason), conf.get("MOOD_STEP"))
    candidates = candidate_source.feed_candidates(user=user, snapshot=cur.snapshot)
    ranked = rank_feed(
        candidates,
        now=cur.snapshot,
        mood=mood,
        policy=cur.policy,
        strength=cur.strength,
        page_size=cur.page_size,
        max_consecutive=conf.get("MAX_CONSECUTIVE_PER_AUTHOR"),
        max_per_page=conf.get("MAX_PER_AUTHOR_PER_PAGE"),
        limit=conf.get("FEED_MAX_ITEMS"),
    )
    sources = {s: s.value for s in Source}
    return [
        (
            r.candidate.post_id,
            r.candidate.author_id,
            sources[r.candidate.source],
            r.base_score,
            r.mood_delta,
            r.base_position,
            r.explanation,
        )
        for r in ranked
    ]


def _snapshot_rows(
    *, user: AbstractBaseUser, cur: cursors.Cursor, writes: dict[str, tuple[Any, int]], new: bool = False
) -> list[tuple[Any, ...]]:
    """The snapshot's ranked rows (``Entry`` fields), from the cache or ranked now, then added to ``writes``
    (``new``: a snapshot just started, so certainly not cached yet)."""
    key = cur.rows_key(selectors.cache_namespace())
    rows = None if new else cache.get(key)
    if rows is None:
        rows = rank_snapshot(user=user, cur=cur)
        writes[key] = (rows, conf.get("SNAPSHOT_TTL"))
    return rows


def _load_cursor(token: str, *, user_id: int, namespace: str, with_page: bool) -> tuple[cursors.Cursor, dict[str, Any]]:
    """The cursor of ``token`` and what was read with its snapshot in the same round trip: the built page
    at its offset and the stamps that may void it (``with_page``); raises ``ValidationError``."""
    try:
        snapshot_id, offset = cursors.parse(token, max_age=conf.get("CURSOR_MAX_AGE"))
        key = cursors.snapshot_key(namespace, user_id, snapshot_id)
        page_key = cursors.page_key(namespace, user_id, snapshot_id, offset)
        keys = [key, page_key, *freshness.page_check_keys(namespace, user_id)] if with_page else [key]
        found = cache.get_many(keys)
        return cursors.load(found.get(key), user_id, snapshot_id, offset), found
    except cursors.InvalidCursor as exc:
        raise ValidationError({"cursor": [str(exc)]}) from None


def feed_page(
    *,
    user: AbstractBaseUser,
    policy: str | None = None,
    strength: float | None = None,
    page_size: int | None = None,
    cursor: str | None = None,
    refresh: bool = False,
    now: datetime | None = None,
) -> FeedPage:
    """One page of the user's ranked home feed.

    Without ``cursor``: the first page of a snapshot at ``now`` with the user's
    current mood and policy (``policy``/``strength`` override the profile for
    this feed); the user's snapshot of the last ``SNAPSHOT_REUSE_SECONDS`` with
    the same mood and parameters is reused when nothing in their network
    changed since, unless ``refresh``. A page built moments ago for the same snapshot and
    offset is served again while it is valid (``freshness.cached_page``).
    With ``cursor``: the next page of that snapshot; passing a different
    ``policy``/``strength``/``page_size`` with it is a ValidationError, and so
    is a cursor past ``CURSOR_MAX_AGE``, whose snapshot was dropped, or whose
    snapshot holds a mood the user no longer consents to (checked on every page).
    ``strength`` is applied rounded to ``STRENGTH_STEP``.
    """
    namespace = selectors.cache_namespace()
    caching = conf.get("PAGE_CACHE_SECONDS") > 0
    read: dict[str, Any] | None = None  # the cursor's built page and its stamps, read with the cursor
    if strength is not None:
        strength = effective_strength(strength)
    if cursor:
        cur, read = _load_cursor(cursor, user_id=user.pk, namespace=namespace, with_page=caching)
        if cur.mood is not None and not selectors.consents(user=user):
            cursors.forget(namespace, cur)
            raise ValidationError({"cursor": [cursors.EXPIRED]})
        for name, given, kept in (
            ("policy", policy, cur.policy),
            ("strength", strength, cur.strength),
            ("page_size", page_size, cur.page_size),
        ):
            if given is not None and given != kept:
                raise ValidationError(
                    {name: [f"This cursor was issued for {name}={kept}; omit {name} or start from the first page."]}
                )
        mood = _mood_from_key(cur.mood, cur.mood_reason)
        policy_source = "cursor"
    else:
        now = now or timezone.now()
        profile: Profile = selectors.profile_with_mood(user=user)
        mood = selectors.mood_report(user=user, now=now, profile=profile).mood
        policy_source = "query" if (policy is not None or strength is not None) else "profile"
        cur = cursors.Cursor(
            user_id=user.pk,
            snapshot_id=cursors.new_snapshot_id(),
            snapshot_ms=int(now.timestamp() * 1000),
            offset=0,
            policy=Policy(policy or profile.mood_policy).value,
            strength=effective_strength(float(profile.mood_strength if strength is None else strength)),
            page_size=int(page_size or conf.get("PAGE_SIZE")),
            mood=_mood_key(mood),
            mood_reason=mood.reason,
        )
    if not (0.0 <= cur.strength <= 1.0) or math.isnan(cur.strength):
        raise ValidationError({"strength": ["Must be within [0, 1]."]})

    reused = new = False
    writes: dict[str, tuple[Any, int]] = {}  # written together, in one round trip, once the page is built
    if not cursor:
        params = cur.params_key()
        latest = freshness.latest_snapshots(namespace, user.pk)
        previous = None if refresh else latest.reusable(params, now_ms=cur.snapshot_ms)
        if previous is not None:
            snapshot_ms, snapshot_id = previous
            cur, reused = replace(cur, snapshot_ms=snapshot_ms, snapshot_id=snapshot_id), True
        else:
            writes[cursors.snapshot_key(namespace, user.pk, cur.snapshot_id)] = (
                cursors.stored_value(cur),
                conf.get("CURSOR_MAX_AGE"),
            )
            writes.update(latest.entry(params, cur.snapshot_ms, cur.snapshot_id))
            new = True
    page_key = cur.page_key(namespace)
    if caching and not new:
        if read is not None:
            built = freshness.page_if_valid(read, namespace, user.pk, page_key)
        else:
            built = freshness.cached_page(namespace, user.pk, page_key)
        if built is not None:
            return replace(built, policy_source=policy_source, reused=reused)
    built_ms = freshness.current_ms()
    page = _build_page(
        user=user, cur=cur, mood=mood, new=new, policy_source=policy_source, reused=reused, writes=writes
    )
    writes.update(freshness.page_entry(page_key, page, built_ms=built_ms))
    set_each(cache, writes)
    return page


def _build_page(
    *,
    user: AbstractBaseUser,
    cur: cursors.Cursor,
    mood: Mood,
    new: bool,
    policy_source: str,
    reused: bool,
    writes: dict[str, tuple[Any, int]],
) -> FeedPage:
    """The page at ``cur``: its snapshot rows, hydrated with the posts as they are now (the rows go to
    ``writes`` when they were ranked now)."""
    rows = _snapshot_rows(user=user, cur=cur, new=new, writes=writes)
    page = [Entry._make(row) for row in rows[cur.offset : cur.offset + cur.page_size]]
    posts = selectors.feed_posts(post_ids=[e.post_id for e in page], viewer=user)
    items = [
        FeedItem(post=posts[e.post_id], entry=e, position=cur.offset + i)
        for i, e in enumerate(page)
        if e.post_id in posts  # deleted since the snapshot: left out, nothing else moves
    ]
    end = cur.offset + cur.page_size
    note = plain_note(mood, cur.policy, cur.strength)
    return FeedPage(
        items=items,
        mood=mood,
        policy=cur.policy,
        strength=cur.strength,
        policy_source=policy_source,
        applied=not note,
        note=note,
        snapshot=cur.snapshot,
        next_cursor=cursors.encode(cur.at(end)) if end < len(rows) else None,
        total=len(rows),
        reused=reused,
    )
