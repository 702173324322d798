"""Token authentication reads the token, the user, the profile and the mood state in one query."""

from __future__ import annotations

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import AuthenticationFailed

from feedmood.accounts import token_issue
from feedmood.authentication import TokenAuthentication, key_digest
from feedmood.models import ApiToken
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
    key = token_issue(user=user)
    with CaptureQueriesContext(connection) as queries:
        found, token = TokenAuthentication().authenticate_credentials(key)
        profile = selectors.profile_with_mood(user=found)
        mood = selectors.mood_report(user=found, profile=profile).mood
    assert len(queries.captured_queries) == 1
    assert found == user and token.digest == key_digest(key) and profile.user_id == user.pk
    assert mood.known and mood.label == "sadness"


def test_user_without_mood_state_needs_no_second_query() -> None:
    user = UserFactory()
    key = token_issue(user=user)
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
    key = token_issue(user=user)
    with pytest.raises(AuthenticationFailed, match="Invalid or expired token"):
        TokenAuthentication().authenticate_credentials("0" * 40)
    user.is_active = False
    user.save()
    with pytest.raises(AuthenticationFailed, match="inactive"):
        TokenAuthentication().authenticate_credentials(key)
    assert api_client.get("/api/feed/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_feed_settings_change_is_seen_by_the_next_request(api_client) -> None:
    """The profile read with the token is per request: a PATCH shows in the next feed."""
    user = _sad_user_with_mood()
    auth = {"HTTP_AUTHORIZATION": f"Token {token_issue(user=user)}"}
    assert api_client.get("/api/feed/", **auth).json()["policy"]["name"] == "repair"
    assert (
        api_client.patch("/api/me/mood-settings/", {"mood_policy": "congruent"}, format="json", **auth).status_code
        == 200
    )
    assert api_client.get("/api/feed/", **auth).json()["policy"]["name"] == "congruent"


def _values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_precompiled_query_builds_what_the_orm_builds() -> None:
    """Same field values (after the ORM's converters: datetimes, JSON) and the same relation caches."""
    user = _sad_user_with_mood()
    key = token_issue(user=user)
    orm = ApiToken.objects.select_related("user", "user__profile", "user__mood_state").get(digest=key_digest(key))
    found, token = TokenAuthentication().authenticate_credentials(key)
    assert _values(token) == _values(orm) and _values(found) == _values(orm.user)
    assert _values(found.profile) == _values(orm.user.profile)
    assert _values(found.mood_state) == _values(orm.user.mood_state)
    assert found.mood_state.user is found and found.profile.user is found and token.user is found
    assert not found._state.adding and found._state.db == orm.user._state.db


def test_missing_related_rows_are_cached_as_absent() -> None:
    user = UserFactory()
    user.profile.delete()
    key = token_issue(user=user)
    found, _ = TokenAuthentication().authenticate_credentials(key)
    with CaptureQueriesContext(connection) as queries:
        for name in ("profile", "mood_state"):
            with pytest.raises(ObjectDoesNotExist, match=f"has no {name}"):
                getattr(found, name)
    assert len(queries.captured_queries) == 0
