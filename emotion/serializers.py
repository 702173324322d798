"""Output serializers shared by the emotion APIs (analysis results and readings)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from emotion.models import FaceReading, ImageAnalysis
from emotion.selectors import timings_of


class BoxSerializer(serializers.Serializer):
    x = serializers.IntegerField()
    y = serializers.IntegerField()
    w = serializers.IntegerField()
    h = serializers.IntegerField()

    class Meta:
        ref_name = "FaceBox"


class TimingsSerializer(serializers.Serializer):
    queue_wait = serializers.FloatField(allow_null=True, help_text="ms between upload and processing start")
    decode = serializers.FloatField(allow_null=True)
    detect = serializers.FloatField(allow_null=True)
    classify = serializers.FloatField(allow_null=True)
    total = serializers.FloatField(allow_null=True, help_text="ms of processing (read + decode + detect + classify)")

    class Meta:
        ref_name = "AnalysisTimings"


@extend_schema_field({"type": "object", "additionalProperties": {"type": "number"}, "example": {"happiness": 0.91}})
class ProbabilitiesField(serializers.JSONField):
    """``{label: probability}`` over the model's labels."""


class FaceSerializer(serializers.Serializer):
    """One face of an analysis."""

    face_index = serializers.IntegerField()
    box = serializers.SerializerMethodField()
    probabilities = ProbabilitiesField()
    dominant_emotion = serializers.CharField()
    confidence = serializers.FloatField()
    valence = serializers.FloatField(help_text="-1 (unpleasant) .. +1 (pleasant), Russell's circumplex")
    arousal = serializers.FloatField(help_text="-1 (calm) .. +1 (activated), Russell's circumplex")

    class Meta:
        ref_name = "Face"

    @extend_schema_field(BoxSerializer)
    def get_box(self, obj: FaceReading) -> dict[str, int]:
        return {"x": obj.x, "y": obj.y, "w": obj.w, "h": obj.h}


class AnalysisSerializer(serializers.Serializer):
    """The full result of an analysis (only ever shown to its owner)."""

    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=ImageAnalysis.Source.choices)
    post_id = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=ImageAnalysis.Status.choices)
    error = serializers.CharField()
    model_version = serializers.CharField(source="model_version.name", allow_null=True, default=None)
    image_width = serializers.IntegerField(allow_null=True)
    image_height = serializers.IntegerField(allow_null=True)
    face_count = serializers.IntegerField()
    attempts = serializers.IntegerField()
    timings_ms = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    faces = serializers.SerializerMethodField()

    class Meta:
        ref_name = "ImageAnalysis"

    @extend_schema_field(TimingsSerializer)
    def get_timings_ms(self, obj: ImageAnalysis) -> dict[str, Any]:
        return timings_of(obj)

    @extend_schema_field(FaceSerializer(many=True))
    def get_faces(self, obj: ImageAnalysis) -> list[dict[str, Any]]:
        readings = getattr(obj, "current_readings", None)
        if readings is None:
            from emotion.selectors import current_readings

            readings = current_readings(obj)
        return FaceSerializer(readings, many=True).data


class ReadingSerializer(FaceSerializer):
    """A face reading in the user's own history."""

    analysis_id = serializers.IntegerField()
    source = serializers.CharField(source="analysis.source")
    post_id = serializers.IntegerField(source="analysis.post_id", allow_null=True)
    model_version = serializers.CharField(source="model_version.name")
    analysed_at = serializers.DateTimeField(source="analysis.created_at", help_text="when the image was submitted")
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "FaceReading"
