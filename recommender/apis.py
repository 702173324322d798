"""REST API of the recommender: thin APIViews over ``feed``, ``selectors`` and ``services``.

- ``GET /api/feed/``: the mood-aware home feed (cursor pages, explanations);
- ``GET /api/me/mood/``: the signed-in user's own mood (never anyone else's);
- ``GET|PATCH /api/me/mood-settings/``: consent, policy, strength, half-life.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedmood.models import HALF_LIFE_MAX_HOURS, HALF_LIFE_MIN_HOURS, Profile
from feedmood.serializers import PostOutputSerializer
from feedmood.validators import validate_finite
from recommender import conf, selectors, services
from recommender.feed import FeedItem, FeedPage, feed_page
from recommender.mood import LABELS, Mood
from recommender.ranking import Policy, Source
from recommender.selectors import FeedPost

ERRORS = OpenApiResponse(description='Validation error: `{"field": ["message"]}`')
UNAUTHENTICATED = OpenApiResponse(description="Authentication credentials were not provided")


class FiniteFloatField(serializers.FloatField):
    """FloatField that rejects NaN and infinities."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.insert(0, validate_finite)


class MoodOutputSerializer(serializers.Serializer):
    """A mood: ``state`` known|unknown; ``reason`` says why it is unknown."""

    state = serializers.ChoiceField(choices=["known", "unknown"])
    reason = serializers.CharField(allow_blank=True)
    label = serializers.ChoiceField(choices=list(LABELS), allow_null=True)
    valence = serializers.FloatField(allow_null=True)
    arousal = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "Mood"


def mood_data(mood: Mood) -> dict[str, Any]:
    if not mood.known:
        return {
            "state": "unknown",
            "reason": mood.reason,
            "label": None,
            "valence": None,
            "arousal": None,
            "confidence": None,
        }
    return {
        "state": "known",
        "reason": "",
        "label": mood.label,
        "valence": round(mood.valence or 0.0, 4),
        "arousal": round(mood.arousal or 0.0, 4),
        "confidence": round(mood.confidence, 4),
    }


DATETIME = serializers.DateTimeField()


class ImageUrls:
    """Absolute image URLs of posts for one request: the URL is reversed once, not once per post."""

    _SENTINEL = 987654321987654321

    def __init__(self, request: Request):
        path = reverse("feedmood:post-image", kwargs={"post_id": self._SENTINEL})
        self._head, self._tail = request.build_absolute_uri(path).split(str(self._SENTINEL))

    def __call__(self, post_id: int) -> str:
        return f"{self._head}{post_id}{self._tail}"


def feed_post_data(post: FeedPost, image_urls: ImageUrls) -> dict[str, Any]:
    """A feed post exactly as ``PostOutputSerializer`` shows a post."""
    return {
        "id": post.id,
        "author": {"username": post.author_username, "display_name": post.author_display_name},
        "text": post.text,
        "image_url": image_urls(post.id) if post.image else None,
        "image_width": post.image_width,
        "image_height": post.image_height,
        "like_count": post.like_count,
        "liked_by_me": post.liked_by_me,
        "created_at": DATETIME.to_representation(post.created_at),
    }


