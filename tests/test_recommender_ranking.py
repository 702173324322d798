"""Unit tests of the pure ranking stages (recommender.ranking), no database."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.mood import Affect, Mood
from recommender.ranking import (
    BASE_REASON,
    DIVERSITY_NOTE,
    MAX_BOOST,
    Candidate,
    MoodKind,
    MoodView,
    Policy,
    Ranked,
    Source,
    affect_level,
    base_rank,
    content_tone,
    diversify,
    explain,
    hot_score,
    intensity,
    mood_kind,
    mood_stage,
    rank_feed,
    source_contributions,
)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)

HAPPY = Affect(valence=0.8, arousal=0.4, confidence=0.9, dominant_emotion="happiness")
CALM = Affect(valence=0.3, arousal=-0.6, confidence=0.9, dominant_emotion="neutral")
SADC = Affect(valence=-0.7, arousal=-0.3, confidence=0.9, dominant_emotion="sadness")
ANGRY = Affect(valence=-0.6, arousal=0.7, confidence=0.9, dominant_emotion="anger")

SAD_MOOD = Mood(known=True, label="sadness", valence=-0.6, arousal=-0.3, confidence=0.8)
ANGRY_MOOD = Mood(known=True, label="anger", valence=-0.6, arousal=0.7, confidence=0.8)
HAPPY_MOOD = Mood(known=True, label="happiness", valence=0.7, arousal=0.4, confidence=0.8)
NEUTRAL_MOOD = Mood(known=True, label="neutral", valence=0.0, arousal=0.0, confidence=0.8)
UNKNOWN = Mood.unknown("no consent")


def cand(pid, hours_ago=0.0, likes=0, affect=None, author=None, source=Source.NETWORK, text=None) -> Candidate:
    return Candidate.of(
        post_id=pid,
        author_id=author if author is not None else pid,
        created_ts=(NOW - timedelta(hours=hours_ago)).timestamp(),
        like_count=likes,
        affect=affect,
        source=source,
        text_affect=text,
    )


def ids(items) -> list[int]:
    return [r.candidate.post_id for r in items]


# A feed where the sad/angry posts are newest, so the base ranking puts them first.
FEED = [
    cand(1, 0.5, affect=SADC),
    cand(2, 1.0, affect=ANGRY),
    cand(3, 1.5),  # no faces: unknown affect
    cand(4, 2.0, affect=HAPPY),
    cand(5, 2.5, affect=CALM),
    cand(6, 3.0, affect=HAPPY),
]


def reference_mood_stage(items: list[Ranked], mood: Mood, policy: Policy, strength: float) -> list[Ranked]:
    """The mood stage spelt out from its documented parts (source_contributions, affect_level, explain)."""
    scale = strength * MAX_BOOST * intensity(mood, policy) * mood.confidence
    out = []
    for item in items:
        parts = source_contributions(item.candidate, mood, policy) if scale > 0.0 else []
        if not parts:
            out.append(Ranked(item.candidate, item.base_score, item.base_position))
            continue
        weight = sum(part for _, part, _ in parts)
        delta = scale * (affect_level(weight) if any(not is_text for _, _, is_text in parts) else weight)
        movers = [(affect, is_text) for affect, part, is_text in parts if part * delta > 0.0]
        text = next((affect for affect, is_text in movers if is_text), None)
        photo = next((affect for affect, is_text in movers if not is_text), None)
        reason = explain(delta, text, photo, mood, policy, own=item.candidate.source == Source.OWN)
        out.append(Ranked(item.candidate, item.base_score, item.base_position, delta, reason))
    out.sort(key=lambda r: (-(r.base_score + r.mood_delta), r.base_position))
    return out


_unit = st.floats(-1.0, 1.0, allow_nan=False)
_confidence = st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_nan=False))
_faces = st.builds(Affect, valence=_unit, arousal=_unit, confidence=_confidence)
#: Text valence includes the tone boundaries (+-0.15: uplifting / gloomy from there, neutral between).
_text_valence = st.one_of(_unit, st.sampled_from([-0.15, -0.1499, 0.1499, 0.15]))
_text = st.builds(Affect, valence=_text_valence, arousal=st.none(), confidence=_confidence, face_count=st.just(0))
_moods = st.one_of(
    st.just(UNKNOWN),
    st.builds(Mood, known=st.just(True), label=st.sampled_from(["sadness", "anger", "happiness", "neutral", "fear"]),
              valence=_unit, arousal=_unit, confidence=st.floats(0.0, 1.0, allow_nan=False)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    affects=st.lists(
        st.tuples(st.none() | _faces, st.none() | _text, st.sampled_from(list(Source)), st.integers(0, 50)), max_size=30
    ),
    mood=_moods,
    policy=st.sampled_from(list(Policy)),
    strength=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_mood_stage_equals_its_documented_parts(affects, mood, policy, strength):
    """The inlined per-post loops give exactly what hot_score, source_contributions, affect_level and explain
    define: the same base scores, order, deltas and reasons."""
    feed = [
        cand(i, hours_ago=i / 7, likes=likes, affect=faces, text=text, source=source)
        for i, (faces, text, source, likes) in enumerate(affects)
    ]
    base = base_rank(feed, now=NOW)
    for r in base:
        age_hours = (NOW.timestamp() - r.candidate.created_ts) / 3600.0
        assert r.base_score == hot_score(
            like_count=r.candidate.like_count, age_hours=age_hours, source=r.candidate.source
        )
    got = [(r.candidate.post_id, r.mood_delta, r.reason) for r in mood_stage(base, mood, policy, strength)]
    want = [(r.candidate.post_id, r.mood_delta, r.reason) for r in reference_mood_stage(base, mood, policy, strength)]
    assert got == want


@settings(max_examples=300, deadline=None)
@given(
    mood=_moods,
    policy=st.sampled_from(list(Policy)),
    valence=st.one_of(_unit, st.floats(-2.0, 2.0, allow_nan=False), st.sampled_from([-1.0, -0.15, 0.15, 1.0])),
    arousal=st.none() | _unit,
)
def test_the_specialised_affinity_equals_the_affinity(mood, policy, valence, arousal):
    """What the mood stage calls per source (picked once per feed) is MoodView.affinity, for every kind of mood."""
    view = MoodView.of(mood, policy)
    assert view.affinity_function()(valence, arousal) == view.affinity(valence, arousal)
    assert view.text_affinity_function()(valence) == view.affinity(valence, None)


def test_the_mood_stage_writes_each_text_reason_once_a_feed(monkeypatch):
    """Reasons naming the text are written once per distinct (direction, both sources, tone) of a feed, not once
    per post: 40 posts moved by two tones of text, alone or with the photo, take 4 explain() calls."""
    calls = []
    written = MoodView.explain

    def counting(self, *args, **kwargs):
        calls.append(args)
        return written(self, *args, **kwargs)

    monkeypatch.setattr(MoodView, "explain", counting)
    uplifting, gloomy = Affect(0.8, None, 0.75, "", 0), Affect(-0.7, None, 0.75, "", 0)
    feed = [
        cand(i, i / 10, text=[uplifting, gloomy][i % 2], affect=[HAPPY, SADC, None, None][i % 4]) for i in range(40)
    ]
    out = mood_stage(base_rank(feed, now=NOW), SAD_MOOD, Policy.REPAIR, 1.0)
    assert len(calls) == 4 and len({r.reason for r in out}) == 4
    assert {r.reason for r in out if r.candidate.post_id % 4 == 0} == {
        "lifted: uplifting text while you seem sad, and the photo"
    }


@pytest.mark.parametrize("policy", [Policy.CONGRUENT, Policy.REPAIR])
def test_text_tones_either_side_of_their_boundaries_get_their_own_reasons(policy):
    """Reasons are written once a feed by the text's tone: posts either side of a tone boundary (+-0.15), moved
    the same way in one feed, each get the reason explain() gives them alone."""
    mood = NEUTRAL_MOOD if policy == Policy.CONGRUENT else ANGRY_MOOD
    valences = [0.15, 0.1499, 0.0, -0.1499, -0.15, 0.6, -0.6, 0.3, 0.9, -0.9]  # congruent: 0.9 lowered, 0.15 lifted
    feed = [cand(i, i / 10, text=Affect(v, None, 0.75, "", 0), affect=CALM if i in (5, 6, 7) else None)
            for i, v in enumerate(valences)]  # fmt: skip
    base = base_rank(feed, now=NOW)
    got = [(r.candidate.post_id, r.mood_delta, r.reason) for r in mood_stage(base, mood, policy, 1.0)]
    assert got == [(r.candidate.post_id, r.mood_delta, r.reason) for r in reference_mood_stage(base, mood, policy, 1.0)]
    assert len({reason for *_, reason in got}) >= 3


def test_a_candidate_from_affect_objects_gives_them_back():
    c = Candidate.of(1, 2, 3.0, 4, HAPPY, Source.OWN, Affect(-0.6, None, 0.56, "", 0))
    assert (c.face_valence, c.face_arousal, c.face_confidence, c.text_valence, c.text_confidence) == (
        0.8, 0.4, 0.9, -0.6, 0.56
    )  # fmt: skip
    assert c.affect == Affect(0.8, 0.4, 0.9) and c.text_affect == Affect(-0.6, None, 0.56, "", 0)
    assert Candidate.of(1, 2, 3.0).affect is None and Candidate.of(1, 2, 3.0).text_affect is None
    with pytest.raises(ValueError, match="text affect has no arousal"):
        Candidate.of(1, 2, 3.0, text_affect=Affect(0.5, 0.2, 0.9))
    with pytest.raises(ValueError, match="face affect needs an arousal"):
        Candidate.of(1, 2, 3.0, affect=Affect(0.5, None, 0.9))


# --- base score ----------------------------------------------------------------------


def test_hot_score_formula():
    assert hot_score(like_count=0, age_hours=0) == 0.0
    assert hot_score(like_count=1, age_hours=0) == 0.0
    assert hot_score(like_count=100, age_hours=0) == pytest.approx(2.0)
    # 10x likes buys 12.5 hours.
    assert hot_score(like_count=10, age_hours=12.5) == pytest.approx(hot_score(like_count=1, age_hours=0))
    assert hot_score(like_count=1, age_hours=0, source=Source.POPULAR) < 0


def test_base_rank_orders_by_hot_score_and_breaks_ties_deterministically():
    items = base_rank([cand(1, 5), cand(2, 1), cand(3, 30, likes=1000), cand(4, 1), cand(4, 1)], now=NOW)
    # 4 and 2 tie on score and time: the higher id wins; the duplicate 4 is dropped.
    assert ids(items) == [3, 4, 2, 1]
    assert [r.base_position for r in items] == [0, 1, 2, 3]


# --- mood stage ----------------------------------------------------------------------


def own(feed: list[Candidate]) -> list[Candidate]:
    """The same candidates as the viewer's own posts (their tone may be named)."""
    return [replace(c, source=Source.OWN) for c in feed]


