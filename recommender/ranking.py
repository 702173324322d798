"""Feed ranking stages as pure functions (no Django, no ORM).

Pipeline (BookWyrm/X style)::

    candidates -> base_rank -> mood_stage -> diversify -> (cursor page, in the API)

Base score (hot rank, Reddit-style; documented so it can be tuned)::

    base = log10(max(likes, 1)) - age_hours / HOURS_PER_DECADE - (OUT_OF_NETWORK_PENALTY if popular)

so 10x more likes buys ``HOURS_PER_DECADE`` (12.5) hours of freshness.  Age is
measured from the feed *snapshot* time, which makes a snapshot's order
deterministic.

Mood stage (separate, see :func:`mood_stage`) adds to each post with known
affect::

    delta = strength * MAX_BOOST * intensity(mood) * mood.confidence * level
    weight = sum_s(c_s * c_s * affinity_s) / sum_s(c_s)
    level = round(weight / 0.5) * 0.5 if the post has face affect else weight    # faces: one of -1, -0.5, 0, 0.5, 1

over the post's sources ``s`` with known affect, with ``affinity_s`` in [-1, 1]
chosen by the policy and the kind of mood:

=========  =======================================  ===============================  ===============================  ==========================
policy     mood (valence v, arousal a)              lifts                            lowers                           affinity
=========  =======================================  ===============================  ===============================  ==========================
repair     low: v <= -0.15, a <= 0.15 (sadness)     uplifting (positive valence)     gloomy / tense (neg. valence)    v_post
repair     tense: v <= -0.15, a > 0.15              calm, non-negative (low arousal  tense (negative, high arousal),  clip(v_post - a_post)
           (anger, fear, disgust, contempt)         and/or positive valence)         agitating (high arousal)
repair     positive (v >= 0.15) or neutral          nothing (base order kept)        nothing                          0
congruent  any known mood                           posts within 0.5 of the mood     posts farther from it            clip(1 - distance / 0.5)
                                                    in (v, a)
off        any                                      nothing                          nothing                          0
any        unknown mood (no consent, no recent      nothing: plain base ranking      nothing                          0
           selfie) or post without known affect
           (no faces, no readable text)
=========  =======================================  ===============================  ===============================  ==========================

A post's sources are the faces in its image and its text, each with its
confidence ``c_s``: one source gives ``c * affinity``; two give the
confidence-weighted mean of ``c_s * affinity_s`` (a post is not moved twice as
far for having both). Text gives no arousal: its affinity uses valence alone
(tense repair: ``v_post``; congruent: the valence distance).

Affinities within +-0.15 of 0 count as 0 (weakly toned posts keep their base
score).  Reasons name the source that moved the post: the text with its
tone ("lifted: uplifting text while you seem sad"), the photo (its tone only
on the viewer's own posts: what faces in another person's photo show is never
named), or both.
``intensity`` is ``min(1, -v / 0.5)`` for repair (a mildly negative mood gets a
mild change) and 1 for congruent.  ``strength`` 0 leaves the base order exactly
unchanged; ties keep the base order.

Diversity: at most ``max_consecutive`` posts in a row by one author and at most
``max_per_page`` per page; a post is never repeated.  Every item carries a
human-readable ``reason``; for other people's posts moved by the faces in their
photos it names no tone ("moved up for your mood: the photo", see :func:`explain`), and the
rounded ``level`` keeps the order from revealing more than a coarse level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from recommender.mood import Affect, Mood

HOURS_PER_DECADE = 12.5
OUT_OF_NETWORK_PENALTY = 0.5
MAX_BOOST = 3.0
NEGATIVE_VALENCE = -0.15
POSITIVE_VALENCE = 0.15
HIGH_AROUSAL = 0.15
REPAIR_FULL_INTENSITY_VALENCE = 0.5
REASON_EPSILON = 0.01
#: A post's mood weight (affect confidence x affinity) is rounded to this step before it moves the
#: post: the feed order then reveals only a coarse level of another author's affect, never a number.
AFFECT_LEVEL_STEP = 0.5
#: Affinities closer to 0 than this are treated as 0 (no change, "base ranking"),
#: so weakly toned posts are not nudged with a confusing explanation.
AFFINITY_DEAD_ZONE = 0.15
#: Congruent: posts within this (valence, arousal) distance of the mood are lifted.
CONGRUENT_RADIUS = 0.5

BASE_REASON = "base ranking"
#: Reasons for other people's posts moved by the faces in their photos (``...: the photo``): the tone is never named.
MOVED_UP_REASON = "moved up for your mood"
MOVED_DOWN_REASON = "moved down for your mood"
DIVERSITY_NOTE = "moved down: spacing out posts by the same author"


class Policy(str, Enum):
    REPAIR = "repair"
    CONGRUENT = "congruent"
    OFF = "off"


class Source(str, Enum):
    OWN = "own"
    NETWORK = "network"
    POPULAR = "popular"


class MoodKind(str, Enum):
    LOW = "low"
    TENSE = "tense"
    POSITIVE = "positive"
    NEUTRAL = "neutral"


@dataclass(slots=True)
class Candidate:
    """A post that may appear in the feed, with what ranking needs to know about it.

    ``created_ts`` is the creation time in epoch seconds (see :func:`epoch`). Its affect is carried as plain
    numbers, not :class:`Affect` objects (one object fewer per source: a fresh ranking builds ~400 candidates):
    the faces' ``face_valence``, ``face_arousal`` and ``face_confidence`` (``face_valence`` None: no face affect)
    and the text's ``text_valence`` and ``text_confidence`` (``text_valence`` None: no text affect; text gives no
    arousal). :meth:`of` builds one from ``Affect`` objects, :attr:`affect` and :attr:`text_affect` give them back.
    """

    post_id: int
    author_id: int
    created_ts: float
    like_count: int = 0
    source: Source = Source.NETWORK
    face_valence: float | None = None
    face_arousal: float = 0.0
    face_confidence: float = 0.0
    text_valence: float | None = None
    text_confidence: float = 0.0

    @classmethod
    def of(
        cls,
        post_id: int,
        author_id: int,
        created_ts: float,
        like_count: int = 0,
        affect: Affect | None = None,
        source: Source = Source.NETWORK,
        text_affect: Affect | None = None,
    ) -> Candidate:
        """A candidate with the face ``affect`` and ``text_affect`` of its post (text gives no arousal)."""
        if text_affect is not None and text_affect.arousal is not None:
            raise ValueError("text affect has no arousal")
        if affect is not None and affect.arousal is None:
            raise ValueError("face affect needs an arousal")
        face = (affect.valence, affect.arousal, affect.confidence) if affect else (None, 0.0, 0.0)
        text = (text_affect.valence, text_affect.confidence) if text_affect else (None, 0.0)
        return cls(post_id, author_id, created_ts, like_count, source, *face, *text)

    @property
    def affect(self) -> Affect | None:
        """The faces' affect (None when unknown)."""
        if self.face_valence is None:
            return None
        return Affect(self.face_valence, self.face_arousal, self.face_confidence)

    @property
    def text_affect(self) -> Affect | None:
        """The text's affect (None when unknown); its arousal is None."""
        if self.text_valence is None:
            return None
        return Affect(self.text_valence, None, self.text_confidence, "", 0)


