"""Synthetic social graphs for benchmarks: users, follows, posts with affect, selfie moods.

Rows are generated with numpy and written with PostgreSQL ``COPY`` (psycopg 3
``cursor.copy()``), or ``bulk_create`` on other databases (small test runs).
Shapes (documented so figures can be compared):

- account popularity follows a Zipf-like law (``rank ** -0.8``): follows pick
  followees by popularity, so a few accounts have thousands of followers;
- posting activity is half popularity, half uniform; post times are uniform
  over the last ``days`` days; likes are Pareto distributed (most 0-3, a few
  thousands);
- ``image_share`` of posts have an image; of those ``face_share`` have faces
  and a ``PostAffect`` (one synthetic reading, emotion drawn from a prior),
  the rest a no-face row (unknown affect);
- ``consent_share`` of users opted in; each has ``readings`` selfie readings
  over the last 72 hours and a ``MoodState``.  Bench users (the first
  ``bench_users``) consent, follow ``bench_follows`` accounts, have a recent
  sad or angry mood and an API token.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.core.management.color import no_style
from django.db import models

from emotion.affect import CIRCUMPLEX
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from feedmood.models import Follow, Post, Profile
from ml.runtime import CARD_NAME
from recommender.models import MoodState, PostAffect
from recommender.mood import LABELS, Reading, accumulate

EMOTION_PRIOR = {
    "happiness": 0.33, "neutral": 0.25, "sadness": 0.12, "surprise": 0.09,
    "anger": 0.08, "fear": 0.05, "disgust": 0.04, "contempt": 0.04,
}  # fmt: skip


@dataclass
class SeedConfig:
    users: int = 1000
    posts: int = 20_000
    follows_per_user: int = 50
    readings: int = 3
    days: int = 30
    bench_users: int = 20
    bench_follows: int = 500
    consent_share: float = 0.5
    image_share: float = 0.6
    face_share: float = 0.7
    seed: int = 42
    batch: int = 50_000


@dataclass
class SeedResult:
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bench_users: list[dict[str, Any]] = field(default_factory=list)
    model_version_id: int | None = None


class Writer:
    """Insert tuples into a model's table: COPY on PostgreSQL, bulk_create elsewhere."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.copy = connection.vendor == "postgresql"

    def columns(self, model: type[models.Model], attnames: Sequence[str]) -> list[str]:
        by_attname = {f.attname: f.column for f in model._meta.concrete_fields}
        return [by_attname[a] for a in attnames]

    def write(
        self, model: type[models.Model], attnames: Sequence[str], rows: Iterable[Sequence[Any]], batch: int = 50_000
    ) -> int:
        n = 0
        if self.copy:
            cols = ", ".join(self.connection.ops.quote_name(c) for c in self.columns(model, attnames))
            table = self.connection.ops.quote_name(model._meta.db_table)
            by_attname = {f.attname: f for f in model._meta.concrete_fields}
            json_cols = [i for i, a in enumerate(attnames) if isinstance(by_attname[a], models.JSONField)]
            with self.connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    if json_cols:
                        row = list(row)
                        for i in json_cols:
                            row[i] = json.dumps(row[i])
                    copy.write_row(row)
                    n += 1
            return n
        buf: list[models.Model] = []
        for row in rows:
            buf.append(model(**dict(zip(attnames, row))))
            n += 1
            if len(buf) >= batch:
                model.objects.using(self.connection.alias).bulk_create(buf, batch_size=2000)
                buf = []
        if buf:
            model.objects.using(self.connection.alias).bulk_create(buf, batch_size=2000)
        return n

    def reset_sequences(self, model_list: Sequence[type[models.Model]]) -> None:
        statements = self.connection.ops.sequence_reset_sql(no_style(), list(model_list))
        with self.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    def analyze(self, model_list: Sequence[type[models.Model]]) -> None:
        if not self.copy:
            return
        with self.connection.cursor() as cursor:
            for m in model_list:
                cursor.execute(f"ANALYZE {self.connection.ops.quote_name(m._meta.db_table)}")


