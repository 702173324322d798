"""Admin for the social core."""

from django.contrib import admin

from feedmood.models import Follow, Post, Profile, Reaction


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "display_name",
        "emotion_consent",
        "emotion_consent_at",
        "mood_policy",
        "mood_strength",
        "mood_half_life_hours",
    )
    list_filter = ("emotion_consent", "mood_policy")
    search_fields = ("user__username", "display_name")
    raw_id_fields = ("user",)
    readonly_fields = ("emotion_consent_at", "created_at", "updated_at")


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("id", "author", "short_text", "has_image", "like_count", "created_at")
    list_filter = ("created_at",)
    search_fields = ("text", "author__username")
    raw_id_fields = ("author",)
    readonly_fields = ("like_count", "image_width", "image_height", "created_at")
    date_hierarchy = "created_at"

    @admin.display(description="text")
    def short_text(self, obj: Post) -> str:
        return obj.text[:60]

    @admin.display(boolean=True, description="image")
    def has_image(self, obj: Post) -> bool:
        return bool(obj.image)


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ("follower", "followee", "created_at")
    list_filter = ("created_at",)
    search_fields = ("follower__username", "followee__username")
    raw_id_fields = ("follower", "followee")


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("user", "post", "kind", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("user__username",)
    raw_id_fields = ("user", "post")
