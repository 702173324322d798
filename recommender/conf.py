"""Recommender tunables, overridable from Django settings (``RECOMMENDER_<NAME>``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Candidates: the newest PER_AUTHOR posts of each followed account (and own
    # posts) within WINDOW_DAYS, at most MAX_CANDIDATES of them, newest first.
    "WINDOW_DAYS": 14,
    "PER_AUTHOR": 6,
    "MAX_CANDIDATES": 400,
    # The network part of the candidates is cached per user CANDIDATES_TTL seconds
    # and topped up with the posts of the last CANDIDATES_TTL + CANDIDATES_AFFECT_LAG
    # seconds on each ranking (see recommender.candidates); 0 reads it every time.
    "CANDIDATES_TTL": 300,
    "CANDIDATES_AFFECT_LAG": 120,
    # Popular posts from outside the network: top POPULAR_COUNT by likes among
    # the posts of the last POPULAR_WINDOW_HOURS, cached POPULAR_CACHE_SECONDS.
    "POPULAR_COUNT": 30,
    "POPULAR_WINDOW_HOURS": 48,
    "POPULAR_CACHE_SECONDS": 60,
    # A feed snapshot: at most FEED_MAX_ITEMS ranked posts, kept SNAPSHOT_TTL
    # seconds in the cache so later pages are served from the same order.
    "FEED_MAX_ITEMS": 400,
    "SNAPSHOT_TTL": 900,
    # Page 1 reuses the user's snapshot of the last SNAPSHOT_REUSE_SECONDS unless
    # their network, mood or settings changed since (see recommender.freshness);
    # 0 ranks every page 1 anew.
    "SNAPSHOT_REUSE_SECONDS": 60,
    # A built page (posts, like counts, liked_by_me) is kept PAGE_CACHE_SECONDS and served
    # again while nothing in the user's feed changed and they liked or unliked nothing since;
    # other people's likes show up to this many seconds late. 0 builds every page.
    "PAGE_CACHE_SECONDS": 15,
    # A cursor works for CURSOR_MAX_AGE seconds (its snapshot's parameters are kept as long).
    "CURSOR_MAX_AGE": 3600,
    # Probe resistance: the applied strength is rounded to STRENGTH_STEP and the mood the feed
    # is ranked with to MOOD_STEP (valence, arousal, confidence); 0 turns the rounding off.
    "STRENGTH_STEP": 0.25,
    "MOOD_STEP": 0.25,
    "PAGE_SIZE": 20,
    "MAX_PAGE_SIZE": 50,
    # Diversity rules.
    "MAX_CONSECUTIVE_PER_AUTHOR": 2,
    "MAX_PER_AUTHOR_PER_PAGE": 3,
}


def get(name: str) -> Any:
    """``settings.RECOMMENDER_<name>`` or the default."""
    return getattr(settings, f"RECOMMENDER_{name}", DEFAULTS[name])
