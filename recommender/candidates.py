"""Feed candidates, with the network part cached per user and topped up with what is new.

Ranking a fresh snapshot needs the newest ``PER_AUTHOR`` posts of each of the
~500 accounts a user may follow: one index probe per account, ~5 ms of
PostgreSQL at 1M posts, plus the list of follows. The previous answer for the
same user is still right except for what happened since it was read, so it is
cached for ``CANDIDATES_TTL`` seconds, and a ranking within that time re-reads
only the network's posts created in the last ``CANDIDATES_TTL +
CANDIDATES_AFFECT_LAG`` seconds (one range scan of ``post(created_at)``) and
merges them in with the same per-author cap, window and limit.

What this trades: like counts and face affect of posts older than that recent
window are as of the cached read (at most ``CANDIDATES_TTL`` old; the recent
window also picks up affect that arrives a little after its post). The cache is
dropped when the user follows or unfollows someone and, for everyone, when a new
model version's readings replace the old ones or a user's readings are erased
(``recommender.freshness``). Snapshots older than the cached read (a cursor
whose ranked snapshot expired) always read the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from recommender import conf, freshness, selectors
from recommender.ranking import Candidate

#: Rows cached beyond MAX_CANDIDATES, so posts leaving the list (per-author cap,
#: window) leave successors behind instead of a shorter list.
MARGIN = 100


@dataclass(frozen=True)
class CachedNetwork:
    """One user's network candidates as read at ``read_ms`` (epoch ms)."""

    read_ms: int
    followees: tuple[int, ...]
    rows: list[selectors.CandidateRow]


def _key(namespace: str, user_id: int) -> str:
    return f"{namespace}:candidates:{user_id}"


def merge_rows(
    cached: list[selectors.CandidateRow],
    recent: list[selectors.CandidateRow],
    *,
    recent_start_ts: float,
    window_start_ts: float,
    snapshot_ts: float,
    per_author: int,
    limit: int,
) -> list[selectors.CandidateRow]:
    """Cached rows with the recent ones (all rows created after ``recent_start_ts``)
    in their place: newest first, at most ``per_author`` per author, created in
    ``(window_start_ts, snapshot_ts]``, at most ``limit`` rows (pure)."""
    by_id = {row[0]: row for row in cached if row[2] <= recent_start_ts}
    by_id.update((row[0], row) for row in recent)
    ordered = sorted(
        (row for row in by_id.values() if window_start_ts < row[2] <= snapshot_ts),
        key=lambda row: (row[2], row[0]),
        reverse=True,
    )
    taken: dict[int, int] = {}
    out = []
    for row in ordered:
        count = taken.get(row[1], 0)
        if count < per_author:
            taken[row[1]] = count + 1
            out.append(row)
            if len(out) == limit:
                break
    return out


def _network(user_id: int, snapshot: datetime) -> tuple[tuple[int, ...], list[selectors.CandidateRow]]:
    """Followed account ids and network rows as of ``snapshot``, from the cache when it is usable."""
    ttl = conf.get("CANDIDATES_TTL")
    limit = conf.get("MAX_CANDIDATES")
    namespace = selectors.cache_namespace()
    snapshot_ms = int(snapshot.timestamp() * 1000)
    found = cache.get_many([_key(namespace, user_id), *freshness.network_check_keys(namespace, user_id)]) if ttl else {}
    entry: CachedNetwork | None = found.get(_key(namespace, user_id))
    if (
        entry is not None
        and entry.read_ms <= snapshot_ms <= entry.read_ms + ttl * 1000
        and not freshness.network_changed_since(namespace, user_id, entry.read_ms, found)
    ):
        since = snapshot - timedelta(seconds=ttl + conf.get("CANDIDATES_AFFECT_LAG"))
        recent = selectors.recent_network_rows(user_id=user_id, since=since, snapshot=snapshot)
        rows = merge_rows(
            entry.rows,
            recent,
            recent_start_ts=since.timestamp(),
            window_start_ts=(snapshot - timedelta(days=conf.get("WINDOW_DAYS"))).timestamp(),
            snapshot_ts=snapshot.timestamp(),
            per_author=conf.get("PER_AUTHOR"),
            limit=limit + MARGIN,
        )
        return entry.followees, rows
    followees = tuple(selectors.followee_ids_of(user_id=user_id))
    rows = selectors.network_candidate_rows(
        author_ids={*followees, user_id}, snapshot=snapshot, limit=limit + MARGIN if ttl else limit
    )
    if ttl:
        cache.set(_key(namespace, user_id), CachedNetwork(snapshot_ms, followees, rows), ttl)
    return followees, rows


def feed_candidates(*, user: AbstractBaseUser, snapshot: datetime) -> list[Candidate]:
    """Own posts + the network's newest posts + popular posts from outside the network.

    The same candidates as :func:`recommender.selectors.feed_candidates`, within
    the trade-offs in this module's docstring.
    """
    followees, rows = _network(user.pk, snapshot)
    in_network = {*followees, user.pk}
    candidates = selectors.candidates_from_rows(rows[: conf.get("MAX_CANDIDATES")], user.pk)
    candidates += [c for c in selectors.popular_candidates(as_of=snapshot) if c.author_id not in in_network]
    return candidates
