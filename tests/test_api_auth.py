"""Sign-up, token and own-profile endpoints."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from feedmood.authentication import key_digest
from feedmood.models import ApiToken
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()
GOOD_PASSWORD = "Tr1cky-Pelican-92"


def test_signup_returns_token_and_creates_profile(api_client) -> None:
    resp = api_client.post("/api/auth/signup/", {"username": "bob", "password": GOOD_PASSWORD, "display_name": "Bobby"})
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["user"] == {"username": "bob", "display_name": "Bobby"}
    user = User.objects.get(username="bob")
    assert ApiToken.objects.get(user=user).digest == key_digest(body["token"])
    assert user.profile.display_name == "Bobby"
    assert user.profile.emotion_consent is False and user.profile.mood_policy == "repair"
    me = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.status_code == 200 and me.json()["username"] == "bob"


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("8675309123", "entirely numeric"),
        ("bobbobbob1", "similar"),
    ],
)
def test_signup_password_validators(api_client, password: str, fragment: str) -> None:
    resp = api_client.post("/api/auth/signup/", {"username": "bobbobbob1", "password": password})
    assert resp.status_code == 400
    assert any(fragment in message for message in resp.json()["password"])
    assert not User.objects.filter(username="bobbobbob1").exists()


def test_signup_duplicate_username_case_insensitive(api_client, user) -> None:
    resp = api_client.post("/api/auth/signup/", {"username": "ALICE", "password": GOOD_PASSWORD})
    assert resp.status_code == 400
    assert resp.json() == {"username": ["A user with that username already exists."]}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": GOOD_PASSWORD}, "username"),
        ({"username": "carol"}, "password"),
        ({"username": "no spaces!", "password": GOOD_PASSWORD}, "username"),
        ({"username": "x" * 151, "password": GOOD_PASSWORD}, "username"),
        ({"username": "carol", "password": GOOD_PASSWORD, "display_name": "d" * 81}, "display_name"),
    ],
)
def test_signup_bad_payloads(api_client, payload: dict, field: str) -> None:
    resp = api_client.post("/api/auth/signup/", payload)
    assert resp.status_code == 400
    assert resp.json()[field]


def test_token_obtain(api_client, user) -> None:
    resp = api_client.post("/api/auth/token/", {"username": "alice", "password": DEFAULT_PASSWORD})
    assert resp.status_code == 200
    assert ApiToken.objects.get(user=user).digest == key_digest(resp.json()["token"])


def test_token_bad_credentials(api_client, user) -> None:
    resp = api_client.post("/api/auth/token/", {"username": "alice", "password": "nope"})
    assert resp.status_code == 400
    assert resp.json() == {"non_field_errors": ["Unable to log in with the provided username and password."]}


def test_session_auth_works(api_client, user) -> None:
    api_client.login(username="alice", password=DEFAULT_PASSWORD)
    assert api_client.get("/api/me/").status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/me/"),
        ("get", "/api/posts/"),
        ("post", "/api/posts/"),
        ("get", "/api/users/alice/"),
        ("post", "/api/users/alice/follow/"),
        ("post", "/api/posts/1/like/"),
        ("delete", "/api/posts/1/"),
    ],
)
def test_anonymous_gets_401(api_client, user, method: str, url: str) -> None:
    resp = getattr(api_client, method)(url)
    assert resp.status_code == 401
    assert resp.json()["detail"]


def test_bad_token_401(api_client) -> None:
    resp = api_client.get("/api/me/", HTTP_AUTHORIZATION="Token not-a-token")
    assert resp.status_code == 401


def test_me_get(auth_client) -> None:
    body = auth_client.get("/api/me/").json()
    assert body == {
        "username": "alice",
        "display_name": "Alice",
        "emotion_consent": False,
        "emotion_consent_at": None,
        "mood_policy": "repair",
        "mood_strength": 0.5,
        "mood_half_life_hours": 24.0,
    }


def test_me_patch(auth_client, user) -> None:
    resp = auth_client.patch(
        "/api/me/",
        {"display_name": "Al", "mood_policy": "congruent", "mood_strength": 0.9, "mood_half_life_hours": 6},
    )
    assert resp.status_code == 200, resp.json()
    user.profile.refresh_from_db()
    assert (user.profile.display_name, user.profile.mood_policy, user.profile.mood_strength) == ("Al", "congruent", 0.9)
    assert user.profile.mood_half_life_hours == 6.0


def test_me_consent_timestamps(auth_client, user) -> None:
    on = auth_client.patch("/api/me/", {"emotion_consent": True}).json()
    assert on["emotion_consent"] is True and on["emotion_consent_at"]
    off = auth_client.patch("/api/me/", {"emotion_consent": False}).json()
    assert off["emotion_consent"] is False and off["emotion_consent_at"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"mood_strength": 1.5}, "mood_strength"),
        ({"mood_strength": -0.1}, "mood_strength"),
        ({"mood_strength": "lots"}, "mood_strength"),
        ({"mood_half_life_hours": 0.5}, "mood_half_life_hours"),
        ({"mood_half_life_hours": 721}, "mood_half_life_hours"),
        ({"mood_policy": "chaos"}, "mood_policy"),
        ({"display_name": "x" * 81}, "display_name"),
        ({"emotion_consent": "maybe"}, "emotion_consent"),
    ],
)
def test_me_patch_validation(auth_client, payload: dict, field: str) -> None:
    resp = auth_client.patch("/api/me/", payload)
    assert resp.status_code == 400
    assert resp.json()[field]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_me_patch_rejects_non_finite_form_values(auth_client, value: str) -> None:
    resp = auth_client.patch("/api/me/", f"mood_strength={value}", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 400
    assert resp.json()["mood_strength"]


def test_me_patch_ignores_unknown_fields(auth_client, user) -> None:
    resp = auth_client.patch("/api/me/", {"username": "mallory", "is_staff": True})
    assert resp.status_code == 200
    user.refresh_from_db()
    assert user.username == "alice" and not user.is_staff
