"""Read operations of the recommender (HackSoft style: reads live here).

- moods: ``mood_get`` (stored ``MoodState`` aged to now; consent checked),
  ``selfie_readings`` / ``post_faces`` (ACTIVE model version only);
- feed candidates: ``network_candidates`` (newest posts per followed author,
  one indexed LATERAL query on PostgreSQL) and ``popular_candidates`` (cached);
- ``feed_posts`` hydrates a page (plain tuples, one query).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from feedmood import services as social_services
from feedmood.models import Follow, Post, Profile, Reaction
from recommender import conf
from recommender.models import MoodState, PostAffect
from recommender.mood import (
    MAX_AGE_HALF_LIVES,
    Affect,
    Face,
    Mood,
    MoodSums,
    Reading,
    estimate_mood,
    mood_from_sums,
)
from recommender.ranking import Candidate, Source

NO_CONSENT = "no consent"
NO_SELFIE = "no recent selfie"


# --- Model versions and readings -------------------------------------------------------


def _reading_time_field() -> str:
    """When a selfie was taken: the analysis' creation time when it has one.

    (A batch rescoring creates new readings for old selfies: their age must
    stay the selfie's age, not the rescoring time.)
    """
    from emotion.models import ImageAnalysis

    names = {f.name for f in ImageAnalysis._meta.get_fields()}
    return "analysis__created_at" if "created_at" in names else "created_at"


def selfie_readings(
    *, user: AbstractBaseUser, model_version_id: int | None, since: datetime | None = None
) -> list[Reading]:
    """The user's selfie face readings of one model version (done analyses only)."""
    if model_version_id is None:
        return []
    from emotion.models import FaceReading

    at = _reading_time_field()
    qs = FaceReading.objects.filter(
        analysis__owner=user,
        analysis__source="selfie",
        analysis__status="done",
        model_version_id=model_version_id,
    )
    if since is not None:
        qs = qs.filter(**{f"{at}__gte": since})
    rows = qs.values_list("probabilities", "valence", "arousal", "confidence", at)
    return [Reading(probabilities=p or {}, valence=v, arousal=a, confidence=c, at=t) for p, v, a, c, t in rows]


def post_faces(*, post_id: int, model_version_id: int | None) -> list[Face] | None:
    """Faces found in a post's image by one model version.

    The readings of that version when it has any; ``[]`` when the post's image
    was analysed and no face was found; ``None`` when the version has not
    scored the post (not analysed yet, failed, or not rescored yet).
    """
    if model_version_id is None:
        return None
    from emotion.models import FaceReading, ImageAnalysis

    rows = list(
        FaceReading.objects.filter(
            analysis__post_id=post_id,
            analysis__source="post",
            analysis__status="done",
            model_version_id=model_version_id,
        ).values_list("probabilities", "valence", "arousal", "confidence")
    )
    if rows:
        return [Face(probabilities=p or {}, valence=v, arousal=a, confidence=c) for p, v, a, c in rows]
    no_face = ImageAnalysis.objects.filter(post_id=post_id, source="post", status="no_face").exists()
    return [] if no_face else None


# --- Mood -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoodReport:
    """A mood plus where it came from (for ``/api/me/mood/``)."""

    mood: Mood
    half_life_hours: float
    as_of: datetime | None = None
    model_version_id: int | None = None


def sums_of(state: MoodState) -> MoodSums:
    return MoodSums(
        as_of=state.as_of,
        weight=state.weight_sum,
        decay=state.decay_sum,
        valence=state.valence_sum,
        arousal=state.arousal_sum,
        probabilities=dict(state.probability_sums or {}),
        count=state.reading_count,
    )


def mood_report(*, user: AbstractBaseUser, now: datetime | None = None, profile: Profile | None = None) -> MoodReport:
    """The user's mood now: unknown without consent or without recent selfies.

    Reads the stored ``MoodState`` (one row) and ages it; if it was computed
    with another half-life (changed just now), recomputes from readings.
    """
    now = now or timezone.now()
    if profile is None:
        profile = Profile.objects.select_related("user__mood_state").filter(user_id=user.pk).first()
    if profile is None or not profile.emotion_consent:
        return MoodReport(Mood.unknown(NO_CONSENT), profile.mood_half_life_hours if profile else 24.0)
    half_life = profile.mood_half_life_hours
    try:
        state: MoodState | None = profile.user.mood_state
    except MoodState.DoesNotExist:
        state = None
    if state is None:
        return MoodReport(Mood.unknown(NO_SELFIE), half_life)
    if abs(state.half_life_hours - half_life) > 1e-9:
        from emotion.selectors import active_model_version_id

        version = active_model_version_id()
        readings = selfie_readings(
            user=user, model_version_id=version, since=now - timedelta(hours=MAX_AGE_HALF_LIVES * half_life)
        )
        mood = estimate_mood(readings, now=now, half_life_hours=half_life)
        return MoodReport(mood if mood.known else Mood.unknown(NO_SELFIE), half_life, now, version)
    mood = mood_from_sums(sums_of(state), now=now, half_life_hours=half_life)
    return MoodReport(mood if mood.known else Mood.unknown(NO_SELFIE), half_life, state.as_of, state.model_version_id)


def mood_get(*, user: AbstractBaseUser, now: datetime | None = None) -> Mood:
    """Just the ``Mood`` of ``mood_report``."""
    return mood_report(user=user, now=now).mood


def mood_settings_get(*, user: AbstractBaseUser) -> Profile:
    """The user's profile (consent, policy, strength, half-life)."""
    return profile_with_mood(user=user)


def consents(*, user: AbstractBaseUser) -> bool:
    """Whether the user consents to emotion analysis, as read from the database for this request: the profile
    token authentication joined to the user (no query), else read now (see :func:`profile_with_mood`)."""
    return bool(profile_with_mood(user=user).emotion_consent)


def profile_with_mood(*, user: AbstractBaseUser) -> Profile:
    """The user's profile with ``user.mood_state`` joined (one query, or none when ``user`` came with both).

    Every user gets a profile on creation; a legacy user without one gets the
    defaults through the social core's ``profile_get_or_create``.
    """
    loaded = user._state.fields_cache  # token authentication joins both (settings.FEEDMOOD_AUTH_USER_RELATED)
    if loaded.get("profile") is not None and "mood_state" in loaded:
        return loaded["profile"]
    profile = Profile.objects.select_related("user__mood_state").filter(user_id=user.pk).first()
    return profile if profile is not None else social_services.profile_get_or_create(user=user)


# --- Feed candidates ----------------------------------------------------------------------------


def followee_ids(*, user: AbstractBaseUser) -> list[int]:
    return followee_ids_of(user_id=user.pk)


def followee_ids_of(*, user_id: int) -> list[int]:
    return list(Follow.objects.filter(follower_id=user_id).values_list("followee_id", flat=True))


def _affect(
    valence: float | None, arousal: float | None, confidence: float | None, dominant: str | None, faces: int | None
) -> Affect | None:
    if valence is None or arousal is None:
        return None
    return Affect(
        valence=valence,
        arousal=arousal,
        confidence=confidence or 0.0,
        dominant_emotion=dominant or "",
        face_count=faces or 0,
    )


_LATERAL_SQL = """
WITH c AS (
    SELECT p.id, p.author_id, p.created_at, p.like_count
    FROM unnest(%(authors)s::bigint[]) AS f(author_id)
    CROSS JOIN LATERAL (
        SELECT id, author_id, created_at, like_count
        FROM {post}
        WHERE author_id = f.author_id AND created_at <= %(snapshot)s AND created_at > %(since)s
        ORDER BY created_at DESC
        LIMIT %(per_author)s
    ) p
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT %(limit)s
)
SELECT c.id, c.author_id, EXTRACT(EPOCH FROM c.created_at)::float8, c.like_count,
       a.fv, a.fa, a.fc, a.tv, a.ta, a.tc
FROM c
LEFT JOIN LATERAL (
    SELECT max(valence) FILTER (WHERE source = 'faces') AS fv, max(arousal) FILTER (WHERE source = 'faces') AS fa,
           max(confidence) FILTER (WHERE source = 'faces') AS fc, max(valence) FILTER (WHERE source = 'text') AS tv,
           max(arousal) FILTER (WHERE source = 'text') AS ta, max(confidence) FILTER (WHERE source = 'text') AS tc
    FROM {affect}
    WHERE post_id = c.id
      AND (source = 'text' OR model_version_id IN (SELECT id FROM {version} WHERE is_active))
) a ON TRUE
ORDER BY c.created_at DESC, c.id DESC
"""


def network_candidates_sql() -> str:
    """The PostgreSQL query of ``network_candidate_rows`` (strategy ``"lateral"``), ready to execute or EXPLAIN
    with the parameters ``authors``, ``snapshot``, ``since``, ``per_author`` and ``limit``."""
    return _LATERAL_SQL.format(post=Post._meta.db_table, affect=PostAffect._meta.db_table, version=_version_table())


#: A network candidate as stored in the cache: (post id, author id, created epoch s, likes,
#: face valence, arousal, confidence, text valence, arousal, confidence -- None without known affect).
CandidateRow = tuple[Any, ...]


def network_candidate_rows(
    *,
    author_ids: Iterable[int],
    snapshot: datetime,
    limit: int | None = None,
    strategy: str | None = None,
) -> list[CandidateRow]:
    """The newest ``PER_AUTHOR`` posts of each author (created by ``snapshot``, within
    ``WINDOW_DAYS``), at most ``limit`` (default ``MAX_CANDIDATES``), newest first,
    with their face and text affect.

    ``strategy`` ``"lateral"`` (PostgreSQL: one index-only probe per author on
    ``post(author_id, created_at DESC) INCLUDE (id, like_count)``, then the
    affect lookup: both sources' rows in one scan of the unique ``(post, source)`` index per survivor) or ``"window"`` (portable ORM
    ``ROW_NUMBER()``); default: lateral on PostgreSQL.
    """
    authors = sorted(set(author_ids))
    if not authors:
        return []
    since = snapshot - timedelta(days=conf.get("WINDOW_DAYS"))
    per_author = conf.get("PER_AUTHOR")
    limit = conf.get("MAX_CANDIDATES") if limit is None else limit
    strategy = strategy or ("lateral" if connection.vendor == "postgresql" else "window")
    if strategy == "lateral":
        with connection.cursor() as cursor:
            cursor.execute(
                network_candidates_sql(),
                {"authors": authors, "snapshot": snapshot, "since": since, "per_author": per_author, "limit": limit},
            )
            return cursor.fetchall()
    rows = list(
        Post.objects.filter(author_id__in=authors, created_at__lte=snapshot, created_at__gt=since)
        .annotate(
            rn=Window(RowNumber(), partition_by=[F("author_id")], order_by=[F("created_at").desc(), F("id").desc()])
        )
        .filter(rn__lte=per_author)
        .order_by("-created_at", "-id")
        .values_list("id", "author_id", "created_at", "like_count")[:limit]
    )
    return _with_affects(rows)


_RECENT_SQL = """
SELECT p.id, p.author_id, EXTRACT(EPOCH FROM p.created_at)::float8, p.like_count, a.valence, a.arousal, a.confidence,
       t.valence, t.arousal, t.confidence
FROM {post} p
LEFT JOIN {affect} a ON a.post_id = p.id AND a.source = 'faces'
  AND a.model_version_id IN (SELECT id FROM {version} WHERE is_active)
LEFT JOIN {affect} t ON t.post_id = p.id AND t.source = 'text'
WHERE p.created_at > %(since)s AND p.created_at <= %(snapshot)s
  AND (p.author_id = %(user)s
       OR EXISTS (SELECT 1 FROM {follow} f WHERE f.follower_id = %(user)s AND f.followee_id = p.author_id))
ORDER BY p.created_at DESC, p.id DESC
"""


def recent_network_rows(*, user_id: int, since: datetime, snapshot: datetime) -> list[CandidateRow]:
    """Posts of ``user_id`` and the accounts they follow created in ``(since, snapshot]``,
    newest first, with face and text affect.

    A range scan of the ``created_at`` index over EVERY post of the period, each
    checked against the user's follows: cheap while the whole service posts a few
    per second (~350 rows for 7 minutes at 1M posts a fortnight), not at hundreds.
    """
    if connection.vendor == "postgresql":
        sql = _RECENT_SQL.format(post=Post._meta.db_table, affect=PostAffect._meta.db_table,
                                 follow=Follow._meta.db_table, version=_version_table())  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(sql, {"since": since, "snapshot": snapshot, "user": user_id})
            return cursor.fetchall()
    follows = Follow.objects.filter(follower_id=user_id, followee_id=OuterRef("author_id"))
    rows = list(
        Post.objects.filter(created_at__gt=since, created_at__lte=snapshot)
        .filter(Q(author_id=user_id) | Exists(follows))
        .order_by("-created_at", "-id")
        .values_list("id", "author_id", "created_at", "like_count")
    )
    return _with_affects(rows)


def _with_affects(rows: list[tuple[int, int, datetime, int]]) -> list[CandidateRow]:
    ids = [r[0] for r in rows]
    faces, texts = _affects_for(ids), _affects_for(ids, source=PostAffect.Source.TEXT)
    return [
        (pid, aid, created.timestamp(), likes, *_vac(faces.get(pid)), *_vac(texts.get(pid)))
        for pid, aid, created, likes in rows
    ]


def _vac(affect: Affect | None) -> tuple[float | None, float | None, float | None]:
    return (affect.valence, affect.arousal, affect.confidence) if affect else (None, None, None)


def _text_affect(valence: float | None, arousal: float | None, confidence: float | None) -> Affect | None:
    return None if valence is None else Affect(valence, arousal, confidence or 0.0, face_count=0)


def candidate_from_row(row: CandidateRow, user_id: int) -> Candidate:
    return candidates_from_rows([row], user_id)[0]


def candidates_from_rows(rows: Iterable[CandidateRow], user_id: int) -> list[Candidate]:
    """Cached network rows as ranking candidates (``own`` for ``user_id``'s posts), their affect as plain numbers.
    Runs for every candidate of every fresh ranking, hence the one loop with positional arguments."""
    out: list[Candidate] = []
    append, own, network = out.append, Source.OWN, Source.NETWORK
    for row in rows:
        if len(row) == 10:  # text arousal (row[8]) is never known
            pid, aid, ts, likes, v, a, c, tv, _, tc = row
        else:  # rows cached before text affect have 7 fields
            pid, aid, ts, likes, v, a, c = row
            tv = tc = None
        if v is None or a is None:
            v, a, c = None, 0.0, 0.0
        append(Candidate(pid, aid, ts, likes, own if aid == user_id else network, v, a, c or 0.0, tv, tc or 0.0))
    return out


def network_candidates(
    *,
    user_id: int,
    author_ids: Iterable[int],
    snapshot: datetime,
    strategy: str | None = None,
) -> list[Candidate]:
    """:func:`network_candidate_rows` as ranking candidates (``own`` for ``user_id``'s posts)."""
    rows = network_candidate_rows(author_ids=author_ids, snapshot=snapshot, strategy=strategy)
    return candidates_from_rows(rows, user_id)


def _version_table() -> str:
    from emotion.models import ModelVersion

    return ModelVersion._meta.db_table


def _affects_for(post_ids: list[int], source: str = PostAffect.Source.FACES) -> dict[int, Affect]:
    """Known affect of one source by post id; face affect from rows of the active model version only (a lost
    switch must not mix versions)."""
    out: dict[int, Affect] = {}
    rows = PostAffect.objects.filter(post_id__in=post_ids, source=source)
    if source == PostAffect.Source.FACES:
        rows = rows.filter(model_version__is_active=True)
    rows = rows.values_list("post_id", "valence", "arousal", "confidence", "dominant_emotion", "face_count")
    for pid, v, a, c, dom, faces in rows:
        affect = _text_affect(v, a, c) if source == PostAffect.Source.TEXT else _affect(v, a, c, dom, faces)
        if affect is not None:
            out[pid] = affect
    return out


def cache_namespace() -> str:
    """Cache key prefix naming this database, so two databases sharing one Redis
    (dev, tests, benchmarks) never read each other's post ids."""
    return f"recommender:{connection.settings_dict.get('NAME')}"


def popular_candidates(*, as_of: datetime) -> list[Candidate]:
    """Top ``POPULAR_COUNT`` posts by likes of the last ``POPULAR_WINDOW_HOURS``.

    Cached per ``POPULAR_CACHE_SECONDS`` time bucket (shared by all users and
    workers through the cache), so the query runs about once a bucket. When a new
    bucket starts, one request computes it (it holds a short lock) while the others
    keep serving the previous bucket's list: without that, every request of that
    moment ran the same query (~50 ms at 1M posts, ~250 ms at 5M) at once.
    """
    ttl = conf.get("POPULAR_CACHE_SECONDS")
    bucket = int(as_of.timestamp() // ttl)
    key, previous_key = _popular_key(bucket), _popular_key(bucket - 1)
    found = cache.get_many([key, previous_key])
    rows: list[tuple[Any, ...]] | None = found.get(key)
    if rows is None:
        previous = found.get(previous_key)
        lock = f"{key}:computing"
        holding = cache.add(lock, 1, POPULAR_LOCK_SECONDS)
        if previous is not None and not holding:
            rows = previous  # someone else is computing this bucket
        else:  # ours to compute (or a cold cache: nothing to serve meanwhile)
            rows = _popular_rows(bucket, ttl)
            cache.set(key, rows, ttl * 2)
            if holding:  # never release a lock another request holds
                cache.delete(lock)
    as_of_ts = as_of.timestamp()
    return [_popular_candidate(row) for row in rows if row[2] <= as_of_ts]


def _popular_candidate(row: tuple[Any, ...]) -> Candidate:
    """A cached popular row: 4 post fields, 5 of face affect, 3 of text affect (absent from older lists; text
    arousal, row[10], is never known), as :func:`candidates_from_rows` reads a network row."""
    pid, aid, ts, likes, v, a, c = row[:7]
    tv, tc = (row[9], row[11]) if len(row) >= 12 else (None, None)
    if v is None or a is None:
        v, a, c = None, 0.0, 0.0
    return Candidate(pid, aid, ts, likes, Source.POPULAR, v, a, c or 0.0, tv, tc or 0.0)


#: How long a request may hold the right to compute a popular bucket (then anyone may).
POPULAR_LOCK_SECONDS = 30


def _popular_key(bucket: int) -> str:
    return f"{cache_namespace()}:popular:{bucket}:{conf.get('POPULAR_COUNT')}:{conf.get('POPULAR_WINDOW_HOURS')}"


def _popular_rows(bucket: int, ttl: int) -> list[tuple[Any, ...]]:
    """The popular list of one time bucket, as cacheable tuples (affect included)."""
    bucket_end = datetime.fromtimestamp((bucket + 1) * ttl, tz=UTC)
    top = list(
        Post.objects.filter(
            created_at__gt=bucket_end - timedelta(hours=conf.get("POPULAR_WINDOW_HOURS")),
            created_at__lte=bucket_end,
            like_count__gt=0,
        )
        .order_by("-like_count", "-id")
        .values_list("id", "author_id", "created_at", "like_count")[: conf.get("POPULAR_COUNT")]
    )
    ids = [r[0] for r in top]
    affects, texts = _affects_for(ids), _affects_for(ids, source=PostAffect.Source.TEXT)
    return [
        (pid, aid, created.timestamp(), likes, *_affect_tuple(affects.get(pid)), *_vac(texts.get(pid)))
        for pid, aid, created, likes in top
    ]


def _affect_tuple(affect: Affect | None) -> tuple[Any, ...]:
    if affect is None:
        return (None, None, None, None, None)
    return (affect.valence, affect.arousal, affect.confidence, affect.dominant_emotion, affect.face_count)


def feed_candidates(*, user: AbstractBaseUser, snapshot: datetime) -> list[Candidate]:
    """Own posts + the network's newest posts + popular posts from outside the network."""
    network = followee_ids(user=user)
    in_network = set(network) | {user.pk}
    candidates = network_candidates(user_id=user.pk, author_ids=in_network, snapshot=snapshot)
    candidates += [c for c in popular_candidates(as_of=snapshot) if c.author_id not in in_network]
    return candidates


# --- Hydration --------------------------------------------------------------------------------------


class FeedPost(NamedTuple):
    """A post of a feed page: the fields the API shows, read without model instances."""

    id: int
    author_username: str
    author_display_name: str
    text: str
    image: str
    image_width: int | None
    image_height: int | None
    like_count: int
    liked_by_me: bool
    created_at: datetime


def feed_posts(*, post_ids: list[int], viewer: AbstractBaseUser) -> dict[int, FeedPost]:
    """The page's posts by id, with author names and ``liked_by_me``, in one query.

    Plain tuples instead of ``Post``/``User``/``Profile`` instances: hydrating a
    page is on every feed request, and the ORM's object building was a fifth of
    its CPU time.
    """
    if not post_ids:
        return {}
    liked = Exists(Reaction.objects.filter(post=OuterRef("pk"), user_id=viewer.pk, kind=Reaction.Kind.LIKE))
    rows = (
        Post.objects.filter(pk__in=post_ids)
        .annotate(liked_by_me=liked)
        .values_list("id", "author__username", "author__profile__display_name", "text", "image", "image_width",
                     "image_height", "like_count", "liked_by_me", "created_at")
    )  # fmt: skip
    return {
        pid: FeedPost(pid, username, display_name or username, text, image or "", width, height, likes, liked,
                      created)
        for pid, username, display_name, text, image, width, height, likes, liked, created in rows
    }  # fmt: skip
