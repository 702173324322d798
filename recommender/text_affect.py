"""Affect of a post's text and emoji (pure: no Django, no ORM).

Method: VADER (Hutto & Gilbert, ICWSM 2014; package ``vaderSentiment``, MIT),
a lexicon of ~7,500 human-rated words, emoticons and slang plus rules for
negation ("not happy"), intensifiers ("very"), "but", ALL CAPS and "!!!".
Emoji are read through the emoji lexicon shipped in the same wheel (each
emoji becomes its English description, which the lexicon then scores).
Everything is read from the installed wheel: nothing is downloaded.

What a reading holds:

- ``valence``: VADER's compound score in [-1, 1]; ``None`` (unknown) when the
  text is in another language or carries no sentiment cue at all;
- ``arousal``: always unknown (``None``): no licensed, offline source gives it;
- ``confidence``: how far the sign of the valence beats a coin toss, ``2 * p - 1``
  with ``p`` the sign accuracy measured on human-rated sentences for readings
  of that strength (:data:`CONFIDENCE_BY_STRENGTH`, ``bench/text_affect.py``):
  weak readings are often wrong (|valence| < 0.2: 53% right), strong ones
  rarely (>= 0.8: 89%). The number of cues does not predict it (measured too);
- ``language``: ``"en"`` when read as English, the detected code of a language
  not covered, ``""`` for text without letters.

Languages (detect, don't guess): the VADER lexicon is English. The language
is identified with ``py3langid`` (BSD-3; a naive Bayes model over byte n-grams
of 97 languages, shipped in the wheel). Text confidently identified as another
language (probability >= :data:`OTHER_LANGUAGE_MIN_PROBABILITY`) has unknown
affect; text the identifier is unsure about (short slang: "LMAO, AMAZING!")
is read as English, and like all text only counts with a sentiment cue.
Text without letters (only emoji or emoticons) is language-neutral and read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Texts longer than this are read up to it (a post holds at most 5,000 characters).
MAX_CHARS = 5000
#: A language other than English is trusted from this identifier probability on.
OTHER_LANGUAGE_MIN_PROBABILITY = 0.5
ENGLISH = "en"
#: (upper bound of |valence|, confidence = 2 * sign accuracy - 1) per band, measured on the four
#: human-rated sets of the VADER paper together (bench/results/text_affect.md, "by strength").
CONFIDENCE_BY_STRENGTH: tuple[tuple[float, float], ...] = ((0.2, 0.07), (0.4, 0.34), (0.6, 0.56), (0.8, 0.68),
                                                           (1.0, 0.78))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TextReading:
    """The affect read from one text (``valence`` None: unknown, ``reason`` says why)."""

    valence: float | None
    confidence: float
    language: str
    cues: int
    reason: str = ""
    arousal: float | None = None

    @property
    def known(self) -> bool:
        return self.valence is not None


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """``(language code, probability)`` of ``text``; ``("", 1.0)`` without letters."""
    if not any(ch.isalpha() for ch in text):
        return "", 1.0
    code, probability = _identifier().classify(text)
    return str(code), float(probability)


def is_read_as_english(language: str, probability: float) -> bool:
    """English, letter-free, or not confidently another language."""
    return language in ("", ENGLISH) or probability < OTHER_LANGUAGE_MIN_PROBABILITY


def describe_emoji(text: str) -> str:
    """``text`` with every emoji of VADER's emoji lexicon replaced by its description."""
    emojis = _analyzer().emojis
    parts: list[str] = []
    for ch in text:
        description = emojis.get(ch)
        parts.append(f" {description} " if description else ch)
    return " ".join("".join(parts).split())


def count_cues(described: str) -> int:
    """Words, emoticons and emoji descriptions of ``described`` found in the VADER lexicon."""
    from vaderSentiment.vaderSentiment import SentiText

    lexicon = _analyzer().lexicon
    return sum(1 for token in SentiText(described).words_and_emoticons if token.lower() in lexicon)


def read_text(text: str) -> TextReading:
    """The affect of ``text`` (see the module docstring for what each field means)."""
    text = (text or "")[:MAX_CHARS].strip()
    if not text:
        return TextReading(None, 0.0, "", 0, "no text")
    language, probability = detect_language(text)
    if not is_read_as_english(language, probability):
        return TextReading(None, 0.0, language, 0, f"language not covered ({language})")
    language = ENGLISH if language else ""  # what it is read as (an unsure guess is not kept)
    described = describe_emoji(text)
    cues = count_cues(described)
    if cues == 0:
        return TextReading(None, 0.0, language, 0, "no sentiment cue")
    valence = max(-1.0, min(1.0, float(_analyzer().polarity_scores(described)["compound"])))
    return TextReading(valence, confidence_for(valence), language, cues)


def confidence_for(valence: float) -> float:
    """The measured confidence of a reading of this strength (see :data:`CONFIDENCE_BY_STRENGTH`)."""
    strength = abs(valence)
    return next((c for bound, c in CONFIDENCE_BY_STRENGTH if strength < bound), CONFIDENCE_BY_STRENGTH[-1][1])