def _next_id(connection: Any, model: type[models.Model]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(model._meta.db_table)}")
        return int(cursor.fetchone()[0]) + 1


def _distribution(rng: np.random.Generator, label: str) -> dict[str, float]:
    """A plausible softmax output peaked on ``label``."""
    alpha = np.full(len(LABELS), 0.3)
    alpha[LABELS.index(label)] = 6.0
    p = rng.dirichlet(alpha)
    return {k: round(float(x), 4) for k, x in zip(LABELS, p)}


def _va(probs: dict[str, float]) -> tuple[float, float]:
    v = sum(p * CIRCUMPLEX[k][0] for k, p in probs.items())
    a = sum(p * CIRCUMPLEX[k][1] for k, p in probs.items())
    return round(v, 4), round(a, 4)


class SeedError(Exception):
    """Seeding cannot start (no real model to attribute the synthetic readings to)."""


def seed_model_version(alias: str = "default") -> ModelVersion:
    """The active model version, whose artifact must exist: synthetic readings are seeded under a real model.

    On a fresh default database the model at ``FEEDMOOD_MODEL_DIR`` is registered and activated first
    (``emotion.model_versions.model_version_ensure_active``), so analyses after seeding run with it. A version is
    never created without an artifact: a selfie analysed under it could only fail.
    """
    from emotion.model_versions import model_version_ensure_active
    from emotion.selectors import active_model_version

    version = model_version_ensure_active() if alias == "default" else active_model_version(using=alias)
    if version is None:
        raise SeedError(
            "No active emotion model with an artifact: register one first with "
            "`manage.py register_model PATH --activate` (the shipped ml/artifacts/ferplus will do)."
        )
    if not (version.artifact_dir / CARD_NAME).is_file():
        raise SeedError(
            f"The active model version {version.name!r} has no artifact at {version.artifact_path or '(empty path)'}: "
            "activate a real one with `manage.py register_model PATH --activate` before seeding."
        )
    return version


