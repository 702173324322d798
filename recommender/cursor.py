"""Opaque feed cursors: a random snapshot id and an offset, signed and short-lived.

A cursor names a feed *snapshot* -- the snapshot time, the policy, strength,
page size and mood the first page was ranked with -- and an offset into it.
The snapshot's parameters (the viewer's mood among them) stay server-side in
the cache under the snapshot id; the cursor itself carries only that random id,
the offset and its signing time, so it reveals nothing when it lands in a log,
expires after ``CURSOR_MAX_AGE`` seconds, and stops working as soon as the
snapshot is dropped (erasure, consent withdrawal, expiry).

Later pages re-read the snapshot's ranked ids from the cache, or re-rank the
same candidates (created at or before the snapshot time) with the same mood if
the ranked rows expired, so posts created between page requests neither repeat
nor shift items between pages.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from django.core import signing
from django.core.cache import cache

_SALT = "recommender.feed.cursor.v2"
EXPIRED = "This feed cursor has expired; load the feed again from the first page."


class InvalidCursor(ValueError):
    """The cursor was tampered with, is malformed, or belongs to someone else."""


class ExpiredCursor(InvalidCursor):
    """The cursor is older than its max age, or its snapshot is gone (expired or erased)."""

    def __init__(self) -> None:
        super().__init__(EXPIRED)


@dataclass(frozen=True)
class MoodKey:
    """The mood a snapshot was ranked with (enough to rank again identically)."""

    label: str | None
    valence: float | None
    arousal: float | None
    confidence: float


@dataclass(frozen=True)
class Cursor:
    user_id: int
    snapshot_id: str
    snapshot_ms: int
    offset: int
    policy: str
    strength: float
    page_size: int
    mood: MoodKey | None
    mood_reason: str = ""

    @property
    def snapshot(self) -> datetime:
        return datetime.fromtimestamp(self.snapshot_ms / 1000.0, tz=UTC)

    def at(self, offset: int) -> Cursor:
        return replace(self, offset=offset)

    def params_key(self) -> str:
        """What the ranking depends on besides the snapshot time (kept in cache values, never in key names)."""
        m = self.mood
        mood = "u" if m is None else f"{m.label}:{m.valence:.6f}:{m.arousal:.6f}:{m.confidence:.6f}"
        return f"{self.policy}:{self.strength:.6f}:{self.page_size}:{mood}"

    def rows_key(self, namespace: str) -> str:
        """Cache key of the ranked snapshot rows (independent of the offset)."""
        return f"{user_keys_prefix(namespace, self.user_id)}rows:{self.snapshot_id}"

    def page_key(self, namespace: str) -> str:
        """Cache key of the built page at this offset."""
        return page_key(namespace, self.user_id, self.snapshot_id, self.offset)


def page_key(namespace: str, user_id: int, snapshot_id: str, offset: int) -> str:
    """Cache key of the built page at ``offset`` of a snapshot (known from the token alone)."""
    return f"{user_keys_prefix(namespace, user_id)}page:{snapshot_id}:{offset}"


def user_keys_prefix(namespace: str, user_id: int) -> str:
    """Every feed key of one user starts with this (erasure drops them by this prefix)."""
    return f"{namespace}:feed:{user_id}:"


def snapshot_key(namespace: str, user_id: int, snapshot_id: str) -> str:
    """Cache key of a snapshot's parameters (what :func:`save` stores)."""
    return f"{user_keys_prefix(namespace, user_id)}snapshot:{snapshot_id}"


def new_snapshot_id() -> str:
    """A random, unguessable snapshot id."""
    return secrets.token_urlsafe(16)


def save(namespace: str, cursor: Cursor, *, max_age: int) -> None:
    """Keep the snapshot's parameters server-side for ``max_age`` seconds."""
    cache.set(snapshot_key(namespace, cursor.user_id, cursor.snapshot_id), stored_value(cursor), max_age)


def stored_value(cursor: Cursor) -> tuple[Any, ...]:
    """What :func:`save` keeps under :func:`snapshot_key` (to write it along with other keys)."""
    m = cursor.mood
    return (
        cursor.snapshot_ms, cursor.policy, cursor.strength, cursor.page_size,
        None if m is None else (m.label, m.valence, m.arousal, m.confidence), cursor.mood_reason,
    )  # fmt: skip


def forget(namespace: str, cursor: Cursor) -> None:
    """Drop the snapshot: its cursors stop working."""
    cache.delete(snapshot_key(namespace, cursor.user_id, cursor.snapshot_id))


def encode(cursor: Cursor) -> str:
    """The opaque token of a cursor: snapshot id and offset, signed with the time of signing."""
    return signing.dumps([cursor.snapshot_id, cursor.offset], salt=_SALT)


def decode(token: str, *, namespace: str, user_id: int, max_age: int) -> Cursor:
    """Verify a token and load its snapshot; raises ``InvalidCursor`` or ``ExpiredCursor``."""
    snapshot_id, offset = parse(token, max_age=max_age)
    return load(cache.get(snapshot_key(namespace, user_id, snapshot_id)), user_id, snapshot_id, offset)


def parse(token: str, *, max_age: int) -> tuple[str, int]:
    """``(snapshot_id, offset)`` of a verified token (the snapshot itself not loaded yet)."""
    try:
        snapshot_id, offset = signing.loads(token, salt=_SALT, max_age=max_age)
        snapshot_id, offset = str(snapshot_id), int(offset)
    except signing.SignatureExpired:
        raise ExpiredCursor() from None
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor("Invalid cursor.") from None
    if offset < 0:
        raise InvalidCursor("Invalid cursor.")
    return snapshot_id, offset


def load(stored: Any, user_id: int, snapshot_id: str, offset: int) -> Cursor:
    """The cursor from the value stored under :func:`snapshot_key` (``None``: ``ExpiredCursor``)."""
    if stored is None:  # expired, erased, or another user's snapshot id
        raise ExpiredCursor()
    snap, policy, strength, page_size, mood, reason = stored
    return Cursor(
        user_id=user_id,
        snapshot_id=snapshot_id,
        snapshot_ms=snap,
        offset=offset,
        policy=policy,
        strength=strength,
        page_size=page_size,
        mood=None if mood is None else MoodKey(*mood),
        mood_reason=reason,
    )
