"""Admin for the social core: users (with their profile inline), profiles, posts, follows, reactions.

Read-only where an edit through the admin would corrupt data or bypass a
service's rules:

- ``Profile.emotion_consent`` is the user's own decision: changing it here
  would skip ``profile_update`` (consent timestamp, erasing readings on
  withdrawal), so it is read-only; profiles are created with their user and
  deleted with it (no add/delete here);
- ``Post.like_count`` is a denormalised count of reactions, image size fields
  are measured on upload and posts are created through the API (which
  analyses their image): no add, and the image is read-only;
- follows and reactions are written by the API only; deleting a reaction here
  recounts the post's likes.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from feedmood import services
from feedmood.models import Follow, Post, Profile, Reaction

User = get_user_model()

admin.site.site_header = "FeedMood administration"
admin.site.site_title = "FeedMood admin"
admin.site.index_title = "Site administration"

PROFILE_READONLY = ("emotion_consent", "emotion_consent_at", "created_at", "updated_at")


class NoAddMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyMixin(NoAddMixin):
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Users and profiles -------------------------------------------------------------------


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False
    extra = 0
    max_num = 1
    fields = ("display_name", "emotion_consent", "emotion_consent_at", "mood_policy", "mood_strength",
              "mood_half_life_hours", "created_at", "updated_at")  # fmt: skip
    readonly_fields = PROFILE_READONLY

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # created by the post_save receiver with the user


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "display_name", "email", "is_staff", "is_active", "emotion_consent", "mood_policy",
                    "date_joined", "last_login")  # fmt: skip
    list_filter = ("is_staff", "is_superuser", "is_active", "profile__emotion_consent", "profile__mood_policy",
                   "date_joined")  # fmt: skip
    search_fields = ("username", "email", "first_name", "last_name", "profile__display_name")
    list_select_related = ("profile",)
    readonly_fields = ("last_login", "date_joined")
    date_hierarchy = "date_joined"
    ordering = ("-date_joined",)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list:
        # On the add form the receiver creates the profile: an inline would create a second one.
        return [ProfileInline] if obj is not None else []

    @admin.display(description="display name", ordering="profile__display_name")
    def display_name(self, obj: Any) -> str:
        profile = getattr(obj, "profile", None)
        return profile.display_name if profile else ""

    @admin.display(boolean=True, description="consent", ordering="profile__emotion_consent")
    def emotion_consent(self, obj: Any) -> bool | None:
        profile = getattr(obj, "profile", None)
        return profile.emotion_consent if profile else None

    @admin.display(description="mood policy", ordering="profile__mood_policy")
    def mood_policy(self, obj: Any) -> str:
        profile = getattr(obj, "profile", None)
        return profile.get_mood_policy_display() if profile else "-"


@admin.register(Profile)
class ProfileAdmin(NoAddMixin, admin.ModelAdmin):
    list_display = (
        "user",
        "display_name",
        "emotion_consent",
        "emotion_consent_at",
        "mood_policy",
        "mood_strength",
        "mood_half_life_hours",
        "updated_at",
    )
    list_filter = ("emotion_consent", "mood_policy", "created_at")
    search_fields = ("user__username", "user__email", "display_name")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("user", *PROFILE_READONLY)
    date_hierarchy = "created_at"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a profile lives and dies with its user


# --- Posts -----------------------------------------------------------------------------------


class HasImageFilter(admin.SimpleListFilter):
    title = "image"
    parameter_name = "has_image"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "With image"), ("no", "Text only")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.exclude(image="")
        if self.value() == "no":
            return queryset.filter(image="")
        return queryset


@admin.register(Post)
class PostAdmin(NoAddMixin, admin.ModelAdmin):
    list_display = ("id", "author", "short_text", "has_image", "like_count", "created_at")
    list_filter = (HasImageFilter, "created_at")
    search_fields = ("=id", "text", "author__username")
    list_select_related = ("author",)
    raw_id_fields = ("author",)
    readonly_fields = ("author", "image", "image_width", "image_height", "like_count", "created_at")
    fields = ("author", "text", "image", "image_width", "image_height", "like_count", "created_at")
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over a large table on every page

    @admin.display(description="text")
    def short_text(self, obj: Post) -> str:
        return obj.text[:60] + ("…" if len(obj.text) > 60 else "")

    @admin.display(boolean=True, description="image")
    def has_image(self, obj: Post) -> bool:
        return bool(obj.image)


# --- Follows and reactions -------------------------------------------------------------------------


@admin.register(Follow)
class FollowAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "follower", "followee", "created_at")
    list_filter = ("created_at",)
    search_fields = ("follower__username", "followee__username")
    list_select_related = ("follower", "followee")
    raw_id_fields = ("follower", "followee")
    readonly_fields = ("follower", "followee", "created_at")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Reaction)
class ReactionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "user", "post", "kind", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("user__username", "=post__id")
    list_select_related = ("user", "post")
    raw_id_fields = ("user", "post")
    readonly_fields = ("user", "post", "kind", "created_at")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def delete_model(self, request: HttpRequest, obj: Reaction) -> None:
        post_id = obj.post_id
        super().delete_model(request, obj)
        services.post_recount_likes(post_id=post_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Reaction]) -> None:
        post_ids = set(queryset.values_list("post_id", flat=True))
        super().delete_queryset(request, queryset)
        for post_id in post_ids:
            services.post_recount_likes(post_id=post_id)
