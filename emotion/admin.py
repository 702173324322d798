"""Admin for emotion analysis: model versions, analyses and (read-only) readings."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from emotion import services
from emotion.models import FaceReading, ImageAnalysis, ModelVersion


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

    @admin.action(description="Activate the selected model version")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        version = services.model_version_activate(queryset.get())
        self.message_user(request, f"{version.name} is now the active model.", messages.SUCCESS)


class FaceReadingInline(admin.TabularInline):
    model = FaceReading
    extra = 0
    can_delete = False
    fields = ("face_index", "model_version", "dominant_emotion", "confidence", "valence", "arousal", "x", "y", "w", "h")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
    inlines = [FaceReadingInline]
    # The selfie file is never linked: raw selfies are not viewable, not even by staff.
    exclude = ("image",)


@admin.register(FaceReading)
class FaceReadingAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "analysis", "owner", "face_index", "dominant_emotion", "confidence", "valence", "arousal", "model_version", "created_at")
    list_filter = ("dominant_emotion", "model_version", "created_at")
    search_fields = ("analysis__owner__username",)
    list_select_related = ("analysis__owner", "model_version")
    date_hierarchy = "created_at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="owner", ordering="analysis__owner__username")
    def owner(self, obj: FaceReading) -> str:
        return obj.analysis.owner.get_username()
