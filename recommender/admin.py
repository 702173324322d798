"""Read-only admin views of the recommender's derived data (it is recomputed, never edited)."""

from django.contrib import admin

from recommender.models import MoodState, PostAffect


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(MoodState)
class MoodStateAdmin(_ReadOnly):
    list_display = ("user", "reading_count", "half_life_hours", "as_of", "model_version")
    raw_id_fields = ("user",)


@admin.register(PostAffect)
class PostAffectAdmin(_ReadOnly):
    list_display = ("post", "source", "dominant_emotion", "valence", "arousal", "confidence", "face_count")
    list_filter = ("source", "dominant_emotion")
    raw_id_fields = ("post",)
