"""Token authentication reads the token, the user, the profile and the mood state in one query."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from feedmood.authentication import TokenAuthentication
from recommender import selectors, services
from tests import recommender_factories as rf
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _sad_user_with_mood():
    user = UserFactory()
    user.profile.emotion_consent = True
    user.profile.save()
    rf.selfie(user, rf.model_version(), {"sadness": 0.8, "neutral": 0.2})
    services.mood_recompute(user=user)
    return user


def test_one_query_gives_user_profile_and_mood() -> None:
    user = _sad_user_with_mood()
    key = Token.objects.create(user=user).key
    with CaptureQueriesContext(connection) as queries:
        found, token = TokenAuthentication().authenticate_credentials(key)
        profile = selectors.profile_with_mood(user=found)
        mood = selectors.mood_report(user=found, profile=profile).mood
    assert len(queries.captured_queries) == 1
    assert found == user and token.key == key and profile.user_id == user.pk
    assert mood.known and mood.label == "sadness"


def test_user_without_mood_state_needs_no_second_query() -> None:
    user = UserFactory()
    key = Token.objects.create(user=user).key
    with CaptureQueriesContext(connection) as queries:
        found, _ = TokenAuthentication().authenticate_credentials(key)
        report = selectors.mood_report(user=found, profile=selectors.profile_with_mood(user=found))
    assert len(queries.captured_queries) == 1
    assert not report.mood.known


def test_a_user_loaded_elsewhere_still_gets_its_profile() -> None:
    user = _sad_user_with_mood()
    plain = type(user).objects.get(pk=user.pk)  # no relations loaded
    assert selectors.profile_with_mood(user=plain).pk == user.profile.pk


def test_bad_and_inactive_tokens_are_refused(api_client) -> None:
    user = UserFactory()
    key = Token.objects.create(user=user).key
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        TokenAuthentication().authenticate_credentials("0" * 40)
    user.is_active = False
    user.save()
    with pytest.raises(AuthenticationFailed, match="inactive"):
        TokenAuthentication().authenticate_credentials(key)
    assert api_client.get("/api/feed/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_feed_settings_change_is_seen_by_the_next_request(api_client) -> None:
    """The profile read with the token is per request: a PATCH shows in the next feed."""
    user = _sad_user_with_mood()
    auth = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}
    assert api_client.get("/api/feed/", **auth).json()["policy"]["name"] == "repair"
    assert api_client.patch("/api/me/mood-settings/", {"mood_policy": "congruent"}, format="json", **auth).status_code == 200
    assert api_client.get("/api/feed/", **auth).json()["policy"]["name"] == "congruent"
