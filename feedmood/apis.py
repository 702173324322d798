"""REST API of the social core: thin APIViews calling selectors and services."""

from __future__ import annotations

import mimetypes
from pathlib import PurePath

from django.contrib.auth import authenticate
from django.db import connection
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from feedmood import accounts, selectors, services
from feedmood.images import EXTENSION_MIME_TYPES
from feedmood.lockout import login_lockout_seconds, login_success_record
from feedmood.models import HALF_LIFE_MAX_HOURS, HALF_LIFE_MIN_HOURS, POST_TEXT_MAX_LENGTH, Profile
from feedmood.pagination import get_paginated_response, paginated_serializer
from feedmood.serializers import PostOutputSerializer, UserSummarySerializer, display_name_of
from feedmood.throttling import SignupThrottle, UploadThrottle
from feedmood.validators import validate_finite

ERRORS = OpenApiResponse(description='Validation error: `{"field": ["message"]}` or `{"detail": "message"}`')


PAGINATED_USERS = paginated_serializer(UserSummarySerializer, "PaginatedUserSummaryList")
PAGINATED_POSTS = paginated_serializer(PostOutputSerializer, "PaginatedPostList")


class FiniteFloatField(serializers.FloatField):
    """FloatField that rejects NaN and infinities."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.insert(0, validate_finite)


# --- Health and auth ------------------------------------------------------------------


class HealthApi(APIView):
    """Liveness/readiness probe: checks the database answers."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()

        class Meta:
            ref_name = "Health"

    @extend_schema(responses={200: OutputSerializer}, tags=["meta"])
    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"status": "ok"})


class SignupApi(APIView):
    """Create an account and get an API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, SignupThrottle]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
        display_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
        email = serializers.EmailField(required=False, allow_blank=True, default="", help_text="For password resets.")

        class Meta:
            ref_name = "SignupInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        user = UserSummarySerializer()

        class Meta:
            ref_name = "SignupOutput"

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 400: ERRORS}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        user, key = services.user_signup(**data)
        return Response(self.OutputSerializer({"token": key, "user": user}).data, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    """Exchange username and password for a new API token (``Authorization: Token <key>``; it expires)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "TokenInput"

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()

        class Meta:
            ref_name = "TokenOutput"

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ERRORS, 429: OpenApiResponse(description="Too many failed logins")},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        locked_for = login_lockout_seconds(username=data["username"], request=request._request)
        if locked_for:
            raise exceptions.Throttled(
                wait=locked_for, detail="Too many failed logins for this account or from this address."
            )
        user = authenticate(request=request._request, username=data["username"], password=data["password"])
        if user is not None:
            login_success_record(username=data["username"])
        if user is None:
            raise serializers.ValidationError(
                {"non_field_errors": ["Unable to log in with the provided username and password."]}
            )
        return Response(self.OutputSerializer({"token": accounts.token_issue(user=user)}).data)


# --- Own profile -------------------------------------------------------------------------