class FeedApi(APIView):
    """The signed-in user's home feed, re-ranked for their mood, every item explained.

    Stages: candidates (own posts, newest posts of followed accounts, popular
    posts from outside the network) -> hot-rank base score -> mood stage
    (policy ``repair``/``congruent``/``off`` at the user's strength) ->
    author diversity -> cursor page.  Pages come from a snapshot: posts created
    after the first page never shift later pages.
    """

    class FilterSerializer(serializers.Serializer):
        policy = serializers.ChoiceField(choices=[p.value for p in Policy], required=False)
        strength = FiniteFloatField(min_value=0.0, max_value=1.0, required=False)
        page_size = serializers.IntegerField(min_value=1, max_value=conf.get("MAX_PAGE_SIZE"), required=False)
        cursor = serializers.CharField(required=False, max_length=2000)
        refresh = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Rank a new snapshot even if the one of a moment ago is still current.",
        )

        class Meta:
            ref_name = "FeedFilter"

    class OutputSerializer(serializers.Serializer):
        class PolicySerializer(serializers.Serializer):
            name = serializers.ChoiceField(choices=[p.value for p in Policy])
            strength = serializers.FloatField()
            source = serializers.ChoiceField(choices=["profile", "query", "cursor"])
            applied = serializers.BooleanField(help_text="Whether the mood stage changed anything possible.")
            note = serializers.CharField(allow_blank=True)

            class Meta:
                ref_name = "FeedPolicy"

        class ItemSerializer(serializers.Serializer):
            class RankingSerializer(serializers.Serializer):
                position = serializers.IntegerField()
                base_position = serializers.IntegerField(help_text="Position in the plain hot-rank order.")
                score = serializers.FloatField(
                    allow_null=True,
                    help_text="Your own posts only (null for other people's: it would reveal "
                    "the affect read from their photos).",
                )
                base_score = serializers.FloatField(help_text="Hot rank from likes and age (public data).")
                mood_adjustment = serializers.FloatField(allow_null=True, help_text="Your own posts only.")
                source = serializers.ChoiceField(choices=[s.value for s in Source])

                class Meta:
                    ref_name = "FeedItemRanking"

            post = PostOutputSerializer()
            reason = serializers.CharField()
            ranking = RankingSerializer()

            class Meta:
                ref_name = "FeedItem"

        mood = MoodOutputSerializer()
        policy = PolicySerializer()
        snapshot = serializers.DateTimeField()
        snapshot_reused = serializers.BooleanField(
            help_text="This first page came from your snapshot of a moment ago: nothing in your network, "
            "mood or settings changed since (`?refresh=true` ranks anew)."
        )
        next = serializers.URLField(allow_null=True)
        results = ItemSerializer(many=True)

        class Meta:
            ref_name = "Feed"

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: OutputSerializer, 400: ERRORS, 401: UNAUTHENTICATED},
        tags=["feed"],
        examples=[
            OpenApiExample(
                "Sad user, repair policy",
                response_only=True,
                value={
                    "mood": {
                        "state": "known",
                        "reason": "",
                        "label": "sadness",
                        "valence": -0.58,
                        "arousal": -0.31,
                        "confidence": 0.71,
                    },
                    "policy": {"name": "repair", "strength": 0.5, "source": "profile", "applied": True, "note": ""},
                    "snapshot": "2025-01-01T12:00:00Z",
                    "snapshot_reused": False,
                    "next": "http://localhost:8000/api/feed/?cursor=...",
                    "results": [
                        {
                            "post": {
                                "id": 42,
                                "author": {"username": "bob", "display_name": "Bob"},
                                "text": "sunny day",
                                "image_url": "http://localhost:8000/api/posts/42/image/",
                                "image_width": 640,
                                "image_height": 480,
                                "like_count": 3,
                                "liked_by_me": False,
                                "created_at": "2025-01-01T10:00:00Z",
                            },
                            "reason": "moved up for your mood: the photo",
                            "ranking": {
                                "position": 0,
                                "base_position": 4,
                                "score": None,
                                "base_score": -0.16,
                                "mood_adjustment": None,
                                "source": "network",
                            },
                        },
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = feed_page(user=request.user, **params.validated_data)
        return Response(self.output(request, page))

    @staticmethod
    def output(request: Request, page: FeedPage) -> dict[str, Any]:
        """The response body, built directly in the shape of ``OutputSerializer``.

        Every feed request renders 20-50 posts; DRF's field-by-field serializers
        took ~15 % of the request's CPU for it. ``OutputSerializer`` still
        documents the shape (OpenAPI), and the tests hold this output equal to
        what it (and ``PostOutputSerializer``) would produce.
        """
        next_url = None
        if page.next_cursor:
            next_url = request.build_absolute_uri(reverse("recommender:feed")) + f"?cursor={page.next_cursor}"
        image_urls = ImageUrls(request)
        return {
            "mood": mood_data(page.mood),
            "policy": {
                "name": page.policy,
                "strength": page.strength,
                "source": page.policy_source,
                "applied": page.applied,
                "note": page.note,
            },
            "snapshot": DATETIME.to_representation(page.snapshot),
            "snapshot_reused": page.reused,
            "next": next_url,
            "results": [
                {
                    "post": feed_post_data(item.post, image_urls),
                    "reason": item.entry.reason,
                    "ranking": ranking_data(item),
                }
                for item in page.items
            ],
        }


def ranking_data(item: FeedItem) -> dict[str, Any]:
    """An item's ranking; the mood's numbers (score, adjustment) only for the viewer's own posts."""
    own = item.entry.source == Source.OWN.value
    return {
        "position": item.position,
        "base_position": item.entry.base_position,
        "score": round(item.entry.score, 6) if own else None,
        "base_score": round(item.entry.base_score, 6),
        "mood_adjustment": round(item.entry.mood_delta, 6) if own else None,
        "source": item.entry.source,
    }


class MoodApi(APIView):
    """The signed-in user's own current mood (there is no way to read anyone else's)."""

    class OutputSerializer(MoodOutputSerializer):
        distribution = serializers.DictField(child=serializers.FloatField(), help_text="{label: probability}")
        evidence = serializers.FloatField(help_text="Decayed, confidence-weighted number of readings.")
        reading_count = serializers.IntegerField()
        half_life_hours = serializers.FloatField()
        as_of = serializers.DateTimeField(allow_null=True)
        model_version = serializers.IntegerField(allow_null=True)

        class Meta:
            ref_name = "MyMood"

    @extend_schema(responses={200: OutputSerializer, 401: UNAUTHENTICATED}, tags=["mood"])
    def get(self, request: Request) -> Response:
        report = selectors.mood_report(user=request.user)
        mood = report.mood
        data = {
            **mood_data(mood),
            "distribution": {k: round(v, 4) for k, v in mood.distribution.items()},
            "evidence": round(mood.evidence, 4),
            "reading_count": mood.reading_count,
            "half_life_hours": report.half_life_hours,
            "as_of": report.as_of if mood.known else None,
            "model_version": report.model_version_id if mood.known else None,
        }
        return Response(self.OutputSerializer(data).data)


class MoodSettingsApi(APIView):
    """Emotion consent and mood-adaptation settings of the signed-in user.

    Withdrawing consent erases the user's readings and mood (through the social
    core's profile service); a new half-life recomputes the mood.
    """

    class InputSerializer(serializers.Serializer):
        emotion_consent = serializers.BooleanField(required=False)
        mood_policy = serializers.ChoiceField(choices=Profile.MoodPolicy.choices, required=False)
        mood_strength = FiniteFloatField(min_value=0.0, max_value=1.0, required=False)
        mood_half_life_hours = FiniteFloatField(
            min_value=HALF_LIFE_MIN_HOURS, max_value=HALF_LIFE_MAX_HOURS, required=False
        )

        class Meta:
            ref_name = "MoodSettingsInput"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = set(self.initial_data) - set(self.fields) if hasattr(self.initial_data, "keys") else set()
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
            return attrs

    class OutputSerializer(serializers.Serializer):
        emotion_consent = serializers.BooleanField()
        emotion_consent_at = serializers.DateTimeField(allow_null=True)
        mood_policy = serializers.ChoiceField(choices=Profile.MoodPolicy.choices)
        mood_strength = serializers.FloatField()
        mood_half_life_hours = serializers.FloatField()

        class Meta:
            ref_name = "MoodSettings"

    @extend_schema(responses={200: OutputSerializer, 401: UNAUTHENTICATED}, tags=["mood"])
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(selectors.mood_settings_get(user=request.user)).data)

    @extend_schema(
        request=InputSerializer, responses={200: OutputSerializer, 400: ERRORS, 401: UNAUTHENTICATED}, tags=["mood"]
    )
    def patch(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        profile = services.mood_settings_update(user=request.user, data=dict(serializer.validated_data))
        return Response(self.OutputSerializer(profile).data)
