"""Pure mood and content-affect math (no Django, no ORM).

Mood model
----------
A user's mood is a time-decayed, confidence-weighted average of their selfie
readings.  Each reading *i* (taken at ``t_i`` with face-detection/classifier
confidence ``c_i``) gets the weight::

    d_i = 0.5 ** ((now - t_i) / half_life)        # decay: one half-life old weighs half
    w_i = c_i * d_i                                # confidence-weighted

and the mood is::

    distribution = sum(w_i * p_i) / sum(w_i)       # full emotion distribution
    valence      = sum(w_i * v_i) / sum(w_i)       # probability-weighted circumplex
    arousal      = sum(w_i * a_i) / sum(w_i)       #   values of each reading (not argmax)
    confidence   = sum(w_i) / max(1, sum(d_i))     # saturates at one fresh reading's worth
    label        = argmax(distribution)            # a name for display and explanations

The mood is ``unknown`` when ``sum(w_i)`` is below :data:`MIN_EVIDENCE` (no
recent reading).  Because exponential decay is memoryless, the sums can be
stored once (``MoodSums`` at ``as_of``) and aged at read time by multiplying
them by ``0.5 ** (elapsed / half_life)``: the averages do not change, only the
evidence and confidence shrink.  That is what ``MoodState`` stores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

LABELS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

#: Total decayed, confidence-weighted evidence below which the mood is unknown.
#: A single fully confident reading falls below it after ~4.3 half-lives.
MIN_EVIDENCE = 0.05
#: Readings older than this many half-lives are ignored (weight < 0.1%).
MAX_AGE_HALF_LIVES = 10.0


@dataclass(frozen=True)
class Reading:
    """One face reading: distribution over LABELS, circumplex values, confidence, time."""

    probabilities: Mapping[str, float]
    valence: float
    arousal: float
    confidence: float
    at: datetime


@dataclass(frozen=True)
class MoodSums:
    """Decayed sums at ``as_of``; enough to rebuild the mood at any later time."""

    as_of: datetime
    weight: float = 0.0  # sum(w_i)
    decay: float = 0.0  # sum(d_i)
    valence: float = 0.0  # sum(w_i * v_i)
    arousal: float = 0.0  # sum(w_i * a_i)
    probabilities: dict[str, float] = field(default_factory=dict)  # sum(w_i * p_i[label])
    count: int = 0


@dataclass(frozen=True)
class Mood:
    """A mood estimate; ``known`` False means unknown (``reason`` says why)."""

    known: bool
    label: str | None = None
    valence: float | None = None
    arousal: float | None = None
    confidence: float = 0.0
    distribution: dict[str, float] = field(default_factory=dict)
    evidence: float = 0.0
    reading_count: int = 0
    reason: str = ""

    @classmethod
    def unknown(cls, reason: str) -> Mood:
        return cls(known=False, reason=reason)


def coarse_mood(mood: Mood, step: float) -> Mood:
    """The mood with valence, arousal and confidence rounded to ``step`` (confidence at least ``step``).

    The feed ranks with this, so a viewer who steers their own mood cannot tune it finely
    enough to measure other authors' affect from the order; ``step`` 0 returns ``mood``.
    """
    if not mood.known or not step or mood.valence is None or mood.arousal is None:
        return mood

    def snap(x: float) -> float:
        return round(x / step) * step + 0.0

    return replace(
        mood,
        valence=snap(mood.valence),
        arousal=snap(mood.arousal),
        confidence=min(1.0, max(step, snap(mood.confidence))),
    )


def decay_factor(age_hours: float, half_life_hours: float) -> float:
    """``0.5 ** (age / half_life)``; future readings (negative age) count as fresh."""
    if half_life_hours <= 0:
        raise ValueError("half_life_hours must be positive")
    return float(0.5 ** (max(age_hours, 0.0) / half_life_hours))


def _hours(delta_seconds: float) -> float:
    return delta_seconds / 3600.0


def accumulate(readings: Iterable[Reading], *, as_of: datetime, half_life_hours: float) -> MoodSums:
    """Fold readings into decayed sums at ``as_of`` (readings too old are skipped)."""
    weight = decay = valence = arousal = 0.0
    probs: dict[str, float] = {}
    count = 0
    for r in readings:
        age_h = _hours((as_of - r.at).total_seconds())
        if age_h > MAX_AGE_HALF_LIVES * half_life_hours:
            continue
        d = decay_factor(age_h, half_life_hours)
        c = min(max(float(r.confidence), 0.0), 1.0)
        w = c * d
        weight += w
        decay += d
        valence += w * float(r.valence)
        arousal += w * float(r.arousal)
        for label, p in r.probabilities.items():
            probs[label] = probs.get(label, 0.0) + w * float(p)
        count += 1
    return MoodSums(
        as_of=as_of, weight=weight, decay=decay, valence=valence, arousal=arousal, probabilities=probs, count=count
    )


def mood_from_sums(sums: MoodSums, *, now: datetime, half_life_hours: float) -> Mood:
    """The mood at ``now`` from sums stored at ``sums.as_of`` (aged by decay)."""
    if sums.count == 0 or sums.weight <= 0.0:
        return Mood.unknown("no recent selfie")
    f = decay_factor(_hours((now - sums.as_of).total_seconds()), half_life_hours)
    weight, decay = sums.weight * f, sums.decay * f
    if weight < MIN_EVIDENCE:
        return Mood.unknown("no recent selfie")
    total = sum(sums.probabilities.values()) or 1.0
    distribution = {label: sums.probabilities.get(label, 0.0) / total for label in _labels(sums.probabilities)}
    label = max(distribution, key=lambda k: (distribution[k], -_label_order(k)))
    return Mood(
        known=True,
        label=label,
        valence=_clip(sums.valence / sums.weight),
        arousal=_clip(sums.arousal / sums.weight),
        confidence=_clip(weight / max(1.0, decay), 0.0, 1.0),
        distribution=distribution,
        evidence=weight,
        reading_count=sums.count,
    )


def estimate_mood(readings: Iterable[Reading], *, now: datetime, half_life_hours: float) -> Mood:
    """Mood at ``now`` straight from readings (``accumulate`` + ``mood_from_sums``)."""
    return mood_from_sums(
        accumulate(readings, as_of=now, half_life_hours=half_life_hours), now=now, half_life_hours=half_life_hours
    )


# --- Content affect ---------------------------------------------------------------


@dataclass(slots=True)
class Affect:
    """Affect of one post's content from one source (the faces in its image, or its text).

    ``arousal`` is ``None`` when the source does not give it (text).
    """

    valence: float
    arousal: float | None
    confidence: float
    dominant_emotion: str = ""
    face_count: int = 1


@dataclass(frozen=True)
class Face:
    """One detected face of a post image (a reading without a timestamp)."""

    probabilities: Mapping[str, float]
    valence: float
    arousal: float
    confidence: float


def affect_from_faces(faces: Sequence[Face]) -> Affect | None:
    """Confidence-weighted mean affect of a post's faces; ``None`` without faces.

    ``confidence`` is the mean face confidence; ``dominant_emotion`` the argmax of
    the confidence-weighted mean distribution.
    """
    if not faces:
        return None
    weights = [min(max(float(f.confidence), 0.0), 1.0) for f in faces]
    total = sum(weights)
    if total <= 0.0:  # all zero-confidence faces: fall back to a plain mean
        weights, total = [1.0] * len(faces), float(len(faces))
    valence = sum(w * f.valence for w, f in zip(weights, faces)) / total
    arousal = sum(w * f.arousal for w, f in zip(weights, faces)) / total
    probs: dict[str, float] = {}
    for w, f in zip(weights, faces):
        for label, p in f.probabilities.items():
            probs[label] = probs.get(label, 0.0) + w * float(p)
    dominant = max(probs, key=lambda k: (probs[k], -_label_order(k))) if probs else ""
    return Affect(
        valence=_clip(valence),
        arousal=_clip(arousal),
        confidence=_clip(sum(min(max(float(f.confidence), 0.0), 1.0) for f in faces) / len(faces), 0.0, 1.0),
        dominant_emotion=dominant,
        face_count=len(faces),
    )


# --- helpers ------------------------------------------------------------------------


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    if math.isnan(x):
        return 0.0
    return min(max(x, lo), hi)


def _label_order(label: str) -> int:
    return LABELS.index(label) if label in LABELS else len(LABELS)


def _labels(probs: Mapping[str, float]) -> list[str]:
    return sorted(probs, key=_label_order)
