"""REST API of emotion analysis: thin APIViews over selectors and services.

Every endpoint is scoped to ``request.user``: another user's analysis is a
404, and readings are only ever listed, exported or erased for their owner.
"""

from __future__ import annotations

import json
import time

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from emotion import privacy, selectors, submission
from emotion.models import ImageAnalysis
from emotion.serializers import AnalysisSerializer, ReadingSerializer
from emotion.waiting import wait_slot
from feedmood.pagination import get_paginated_response, paginated_serializer
from feedmood.throttling import UploadThrottle
from feedmood.validators import validate_finite

MAX_WAIT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.1
#: Set on a 202 when ``?wait`` was not honoured because the waiting slots were taken (emotion.waiting).
WAIT_DECLINED_HEADER = "FeedMood-Wait-Declined"

ERRORS_400 = OpenApiResponse(description='Validation error, e.g. `{"image": ["Not an image: ..."]}`')
CONSENT_403 = OpenApiResponse(description="Emotion analysis is off for this account (opt in first).")
NOT_FOUND = OpenApiResponse(description="No such analysis (or not yours).")
PAGINATED_READINGS = paginated_serializer(ReadingSerializer, "PaginatedFaceReadingList")
PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number (1-based)."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="Results per page (default 20, at most 100)."),
]


class SelfieCreateApi(APIView):
    """Upload a selfie for emotion analysis (requires ``emotion_consent``).

    Answers 202 with the analysis id right away; with ``?wait=SECONDS`` (0-10)
    it waits for the result and answers 200 with the full analysis if it
    finished in time, when a waiting slot is free (``emotion.waiting``; else a
    202 at once with ``FeedMood-Wait-Declined``).
    """

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, UploadThrottle]

    class InputSerializer(serializers.Serializer):
        """Documents the multipart body; the service validates the file by decoding it (after the consent check)."""

        image = serializers.FileField(help_text="JPEG, PNG or WebP; validated by decoding.")

        class Meta:
            ref_name = "SelfieInput"

    class FilterSerializer(serializers.Serializer):
        wait = serializers.FloatField(
            min_value=0.0, max_value=MAX_WAIT_SECONDS, required=False, default=0.0, validators=[validate_finite]
        )

        class Meta:
            ref_name = "SelfieWaitFilter"

    class AcceptedSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=ImageAnalysis.Status.choices)
        url = serializers.URLField(help_text="Poll this for the result.")

        class Meta:
            ref_name = "SelfieAccepted"

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        parameters=[
            OpenApiParameter(
                "wait", OpenApiTypes.FLOAT, description="Seconds (0-10) to wait for the result before answering."
            )
        ],
        responses={
            202: AcceptedSerializer,
            200: AnalysisSerializer,
            400: ERRORS_400,
            403: CONSENT_403,
        },
        tags=["emotion"],
    )
    def post(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wait = filters.validated_data["wait"]
        analysis = submission.selfie_submit(user=request.user, uploaded_file=request.FILES.get("image"))
        headers = {}
        if wait > 0:
            with wait_slot(request.user.pk) as may_wait:
                if may_wait and _wait_until_final(analysis.pk, wait):
                    result = selectors.analysis_get_for_owner(user=request.user, analysis_id=analysis.pk)
                    return Response(AnalysisSerializer(result).data, status=status.HTTP_200_OK)
            if not may_wait:
                headers[WAIT_DECLINED_HEADER] = "too many requests are already waiting; poll the Location"
        current = selectors.analysis_status(analysis_id=analysis.pk) or analysis.status
        url = request.build_absolute_uri(reverse("emotion:analysis-detail", args=[analysis.pk]))
        body = {"id": analysis.pk, "status": current, "url": url}
        return Response(
            self.AcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED, headers={"Location": url, **headers}
        )


def _wait_until_final(analysis_id: int, seconds: float) -> bool:
    """Poll the database until the analysis is final (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while True:
        current = selectors.analysis_status(analysis_id=analysis_id)
        if current in ImageAnalysis.FINAL_STATUSES:
            return True
        if current is None or time.monotonic() >= deadline:
            return False
        time.sleep(min(POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))


class AnalysisDetailApi(APIView):
    """One of your analyses: status, error, timings, model version and faces."""

    @extend_schema(responses={200: AnalysisSerializer, 404: NOT_FOUND}, tags=["emotion"])
    def get(self, request: Request, analysis_id: int) -> Response:
        analysis = selectors.analysis_get_for_owner(user=request.user, analysis_id=analysis_id)
        return Response(AnalysisSerializer(analysis).data)


class MyEmotionsApi(APIView):
    """Your face readings, newest first (GET), or erase all of them (DELETE)."""

    class FilterSerializer(serializers.Serializer):
        source = serializers.ChoiceField(choices=ImageAnalysis.Source.choices, required=False)

        class Meta:
            ref_name = "EmotionSourceFilter"

    @extend_schema(
        operation_id="me_emotions_list",
        parameters=[FilterSerializer, *PAGE_PARAMETERS],
        responses={200: PAGINATED_READINGS},
        tags=["emotion"],
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        readings = selectors.readings_for_user(user=request.user, **filters.validated_data)
        return get_paginated_response(serializer_class=ReadingSerializer, queryset=readings, request=request, view=self)

    @extend_schema(
        operation_id="me_emotions_erase",
        responses={204: OpenApiResponse(description="All your analyses, readings and selfies were deleted.")},
        tags=["emotion"],
    )
    def delete(self, request: Request) -> Response:
        privacy.readings_erase(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyEmotionsExportApi(APIView):
    """Download everything the emotion app stores about you, as a JSON attachment."""

    @extend_schema(
        operation_id="me_emotions_export",
        responses={200: OpenApiResponse(response=OpenApiTypes.OBJECT, description="JSON file (attachment).")},
        tags=["emotion"],
    )
    def get(self, request: Request) -> HttpResponse:
        data = privacy.readings_export(user=request.user)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = HttpResponse(json.dumps(data, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="feedmood-emotions-{stamp}.json"'
        response["Cache-Control"] = "no-store"
        return response