def test_repair_lifts_uplifting_content_for_sad_mood():
    base = base_rank(FEED, now=NOW)
    assert ids(base) == [1, 2, 3, 4, 5, 6]
    out = mood_stage(base_rank(own(FEED), now=NOW), SAD_MOOD, Policy.REPAIR, 1.0)
    assert set(ids(out)[:3]) == {4, 5, 6}  # the uplifting posts first
    assert set(ids(out)[-2:]) == {1, 2}  # the gloomy/tense posts last
    by_id = {r.candidate.post_id: r for r in out}
    assert by_id[4].reason == "lifted: uplifting photo while you seem sad"
    assert by_id[1].reason == "lowered: gloomy photo while you seem sad"
    assert by_id[3].reason == BASE_REASON and by_id[3].mood_delta == 0.0
    assert by_id[4].mood_delta > 0 > by_id[1].mood_delta


def test_other_authors_face_affect_moves_posts_without_naming_a_tone():
    out = mood_stage(base_rank(FEED, now=NOW), SAD_MOOD, Policy.REPAIR, 1.0)
    by_id = {r.candidate.post_id: r for r in out}
    assert set(ids(out)[:3]) == {4, 5, 6}
    assert by_id[4].reason == "moved up for your mood: the photo"
    assert by_id[1].reason == "moved down for your mood: the photo"
    assert by_id[3].reason == BASE_REASON


