"""Opaque, signed feed cursors (stable under new posts).

A cursor names a feed *snapshot* -- the snapshot time, the policy, strength,
page size and mood the first page was ranked with -- and an offset into it.
Later pages re-read the snapshot's ranked ids from the cache, or re-rank the
same candidates (created at or before the snapshot time) with the same mood
if the cache entry expired, so posts created between page requests neither
repeat nor shift items between pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from django.core import signing

_SALT = "recommender.feed.cursor"


class InvalidCursor(ValueError):
    """The cursor was tampered with, is malformed, or belongs to someone else."""


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
    snapshot_ms: int
    offset: int
    policy: str
    strength: float
    page_size: int
    mood: MoodKey | None
    mood_reason: str = ""

    @property
    def snapshot(self) -> datetime:
        return datetime.fromtimestamp(self.snapshot_ms / 1000.0, tz=timezone.utc)

    def at(self, offset: int) -> "Cursor":
        return Cursor(**{**asdict(self), "mood": self.mood, "offset": offset})

    def params_key(self) -> str:
        """What the ranking depends on besides the snapshot time: policy, strength, page size, mood."""
        m = self.mood
        mood = "u" if m is None else f"{m.label}:{m.valence:.6f}:{m.arousal:.6f}:{m.confidence:.6f}"
        return f"{self.policy}:{self.strength:.6f}:{self.page_size}:{mood}"

    def snapshot_key(self) -> str:
        """Cache key of the ranked snapshot (independent of the offset)."""
        return f"feed:{self.user_id}:{self.snapshot_ms}:{self.params_key()}"


def encode(cursor: Cursor) -> str:
    m = cursor.mood
    payload = [
        cursor.user_id, cursor.snapshot_ms, cursor.offset, cursor.policy, cursor.strength, cursor.page_size,
        None if m is None else [m.label, m.valence, m.arousal, m.confidence],
        cursor.mood_reason,
    ]
    return signing.dumps(payload, salt=_SALT, compress=True)


def decode(token: str, *, user_id: int) -> Cursor:
    """Parse and verify a cursor; raises ``InvalidCursor``."""
    try:
        uid, snap, offset, policy, strength, page_size, mood, reason = signing.loads(token, salt=_SALT)
        cursor = Cursor(
            user_id=int(uid),
            snapshot_ms=int(snap),
            offset=int(offset),
            policy=str(policy),
            strength=float(strength),
            page_size=int(page_size),
            mood=None if mood is None else MoodKey(mood[0], float(mood[1]), float(mood[2]), float(mood[3])),
            mood_reason=str(reason),
        )
    except (signing.BadSignature, ValueError, TypeError, IndexError):
        raise InvalidCursor("Invalid cursor.") from None
    if cursor.user_id != user_id or cursor.offset < 0:
        raise InvalidCursor("Invalid cursor.")
    return cursor
