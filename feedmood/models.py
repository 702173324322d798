"""Social core models: Profile, Post, Follow, Reaction."""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from feedmood.validators import validate_finite

MOOD_STRENGTH_MIN, MOOD_STRENGTH_MAX = 0.0, 1.0
HALF_LIFE_MIN_HOURS, HALF_LIFE_MAX_HOURS = 1.0, 720.0
POST_TEXT_MAX_LENGTH = 5000
POST_IMAGE_EXTENSIONS = {".jpg", ".png", ".webp"}


class Profile(models.Model):
    """Per-user settings: display name, emotion-analysis consent, mood policy."""

    class MoodPolicy(models.TextChoices):
        REPAIR = "repair", "Mood repair (lift a low mood)"
        CONGRUENT = "congruent", "Mood congruent (match the mood)"
        OFF = "off", "Off (no mood adaptation)"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=80, blank=True)
    emotion_consent = models.BooleanField(default=False)
    emotion_consent_at = models.DateTimeField(null=True, blank=True)
    mood_policy = models.CharField(max_length=16, choices=MoodPolicy.choices, default=MoodPolicy.REPAIR)
    mood_strength = models.FloatField(
        default=0.5,
        validators=[validate_finite, MinValueValidator(MOOD_STRENGTH_MIN), MaxValueValidator(MOOD_STRENGTH_MAX)],
    )
    mood_half_life_hours = models.FloatField(
        default=24.0,
        validators=[validate_finite, MinValueValidator(HALF_LIFE_MIN_HOURS), MaxValueValidator(HALF_LIFE_MAX_HOURS)],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(mood_strength__gte=MOOD_STRENGTH_MIN) & Q(mood_strength__lte=MOOD_STRENGTH_MAX),
                name="profile_mood_strength_range",
            ),
            models.CheckConstraint(
                condition=Q(mood_half_life_hours__gte=HALF_LIFE_MIN_HOURS)
                & Q(mood_half_life_hours__lte=HALF_LIFE_MAX_HOURS),
                name="profile_half_life_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Profile({self.user_id})"


def post_image_upload_to(instance: Post, filename: str) -> str:
    """Random storage name under ``posts/``; only a known extension is kept."""
    ext = PurePath(filename).suffix.lower()
    if ext not in POST_IMAGE_EXTENSIONS:
        ext = ""
    return f"posts/{uuid.uuid4().hex}{ext}"


class Post(models.Model):
    """A piece of content: text and/or one image."""

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    text = models.TextField(max_length=POST_TEXT_MAX_LENGTH, blank=True)
    image = models.ImageField(upload_to=post_image_upload_to, blank=True)
    image_width = models.PositiveIntegerField(null=True, blank=True)
    image_height = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    like_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["author", "-created_at"], name="post_author_created_idx"),
            models.Index(fields=["-created_at"], name="post_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Post({self.pk}) by {self.author_id}"


class Follow(models.Model):
    """``follower`` follows ``followee``."""

    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following_links")
    followee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follower_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="follow_unique_pair"),
            models.CheckConstraint(condition=~Q(follower=F("followee")), name="follow_no_self_follow"),
        ]
        indexes = [models.Index(fields=["followee", "-created_at"], name="follow_followee_created_idx")]

    def __str__(self) -> str:
        return f"{self.follower_id} -> {self.followee_id}"


class Reaction(models.Model):
    """A user's reaction to a post (only ``like`` for now)."""

    class Kind(models.TextChoices):
        LIKE = "like", "Like"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="reactions")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LIKE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "post", "kind"], name="reaction_unique_user_post_kind"),
        ]
        indexes = [models.Index(fields=["post", "kind"], name="reaction_post_kind_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.post_id}"


class ErasureRequest(models.Model):
    """A promise to erase a person's data, recorded in the same transaction as what asked for it.

    ``scope`` ``emotion`` (consent withdrawn, readings erased): analyses, readings,
    moods, post affect and stored selfies; ``account`` (account deleted): every row
    of the user and every file (post images, selfies).  ``files`` lists the storage
    names still to delete.  Finished by ``feedmood.erasure`` (at once after commit,
    then a retried task, then the periodic sweep); ``completed_at`` marks the end.
    ``user_id`` is not a foreign key: the request outlives the account it erases.
    """

    class Scope(models.TextChoices):
        EMOTION = "emotion", "Emotion data"
        ACCOUNT = "account", "Whole account"

    user_id = models.BigIntegerField(db_index=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    files = models.JSONField(default=list, blank=True, help_text="Storage names still to delete.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rows_erased_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(completed_at__isnull=True), name="erasure_open_idx"),
        ]

    def __str__(self) -> str:
        return f"ErasureRequest({self.pk}, {self.scope}, user {self.user_id})"


class ApiToken(models.Model):
    """An API token (``Authorization: Token <key>``): only the SHA-256 of the key is stored.

    A new token is issued at every sign-in; it works until ``expires_at``, logout
    (that token) or a password change or reset (all tokens of the user).
    """

    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 (hex) of the key.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created_idx")]

    def __str__(self) -> str:
        return f"ApiToken({self.pk}, user {self.user_id})"
