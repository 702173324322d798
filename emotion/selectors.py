"""Read operations of the emotion app (HackSoft style).

Every selector that takes a ``user`` only ever returns that user's rows: no
user can see another user's analyses or readings.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import Http404

from emotion.models import FaceReading, ImageAnalysis, ModelVersion, RescoringJob
from ml.card import CardError, ModelCard, load_card

logger = logging.getLogger(__name__)


# --- Model versions ------------------------------------------------------------------------


def active_model_version(*, using: str = "default") -> ModelVersion | None:
    """The active model version (at most one: a unique constraint), or ``None``; never writes.

    The one definition of "the active model".  On a fresh install
    ``emotion.model_versions.model_version_ensure_active`` registers the shipped model first.
    """
    return ModelVersion.objects.using(using).filter(is_active=True).first()


def active_model_version_id() -> int | None:
    """The id of :func:`active_model_version` without loading the row (the feed's hot path)."""
    return ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True).first()


def artifact_card(directory: Path) -> ModelCard:
    """The model card of the artifact at ``directory``; raises ``ValidationError`` when it is missing, unreadable
    or not a card of a supported schema version."""
    try:
        return load_card(directory)
    except (OSError, CardError) as exc:
        raise ValidationError(f"{exc}.") from None


def stored_card(version: ModelVersion) -> ModelCard | None:
    """The model card stored when ``version`` was registered, or None when the stored JSON is not a whole card."""
    try:
        return ModelCard.from_json(version.card)
    except CardError:
        return None


def model_version_get(*, name: str) -> ModelVersion:
    """A model version by name; raises ``ModelVersion.DoesNotExist``."""
    return ModelVersion.objects.get(name=name)


# --- Analyses and readings ---------------------------------------------------------------


def current_readings(analysis: ImageAnalysis) -> QuerySet[FaceReading]:
    """Readings of the model version that produced the analysis' current result."""
    return analysis.readings.filter(model_version_id=analysis.model_version_id).order_by("face_index")


def analysis_get_for_owner(*, user: AbstractBaseUser, analysis_id: int) -> ImageAnalysis:
    """One of ``user``'s analyses with its current readings; 404 for anyone else's."""
    current = Prefetch(
        "readings",
        queryset=FaceReading.objects.filter(model_version_id=F("analysis__model_version_id")).order_by("face_index"),
        to_attr="current_readings",
    )
    analysis = (
        ImageAnalysis.objects.select_related("model_version")
        .prefetch_related(current)
        .filter(owner=user, pk=analysis_id)
        .first()
    )
    if analysis is None:
        raise Http404("No such analysis.")
    return analysis


def analysis_status(*, analysis_id: int) -> str | None:
    """The status of an analysis (``None`` if it no longer exists); a cheap poll."""
    return ImageAnalysis.objects.filter(pk=analysis_id).values_list("status", flat=True).first()


def readings_for_user(*, user: AbstractBaseUser, source: str | None = None) -> QuerySet[FaceReading]:
    """The user's current face readings, newest first (one per face, current model only)."""
    qs = FaceReading.objects.filter(
        analysis__owner=user, model_version_id=F("analysis__model_version_id")
    ).select_related("analysis", "model_version")
    if source:
        qs = qs.filter(analysis__source=source)
    return qs.order_by("-analysis__created_at", "-analysis_id", "face_index")


def analyses_for_export(*, user: AbstractBaseUser) -> QuerySet[ImageAnalysis]:
    """All of the user's analyses with every reading of every model version, oldest first."""
    readings = FaceReading.objects.select_related("model_version").order_by("model_version_id", "face_index")
    return (
        ImageAnalysis.objects.filter(owner=user)
        .select_related("model_version")
        .prefetch_related(Prefetch("readings", queryset=readings))
        .order_by("created_at", "id")
    )


# --- Batch rescoring ------------------------------------------------------------------------


def rescorable_analyses() -> QuerySet[ImageAnalysis]:
    """Analyses whose image is still stored, so a new model version can score them again.

    Post images (read in place) always; selfies only while
    ``FEEDMOOD_RETAIN_SELFIES`` is on and their file is kept.  Selfies that were
    not retained cannot be rescored.
    """
    stored = Q(source=ImageAnalysis.Source.POST, post__isnull=False) & ~Q(post__image="")
    if settings.FEEDMOOD_RETAIN_SELFIES:
        stored |= Q(source=ImageAnalysis.Source.SELFIE) & ~Q(image="")
    return ImageAnalysis.objects.filter(stored)


def rescoring_job_open() -> RescoringJob | None:
    """The pending or running rescoring job, if any (there is at most one)."""
    return (
        RescoringJob.objects.select_related("model_version", "previous_version")
        .filter(status__in=RescoringJob.OPEN_STATUSES)
        .first()
    )


def rescoring_jobs_recent(*, limit: int = 10) -> list[RescoringJob]:
    """The newest rescoring jobs, newest first."""
    return list(RescoringJob.objects.select_related("model_version", "previous_version").order_by("-pk")[:limit])


def timings_of(analysis: ImageAnalysis) -> dict[str, float | None]:
    return {
        "queue_wait": analysis.queue_wait_ms,
        "decode": analysis.decode_ms,
        "detect": analysis.detect_ms,
        "classify": analysis.classify_ms,
        "total": analysis.total_ms,
    }
