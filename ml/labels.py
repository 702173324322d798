"""Canonical emotion label names and the mappings from each dataset's own encoding."""

from __future__ import annotations

#: Every label FeedMood knows, in the canonical (alphabetical) output order.
CANONICAL: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)
#: The 7-class FER-2013 set in canonical order (no contempt).
FER2013_LABELS: tuple[str, ...] = tuple(name for name in CANONICAL if name != "contempt")
#: The 8-class FER+ set in canonical order.
FERPLUS_LABELS: tuple[str, ...] = CANONICAL

#: Kaggle fer2013.csv `emotion` codes 0..6 -> canonical names.
FER2013_CODES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
#: Emotion columns of Microsoft's fer2013new.csv, in file order (followed by unknown, NF).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

#: Folder names people use for these classes, lower-cased -> canonical.
ALIASES: dict[str, str] = {
    "angry": "anger",
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "neutral": "neutral",
    "calm": "neutral",
    "sad": "sadness",
    "sadness": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
}


def canonical_name(name: str) -> str:
    """Map a dataset's class name (any case) to the canonical label, or raise ValueError."""
    key = name.strip().lower()
    if key not in ALIASES:
        raise ValueError(f"unknown emotion class name {name!r}; expected one of {sorted(ALIASES)}")
    return ALIASES[key]
