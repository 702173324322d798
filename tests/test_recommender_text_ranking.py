"""The mood stage with text affect beside face affect (recommender.ranking, pure, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.mood import Affect
from recommender.ranking import BASE_REASON, MAX_BOOST, Policy, base_rank, content_tone, intensity, mood_stage
from tests.test_recommender_ranking import ANGRY_MOOD, HAPPY, HAPPY_MOOD, NOW, SAD_MOOD, SADC, cand, ids

#: Text gives valence only (VADER), no arousal.
UPLIFTING_TEXT = Affect(valence=0.8, arousal=None, confidence=0.75, face_count=0)
GLOOMY_TEXT = Affect(valence=-0.7, arousal=None, confidence=0.75, face_count=0)


def stage(feed, mood=SAD_MOOD, policy=Policy.REPAIR):
    out = mood_stage(base_rank(feed, now=NOW), mood, policy, 1.0)
    return out, {r.candidate.post_id: r for r in out}


def test_repair_lifts_uplifting_text_and_lowers_gloomy_text_naming_the_text():
    feed = [cand(1, 0.5, text=GLOOMY_TEXT), cand(2, 1.0), cand(3, 1.5, text=UPLIFTING_TEXT)]
    out, by_id = stage(feed)
    assert ids(out) == [3, 2, 1]
    assert by_id[3].reason == "lifted: uplifting text while you seem sad"
    assert by_id[1].reason == "lowered: gloomy text while you seem sad"
    assert by_id[2].reason == BASE_REASON and by_id[2].mood_delta == 0.0  # no text, no faces: base ranking


def test_congruent_does_the_reverse_for_text():
    feed = [cand(1, 0.5, text=UPLIFTING_TEXT), cand(2, 1.0, text=GLOOMY_TEXT)]
    out, by_id = stage(feed, policy=Policy.CONGRUENT)
    assert ids(out) == [2, 1]
    assert by_id[2].reason == "lifted: gloomy text that matches your sad mood"
    assert by_id[1].reason == "lowered: uplifting text that clashes with your sad mood"
    out, _ = stage(feed, mood=HAPPY_MOOD, policy=Policy.CONGRUENT)
    assert ids(out) == [1, 2]


def test_tense_mood_repair_reads_text_by_valence_alone():
    feed = [cand(1, 0.5, text=GLOOMY_TEXT), cand(2, 1.0, text=UPLIFTING_TEXT)]
    out, by_id = stage(feed, mood=ANGRY_MOOD)
    assert ids(out) == [2, 1]
    assert by_id[2].reason == "lifted: uplifting text while you seem angry"


def test_both_sources_agreeing_name_both_and_are_not_moved_twice_as_far():
    both = cand(1, 0.5, affect=HAPPY, text=UPLIFTING_TEXT)
    _, by_id = stage([both, cand(2, 0.5, affect=HAPPY), cand(3, 0.5, text=UPLIFTING_TEXT)])
    assert by_id[1].reason == "lifted: uplifting text while you seem sad, and the photo"
    # Confidence-weighted: between the two single-source deltas, not their sum.
    singles = sorted([by_id[2].mood_delta, by_id[3].mood_delta])
    assert singles[0] <= by_id[1].mood_delta <= singles[1]


def test_when_sources_disagree_only_the_one_that_moved_the_post_is_named():
    # Gloomy faces (conf 0.9) and faintly uplifting text (conf 0.3): the faces win, the reason names only the photo.
    faint_text = Affect(valence=0.8, arousal=None, confidence=0.3, face_count=0)
    _, by_id = stage([cand(1, 0.5, affect=SADC, text=faint_text)])
    assert by_id[1].mood_delta < 0 and by_id[1].reason == "moved down for your mood: the photo"
    confident_text = Affect(valence=0.9, arousal=None, confidence=1.0, face_count=0)
    faint_faces = Affect(valence=-0.3, arousal=-0.2, confidence=0.3)
    _, by_id = stage([cand(1, 0.5, affect=faint_faces, text=confident_text)])
    assert by_id[1].mood_delta > 0 and by_id[1].reason == "lifted: uplifting text while you seem sad"


@pytest.mark.parametrize("policy", list(Policy))
def test_photo_reasons_never_name_the_tone_of_faces(policy):
    feed = [cand(i, i, affect=a) for i, a in enumerate([HAPPY, SADC, Affect(0.2, -0.4, 0.9)], start=1)]
    for mood in (SAD_MOOD, ANGRY_MOOD, HAPPY_MOOD):
        for r in stage(feed, mood=mood, policy=policy)[0]:
            assert not {"uplifting", "gloomy", "calm", "tense", "exciting", "intense"} & set(r.reason.split()), r.reason


def test_text_tone_uses_valence_alone():
    assert content_tone(UPLIFTING_TEXT) == "uplifting"
    assert content_tone(GLOOMY_TEXT) == "gloomy"
    assert content_tone(Affect(0.05, None, 1.0)) == "neutral"


@settings(max_examples=200, deadline=None)
@given(
    face_v=st.floats(-1, 1),
    face_c=st.floats(0, 1),
    text_v=st.floats(-1, 1),
    text_c=st.floats(0, 1),
    policy=st.sampled_from([Policy.REPAIR, Policy.CONGRUENT]),
)
def test_with_faces_among_the_sources_a_post_moves_by_one_of_five_levels(face_v, face_c, text_v, text_c, policy):
    """Public text beside a photo must not let the exact face affect through: text is known, so an exact
    combined weight would give the face part away by subtraction."""
    faces = Affect(valence=face_v, arousal=0.0, confidence=face_c)
    text = Affect(valence=text_v, arousal=None, confidence=text_c, face_count=0)
    [out] = mood_stage(base_rank([cand(1, 1.0, affect=faces, text=text)], now=NOW), SAD_MOOD, policy, 1.0)
    scale = MAX_BOOST * intensity(SAD_MOOD, policy) * SAD_MOOD.confidence
    assert out.mood_delta / scale in {-1.0, -0.5, 0.0, 0.5, 1.0}
