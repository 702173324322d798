"""Unit tests of the pure mood math (recommender.mood): decay, weighting, unknown, affect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.mood import (
    MIN_EVIDENCE,
    Face,
    Reading,
    accumulate,
    affect_from_faces,
    decay_factor,
    estimate_mood,
    mood_from_sums,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
SAD = {"sadness": 0.8, "neutral": 0.2}
HAPPY = {"happiness": 0.9, "neutral": 0.1}


def reading(probs, v, a, c=1.0, hours_ago=0.0) -> Reading:
    return Reading(probabilities=probs, valence=v, arousal=a, confidence=c, at=NOW - timedelta(hours=hours_ago))


def test_one_half_life_old_reading_weighs_half():
    assert decay_factor(24.0, 24.0) == pytest.approx(0.5)
    assert decay_factor(48.0, 24.0) == pytest.approx(0.25)
    assert decay_factor(0.0, 24.0) == 1.0
    assert decay_factor(-5.0, 24.0) == 1.0  # clock skew: a future reading counts as fresh

    sums = accumulate([reading(SAD, -0.6, -0.3, hours_ago=24)], as_of=NOW, half_life_hours=24)
    assert sums.weight == pytest.approx(0.5)

    # A fresh happy reading and a one-half-life-old sad reading: weights 1 and 0.5.
    mood = estimate_mood(
        [reading(HAPPY, 0.8, 0.4), reading(SAD, -0.6, -0.3, hours_ago=24)], now=NOW, half_life_hours=24
    )
    assert mood.valence == pytest.approx((1.0 * 0.8 + 0.5 * -0.6) / 1.5)
    assert mood.arousal == pytest.approx((1.0 * 0.4 + 0.5 * -0.3) / 1.5)
    assert mood.label == "happiness"


def test_confidence_weighting():
    mood = estimate_mood(
        [reading(HAPPY, 0.8, 0.4, c=0.9), reading(SAD, -0.6, -0.3, c=0.3)], now=NOW, half_life_hours=24
    )
    assert mood.valence == pytest.approx((0.9 * 0.8 + 0.3 * -0.6) / 1.2)
    # confidence = sum(w) / max(1, sum(d)) = 1.2 / 2
    assert mood.confidence == pytest.approx(0.6)


def test_distribution_is_probability_weighted_not_argmax():
    mood = estimate_mood(
        [reading({"sadness": 0.6, "neutral": 0.4}, -0.4, -0.2), reading({"neutral": 0.7, "happiness": 0.3}, 0.2, 0)],
        now=NOW,
        half_life_hours=24,
    )
    assert mood.distribution["neutral"] == pytest.approx(0.55)
    assert mood.distribution["sadness"] == pytest.approx(0.3)
    assert mood.distribution["happiness"] == pytest.approx(0.15)
    assert sum(mood.distribution.values()) == pytest.approx(1.0)
    assert mood.label == "neutral"


def test_unknown_without_recent_readings():
    assert not estimate_mood([], now=NOW, half_life_hours=24).known
    old = reading(SAD, -0.6, -0.3, hours_ago=24 * 5)  # 1/32 < MIN_EVIDENCE
    mood = estimate_mood([old], now=NOW, half_life_hours=24)
    assert not mood.known and mood.reason == "no recent selfie"
    # ... but with a longer half-life the same reading is still recent.
    assert estimate_mood([old], now=NOW, half_life_hours=72).known


def test_stored_sums_age_like_recomputation():
    """Memoryless decay: sums stored at t0 and aged to t1 equal a recomputation at t1."""
    readings = [reading(SAD, -0.6, -0.3, c=0.8, hours_ago=h) for h in (0, 5, 30)]
    sums = accumulate(readings, as_of=NOW, half_life_hours=24)
    later = NOW + timedelta(hours=36)
    aged = mood_from_sums(sums, now=later, half_life_hours=24)
    direct = estimate_mood(readings, now=later, half_life_hours=24)
    assert aged.known and direct.known
    assert aged.valence == pytest.approx(direct.valence)
    assert aged.confidence == pytest.approx(direct.confidence)
    assert aged.evidence == pytest.approx(direct.evidence)
    # Long after, the stored state becomes unknown by itself.
    assert not mood_from_sums(sums, now=NOW + timedelta(days=10), half_life_hours=24).known


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1, 1),
            st.floats(-1, 1),
            st.floats(0.01, 1),
            st.floats(0, 200),
        ),
        min_size=1,
        max_size=12,
    ),
    st.floats(1, 720),
)
def test_mood_values_stay_in_range(rows, half_life):
    readings = [reading(SAD, v, a, c, h) for v, a, c, h in rows]
    mood = estimate_mood(readings, now=NOW, half_life_hours=half_life)
    if mood.known:
        assert -1 <= mood.valence <= 1 and -1 <= mood.arousal <= 1
        assert 0 <= mood.confidence <= 1
        assert mood.evidence >= MIN_EVIDENCE


def test_affect_from_faces():
    assert affect_from_faces([]) is None
    affect = affect_from_faces([Face(HAPPY, 0.8, 0.4, 0.9), Face(SAD, -0.6, -0.3, 0.3)])
    assert affect.face_count == 2
    assert affect.valence == pytest.approx((0.9 * 0.8 + 0.3 * -0.6) / 1.2)
    assert affect.confidence == pytest.approx(0.6)
    assert affect.dominant_emotion == "happiness"
