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
- ``confidence``: ``1 - 0.5 ** cues`` (one sentiment-bearing word or emoji:
  0.5, two: 0.75, three: 0.875...): a reading resting on more cues is trusted more;
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
    compound = float(_analyzer().polarity_scores(described)["compound"])
    return TextReading(max(-1.0, min(1.0, compound)), 1.0 - 0.5**cues, language, cues)
