"""Routes of the emotion API (mounted under ``/api/`` by ``config.urls``)."""

from django.urls import path

from emotion import apis

app_name = "emotion"

urlpatterns = [
    path("selfies/", apis.SelfieCreateApi.as_view(), name="selfie-create"),
    path("analyses/<int:analysis_id>/", apis.AnalysisDetailApi.as_view(), name="analysis-detail"),
    path("me/emotions/", apis.MyEmotionsApi.as_view(), name="my-emotions"),
    path("me/emotions/export/", apis.MyEmotionsExportApi.as_view(), name="my-emotions-export"),
]