def test_text_affect_of_other_authors_names_the_tone_of_the_text():
    text = replace(HAPPY, arousal=None, face_count=0)  # text gives valence only
    out = mood_stage(base_rank([cand(1, 1.0, text=text)], now=NOW), SAD_MOOD, Policy.REPAIR, 1.0)
    assert out[0].reason == "lifted: uplifting text while you seem sad"


@settings(max_examples=200, deadline=None)
@given(
    valence=st.floats(-1, 1),
    arousal=st.floats(-1, 1),
    confidence=st.floats(0, 1),
    policy=st.sampled_from([Policy.REPAIR, Policy.CONGRUENT]),
    strength=st.sampled_from([0.25, 0.5, 1.0]),
)
def test_a_post_moves_by_one_of_five_levels_only(valence, arousal, confidence, policy, strength):
    """The adjustment of another author's post is strength x MAX_BOOST x mood factor x one of
    -1, -0.5, 0, 0.5, 1: the order reveals that level, never the affect's value."""
    affect = Affect(valence=valence, arousal=arousal, confidence=confidence)
    [out] = mood_stage(base_rank([cand(1, 1.0, affect=affect)], now=NOW), SAD_MOOD, policy, strength)
    scale = strength * MAX_BOOST * intensity(SAD_MOOD, policy) * SAD_MOOD.confidence
    assert out.mood_delta / scale in {-1.0, -0.5, 0.0, 0.5, 1.0}