class MeApi(APIView):
    """The signed-in user's own profile, including private consent and mood settings."""

    class InputSerializer(serializers.Serializer):
        display_name = serializers.CharField(max_length=80, required=False, allow_blank=True)
        emotion_consent = serializers.BooleanField(required=False)
        mood_policy = serializers.ChoiceField(choices=Profile.MoodPolicy.choices, required=False)
        mood_strength = FiniteFloatField(min_value=0.0, max_value=1.0, required=False)
        mood_half_life_hours = FiniteFloatField(
            min_value=HALF_LIFE_MIN_HOURS, max_value=HALF_LIFE_MAX_HOURS, required=False
        )

        class Meta:
            ref_name = "MeUpdateInput"

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField(source="user.username")
        display_name = serializers.CharField()
        emotion_consent = serializers.BooleanField()
        emotion_consent_at = serializers.DateTimeField(allow_null=True)
        mood_policy = serializers.ChoiceField(choices=Profile.MoodPolicy.choices)
        mood_strength = serializers.FloatField()
        mood_half_life_hours = serializers.FloatField()

        class Meta:
            ref_name = "Me"

    @extend_schema(responses={200: OutputSerializer}, tags=["profile"])
    def get(self, request: Request) -> Response:
        profile = services.profile_get_or_create(user=request.user)
        return Response(self.OutputSerializer(profile).data)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, 400: ERRORS}, tags=["profile"])
    def patch(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request, partial=True)
        profile = services.profile_update(user=request.user, data=data)
        return Response(self.OutputSerializer(profile).data)

    class DeleteInputSerializer(serializers.Serializer):
        password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)

        class Meta:
            ref_name = "AccountDeleteInput"

    @extend_schema(
        request=DeleteInputSerializer,
        responses={204: OpenApiResponse(description="Deleted: every row and file of yours is erased"), 400: ERRORS},
        tags=["profile"],
    )
    def delete(self, request: Request) -> Response:
        """Delete your account and everything of yours (posts, images, follows, likes, emotion data)."""
        data = _valid(self.DeleteInputSerializer, request)
        accounts.account_delete(user=request.user, password=data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Users and follows -----------------------------------------------------------------------


class UserDetailApi(APIView):
    """Public profile of a user: display name and counts (never consent or mood fields)."""

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        display_name = serializers.SerializerMethodField()
        followers_count = serializers.IntegerField()
        following_count = serializers.IntegerField()
        posts_count = serializers.IntegerField()
        is_followed = serializers.BooleanField(help_text="Whether you follow this user.")
        date_joined = serializers.DateTimeField()

        class Meta:
            ref_name = "PublicProfile"

        def get_display_name(self, obj) -> str:
            return display_name_of(obj)

    @extend_schema(responses={200: OutputSerializer, 404: OpenApiResponse(description="No such user")}, tags=["users"])
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_public_profile(username=username, viewer=request.user)
        return Response(self.OutputSerializer(user).data)


class UserFollowApi(APIView):
    """Follow (POST) or unfollow (DELETE) a user; both are idempotent."""

    class OutputSerializer(serializers.Serializer):
        following = serializers.BooleanField()
        followers_count = serializers.IntegerField()

        class Meta:
            ref_name = "FollowState"

    @extend_schema(
        request=None,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            400: ERRORS,
            404: OpenApiResponse(description="No such user"),
        },
        tags=["users"],
    )
    def post(self, request: Request, username: str) -> Response:
        followee = selectors.user_get(username=username)
        _, created = services.follow(follower=request.user, followee=followee)
        body = {"following": True, "followers_count": selectors.follower_count(user=followee)}
        return Response(
            self.OutputSerializer(body).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        request=None,
        responses={200: OutputSerializer, 404: OpenApiResponse(description="No such user")},
        tags=["users"],
    )
    def delete(self, request: Request, username: str) -> Response:
        followee = selectors.user_get(username=username)
        services.unfollow(follower=request.user, followee=followee)
        body = {"following": False, "followers_count": selectors.follower_count(user=followee)}
        return Response(self.OutputSerializer(body).data)


class UserFollowersApi(APIView):
    """Users who follow ``username``, most recent first."""

    @extend_schema(operation_id="users_followers_list", responses={200: PAGINATED_USERS}, tags=["users"])
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_get(username=username)
        return get_paginated_response(
            serializer_class=UserSummarySerializer,
            queryset=selectors.followers_of(user=user),
            request=request,
            view=self,
        )


class UserFollowingApi(APIView):
    """Users whom ``username`` follows, most recent first."""

    @extend_schema(operation_id="users_following_list", responses={200: PAGINATED_USERS}, tags=["users"])
    def get(self, request: Request, username: str) -> Response:
        user = selectors.user_get(username=username)
        return get_paginated_response(
            serializer_class=UserSummarySerializer,
            queryset=selectors.following_of(user=user),
            request=request,
            view=self,
        )


# --- Posts and likes ---------------------------------------------------------------------------


