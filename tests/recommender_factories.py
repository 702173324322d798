"""Helpers for the recommender tests: model versions, readings and posts with affect.

Readings are real ``emotion`` rows (the contract the recommender reads); their
valence/arousal come from the emotion app's own circumplex table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.utils import timezone

from emotion.affect import CIRCUMPLEX
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from feedmood.models import Post
from recommender import services
from recommender.mood import LABELS

SAD = {"sadness": 0.85, "neutral": 0.1, "fear": 0.05}
HAPPY = {"happiness": 0.9, "neutral": 0.05, "surprise": 0.05}
ANGRY = {"anger": 0.8, "disgust": 0.1, "neutral": 0.1}
CALM = {"neutral": 0.95, "happiness": 0.05}


def circumplex(probs: Mapping[str, float]) -> tuple[float, float]:
    total = sum(probs.values()) or 1.0
    v = sum(p * CIRCUMPLEX[k][0] for k, p in probs.items()) / total
    a = sum(p * CIRCUMPLEX[k][1] for k, p in probs.items()) / total
    return v, a


_versions = 0


def model_version(*, active: bool = True, name: str | None = None) -> ModelVersion:
    global _versions
    _versions += 1
    if active:
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
    return ModelVersion.objects.create(
        name=name or f"test-model-{_versions}", labels=list(LABELS), artifact_path="/nonexistent", is_active=active
    )


def activate(version: ModelVersion) -> None:
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)


def reading(
    analysis: ImageAnalysis,
    version: ModelVersion,
    probs: Mapping[str, float],
    *,
    confidence: float = 0.9,
    face_index: int = 0,
) -> FaceReading:
    v, a = circumplex(probs)
    full = {k: float(probs.get(k, 0.0)) for k in LABELS}
    return FaceReading.objects.create(
        analysis=analysis, model_version=version, face_index=face_index, x=0, y=0, w=48, h=48,
        probabilities=full, dominant_emotion=max(full, key=full.__getitem__), confidence=confidence,
        valence=v, arousal=a,
    )  # fmt: skip


def selfie(
    user: Any, version: ModelVersion, probs: Mapping[str, float], *, hours_ago: float = 0.0, confidence: float = 0.9
) -> ImageAnalysis:
    """A finished selfie analysis with one face reading, taken ``hours_ago``."""
    analysis = ImageAnalysis.objects.create(
        owner=user, source=ImageAnalysis.Source.SELFIE, status=ImageAnalysis.Status.DONE, model_version=version,
        finished_at=timezone.now(),
    )  # fmt: skip
    ImageAnalysis.objects.filter(pk=analysis.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    reading(analysis, version, probs, confidence=confidence)
    return analysis


def post(author: Any, *, hours_ago: float = 1.0, likes: int = 0, text: str = "post") -> Post:
    p = Post.objects.create(author=author, text=text)
    Post.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago), like_count=likes)
    p.refresh_from_db()
    return p


def post_with_faces(
    author: Any,
    version: ModelVersion | None,
    faces: list[Mapping[str, float]] | None,
    *,
    hours_ago: float = 1.0,
    likes: int = 0,
    text: str = "post",
    confidence: float = 0.9,
) -> Post:
    """A post whose image analysis found ``faces`` (``[]``: no face), affect recomputed."""
    p = post(author, hours_ago=hours_ago, likes=likes, text=text)
    if faces is not None and version is not None:
        status = ImageAnalysis.Status.DONE if faces else ImageAnalysis.Status.NO_FACE
        analysis = ImageAnalysis.objects.create(
            owner=author, source=ImageAnalysis.Source.POST, post=p, status=status, model_version=version,
            face_count=len(faces), finished_at=timezone.now(),
        )  # fmt: skip
        for i, probs in enumerate(faces):
            reading(analysis, version, probs, confidence=confidence, face_index=i)
        services.post_affect_recompute(post=p)
    return p