def test_repair_lifts_calm_and_lowers_tense_content_for_angry_mood():
    out = mood_stage(base_rank(own(FEED), now=NOW), ANGRY_MOOD, Policy.REPAIR, 1.0)
    by_id = {r.candidate.post_id: r for r in out}
    assert ids(out)[0] == 5  # calm first
    assert ids(out)[-1] == 2  # the angry post last
    assert by_id[5].reason == "lifted: calm photo while you seem angry"
    assert by_id[2].reason == "lowered: tense photo while you seem angry"
    # Calm beats excited-happy for an angry mood.
    assert by_id[5].mood_delta > by_id[4].mood_delta


@pytest.mark.parametrize("mood", [HAPPY_MOOD, NEUTRAL_MOOD])
def test_repair_keeps_base_order_for_positive_or_neutral_mood(mood):
    base = base_rank(FEED, now=NOW)
    out = mood_stage(base, mood, Policy.REPAIR, 1.0)
    assert ids(out) == ids(base)
    assert {r.reason for r in out} == {BASE_REASON}


def test_congruent_matches_the_mood():
    out = mood_stage(base_rank(own(FEED), now=NOW), SAD_MOOD, Policy.CONGRUENT, 1.0)
    assert ids(out)[0] == 1  # the sad post
    by_id = {r.candidate.post_id: r for r in out}
    assert by_id[1].reason == "lifted: gloomy photo that matches your sad mood"
    assert by_id[4].reason == "lowered: uplifting photo that clashes with your sad mood"
    out = mood_stage(base_rank(FEED, now=NOW), HAPPY_MOOD, Policy.CONGRUENT, 1.0)
    assert ids(out)[:2] == [4, 6]


@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("mood", [SAD_MOOD, ANGRY_MOOD, HAPPY_MOOD, UNKNOWN])
def test_strength_zero_is_identical_to_base(policy, mood):
    base = base_rank(FEED, now=NOW)
    out = mood_stage(base, mood, policy, 0.0)
    assert ids(out) == ids(base)
    assert [r.score for r in out] == [r.base_score for r in base]
    assert {r.reason for r in out} == {BASE_REASON}


@pytest.mark.parametrize("policy", list(Policy))
def test_unknown_mood_and_off_policy_are_plain_base_ranking(policy):
    base = base_rank(FEED, now=NOW)
    assert ids(mood_stage(base, UNKNOWN, policy, 1.0)) == ids(base)
    assert ids(mood_stage(base, SAD_MOOD, Policy.OFF, 1.0)) == ids(base)


def test_strength_scales_the_adjustment():
    base = base_rank(FEED, now=NOW)
    half = {r.candidate.post_id: r.mood_delta for r in mood_stage(base, SAD_MOOD, "repair", 0.5)}
    full = {r.candidate.post_id: r.mood_delta for r in mood_stage(base, SAD_MOOD, "repair", 1.0)}
    assert full[4] == pytest.approx(2 * half[4])


def test_ties_keep_base_order():
    # Identical posts (same time, same affect) tie after the mood stage: base order is kept.
    feed = [cand(i, 1.0, affect=HAPPY) for i in (10, 11, 12)]
    base = base_rank(feed, now=NOW)
    assert ids(mood_stage(base, SAD_MOOD, Policy.REPAIR, 1.0)) == ids(base) == [12, 11, 10]


