"""The text-affect core (recommender.text_affect): VADER on English text and emoji, unknown otherwise."""

from __future__ import annotations

import pytest

from recommender.text_affect import CONFIDENCE_BY_STRENGTH, MAX_CHARS, confidence_for, read_text


def test_negation_flips_the_valence():
    happy, not_happy = read_text("I am happy"), read_text("I am not happy")
    assert happy.valence is not None and happy.valence > 0.3
    assert not_happy.valence is not None and not_happy.valence < -0.3
    assert happy.arousal is None and not_happy.arousal is None  # VADER gives no arousal


def test_intensifiers_caps_and_exclamation_strengthen_the_valence():
    plain = read_text("The food was good").valence
    assert read_text("The food was extremely good").valence > plain
    assert read_text("The food was GOOD!!!").valence > plain


@pytest.mark.parametrize(("text", "sign"), [("😍", 1), ("😢😢", -1), ("Best weekend ever 🎉", 1), ("ugh 😡", -1)])
def test_emoji_carry_valence(text, sign):
    reading = read_text(text)
    assert reading.known and reading.valence * sign > 0.2, reading


def test_emoji_only_text_is_read_without_a_language():
    reading = read_text("😢😢")
    assert reading.language == "" and reading.known


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_empty_text_has_unknown_affect(text):
    reading = read_text(text)
    assert not reading.known and reading.confidence == 0.0 and reading.reason == "no text"


def test_english_text_without_any_sentiment_cue_is_unknown_not_neutral():
    reading = read_text("Meeting moved to room 3 at five")
    assert not reading.known and reading.reason == "no sentiment cue" and reading.language == "en"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Le film était super, je n'ai pas aimé la fin", "fr"),  # VADER alone: +0.6 from "super"
        ("Ce restaurant est une catastrophe, vraiment nul", "fr"),
        ("Das ist kein Problem, alles super!", "de"),
        ("Estoy muy triste, no tengo ganas de nada", "es"),
        ("Non è vero, questo film è fantastico", "it"),
    ],
)
def test_a_language_the_lexicon_does_not_cover_gives_unknown_affect(text, language):
    reading = read_text(text)
    assert not reading.known and reading.confidence == 0.0
    assert reading.language == language and reading.reason == f"language not covered ({language})"


def test_short_slang_the_identifier_is_unsure_about_is_read_as_english():
    reading = read_text("LMAO, AMAZING!")  # identified as Swahili with probability ~0.24
    assert reading.known and reading.valence > 0.5 and reading.language == "en"


def test_confidence_follows_the_strength_of_the_reading_not_the_number_of_cues():
    weak, strong = read_text("okay"), read_text("I love this, it is wonderful!")
    assert 0.0 < abs(weak.valence) < 0.4 < 0.8 <= abs(strong.valence)
    assert weak.confidence == confidence_for(weak.valence) < strong.confidence == CONFIDENCE_BY_STRENGTH[-1][1]
    assert read_text("great").cues == 1 and read_text("great, lovely and fun").cues == 3


def test_confidence_bands_cover_every_strength():
    assert confidence_for(0.0) == CONFIDENCE_BY_STRENGTH[0][1]
    assert confidence_for(-1.0) == confidence_for(1.0) == CONFIDENCE_BY_STRENGTH[-1][1]
    assert [confidence_for(v / 10) for v in range(11)] == sorted(confidence_for(v / 10) for v in range(11))


def test_very_long_text_is_read_up_to_the_post_limit_and_stays_in_range():
    head = "What a wonderful, happy day with friends. " * (MAX_CHARS // 42 + 1)
    long_text = head + "Awful, terrible, horrible, hateful. " * 2000  # past MAX_CHARS: not read
    reading = read_text(long_text)
    assert reading == read_text(long_text[:MAX_CHARS])
    assert reading.known and 0.9 < reading.valence <= 1.0 and 0.0 < reading.confidence <= 1.0
