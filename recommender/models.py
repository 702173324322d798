"""Recommender state: a stored mood per user and the affect of each post's content."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class MoodState(models.Model):
    """Decayed, confidence-weighted sums of a user's selfie readings at ``as_of``.

    Exponential decay is memoryless, so the mood at any later time is these
    sums multiplied by ``0.5 ** (elapsed / half_life_hours)`` (see
    ``recommender.mood``): the feed reads one row instead of every reading.
    Recomputed from the ACTIVE model version's readings whenever a selfie
    analysis finishes, the half-life changes or the active model switches.
    Deleted when consent is withdrawn or readings are erased.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="mood_state"
    )
    model_version = models.ForeignKey(
        "emotion.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    half_life_hours = models.FloatField()
    as_of = models.DateTimeField()
    weight_sum = models.FloatField(default=0.0)
    decay_sum = models.FloatField(default=0.0)
    valence_sum = models.FloatField(default=0.0)
    arousal_sum = models.FloatField(default=0.0)
    probability_sums = models.JSONField(default=dict)
    reading_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"MoodState({self.user_id}, {self.reading_count} readings)"


class PostAffect(models.Model):
    """Affect of a post's content from one source: the faces in its image or its text.

    ``valence`` is NULL when the source found nothing (an image without faces;
    text in a language not covered or without sentiment cue): such posts have
    unknown affect from that source. Text gives no ``arousal`` (NULL) and has no
    model version; ``language`` is the language the text was read as
    (``recommender.text_affect``).
    """

    class Source(models.TextChoices):
        FACES = "faces", "Faces in the post image"
        TEXT = "text", "Post text and emoji"

    post = models.ForeignKey("feedmood.Post", on_delete=models.CASCADE, related_name="affects")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FACES)
    valence = models.FloatField(null=True, blank=True)
    arousal = models.FloatField(null=True, blank=True)
    dominant_emotion = models.CharField(max_length=32, blank=True)
    confidence = models.FloatField(default=0.0)
    face_count = models.PositiveIntegerField(default=0)
    language = models.CharField(
        max_length=16, blank=True, default="", db_default="", help_text="Text only: the language it was read as."
    )
    model_version = models.ForeignKey(
        "emotion.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["post", "source"], name="postaffect_unique_post_source"),
            models.CheckConstraint(
                condition=Q(valence__isnull=True) | (Q(valence__gte=-1.0) & Q(valence__lte=1.0)),
                name="postaffect_valence_range",
            ),
            models.CheckConstraint(
                condition=Q(arousal__isnull=True) | (Q(arousal__gte=-1.0) & Q(arousal__lte=1.0)),
                name="postaffect_arousal_range",
            ),
        ]

    def __str__(self) -> str:
        return f"PostAffect({self.post_id}, {self.source})"

    @property
    def known(self) -> bool:
        return self.valence is not None and (self.arousal is not None or self.source == self.Source.TEXT)


class EmotionDashboard(models.Model):
    """No table: carries the dedicated permission to open the aggregate emotion dashboard
    (``recommender.view_emotion_dashboard``; being staff is not enough)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_emotion_dashboard", "Can view the aggregate emotion dashboard")]

    def __str__(self) -> str:
        return "emotion dashboard"