def seed(connection: Any, cfg: SeedConfig, *, now: datetime | None = None, log: Any = print) -> SeedResult:
    """Generate and insert a synthetic network (appends; ids continue after existing rows)."""
    from django.contrib.auth import get_user_model

    from feedmood.authentication import key_digest
    from feedmood.models import ApiToken

    User = get_user_model()
    rng = np.random.default_rng(cfg.seed)
    now = now or datetime.now(UTC)
    w = Writer(connection)
    res = SeedResult()
    alias = connection.alias
    n_users = cfg.users
    n_bench = min(cfg.bench_users, n_users)

    def step(name: str, t0: float) -> None:
        res.timings[name] = round(time.perf_counter() - t0, 3)
        log(f"  {name}: {res.counts.get(name, '')} rows in {res.timings[name]:.1f}s")

    # --- model version ---------------------------------------------------------------------
    version = seed_model_version(alias)
    res.model_version_id = version.pk
    vid = version.pk

    # --- users, profiles, tokens -----------------------------------------------------------------
    t0 = time.perf_counter()
    uid0 = _next_id(connection, User)
    user_ids = np.arange(uid0, uid0 + n_users)
    tag = f"{cfg.seed}x{uid0}"
    consent = rng.random(n_users) < cfg.consent_share
    consent[:n_bench] = True
    joined = now - timedelta(days=cfg.days + 1)
    res.counts["users"] = w.write(
        User,
        ["id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
         "is_staff", "is_active", "date_joined"],
        ((int(u), "!", None, False, f"seed{tag}_{i}", "", "", "", False, True, joined)
         for i, u in enumerate(user_ids)),
    )  # fmt: skip
    step("users", t0)
    t0 = time.perf_counter()
    res.counts["profiles"] = w.write(
        Profile,
        ["user_id", "display_name", "emotion_consent", "emotion_consent_at", "mood_policy", "mood_strength",
         "mood_half_life_hours", "created_at", "updated_at"],
        ((int(u), f"Seed user {i}", bool(consent[i]), joined if consent[i] else None, "repair", 0.5, 24.0,
          joined, joined) for i, u in enumerate(user_ids)),
    )  # fmt: skip
    step("profiles", t0)
    tokens = {int(u): secrets.token_hex(20) for u in user_ids[:n_bench]}
    expires = now + timedelta(days=365)  # bench tokens: hashed like any other, valid for a year
    w.write(
        ApiToken,
        ["digest", "user_id", "created_at", "expires_at"],
        ((key_digest(k), u, now, expires) for u, k in tokens.items()),
    )

    # --- follows ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    popularity = (np.arange(1, n_users + 1, dtype=np.float64)) ** -0.8
    popularity = popularity[rng.permutation(n_users)]
    popularity /= popularity.sum()
    follows_per_user = np.clip(rng.poisson(cfg.follows_per_user, n_users), 0, n_users - 1)
    follows_per_user[:n_bench] = min(cfg.bench_follows, n_users - 1)
    follow_sets: list[np.ndarray] = []
    for i in range(n_users):
        k = int(follows_per_user[i])
        if k == 0:
            follow_sets.append(np.empty(0, dtype=np.int64))
            continue
        # Oversample with replacement, keep the first k distinct (fast, popularity-biased).
        picks = rng.choice(n_users, size=k * 3 + 10, p=popularity)
        picks = picks[picks != i]
        _, first = np.unique(picks, return_index=True)
        chosen = picks[np.sort(first)][:k]
        if len(chosen) < k:  # tiny graphs: top up uniformly
            rest = np.setdiff1d(np.arange(n_users), np.append(chosen, i))
            chosen = np.append(chosen, rng.choice(rest, size=min(k - len(chosen), len(rest)), replace=False))
        follow_sets.append(chosen)
    res.counts["follows"] = w.write(
        Follow,
        ["follower_id", "followee_id", "created_at"],
        ((int(user_ids[i]), int(user_ids[j]), joined) for i, s in enumerate(follow_sets) for j in s),
    )
    step("follows", t0)

    # --- posts + affect ---------------------------------------------------------------------------------
    t0 = time.perf_counter()
    activity = 0.5 * popularity + 0.5 / n_users
    activity /= activity.sum()
    pid0 = _next_id(connection, Post)
    n_posts = cfg.posts
    authors = user_ids[rng.choice(n_users, size=n_posts, p=activity)]
    ages = rng.random(n_posts) * cfg.days * 86400.0
    base_ts = now.timestamp()
    likes = np.minimum(np.floor(rng.pareto(1.2, n_posts) * 1.5), 50_000).astype(np.int64)
    has_image = rng.random(n_posts) < cfg.image_share
    has_face = has_image & (rng.random(n_posts) < cfg.face_share)

    def post_rows() -> Iterable[tuple[Any, ...]]:
        for k in range(n_posts):
            created = datetime.fromtimestamp(base_ts - ages[k], tz=UTC)
            img = f"posts/seed-{k % 997}.jpg" if has_image[k] else ""
            yield (
                pid0 + k,
                int(authors[k]),
                f"Synthetic post {k}",
                img,
                640 if img else None,
                480 if img else None,
                created,
                int(likes[k]),
            )

    res.counts["posts"] = w.write(
        Post, ["id", "author_id", "text", "image", "image_width", "image_height", "created_at", "like_count"],
        post_rows(),
    )  # fmt: skip
    step("posts", t0)

    t0 = time.perf_counter()
    labels = list(EMOTION_PRIOR)
    prior = np.array([EMOTION_PRIOR[k] for k in labels])
    dominant = rng.choice(len(labels), size=n_posts, p=prior / prior.sum())
    conf = np.round(0.45 + 0.5 * rng.random(n_posts), 3)
    dist_cache = [[_distribution(rng, lab) for _ in range(64)] for lab in labels]

    def affect_rows() -> Iterable[tuple[Any, ...]]:
        for k in np.nonzero(has_image)[0]:
            if has_face[k]:
                probs = dist_cache[dominant[k]][k % 64]
                v, a = _va(probs)
                dom = max(probs, key=probs.__getitem__)
                yield (pid0 + int(k), "faces", v, a, dom, float(conf[k]), 1, vid, now)
            else:
                yield (pid0 + int(k), "faces", None, None, "", 0.0, 0, vid, now)

    res.counts["post_affects"] = w.write(
        PostAffect,
        ["post_id", "source", "valence", "arousal", "dominant_emotion", "confidence", "face_count",
         "model_version_id", "updated_at"],
        affect_rows(),
    )  # fmt: skip
    step("post_affects", t0)

    # --- selfie readings + moods -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    aid0 = _next_id(connection, ImageAnalysis)
    consenting = [i for i in range(n_users) if consent[i]]
    analyses: list[tuple[Any, ...]] = []
    readings: list[tuple[Any, ...]] = []
    moods: list[tuple[Any, ...]] = []
    aid = aid0
    for i in consenting:
        uid = int(user_ids[i])
        n_r = max(cfg.readings, 1) if i < n_bench else cfg.readings
        if i < n_bench:
            mood_label = "sadness" if i % 2 == 0 else "anger"
        else:
            mood_label = labels[int(rng.choice(len(labels), p=prior / prior.sum()))]
        user_readings: list[Reading] = []
        for _ in range(n_r):
            hours = 0.5 + rng.random() * (6 if i < n_bench else 72)
            taken = now - timedelta(hours=hours)
            probs = _distribution(rng, mood_label)
            v, a = _va(probs)
            c = round(0.6 + 0.35 * rng.random(), 3)
            analyses.append((aid, uid, "selfie", None, "", "done", "", vid, 1, taken, taken, taken, 1))
            readings.append((aid, vid, 0, 0, 0, 96, 96, probs, max(probs, key=probs.__getitem__), c, v, a, taken))
            user_readings.append(Reading(probabilities=probs, valence=v, arousal=a, confidence=c, at=taken))
            aid += 1
        if user_readings:
            s = accumulate(user_readings, as_of=now, half_life_hours=24.0)
            moods.append((uid, vid, 24.0, now, s.weight, s.decay, s.valence, s.arousal, s.probabilities, s.count, now))
    res.counts["analyses"] = w.write(
        ImageAnalysis,
        ["id", "owner_id", "source", "post_id", "image", "status", "error", "model_version_id", "face_count",
         "created_at", "started_at", "finished_at", "attempts"],
        analyses,
    )  # fmt: skip
    res.counts["readings"] = w.write(
        FaceReading,
        ["analysis_id", "model_version_id", "face_index", "x", "y", "w", "h", "probabilities", "dominant_emotion",
         "confidence", "valence", "arousal", "created_at"],
        readings,
    )  # fmt: skip
    res.counts["mood_states"] = w.write(
        MoodState,
        ["user_id", "model_version_id", "half_life_hours", "as_of", "weight_sum", "decay_sum", "valence_sum",
         "arousal_sum", "probability_sums", "reading_count", "updated_at"],
        moods,
    )  # fmt: skip
    step("readings", t0)

    t0 = time.perf_counter()
    all_models = [User, Profile, Follow, Post, PostAffect, ImageAnalysis, FaceReading, MoodState]
    w.reset_sequences(all_models)
    w.analyze(all_models)
    step("analyze", t0)

    for i in range(n_bench):
        uid = int(user_ids[i])
        res.bench_users.append(
            {
                "user_id": uid,
                "token": tokens[uid],
                "follows": int(follows_per_user[i]),
                "mood": "sadness" if i % 2 == 0 else "anger",
            }
        )
    return res
