"""URL routes of the recommender API (mounted under ``/api/``)."""

from django.urls import path

from recommender import apis

app_name = "recommender"

urlpatterns = [
    path("feed/", apis.FeedApi.as_view(), name="feed"),
    path("me/mood/", apis.MoodApi.as_view(), name="my-mood"),
    path("me/mood-settings/", apis.MoodSettingsApi.as_view(), name="my-mood-settings"),
]
