"""Emotion analysis models: model versions, image analyses and per-face readings."""

from __future__ import annotations

import uuid
from pathlib import Path, PurePath

from django.conf import settings
from django.db import models
from django.db.models import Q

SELFIE_EXTENSIONS = {".jpg", ".png", ".webp"}


class ModelVersion(models.Model):
    """An exported FER model artifact registered with the service (at most one active)."""

    name = models.CharField(max_length=100, unique=True)
    labels = models.JSONField(help_text="Canonical label of each output column, in order.")
    artifact_path = models.CharField(
        max_length=500, help_text="Directory holding model_card.json (relative paths are relative to the project)."
    )
    card = models.JSONField(default=dict, help_text="The artifact's model_card.json.")
    metrics = models.JSONField(default=dict, blank=True, help_text="The card's PublicTest metrics.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="modelversion_single_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (active)' if self.is_active else ''}"

    @property
    def artifact_dir(self) -> Path:
        """Absolute artifact directory (``artifact_path`` may be relative to the project)."""
        path = Path(self.artifact_path)
        return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def selfie_upload_to(instance: ImageAnalysis, filename: str) -> str:
    """Random storage name under ``selfies/``; only a known extension is kept."""
    ext = PurePath(filename).suffix.lower()
    if ext not in SELFIE_EXTENSIONS:
        ext = ""
    return f"selfies/{uuid.uuid4().hex}{ext}"


class ImageAnalysis(models.Model):
    """One run of the FER pipeline over a selfie or a post's image."""

    class Source(models.TextChoices):
        SELFIE = "selfie", "Selfie"
        POST = "post", "Post image"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        NO_FACE = "no_face", "No face found"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = (Status.DONE, Status.NO_FACE, Status.FAILED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_analyses")
    source = models.CharField(max_length=16, choices=Source.choices)
    post = models.ForeignKey(
        "feedmood.Post", null=True, blank=True, on_delete=models.CASCADE, related_name="image_analyses"
    )
    # Selfies only; a post's analysis reads ``post.image`` (never copied).
    image = models.FileField(upload_to=selfie_upload_to, blank=True, max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="analyses"
    )
    face_count = models.PositiveIntegerField(default=0)
    image_width = models.PositiveIntegerField(null=True, blank=True)
    image_height = models.PositiveIntegerField(null=True, blank=True)
    queue_wait_ms = models.FloatField(null=True, blank=True)
    decode_ms = models.FloatField(null=True, blank=True)
    detect_ms = models.FloatField(null=True, blank=True)
    classify_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "image analyses"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="analysis_owner_created_idx"),
            models.Index(fields=["status", "created_at"], name="analysis_status_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(source="selfie", post__isnull=True) | Q(source="post", post__isnull=False),
                name="analysis_source_matches_post",
            ),
        ]

    def __str__(self) -> str:
        return f"ImageAnalysis({self.pk}, {self.source}, {self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class FaceReading(models.Model):
    """The emotion reading of one face found by one analysis with one model version."""

    analysis = models.ForeignKey(ImageAnalysis, on_delete=models.CASCADE, related_name="readings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="readings")
    face_index = models.PositiveIntegerField()
    x = models.PositiveIntegerField()
    y = models.PositiveIntegerField()
    w = models.PositiveIntegerField()
    h = models.PositiveIntegerField()
    probabilities = models.JSONField(help_text="{label: probability}")
    dominant_emotion = models.CharField(max_length=32)
    confidence = models.FloatField()
    valence = models.FloatField()
    arousal = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "analysis_id", "face_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["analysis", "model_version", "face_index"], name="reading_unique_face_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"FaceReading({self.analysis_id}#{self.face_index}: {self.dominant_emotion})"


class RescoringJob(models.Model):
    """Re-analysis of the stored images with ``model_version`` before it becomes the active model.

    Analyses are walked in id order by ``parallelism`` lanes (lane ``i`` takes
    ids with ``id % parallelism == i``), ``chunk_size`` at a time.  Each lane
    keeps the id it last processed in ``lanes``, so a re-run continues where it
    stopped; ``cursor`` is the smallest of them (every eligible analysis with
    ``id <= cursor`` is done).  ``total`` is the estimate taken at the start and
    is exact (``done + failed``) once the job completed.  See ``emotion.rescoring``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.PENDING, Status.RUNNING)

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rescoring_jobs")
    previous_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The active version when the job started (stays active until the job completes).",
    )  # fmt: skip
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Analyses scored by the new version (faces or none).")
    failed = models.PositiveIntegerField(default=0, help_text="Analyses the new version could not score.")
    cursor = models.BigIntegerField(default=0, help_text="Every eligible analysis with an id up to this is processed.")
    lanes = models.JSONField(default=list, help_text='Per lane: {"cursor": last processed id, "finished": bool}.')
    chunk_size = models.PositiveIntegerField(default=32)
    parallelism = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last time a chunk committed progress.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                models.Value(1), condition=Q(status__in=["pending", "running"]), name="rescoringjob_single_open"
            ),
        ]

    def __str__(self) -> str:
        return f"RescoringJob({self.pk}, {self.model_version_id}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def progress(self) -> float:
        """Share of ``total`` processed, 0..1."""
        return min(1.0, (self.done + self.failed) / self.total) if self.total else (1.0 if not self.is_open else 0.0)