def epoch(moment: datetime | float) -> float:
    """Epoch seconds of an aware datetime (floats pass through)."""
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


@dataclass(slots=True)
class Ranked:
    """A candidate with its scores, base position and explanation."""

    candidate: Candidate
    base_score: float
    base_position: int = 0
    mood_delta: float = 0.0
    reason: str = BASE_REASON
    diversity_note: str = ""

    @property
    def score(self) -> float:
        return self.base_score + self.mood_delta

    @property
    def explanation(self) -> str:
        """``reason`` plus the diversity note when the post was moved down for it."""
        return f"{self.reason}; {self.diversity_note}" if self.diversity_note else self.reason


# --- Stage 1: base score ----------------------------------------------------------------


def hot_score(*, like_count: int, age_hours: float, source: Source = Source.NETWORK) -> float:
    """Hot rank: ``log10(max(likes, 1)) - age_hours / 12.5`` (minus a penalty out of network)."""
    score = math.log10(max(int(like_count), 1)) - max(age_hours, 0.0) / HOURS_PER_DECADE
    if source == Source.POPULAR:
        score -= OUT_OF_NETWORK_PENALTY
    return score


def dedupe(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Drop repeated post ids, keeping the first (own/network before popular if ordered so)."""
    seen: set[int] = set()
    out: list[Candidate] = []
    for c in candidates:
        if c.post_id not in seen:
            seen.add(c.post_id)
            out.append(c)
    return out


def base_rank(candidates: Iterable[Candidate], *, now: datetime | float) -> list[Ranked]:
    """Score by hot rank and sort (ties: newer first, then higher id); duplicates dropped."""
    now_ts = epoch(now)
    log10, popular = math.log10, Source.POPULAR
    scored = []
    for c in dedupe(candidates):  # hot_score, inlined: this runs for every candidate of every fresh ranking
        score = log10(max(int(c.like_count), 1)) - max((now_ts - c.created_ts) / 3600.0, 0.0) / HOURS_PER_DECADE
        scored.append((score - OUT_OF_NETWORK_PENALTY if c.source == popular else score, c))
    scored.sort(key=lambda sc: (-sc[0], -sc[1].created_ts, -sc[1].post_id))
    return [Ranked(sc[1], sc[0], i) for i, sc in enumerate(scored)]


# --- Stage 2: mood ------------------------------------------------------------------------

_ADJECTIVES = {
    "sadness": "sad",
    "anger": "angry",
    "fear": "anxious",
    "disgust": "disgusted",
    "contempt": "irritated",
    "happiness": "happy",
    "surprise": "surprised",
    "neutral": "neutral",
}
_KIND_LABELS = {
    MoodKind.LOW: ({"sadness"}, "down"),
    MoodKind.TENSE: ({"anger", "fear", "disgust", "contempt"}, "tense"),
    MoodKind.POSITIVE: ({"happiness", "surprise"}, "upbeat"),
    MoodKind.NEUTRAL: ({"neutral"}, "neutral"),
}


def mood_kind(mood: Mood) -> MoodKind | None:
    """Classify a known mood by its valence/arousal (None when unknown)."""
    if not mood.known or mood.valence is None or mood.arousal is None:
        return None
    if mood.valence <= NEGATIVE_VALENCE:
        return MoodKind.TENSE if mood.arousal > HIGH_AROUSAL else MoodKind.LOW
    if mood.valence >= POSITIVE_VALENCE:
        return MoodKind.POSITIVE
    return MoodKind.NEUTRAL


def mood_adjective(mood: Mood) -> str:
    """How the user seems, for explanations ('sad', 'angry', ... or 'down'/'tense')."""
    kind = mood_kind(mood)
    if kind is None:
        return "unknown"
    labels, fallback = _KIND_LABELS[kind]
    return _ADJECTIVES[mood.label] if mood.label in labels else fallback


def content_tone(affect: Affect) -> str:
    """A word for a post's affect: uplifting, exciting, calm, gloomy, tense, intense or neutral."""
    v, a = affect.valence, affect.arousal
    if a is None:  # valence only (text)
        return "uplifting" if v >= POSITIVE_VALENCE else "gloomy" if v <= NEGATIVE_VALENCE else "neutral"
    if v >= POSITIVE_VALENCE:
        return "exciting" if a > 0.5 else "calm" if a < -HIGH_AROUSAL else "uplifting"
    if v <= NEGATIVE_VALENCE:
        return "tense" if a > HIGH_AROUSAL else "gloomy"
    if a > 0.35:
        return "intense"
    if a < -HIGH_AROUSAL:
        return "calm"
    return "neutral"


def affinity(affect: Affect, mood: Mood, policy: Policy) -> float:
    """How much the policy wants this content for this mood, in [-1, 1] (see module table)."""
    return MoodView.of(mood, policy).affinity(affect.valence, affect.arousal)


def intensity(mood: Mood, policy: Policy) -> float:
    """How strongly this mood calls for a change under the policy, in [0, 1]."""
    if not mood.known or policy == Policy.OFF:
        return 0.0
    if policy == Policy.REPAIR:
        return min(1.0, max(0.0, -(mood.valence or 0.0)) / REPAIR_FULL_INTENSITY_VALENCE)
    return 1.0


def explain(delta: float, text: Affect | None, photo: Affect | None, mood: Mood, policy: Policy, *, own: bool) -> str:
    """The reason for a post moved by ``delta`` (``BASE_REASON`` when negligible), naming the source(s) that moved it.

    The tone of the post's ``text`` is named (the text is public), and so is the tone of the ``photo`` on the
    viewer's ``own`` posts; the tone read from faces in another person's photo is never named: that post was
    only "moved up for your mood: the photo".
    """
    return MoodView.of(mood, policy).explain(delta, text, photo, own=own)


@dataclass(frozen=True, slots=True)
class MoodView:
    """What the mood stage asks of the mood and policy, worked out once per feed instead of once per post."""

    kind: MoodKind | None
    policy: Policy
    valence: float
    arousal: float
    adjective: str
    #: Reasons already written, by (lifted, source kind, tone, both sources): one string object per distinct reason.
    reasons: dict[tuple[bool, str, str, bool], str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, mood: Mood, policy: Policy) -> MoodView:
        return cls(mood_kind(mood), Policy(policy), mood.valence or 0.0, mood.arousal or 0.0, mood_adjective(mood))

    def affinity(self, valence: float, arousal: float | None = None) -> float:
        """:func:`affinity` of content with this valence and arousal (``None``: text)."""
        kind, policy = self.kind, self.policy
        if kind is None or policy == Policy.OFF:
            return 0.0
        if policy == Policy.REPAIR:
            if kind == MoodKind.LOW:
                value = _clip(valence)
            elif kind == MoodKind.TENSE:
                value = _clip(valence - (arousal or 0.0))
            else:
                return 0.0
        elif arousal is None:
            value = _clip(1.0 - abs(valence - self.valence) / CONGRUENT_RADIUS)
        else:
            distance = math.hypot(valence - self.valence, arousal - self.arousal)
            value = _clip(1.0 - distance / CONGRUENT_RADIUS)
        return 0.0 if abs(value) < AFFINITY_DEAD_ZONE else value

    def affinity_function(self) -> Callable[[float, float | None], float]:
        """:meth:`affinity` specialised to this mood and policy: the mood stage calls it for every source of
        every post, and under repair it depends on the kind of mood alone."""
        if self.kind is None or self.policy == Policy.OFF:
            return _no_affinity
        if self.policy == Policy.REPAIR:
            return {MoodKind.LOW: _valence_affinity, MoodKind.TENSE: _calming_affinity}.get(self.kind, _no_affinity)
        return self.affinity

    def text_affinity_function(self) -> Callable[[float], float]:
        """:meth:`affinity` of text (valence alone) specialised to this mood and policy, as :meth:`affinity_function`."""
        if self.kind is None or self.policy == Policy.OFF:
            return _no_affinity
        if self.policy == Policy.REPAIR:  # low and tense moods both read text by its valence
            return _valence_affinity if self.kind in (MoodKind.LOW, MoodKind.TENSE) else _no_affinity
        return self.affinity

    def explain(self, delta: float, text: Affect | None, photo: Affect | None, *, own: bool) -> str:
        """:func:`explain` for this mood and policy."""
        if abs(delta) < REASON_EPSILON or (text is None and photo is None):
            return BASE_REASON
        if text is None and not own:
            return _PHOTO_REASONS[delta > 0]
        named, kind = (text, "text") if text is not None else (photo, "photo")
        assert named is not None
        lifted = delta > 0
        if self.policy == Policy.REPAIR and self.kind == MoodKind.LOW and lifted:
            tone = "uplifting"  # repair acts on valence alone for low moods: name that, not the arousal
        else:
            tone = content_tone(named)
        key = (lifted, kind, tone, text is not None and photo is not None)
        reason = self.reasons.get(key)
        if reason is None:  # shared string objects also keep the cached snapshot rows small (pickle memo)
            verb, also = ("lifted" if lifted else "lowered"), ", and the photo" if key[3] else ""
            if self.policy == Policy.CONGRUENT:
                relation = "matches" if lifted else "clashes with"
                reason = f"{verb}: {tone} {kind} that {relation} your {self.adjective} mood{also}"
            else:
                reason = f"{verb}: {tone} {kind} while you seem {self.adjective}{also}"
            self.reasons[key] = reason
        return reason


def _no_affinity(valence: float, arousal: float | None = None) -> float:
    return 0.0


def _valence_affinity(valence: float, arousal: float | None = None) -> float:
    """Repair for a low mood: the clipped valence, 0 within the dead zone (as :meth:`MoodView.affinity`)."""
    value = -1.0 if valence < -1.0 else 1.0 if valence > 1.0 else valence
    return 0.0 if -AFFINITY_DEAD_ZONE < value < AFFINITY_DEAD_ZONE else value


def _calming_affinity(valence: float, arousal: float | None) -> float:
    """Repair for a tense mood: the clipped ``valence - arousal`` (text: valence), 0 within the dead zone."""
    value = valence - (arousal or 0.0)
    value = -1.0 if value < -1.0 else 1.0 if value > 1.0 else value
    return 0.0 if -AFFINITY_DEAD_ZONE < value < AFFINITY_DEAD_ZONE else value


_PHOTO_REASONS = {True: f"{MOVED_UP_REASON}: the photo", False: f"{MOVED_DOWN_REASON}: the photo"}


def source_contributions(candidate: Candidate, mood: Mood, policy: Policy) -> list[tuple[Affect, float, bool]]:
    """``(affect, c * c * affinity / sum(c), is_text)`` for each source of the post with known affect."""
    sources = [(a, is_text) for a, is_text in ((candidate.affect, False), (candidate.text_affect, True)) if a]
    total = sum(a.confidence for a, _ in sources)
    if total <= 0.0:
        return []
    return [(a, a.confidence * a.confidence * affinity(a, mood, policy) / total, is_text) for a, is_text in sources]


def affect_level(weight: float) -> float:
    """A post's confidence-weighted affinity rounded to ``AFFECT_LEVEL_STEP`` (one of -1, -0.5, 0, 0.5, 1)."""
    return round(weight / AFFECT_LEVEL_STEP) * AFFECT_LEVEL_STEP + 0.0


def mood_stage(items: Sequence[Ranked], mood: Mood, policy: Policy | str, strength: float) -> list[Ranked]:
    """Re-score and re-sort base-ranked items for the mood (pure; see the module table).

    ``strength`` 0, policy ``off`` or an unknown mood return the base order with
    ``BASE_REASON``.  Ties keep their base order.  Each post gets what
    :func:`source_contributions`, :func:`affect_level` and :func:`explain` give it, computed
    inline from the candidate's plain numbers (no ``Affect`` built, each distinct reason written once):
    this loop runs for every candidate of every fresh ranking.
    """
    policy = Policy(policy)
    if not 0.0 <= strength <= 1.0 or math.isnan(strength):
        raise ValueError("strength must be within [0, 1]")
    scale = strength * MAX_BOOST * intensity(mood, policy) * mood.confidence
    if scale <= 0.0:
        out = [Ranked(item.candidate, item.base_score, item.base_position) for item in items]
        out.sort(key=lambda r: (-(r.base_score + r.mood_delta), r.base_position))
        return out
    view = MoodView.of(mood, policy)
    affinity, text_affinity = view.affinity_function(), view.text_affinity_function()
    explain, own, step = view.explain, Source.OWN, AFFECT_LEVEL_STEP
    positive, negative = POSITIVE_VALENCE, NEGATIVE_VALENCE
    # A reason naming the text depends only on the direction, whether the photo moved the post too and the text's
    # tone (uplifting, gloomy, neutral: its valence alone): index 6 * lifted + 3 * both + tone, written once a feed.
    text_reasons: list[str | None] = [None] * 12
    out = []
    append = out.append
    for item in items:  # the three cases of source_contributions spelt out: most posts have one source
        candidate = item.candidate
        face, text = candidate.face_valence, candidate.text_valence
        if text is None:
            c = candidate.face_confidence
            if face is None or c <= 0.0:
                append(Ranked(candidate, item.base_score, item.base_position))
                continue
            # One source: c * c * affinity / c. Faces are rounded to a coarse level (a person's reading).
            face_part, text_part = c * c * affinity(face, candidate.face_arousal) / c, 0.0
            delta = scale * (round(face_part / step) * step + 0.0)  # affect_level(0.0 + face_part)
        elif face is None:
            c = candidate.text_confidence
            if c <= 0.0:
                append(Ranked(candidate, item.base_score, item.base_position))
                continue
            face_part, text_part = 0.0, c * c * text_affinity(text) / c
            delta = scale * (0.0 + text_part)  # a text-only weight stays exact (anyone can read the text)
        else:
            face_c, text_c = candidate.face_confidence, candidate.text_confidence
            total = face_c + text_c
            if total <= 0.0:
                append(Ranked(candidate, item.base_score, item.base_position))
                continue
            # Both: each part is c * c * affinity / sum(c), faces first, as source_contributions orders them.
            face_part = face_c * face_c * affinity(face, candidate.face_arousal) / total
            text_part = text_c * text_c * text_affinity(text) / total
            delta = scale * (round((0.0 + face_part + text_part) / step) * step + 0.0)
        if -REASON_EPSILON < delta < REASON_EPSILON:
            reason = BASE_REASON  # as explain() gives it, without the call
        elif text is not None and text_part * delta > 0.0:  # the text moved the post: explain() names its tone
            both = face_part * delta > 0.0
            tone = 0 if text >= positive else 1 if text <= negative else 2  # uplifting, gloomy, neutral
            index = (6 if delta > 0.0 else 0) + (3 if both else 0) + tone
            written = text_reasons[index]
            if written is None:
                written = text_reasons[index] = explain(
                    delta, candidate.text_affect, candidate.affect if both else None, own=candidate.source == own
                )
            reason = written
        elif face_part * delta > 0.0:  # the photo alone: its tone is named on the viewer's own posts only
            own_post = candidate.source == own
            reason = explain(delta, None, candidate.affect, own=True) if own_post else _PHOTO_REASONS[delta > 0.0]
        else:
            reason = BASE_REASON
        append(Ranked(candidate, item.base_score, item.base_position, delta, reason))
    out.sort(key=lambda r: (-(r.base_score + r.mood_delta), r.base_position))
    return out


# --- Stage 3: diversity -----------------------------------------------------------------------


def diversify(
    items: Sequence[Ranked],
    *,
    page_size: int = 20,
    max_consecutive: int = 2,
    max_per_page: int = 3,
    lookahead: int = 100,
) -> list[Ranked]:
    """Greedy re-order: no run longer than ``max_consecutive`` by one author, at most
    ``max_per_page`` per author in each page of ``page_size``; duplicates dropped.

    Each slot takes the best remaining item (within ``lookahead``) that breaks no
    rule; when none does (e.g. one author left) the rules are relaxed, first the
    per-page cap, then the run length.  Items passed over get ``DIVERSITY_NOTE``.
    """
    if page_size < 1 or max_consecutive < 1 or max_per_page < 1:
        raise ValueError("page_size, max_consecutive and max_per_page must be >= 1")
    pending: list[Ranked] = []
    seen: set[int] = set()
    for item in items:
        if item.candidate.post_id not in seen:
            seen.add(item.candidate.post_id)
            pending.append(item)

    out: list[Ranked] = []
    passed_over: set[int] = set()
    page_counts: dict[int, int] = {}
    run_author, run_length = None, 0
    while pending:
        if len(out) % page_size == 0:
            page_counts = {}
        blocked = run_author if run_length >= max_consecutive else None
        window = min(lookahead, len(pending))
        pick = None
        for i in range(window):  # both rules
            a = pending[i].candidate.author_id
            if a != blocked and page_counts.get(a, 0) < max_per_page:
                pick = i
                break
        if pick is None:  # relax the per-page cap
            for i in range(window):
                if pending[i].candidate.author_id != blocked:
                    pick = i
                    break
        if pick is None:  # relax the run length too
            pick = 0
        for i in range(pick):
            passed_over.add(pending[i].candidate.post_id)
        item = pending.pop(pick)
        if item.candidate.post_id in passed_over:
            item = replace(item, diversity_note=DIVERSITY_NOTE)
        author = item.candidate.author_id
        page_counts[author] = page_counts.get(author, 0) + 1
        run_length = run_length + 1 if author == run_author else 1
        run_author = author
        out.append(item)
    return out


# --- The whole pipeline ----------------------------------------------------------------------


def rank_feed(
    candidates: Iterable[Candidate],
    *,
    now: datetime | float,
    mood: Mood,
    policy: Policy | str,
    strength: float,
    page_size: int = 20,
    max_consecutive: int = 2,
    max_per_page: int = 3,
    limit: int | None = None,
) -> list[Ranked]:
    """base_rank -> mood_stage -> diversify, truncated to ``limit`` items."""
    ranked = diversify(
        mood_stage(base_rank(candidates, now=now), mood, policy, strength),
        page_size=page_size,
        max_consecutive=max_consecutive,
        max_per_page=max_per_page,
    )
    return ranked[:limit] if limit is not None else ranked


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return min(max(x, lo), hi)
