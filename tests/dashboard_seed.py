"""Synthetic data for the admin dashboard tests: users, analyses with timings, readings and moods (ORM only).

``seed_dashboard()`` builds enough data for every chart to show something:
at least ``min_group`` users per emotion day, per mood label and per feed
policy, plus one day of readings by too few users (a suppressed bucket).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from dashboard.selectors import hour_buckets
from emotion.models import FaceReading, ImageAnalysis, ModelVersion, RescoringJob
from feedmood.models import Profile
from recommender.models import MoodState
from recommender.mood import LABELS
from tests.factories import UserFactory

METRICS: dict[str, Any] = {
    "split": "PublicTest",
    "n": 3589,
    "accuracy": 0.7134,
    "macro_f1": 0.6421,
    "ece_after_calibration": 0.0312,
    "per_class": {
        label: {"precision": 0.6, "recall": 0.6, "f1": f1, "support": 100}
        for label, f1 in zip(LABELS, (0.61, 0.18, 0.42, 0.47, 0.88, 0.71, 0.55, 0.79), strict=True)
    },
}

#: Charts ``seed_dashboard()`` fills (none may show the "no data" placeholder).
SEEDED_CHARTS = (
    "chart-analyses",
    "chart-latency-queue_wait",
    "chart-latency-processing",
    "chart-emotions",
    "chart-mood-labels",
    "chart-mood-valence",
    "chart-policies",
    "chart-model-f1",
    "chart-backlog",
)

#: Dominant emotion of each seeded user's selfies (cycled).
DAY_EMOTIONS = ("happiness", "neutral", "sadness", "happiness", "surprise", "neutral")


def probs_for(label: str, strength: float = 0.7) -> dict[str, float]:
    rest = (1.0 - strength) / (len(LABELS) - 1)
    return {k: (strength if k == label else rest) for k in LABELS}


def make_version(
    *, name: str = "ferplus-dash", active: bool = True, metrics: Mapping[str, Any] | None = None
) -> ModelVersion:
    if active:
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
    return ModelVersion.objects.create(
        name=name, labels=list(LABELS), artifact_path="/nonexistent", card={"name": name},
        metrics=dict(METRICS if metrics is None else metrics), is_active=active,
        activated_at=timezone.now() if active else None,
    )  # fmt: skip


def make_analysis(
    owner: Any,
    *,
    at: datetime,
    status: str = "done",
    source: str = "selfie",
    version: ModelVersion | None = None,
    queue_wait_ms: float | None = None,
    total_ms: float | None = None,
    post: Any = None,
) -> ImageAnalysis:
    """An analysis created at ``at`` (``created_at`` is auto_now_add: set by an update)."""
    final = status in ("done", "no_face", "failed")
    analysis = ImageAnalysis.objects.create(
        owner=owner, source=source, post=post, status=status, model_version=version if final else None,
        queue_wait_ms=queue_wait_ms, total_ms=total_ms, face_count=1 if status == "done" else 0,
        started_at=at if status != "pending" else None, finished_at=at if final else None,
    )  # fmt: skip
    ImageAnalysis.objects.filter(pk=analysis.pk).update(created_at=at)
    analysis.created_at = at
    return analysis


def make_reading(
    analysis: ImageAnalysis, version: ModelVersion, label: str, *, face_index: int = 0, confidence: float = 0.9
) -> FaceReading:
    return FaceReading.objects.create(
        analysis=analysis, model_version=version, face_index=face_index, x=0, y=0, w=48, h=48,
        probabilities=probs_for(label), dominant_emotion=label, confidence=confidence,
        valence=0.5 if label == "happiness" else (-0.5 if label in ("sadness", "anger", "fear") else 0.0),
        arousal=0.2,
    )  # fmt: skip


def selfie(owner: Any, version: ModelVersion, label: str, *, at: datetime, **timings: float) -> ImageAnalysis:
    analysis = make_analysis(owner, at=at, status="done", version=version, **timings)
    make_reading(analysis, version, label)
    return analysis


def make_mood(
    user: Any,
    version: ModelVersion | None,
    label: str,
    *,
    valence: float,
    hours_ago: float = 1.0,
    half_life_hours: float = 24.0,
    weight: float = 0.9,
) -> MoodState:
    """A stored mood whose dominant label is ``label`` and whose valence is ``valence``."""
    probs = probs_for(label)
    return MoodState.objects.update_or_create(
        user=user,
        defaults={
            "model_version": version, "half_life_hours": half_life_hours,
            "as_of": timezone.now() - timedelta(hours=hours_ago), "weight_sum": weight, "decay_sum": 1.0,
            "valence_sum": weight * valence, "arousal_sum": weight * 0.1,
            "probability_sums": {k: weight * p for k, p in probs.items()}, "reading_count": 1,
        },
    )[0]  # fmt: skip


def make_users(n: int, *, prefix: str = "dash", consent: bool = True, policy: str = "repair") -> list[Any]:
    users = []
    for i in range(n):
        user = UserFactory(username=f"{prefix}{i}")
        Profile.objects.filter(user=user).update(
            emotion_consent=consent, mood_policy=policy, emotion_consent_at=timezone.now() if consent else None
        )
        # Established accounts: the dashboard counts accounts older than its minimum age only.
        type(user).objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=30))
        user.refresh_from_db()
        users.append(user)
    return users


@dataclass
class Seeded:
    version: ModelVersion
    users: list[Any]
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)


def seed_dashboard(*, users: int = 14, days: int = 6, seed: int = 7) -> Seeded:
    """A realistic small data set for the whole dashboard (every chart has data)."""
    rng = random.Random(seed)
    now = timezone.now()
    version = make_version()
    make_version(name="ferplus-previous", active=False, metrics={"accuracy": 0.65, "macro_f1": 0.55})
    half = users // 2
    people = make_users(half, prefix="dash-r", policy="repair") + make_users(
        users - half, prefix="dash-c", policy="congruent"
    )
    Profile.objects.filter(user__in=people[-2:]).update(mood_policy="off")  # a small (suppressed) policy group
    window_start = hour_buckets(now, 24)[0]
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    counts = {"analyses_24h": 0}

    def label_for(i: int, at: datetime) -> str:
        """Users read in groups of 7 with one emotion a day: every emotion of a day has >= 5 users."""
        day = max(0, (midnight - at).days + 1) if at < midnight else 0
        return DAY_EMOTIONS[(i // 7 + day) % len(DAY_EMOTIONS)]

    # Selfies: one per user per calendar day for ``days`` days (every day has >= 5 users).
    for day in range(days):
        for i, user in enumerate(people):
            if day == 0:  # some time today, before now
                at = midnight + (now - midnight) * rng.uniform(0.05, 0.95)
            else:
                at = midnight - timedelta(days=day) + timedelta(hours=rng.uniform(1.0, 23.0))
            qw, tm = rng.lognormvariate(4.0, 0.8), rng.lognormvariate(3.6, 0.4)
            selfie(user, version, label_for(i, at), at=at, queue_wait_ms=qw, total_ms=tm)
            counts["analyses_24h"] += at >= window_start
    # One older day (with an empty day before it) with only 3 users: suppressed.
    for user in people[:3]:
        selfie(
            user,
            version,
            "sadness",
            at=midnight - timedelta(days=days + 1) + timedelta(hours=12),
            queue_wait_ms=50,
            total_ms=40,
        )
    # Analyses over the last 24 h with every status and timings.
    statuses = ["done"] * 8 + ["no_face"] * 2 + ["failed"]
    for hour in range(24):
        for _ in range(rng.randint(1, 6)):
            user = rng.choice(people)
            status = rng.choice(statuses)
            at = now - timedelta(hours=hour, minutes=rng.uniform(1, 58))
            qw = rng.lognormvariate(4.2 + (0.8 if 8 <= hour <= 11 else 0.0), 0.7)
            tm = rng.lognormvariate(3.7, 0.35) if status != "failed" else None
            analysis = make_analysis(
                user, at=at, status=status, source="selfie", version=version, queue_wait_ms=qw, total_ms=tm
            )
            if status == "done":
                make_reading(analysis, version, label_for(people.index(user), at))
            counts["analyses_24h"] += at >= window_start
    # Work in progress (the backlog).
    for user in people[:3]:
        make_analysis(user, at=now - timedelta(minutes=2), status="pending")
    make_analysis(people[3], at=now - timedelta(seconds=20), status="processing", queue_wait_ms=900)
    # Current moods: >= 5 users per shown label.
    for i, user in enumerate(people):
        label = "happiness" if i < len(people) // 2 else "neutral"
        make_mood(user, version, label, valence=0.45 if label == "happiness" else 0.0)
    return Seeded(version, people, now, counts)


def seed_rescoring_jobs(
    *,
    finished_to: ModelVersion,
    running_to: ModelVersion,
    finished: tuple[int, int, int] = (11_870, 11_852, 18),
    running: tuple[int, int, int] = (12_400, 7_930, 41),
) -> tuple[RescoringJob, RescoringJob]:
    """Two rescoring jobs for the progress panel: a completed one to ``finished_to`` (three days ago) and one
    running from it to ``running_to``; each count triple is ``(total, done, failed)``."""
    now = timezone.now()
    completed = RescoringJob.objects.create(
        model_version=finished_to, status=RescoringJob.Status.COMPLETED,
        total=finished[0], done=finished[1], failed=finished[2],
        started_at=now - timedelta(days=3), finished_at=now - timedelta(days=3) + timedelta(minutes=14),
    )  # fmt: skip
    in_progress = RescoringJob.objects.create(
        model_version=running_to, previous_version=finished_to, status=RescoringJob.Status.RUNNING,
        total=running[0], done=running[1], failed=running[2],
        started_at=now - timedelta(minutes=9), heartbeat_at=now,
    )  # fmt: skip
    return completed, in_progress
