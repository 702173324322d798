"""Authorization matrix: every API endpoint x {anonymous, other, owner, staff}.

The row list is checked against the URLconf: a new endpoint without a row
fails ``test_matrix_covers_every_endpoint``.  "owner" owns the post/analysis
under test (and is the subject of ``/users/<owner>/``); "other" and "staff"
are unrelated users (staff = ``is_staff``).  ``/me/...`` endpoints always act
on the caller, so the content tests below check that nobody sees the owner's
emotion data there -- staff included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from emotion.fixtures import face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import ImageAnalysis

ROLES = ("anon", "other", "owner", "staff")


@dataclass(frozen=True)
class Row:
    name: str  # URL name (namespace:name)
    method: str
    path: str  # {post}, {analysis}, {owner} are filled in
    expected: dict[str, int | tuple[int, ...]]
    body: Any = None
    fmt: str = "json"


def same(status: int, anon: int = 401) -> dict[str, int]:
    return {"anon": anon, "other": status, "owner": status, "staff": status}


ROWS = [
    Row("feedmood:health", "get", "/api/health/", same(200, anon=200)),
    Row("feedmood:signup", "post", "/api/auth/signup/", same(201, anon=201), body="signup"),
    Row(
        "feedmood:token",
        "post",
        "/api/auth/token/",
        same(200, anon=200),
        body={"username": "owner", "password": "pw-Owner-123456"},
    ),
    Row("feedmood:me", "get", "/api/me/", same(200)),
    Row("feedmood:me", "patch", "/api/me/", same(200), body={"display_name": "X"}),
    # Deleting re-authenticates the CALLER: the owner's password deletes only the owner's own account.
    Row(
        "feedmood:me",
        "delete",
        "/api/me/",
        {"anon": 401, "other": 400, "owner": 204, "staff": 400},
        body={"password": "pw-Owner-123456"},
    ),
    Row("feedmood:logout", "post", "/api/auth/logout/", same(204)),
    Row(
        "feedmood:password-change",
        "post",
        "/api/me/password/",
        {"anon": 401, "other": 400, "owner": 200, "staff": 400},
        body={"old_password": "pw-Owner-123456", "new_password": "A-very-good-password-42"},
    ),
    Row(
        "feedmood:password-reset",
        "post",
        "/api/auth/password-reset/",
        same(202, anon=202),
        body={"email": "owner@example.org"},
    ),
    Row(
        "feedmood:password-reset-confirm",
        "post",
        "/api/auth/password-reset/confirm/",
        same(400, anon=400),
        body={"uid": "MQ", "token": "forged", "new_password": "A-very-good-password-42"},
    ),
    Row("feedmood:account-export", "get", "/api/me/export/", same(200)),
    Row("feedmood:user-detail", "get", "/api/users/{owner}/", same(200)),
    Row("feedmood:user-detail", "patch", "/api/users/{owner}/", same(405), body={"display_name": "pwned"}),
    Row(
        "feedmood:user-follow",
        "post",
        "/api/users/{owner}/follow/",
        {"anon": 401, "other": 201, "owner": 400, "staff": 201},
    ),
    Row("feedmood:user-follow", "delete", "/api/users/{owner}/follow/", same(200)),
    Row("feedmood:user-followers", "get", "/api/users/{owner}/followers/", same(200)),
    Row("feedmood:user-following", "get", "/api/users/{owner}/following/", same(200)),
    Row("feedmood:post-list", "get", "/api/posts/", same(200)),
    Row("feedmood:post-list", "post", "/api/posts/", same(201), body={"text": "hi"}),
    Row("feedmood:post-detail", "get", "/api/posts/{post}/", same(200)),
    Row(
        "feedmood:post-detail", "delete", "/api/posts/{post}/", {"anon": 401, "other": 403, "owner": 204, "staff": 403}
    ),
    Row(
        "feedmood:post-detail",
        "patch",
        "/api/posts/{post}/",
        {"anon": 401, "other": 405, "owner": 405, "staff": 405},
        body={"text": "x"},
    ),
    Row("feedmood:post-image", "get", "/api/posts/{post}/image/", same(200)),
    Row("feedmood:post-like", "post", "/api/posts/{post}/like/", same(201)),
    Row("feedmood:post-like", "delete", "/api/posts/{post}/like/", same(200)),
    # Only the owner consented: others get 403 (consent required).
    Row(
        "emotion:selfie-create",
        "post",
        "/api/selfies/",
        {"anon": 401, "other": 403, "owner": 202, "staff": 403},
        body="selfie",
        fmt="multipart",
    ),
    Row(
        "emotion:analysis-detail",
        "get",
        "/api/analyses/{analysis}/",
        {"anon": 401, "other": 404, "owner": 200, "staff": 404},
    ),
    Row("emotion:my-emotions", "get", "/api/me/emotions/", same(200)),
    Row("emotion:my-emotions", "delete", "/api/me/emotions/", same((200, 204))),
    Row("emotion:my-emotions-export", "get", "/api/me/emotions/export/", same(200)),
    Row("recommender:feed", "get", "/api/feed/", same(200)),
    Row("recommender:my-mood", "get", "/api/me/mood/", same(200)),
    Row("recommender:my-mood-settings", "get", "/api/me/mood-settings/", same(200)),
    Row("recommender:my-mood-settings", "patch", "/api/me/mood-settings/", same(200), body={"mood_strength": 0.3}),
    Row("schema", "get", "/api/schema/", same(200, anon=200)),
    Row("swagger-ui", "get", "/api/docs/", same(200, anon=200)),
    Row("redoc", "get", "/api/redoc/", same(200, anon=200)),
]


def _api_route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = p.namespace or namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns if p.namespace else namespace)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith("api/") and p.name:
                    names.add(f"{namespace}:{p.name}" if namespace else p.name)

    walk(get_resolver().url_patterns, "", None)
    return names


def test_matrix_covers_every_endpoint() -> None:
    names = _api_route_names()
    assert names, "no API routes found"
    missing = names - {row.name for row in ROWS}
    assert not missing, f"endpoints without an authorization row: {sorted(missing)}"
    stale = {row.name for row in ROWS} - names
    assert not stale, f"rows for endpoints that no longer exist: {sorted(stale)}"


@pytest.fixture
def world(make_user, client_for, fer_model, face_jpeg, django_capture_on_commit_callbacks) -> dict[str, Any]:
    owner = make_user(username="owner", password="pw-Owner-123456", emotion_consent=True)
    other = make_user(username="other")
    staff = make_user(username="staff", is_staff=True, is_superuser=True)
    owner_client = client_for(owner)
    # A post with a face, analysed (its readings and post affect exist): what must not leak is really there.
    image = SimpleUploadedFile("p.jpg", face_jpeg, content_type="image/jpeg")
    with django_capture_on_commit_callbacks(execute=True):
        post = owner_client.post("/api/posts/", {"text": "mine", "image": image}, format="multipart").json()
    assert ImageAnalysis.objects.get(post_id=post["id"]).face_count == 1
    analysis = ImageAnalysis.objects.create(
        owner=owner, source=ImageAnalysis.Source.SELFIE, status=ImageAnalysis.Status.NO_FACE
    )
    return {
        "users": {"owner": owner, "other": other, "staff": staff},
        "clients": {"anon": APIClient(), "owner": owner_client, "other": client_for(other), "staff": client_for(staff)},
        "post": post["id"],
        "analysis": analysis.pk,
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method}-{r.path}")
def test_matrix(world: dict[str, Any], row: Row, role: str, face_jpeg: bytes) -> None:
    client = world["clients"][role]
    path = row.path.format(post=world["post"], analysis=world["analysis"], owner="owner")
    body = row.body
    if body == "signup":
        body = {"username": f"new-{role}", "password": "A-very-good-password-42"}
    elif body == "selfie":
        body = {"image": SimpleUploadedFile("s.jpg", face_jpeg, content_type="image/jpeg")}
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"data": body, "format": row.fmt}
    response = getattr(client, row.method)(path, **kwargs)
    expected = row.expected[role]
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if row.name == "emotion:selfie-create" and role == "owner":
        allowed = (200, 201, 202)  # eager tasks may finish before the response
    assert response.status_code in allowed, (role, row.method, path, response.status_code, response.content[:300])


# --- Admin and dashboard (session login; staff only) ------------------------------------------------

#: (The pages of readings, moods and post affect are gone from the admin: ``test_admin_matrix`` expects 404.)
ADMIN_PATHS = ["/admin/", "/admin/dashboard/", "/admin/emotion/imageanalysis/"]


@pytest.mark.parametrize("path", ADMIN_PATHS)
@pytest.mark.parametrize("role", ROLES)
def test_admin_and_dashboard_are_staff_only(world: dict[str, Any], role: str, path: str) -> None:
    client = Client()
    if role != "anon":
        client.force_login(world["users"][role])
    response = client.get(path)
    if role == "staff":
        assert response.status_code == 200, (path, response.status_code)
    else:
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (
            role,
            path,
            response.status_code,
        )


def test_face_post_readings_are_not_exposed_through_the_post(world: dict[str, Any]) -> None:
    for role in ("other", "staff", "owner"):
        client = world["clients"][role]
        detail = client.get(f"/api/posts/{world['post']}/").content.decode()
        listing = client.get("/api/posts/").content.decode()
        for leak in ("dominant_emotion", "probabilities", "valence", "arousal", "face_count"):
            assert f'"{leak}"' not in detail and f'"{leak}"' not in listing, (role, leak)


# --- What each role sees ---------------------------------------------------------------------


def test_emotion_data_is_visible_to_its_owner_only(
    world: dict[str, Any], face_jpeg: bytes, django_capture_on_commit_callbacks
) -> None:
    clients = world["clients"]
    with django_capture_on_commit_callbacks(execute=True):
        selfie = clients["owner"].post(
            "/api/selfies/?wait=5",
            {"image": SimpleUploadedFile("s.jpg", face_jpeg, content_type="image/jpeg")},
            format="multipart",
        )
    assert selfie.status_code in (200, 201, 202), selfie.content
    analysis_id = selfie.json()["id"]
    assert ImageAnalysis.objects.get(pk=analysis_id).status == "done"
    mine = clients["owner"].get("/api/me/emotions/").json()
    assert mine["count"] >= 1
    owner_export = clients["owner"].get("/api/me/emotions/export/")
    assert owner_export.status_code == 200 and str(analysis_id) in owner_export.content.decode()

    for role in ("other", "staff"):
        c = clients[role]
        assert c.get(f"/api/analyses/{analysis_id}/").status_code == 404
        assert c.get("/api/me/emotions/").json()["count"] == 0
        export = c.get("/api/me/emotions/export/").content.decode()
        assert f'"id": {analysis_id}' not in export and f'"id":{analysis_id}' not in export
        mood = c.get("/api/me/mood/").json()
        assert mood["state"] == "unknown" and mood["reading_count"] == 0 and mood["valence"] is None, mood
        public = c.get("/api/users/owner/").json()
        assert not {"emotion_consent", "mood_policy", "mood_strength", "mood_half_life_hours", "mood"} & set(public)
        feed = c.get("/api/feed/").json()
        feed_mood = feed.get("mood") or (feed.get("policy") or {}).get("mood")
        if isinstance(feed_mood, dict):
            assert feed_mood.get("valence") is None, feed_mood  # the caller's (empty) mood, never the owner's
        for leak in ("dominant_emotion", "probabilities", "emotion_consent"):
            assert f'"{leak}"' not in json.dumps(feed)
    owner_mood = clients["owner"].get("/api/me/mood/").json()
    assert owner_mood["reading_count"] >= 1
    # Query-param tricks do not widen the owner filter.
    for trick in ("?owner=owner", f"?user={world['users']['owner'].pk}", "?owner_id=1&all=true"):
        assert clients["other"].get("/api/me/emotions/" + trick).json().get("count", 0) == 0


def test_the_account_export_holds_the_callers_data_only(world: dict[str, Any]) -> None:
    import io
    import zipfile

    for role in ("other", "staff"):
        response = world["clients"][role].get("/api/me/export/")
        archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
        assert json.loads(archive.read("profile.json"))["username"] == role
        assert json.loads(archive.read("posts.json")) == [] and not any(
            n.startswith("images/") for n in archive.namelist()
        )


def test_other_users_cannot_erase_owner_readings(world: dict[str, Any]) -> None:
    before = ImageAnalysis.objects.filter(owner=world["users"]["owner"]).count()
    for role in ("other", "staff"):
        world["clients"][role].delete("/api/me/emotions/")
    assert ImageAnalysis.objects.filter(owner=world["users"]["owner"]).count() == before


# --- Throttling -------------------------------------------------------------------------------


@pytest.fixture
def tight_rates(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "5/min", "anon": "3/min", "uploads": "2/min"},
    }


def test_anonymous_throttle(db, tight_rates) -> None:
    client = APIClient()
    codes = [
        client.post("/api/auth/token/", {"username": "x", "password": "y"}, format="json").status_code for _ in range(5)
    ]
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429], codes


def test_user_throttle(make_user, client_for, tight_rates) -> None:
    client = client_for(make_user(username="u1"))
    codes = [client.get("/api/me/").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429], codes
    other = client_for(make_user(username="u2"))
    assert other.get("/api/me/").status_code == 200  # per user, not global


def test_upload_throttle_counts_writes_only(make_user, client_for, settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100/min", "anon": "100/min", "uploads": "2/min"},
    }
    client = client_for(make_user(username="u3"))
    codes = [client.post("/api/posts/", {"text": f"p{i}"}, format="json").status_code for i in range(3)]
    assert codes == [201, 201, 429], codes
    assert client.get("/api/posts/").status_code == 200
    response = client.post("/api/posts/", {"text": "again"}, format="json")
    assert response.status_code == 429 and "detail" in response.json()


# --- Admin pages and the dashboard ---------------------------------------------------------

ADMIN_ROLES = ("anon", "user", "staff", "staff_with_dashboard_permission", "superuser")
#: (path, {role: status}): 302 is the redirect to the admin login page.
ADMIN_ROWS = [
    (
        "/admin/dashboard/",
        {"anon": 302, "user": 302, "staff": 403, "staff_with_dashboard_permission": 200, "superuser": 200},
    ),
    ("/admin/", {"anon": 302, "user": 302, "staff": 200, "staff_with_dashboard_permission": 200, "superuser": 200}),
    # Per-person emotion data has no admin page, for anyone.
    (
        "/admin/emotion/facereading/",
        {"anon": 302, "user": 302, "staff": 404, "staff_with_dashboard_permission": 404, "superuser": 404},
    ),
    (
        "/admin/recommender/moodstate/",
        {"anon": 302, "user": 302, "staff": 404, "staff_with_dashboard_permission": 404, "superuser": 404},
    ),
    (
        "/admin/recommender/postaffect/",
        {"anon": 302, "user": 302, "staff": 404, "staff_with_dashboard_permission": 404, "superuser": 404},
    ),
]


@pytest.mark.parametrize("role", ADMIN_ROLES)
@pytest.mark.parametrize("path,expected", ADMIN_ROWS, ids=[r[0] for r in ADMIN_ROWS])
def test_admin_matrix(make_user, role: str, path: str, expected: dict[str, int]) -> None:
    from django.contrib.auth.models import Permission
    from django.test import Client

    client = Client()
    if role != "anon":
        user = make_user(username=role, is_staff=role != "user", is_superuser=role == "superuser")
        if role == "staff_with_dashboard_permission":
            user.user_permissions.add(Permission.objects.get(codename="view_emotion_dashboard"))
        client.force_login(user)
    assert client.get(path).status_code == expected[role]
