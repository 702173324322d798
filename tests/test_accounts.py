"""The account lifecycle through the API.

Tokens are hashed, expiring and new at every sign-in; logout and password
changes revoke them; password reset by mail; account deletion erases every
row and file of the person; the export is a zip with everything.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from emotion.fixtures import face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from feedmood.authentication import key_digest
from feedmood.models import ApiToken, ErasureRequest, Follow, Post, Profile, Reaction
from recommender.models import MoodState, PostAffect
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "Tr1cky-Pelican-92"


def sign_in(username: str = "alice", password: str = DEFAULT_PASSWORD) -> str:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def status_with(key: str, path: str = "/api/me/") -> int:
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Token {key}").status_code


# --- Tokens -----------------------------------------------------------------------------------------


def test_every_sign_in_gets_a_new_token_stored_only_as_a_hash(user) -> None:
    first, second = sign_in(), sign_in()
    assert first != second and status_with(first) == status_with(second) == 200
    stored = set(ApiToken.objects.filter(user=user).values_list("digest", flat=True))
    assert stored == {key_digest(first), key_digest(second)}
    assert not any(first in value or second in value for value in stored)


def test_an_expired_token_is_refused(user) -> None:
    key = sign_in()
    ApiToken.objects.filter(digest=key_digest(key)).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = APIClient().get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_the_old_token_fails_after_logout_and_other_devices_stay_signed_in(user) -> None:
    phone, laptop = sign_in(), sign_in()
    response = APIClient().post("/api/auth/logout/", HTTP_AUTHORIZATION=f"Token {phone}")
    assert response.status_code == 204
    assert status_with(phone) == 401
    assert status_with(laptop) == 200


def test_a_user_keeps_at_most_the_configured_number_of_tokens(user, settings) -> None:
    settings.FEEDMOOD_TOKENS_PER_USER = 2
    oldest, middle, newest = sign_in(), sign_in(), sign_in()
    assert [status_with(k) for k in (oldest, middle, newest)] == [401, 200, 200]


# --- Passwords --------------------------------------------------------------------------------------


def test_password_change_needs_the_current_password_and_revokes_every_token(user) -> None:
    phone, laptop = sign_in(), sign_in()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {phone}")
    wrong = client.post("/api/me/password/", {"old_password": "nope", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 400 and "old_password" in wrong.json()
    weak = client.post("/api/me/password/", {"old_password": DEFAULT_PASSWORD, "new_password": "short"})
    assert weak.status_code == 400 and "new_password" in weak.json()

    response = client.post("/api/me/password/", {"old_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD})
    assert response.status_code == 200
    assert status_with(phone) == status_with(laptop) == 401
    assert status_with(response.json()["token"]) == 200
    assert sign_in(password=NEW_PASSWORD)


def test_password_reset_by_mail(api_client) -> None:
    signup = api_client.post(
        "/api/auth/signup/", {"username": "bob", "password": NEW_PASSWORD, "email": "bob@example.org"}, format="json"
    )
    assert signup.status_code == 201
    old_key = signup.json()["token"]

    unknown = api_client.post("/api/auth/password-reset/", {"email": "nobody@example.org"}, format="json")
    known = api_client.post("/api/auth/password-reset/", {"email": "BOB@example.org"}, format="json")
    assert unknown.status_code == known.status_code == 202 and unknown.json() == known.json()  # no enumeration
    (message,) = mail.outbox
    assert message.to == ["bob@example.org"]
    uid = re.search(r'"uid": "([^"]+)"', message.body).group(1)
    token = re.search(r'"token": "([^"]+)"', message.body).group(1)

    body = {"uid": uid, "token": token, "new_password": "An0ther-Good-Passphrase"}
    assert api_client.post("/api/auth/password-reset/confirm/", body, format="json").status_code == 200
    assert status_with(old_key) == 401  # every token of the account is revoked
    assert sign_in("bob", "An0ther-Good-Passphrase")
    again = api_client.post(
        "/api/auth/password-reset/confirm/", {**body, "new_password": "Y3t-Another-Passphrase"}, format="json"
    )
    assert again.status_code == 400 and "token" in again.json()  # a reset token works once


def test_signup_rejects_a_malformed_or_taken_email(api_client, make_user) -> None:
    make_user(username="carol", email="carol@example.org")
    bad = api_client.post("/api/auth/signup/", {"username": "dan", "password": NEW_PASSWORD, "email": "not-an-email"})
    taken = api_client.post(
        "/api/auth/signup/", {"username": "dan", "password": NEW_PASSWORD, "email": "Carol@example.org"}
    )
    assert bad.status_code == taken.status_code == 400
    assert "email" in bad.json() and "email" in taken.json()
    assert not User.objects.filter(username="dan").exists()


# --- Deletion and export ----------------------------------------------------------------------------


@pytest.fixture
def busy_user(make_user, client_for, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks) -> Any:
    """Alice with a retained selfie, a face post (analysed), a follow, a like and a follower."""
    settings.FEEDMOOD_RETAIN_SELFIES = True
    alice = make_user(username="alice", emotion_consent=True)
    bob = make_user(username="bob")
    client = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/selfies/?wait=0", {"image": upload(face_jpeg)}, format="multipart").status_code == 202
        post = client.post("/api/posts/", {"text": "me", "image": upload(face_jpeg, "p.jpg")}, format="multipart")
        assert post.status_code == 201
        bob_post = Post.objects.create(author=bob, text="bob's")
        assert client.post(f"/api/posts/{bob_post.pk}/like/").status_code == 201
        assert client.post("/api/users/bob/follow/").status_code == 201
        Follow.objects.create(follower=bob, followee=alice)
    assert ImageAnalysis.objects.filter(owner=alice).count() == 2 and PostAffect.objects.exists()
    return alice


def test_delete_account_leaves_no_row_and_no_file_of_the_person(
    busy_user, client_for, django_capture_on_commit_callbacks
) -> None:
    alice = busy_user
    key = sign_in()
    files = [a.image.name for a in ImageAnalysis.objects.filter(owner=alice).exclude(image="")]
    files += [p.image.name for p in Post.objects.filter(author=alice)]
    assert len(files) == 2 and all(default_storage.exists(name) for name in files)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    wrong = client.delete("/api/me/", {"password": "nope"}, format="json")
    missing = client.delete("/api/me/", {}, format="json")
    assert (
        wrong.status_code == missing.status_code == 400 and "password" in wrong.json() and "password" in missing.json()
    )
    assert User.objects.filter(pk=alice.pk, is_active=True).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete("/api/me/", {"password": DEFAULT_PASSWORD}, format="json").status_code == 204
    assert not User.objects.filter(pk=alice.pk).exists()
    for model, field in [
        (Profile, "user_id"), (ApiToken, "user_id"), (Post, "author_id"), (Reaction, "user_id"),
        (Follow, "follower_id"), (Follow, "followee_id"), (ImageAnalysis, "owner_id"),
        (FaceReading, "analysis__owner_id"), (MoodState, "user_id"), (PostAffect, "post__author_id"),
    ]:  # fmt: skip
        assert not model.objects.filter(**{field: alice.pk}).exists(), model
    assert not any(default_storage.exists(name) for name in files)
    assert Post.objects.get(author__username="bob").like_count == 0  # her like is gone from the count too
    request = ErasureRequest.objects.get(user_id=alice.pk, scope=ErasureRequest.Scope.ACCOUNT)
    assert request.completed_at is not None
    assert status_with(key) == 401
    assert APIClient().post("/api/auth/token/", {"username": "alice", "password": DEFAULT_PASSWORD}).status_code == 400


def test_export_is_a_zip_with_everything(busy_user, client_for) -> None:
    response = client_for(busy_user).get("/api/me/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    profile = json.loads(archive.read("profile.json"))
    assert profile["username"] == "alice" and profile["emotion_consent"] is True
    (post,) = json.loads(archive.read("posts.json"))
    stored = Post.objects.get(pk=post["id"])
    with stored.image.open("rb") as handle:
        assert archive.read(post["image"]) == handle.read()
    assert json.loads(archive.read("follows.json")) == {"following": ["bob"], "followers": ["bob"]}
    (like,) = json.loads(archive.read("likes.json"))
    assert like["post_id"] == Post.objects.get(author__username="bob").pk
    emotion = json.loads(archive.read("emotion.json"))
    assert sorted(a["source"] for a in emotion["analyses"]) == ["post", "selfie"]
    assert all(a["readings"] for a in emotion["analyses"])
