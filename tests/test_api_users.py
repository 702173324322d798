"""Public profiles, follow/unfollow, followers/following lists."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedmood.models import Follow
from tests.factories import FollowFactory, PostFactory

pytestmark = pytest.mark.django_db

PRIVATE_FIELDS = {"emotion_consent", "emotion_consent_at", "mood_policy", "mood_strength", "mood_half_life_hours"}


def test_public_profile_has_counts_and_no_private_fields(auth_client, user, make_user) -> None:
    bob = make_user(username="bob", display_name="Bob", emotion_consent=True, mood_policy="congruent")
    PostFactory.create_batch(3, author=bob)
    FollowFactory(follower=user, followee=bob)
    FollowFactory(follower=make_user(username="carol"), followee=bob)
    FollowFactory(follower=bob, followee=user)
    body = auth_client.get("/api/users/bob/").json()
    assert body["username"] == "bob" and body["display_name"] == "Bob"
    assert (body["followers_count"], body["following_count"], body["posts_count"]) == (2, 1, 3)
    assert body["is_followed"] is True
    assert not PRIVATE_FIELDS & set(body)
    assert "emotion" not in str(body) and "mood" not in str(body)


def test_public_profile_display_name_falls_back_to_username(auth_client, make_user) -> None:
    make_user(username="nameless")
    assert auth_client.get("/api/users/nameless/").json()["display_name"] == "nameless"


def test_unknown_user_404(auth_client) -> None:
    resp = auth_client.get("/api/users/ghost/")
    assert resp.status_code == 404 and resp.json()["detail"]
    assert auth_client.post("/api/users/ghost/follow/").status_code == 404


def test_follow_unfollow_idempotent(auth_client, user, make_user) -> None:
    make_user(username="bob")
    first = auth_client.post("/api/users/bob/follow/")
    assert first.status_code == 201 and first.json() == {"following": True, "followers_count": 1}
    again = auth_client.post("/api/users/bob/follow/")
    assert again.status_code == 200 and again.json() == {"following": True, "followers_count": 1}
    assert Follow.objects.count() == 1
    gone = auth_client.delete("/api/users/bob/follow/")
    assert gone.status_code == 200 and gone.json() == {"following": False, "followers_count": 0}
    assert auth_client.delete("/api/users/bob/follow/").status_code == 200


def test_cannot_follow_self(auth_client, user) -> None:
    resp = auth_client.post("/api/users/alice/follow/")
    assert resp.status_code == 400
    assert resp.json() == {"non_field_errors": ["You cannot follow yourself."]}


def test_followers_and_following_lists(auth_client, user, make_user) -> None:
    fans = [make_user(username=f"fan{i}", display_name=f"Fan {i}") for i in range(5)]
    for fan in fans:
        FollowFactory(follower=fan, followee=user)
    idols = [make_user(username=f"idol{i}") for i in range(3)]
    for idol in idols:
        FollowFactory(follower=user, followee=idol)

    with CaptureQueriesContext(connection) as ctx:
        followers = auth_client.get("/api/users/alice/followers/").json()
    assert followers["count"] == 5
    assert [u["username"] for u in followers["results"]] == [f"fan{i}" for i in reversed(range(5))]
    assert followers["results"][0] == {"username": "fan4", "display_name": "Fan 4"}
    assert len(ctx.captured_queries) <= 5, [q["sql"] for q in ctx.captured_queries]

    following = auth_client.get("/api/users/alice/following/").json()
    assert [u["username"] for u in following["results"]] == ["idol2", "idol1", "idol0"]
    paged = auth_client.get("/api/users/alice/followers/?page_size=2").json()
    assert len(paged["results"]) == 2 and paged["next"]
