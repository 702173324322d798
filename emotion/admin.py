"""Admin for emotion analysis: model versions, rescoring jobs and analyses (processing status only).

Face readings are deliberately not in the admin, not even read-only or inline:
they are biometric-derived data about one person, and staff see emotion data
only as the dashboard's suppressed aggregates (``/admin/dashboard/``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from emotion import rescoring
from emotion.models import ImageAnalysis, ModelVersion, RescoringJob


class ReadOnlyMixin:
    """No adding or changing through the admin (rows are written by services only)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "label_count", "accuracy", "artifact_path", "created_at", "activated_at")
    list_filter = ("is_active",)
    search_fields = ("name", "artifact_path")
    readonly_fields = ("name", "labels", "artifact_path", "card", "metrics", "is_active", "created_at", "activated_at")
    actions = ["activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # use `manage.py register_model PATH` (it validates the artifact)

    @admin.display(description="labels")
    def label_count(self, obj: ModelVersion) -> int:
        return len(obj.labels or [])

    @admin.display(description="accuracy")
    def accuracy(self, obj: ModelVersion) -> str:
        value = (obj.metrics or {}).get("accuracy")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    @admin.action(description="Activate the selected model version (rescores the stored images first)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        version = queryset.get()
        job = rescoring.rescoring_start(version)
        version.refresh_from_db()
        if version.is_active:
            self.message_user(request, f"{version.name} is now the active model.", messages.SUCCESS)
        elif job is not None and job.is_open:
            previous = job.previous_version.name if job.previous_version else "the current model"
            self.message_user(
                request,
                f"Rescoring job #{job.pk} started: {job.total} stored images are re-analysed with {version.name}; "
                f"{previous} stays active until it completes.",
                messages.SUCCESS,
            )
        else:
            error = job.error if job is not None else ""
            self.message_user(request, f"{version.name} was not activated. {error}".strip(), messages.ERROR)


@admin.register(RescoringJob)
class RescoringJobAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id", "model_version", "previous_version", "status", "progress_bar", "total", "done", "failed",
        "created_at", "started_at", "finished_at", "heartbeat_at",
    )  # fmt: skip
    list_filter = ("status", "model_version", "created_at")
    list_select_related = ("model_version", "previous_version")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in RescoringJob._meta.fields]
    actions = ["cancel", "resume"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="progress")
    def progress_bar(self, obj: RescoringJob) -> str:
        percent = round(obj.progress * 100)
        return format_html('<progress max="100" value="{}"></progress> {}%', percent, percent)

    @admin.action(description="Cancel the selected open jobs (the active model stays)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[RescoringJob]) -> None:
        jobs = [rescoring.rescoring_cancel(job) for job in queryset.filter(status__in=RescoringJob.OPEN_STATUSES)]
        self.message_user(request, f"Cancelled {len(jobs)} rescoring job(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected open jobs (re-enqueue their chunks)")
    def resume(self, request: HttpRequest, queryset: QuerySet[RescoringJob]) -> None:
        lanes = sum(rescoring.rescoring_resume(job.pk) for job in queryset)
        self.message_user(request, f"Re-enqueued {lanes} chunk(s).", messages.SUCCESS)


@admin.register(ImageAnalysis)
class ImageAnalysisAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id", "owner", "source", "post", "status", "face_count", "model_version",
        "total_ms", "queue_wait_ms", "attempts", "created_at",
    )  # fmt: skip
    list_filter = ("status", "source", "model_version", "created_at")
    search_fields = ("owner__username", "error")
    list_select_related = ("owner", "model_version")
    raw_id_fields = ("owner", "post")
    date_hierarchy = "created_at"
    # The selfie file is never linked: raw selfies are not viewable, not even by staff.
    exclude = ("image",)
