"""Output serializers shared across apps (e.g. the recommender's feed reuses ``PostOutputSerializer``).

Input serializers live nested inside each API view (HackSoft style).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def display_name_of(user: Any) -> str:
    """The user's display name, falling back to the username."""
    profile = getattr(user, "profile", None)
    return (getattr(profile, "display_name", "") or user.get_username()) if user is not None else ""


class UserSummarySerializer(serializers.Serializer):
    """``{username, display_name}`` of any user (safe to show publicly)."""

    username = serializers.CharField(read_only=True)
    display_name = serializers.SerializerMethodField()

    class Meta:
        ref_name = "UserSummary"

    def get_display_name(self, obj: Any) -> str:
        return display_name_of(obj)


class PostOutputSerializer(serializers.Serializer):
    """A post as the API shows it. Expects posts from ``selectors.post_list``."""

    id = serializers.IntegerField(read_only=True)
    author = UserSummarySerializer(read_only=True)
    text = serializers.CharField(read_only=True)
    image_url = serializers.SerializerMethodField()
    image_width = serializers.IntegerField(read_only=True, allow_null=True)
    image_height = serializers.IntegerField(read_only=True, allow_null=True)
    like_count = serializers.IntegerField(read_only=True)
    liked_by_me = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Post"

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_image_url(self, obj: Any) -> str | None:
        if not obj.image:
            return None
        path = reverse("feedmood:post-image", kwargs={"post_id": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_liked_by_me(self, obj: Any) -> bool:
        return bool(getattr(obj, "liked_by_me", False))