class PostListApi(APIView):
    """List posts newest first (GET) or create one (POST, multipart text + optional image)."""

    class FilterSerializer(serializers.Serializer):
        author = serializers.CharField(required=False, max_length=150)
        following = serializers.BooleanField(required=False, default=False)

        class Meta:
            ref_name = "PostListFilter"

    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(max_length=POST_TEXT_MAX_LENGTH, required=False, allow_blank=True, default="")
        image = serializers.FileField(required=False, allow_empty_file=True, use_url=False)

        class Meta:
            ref_name = "PostCreateInput"

    def get_throttles(self):
        return [*super().get_throttles(), UploadThrottle()]

    @extend_schema(
        operation_id="posts_list",
        parameters=[
            OpenApiParameter("author", OpenApiTypes.STR, description="Only posts by this username."),
            OpenApiParameter("following", OpenApiTypes.BOOL, description="Only posts by people you follow."),
        ],
        responses={200: PAGINATED_POSTS, 400: ERRORS},
        tags=["posts"],
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        author = filters.validated_data.get("author")
        queryset = selectors.post_list(
            viewer=request.user,
            author=selectors.user_get(username=author) if author else None,
            followed_by=request.user if filters.validated_data["following"] else None,
        )
        return get_paginated_response(
            serializer_class=PostOutputSerializer, queryset=queryset, request=request, view=self
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
        responses={201: PostOutputSerializer, 400: ERRORS},
        tags=["posts"],
    )
    def post(self, request: Request) -> Response:
        data = _valid(self.InputSerializer, request)
        post = services.post_create(author=request.user, text=data["text"], image=data.get("image"))
        post = selectors.post_get(post_id=post.pk, viewer=request.user)
        return Response(PostOutputSerializer(post, context={"request": request}).data, status=status.HTTP_201_CREATED)


class PostDetailApi(APIView):
    """Read (GET) or delete (DELETE, author only) one post."""

    @extend_schema(
        responses={200: PostOutputSerializer, 404: OpenApiResponse(description="No such post")}, tags=["posts"]
    )
    def get(self, request: Request, post_id: int) -> Response:
        post = selectors.post_get(post_id=post_id, viewer=request.user)
        return Response(PostOutputSerializer(post, context={"request": request}).data)

    @extend_schema(
        responses={
            204: None,
            403: OpenApiResponse(description="Not the author"),
            404: OpenApiResponse(description="No such post"),
        },
        tags=["posts"],
    )
    def delete(self, request: Request, post_id: int) -> Response:
        services.post_delete(post=selectors.post_get_for_update(post_id=post_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostImageApi(APIView):
    """The post's image bytes (media is never exposed as a public directory)."""

    @extend_schema(
        responses={(200, "image/*"): OpenApiTypes.BINARY, 404: OpenApiResponse(description="No such post or no image")},
        tags=["posts"],
    )
    def get(self, request: Request, post_id: int) -> FileResponse:
        post = selectors.post_get_for_update(post_id=post_id)
        if not post.image:
            raise Http404("This post has no image.")
        try:
            handle = post.image.open("rb")
        except FileNotFoundError:
            raise Http404("The image file is missing.") from None
        ext = PurePath(post.image.name).suffix.lower()
        content_type = (
            EXTENSION_MIME_TYPES.get(ext) or mimetypes.guess_type(post.image.name)[0] or "application/octet-stream"
        )
        response = FileResponse(handle, content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response


class PostLikeApi(APIView):
    """Like (POST) or unlike (DELETE) a post; both are idempotent."""

    class OutputSerializer(serializers.Serializer):
        liked = serializers.BooleanField()
        like_count = serializers.IntegerField()

        class Meta:
            ref_name = "LikeState"

    @extend_schema(
        request=None,
        responses={201: OutputSerializer, 200: OutputSerializer, 404: OpenApiResponse(description="No such post")},
        tags=["posts"],
    )
    def post(self, request: Request, post_id: int) -> Response:
        created, count = services.like(user=request.user, post=selectors.post_get_for_update(post_id=post_id))
        return Response(
            self.OutputSerializer({"liked": True, "like_count": count}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=None,
        responses={200: OutputSerializer, 404: OpenApiResponse(description="No such post")},
        tags=["posts"],
    )
    def delete(self, request: Request, post_id: int) -> Response:
        _, count = services.unlike(user=request.user, post=selectors.post_get_for_update(post_id=post_id))
        return Response(self.OutputSerializer({"liked": False, "like_count": count}).data)


def _valid(serializer_class: type[serializers.Serializer], request: Request, **kwargs) -> dict:
    """Validate ``request.data`` (400 on error) and return the validated data."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