def test_invalid_strength_and_policy_raise():
    base = base_rank(FEED, now=NOW)
    with pytest.raises(ValueError):
        mood_stage(base, SAD_MOOD, Policy.REPAIR, 1.5)
    with pytest.raises(ValueError):
        mood_stage(base, SAD_MOOD, "cheer-up", 0.5)


def test_mood_kind_and_tone():
    assert mood_kind(SAD_MOOD) == MoodKind.LOW
    assert mood_kind(ANGRY_MOOD) == MoodKind.TENSE
    assert mood_kind(HAPPY_MOOD) == MoodKind.POSITIVE
    assert mood_kind(NEUTRAL_MOOD) == MoodKind.NEUTRAL
    assert mood_kind(UNKNOWN) is None
    assert content_tone(HAPPY) == "uplifting"
    assert content_tone(CALM) == "calm"  # positive and low arousal
    assert content_tone(Affect(0.0, -0.5, 1.0)) == "calm"
    assert content_tone(SADC) == "gloomy"
    assert content_tone(ANGRY) == "tense"


# --- diversity --------------------------------------------------------------------------


def test_diversity_caps_consecutive_and_per_page():
    # Author 1 has the 6 best posts, authors 2..5 one each.
    feed = [cand(i, i * 0.1, author=1) for i in range(1, 7)] + [cand(10 + a, 5 + a, author=a) for a in range(2, 6)]
    out = diversify(base_rank(feed, now=NOW), page_size=5, max_consecutive=2, max_per_page=3)
    authors = [r.candidate.author_id for r in out]
    assert authors[:5].count(1) <= 3
    for i in range(2, len(authors)):
        if authors[i] == authors[i - 1] == authors[i - 2]:
            # only allowed once every other author has run out
            assert set(authors[i:]) == {authors[i]}
    assert sorted(ids(out)) == sorted(c.post_id for c in feed)  # nothing lost
    assert out[0].candidate.post_id == 1 and out[0].diversity_note == ""
    moved = [r for r in out if r.diversity_note]
    assert moved and all(r.candidate.author_id == 1 for r in moved)
    assert moved[0].explanation == f"{BASE_REASON}; {DIVERSITY_NOTE}"


def test_diversity_drops_duplicates_and_relaxes_when_single_author():
    feed = [cand(i, i, author=7) for i in range(1, 6)]
    base = base_rank(feed, now=NOW)
    out = diversify(base + base, page_size=3)
    assert ids(out) == ids(base)  # no duplicate, nothing lost, order kept


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 6),  # author
            st.floats(0, 100),  # hours ago
            st.integers(0, 500),  # likes
            st.sampled_from([None, HAPPY, CALM, SADC, ANGRY]),
        ),
        max_size=40,
    ),
    st.sampled_from([SAD_MOOD, ANGRY_MOOD, HAPPY_MOOD, UNKNOWN]),
    st.sampled_from(list(Policy)),
    st.floats(0, 1),
)
def test_pipeline_is_a_permutation_without_duplicates(rows, mood, policy, strength):
    feed = [cand(i, h, likes=n, affect=a, author=au) for i, (au, h, n, a) in enumerate(rows)]
    out = rank_feed(feed + feed[:3], now=NOW, mood=mood, policy=policy, strength=strength, page_size=5)
    assert sorted(ids(out)) == sorted(c.post_id for c in feed)
    assert not [k for k, n in Counter(ids(out)).items() if n > 1]
    for r in out:
        assert r.explanation


def test_popular_posts_are_marked_and_slightly_penalised():
    out = base_rank([cand(1, 1), cand(2, 1, source=Source.POPULAR)], now=NOW)
    assert ids(out) == [1, 2]


def test_weakly_toned_posts_keep_their_base_score():
    weak = Affect(valence=0.1, arousal=0.4, confidence=1.0)  # "intense" but barely positive
    out = mood_stage(base_rank([cand(1, 1.0, affect=weak)], now=NOW), SAD_MOOD, Policy.REPAIR, 1.0)
    assert out[0].mood_delta == 0.0 and out[0].reason == BASE_REASON
