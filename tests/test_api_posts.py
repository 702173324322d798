"""Posts, images, likes and pagination."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedmood.models import Post, Reaction
from tests.factories import PostFactory, ReactionFactory

pytestmark = pytest.mark.django_db


def _upload(data: bytes, name: str = "photo.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_create_text_post(auth_client, user) -> None:
    resp = auth_client.post("/api/posts/", {"text": "hello world"})
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["text"] == "hello world"
    assert body["author"] == {"username": "alice", "display_name": "Alice"}
    assert body["image_url"] is None and body["like_count"] == 0 and body["liked_by_me"] is False
    assert Post.objects.get(pk=body["id"]).author == user


def test_create_post_with_image_multipart(auth_client, image_bytes, settings) -> None:
    data = image_bytes("JPEG", size=(32, 24))
    resp = auth_client.post(
        "/api/posts/", {"text": "pic", "image": _upload(data, "../../etc/passwd.png")}, format="multipart"
    )
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert (body["image_width"], body["image_height"]) == (32, 24)
    assert body["image_url"].endswith(f"/api/posts/{body['id']}/image/")
    post = Post.objects.get(pk=body["id"])
    # Random name, real extension from the decoded format (JPEG), under posts/.
    assert re.fullmatch(r"posts/[0-9a-f]{32}\.jpg", post.image.name)
    stored = Path(settings.MEDIA_ROOT) / post.image.name
    assert stored.read_bytes() == data

    img = auth_client.get(body["image_url"])
    assert img.status_code == 200 and img["Content-Type"] == "image/jpeg"
    assert b"".join(img.streaming_content) == data


def test_image_only_post(auth_client, image_bytes) -> None:
    resp = auth_client.post("/api/posts/", {"image": _upload(image_bytes("WEBP"), "x.webp")}, format="multipart")
    assert resp.status_code == 201
    assert resp.json()["text"] == ""


def test_post_needs_text_or_image(auth_client) -> None:
    resp = auth_client.post("/api/posts/", {"text": "   "})
    assert resp.status_code == 400
    assert resp.json() == {"non_field_errors": ["A post needs text, an image, or both."]}


def test_post_text_too_long(auth_client) -> None:
    resp = auth_client.post("/api/posts/", {"text": "x" * 5001})
    assert resp.status_code == 400
    assert "5000" in resp.json()["text"][0]


def test_image_endpoint_404_without_image(auth_client, user) -> None:
    post = PostFactory(author=user)
    assert auth_client.get(f"/api/posts/{post.pk}/image/").status_code == 404


def test_list_newest_first_and_constant_queries(auth_client, user, make_user) -> None:
    authors = [make_user(username=f"writer{i}", display_name=f"W{i}") for i in range(5)]
    posts = [PostFactory(author=authors[i % 5]) for i in range(12)]
    for post in posts[:4]:
        ReactionFactory(user=user, post=post)
    with CaptureQueriesContext(connection) as ctx:
        resp = auth_client.get("/api/posts/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["count"] == 12
    assert [p["id"] for p in body["results"]] == [p.pk for p in reversed(posts)]
    assert sum(p["liked_by_me"] for p in body["results"]) == 4
    assert all(p["author"]["display_name"].startswith("W") for p in body["results"])
    # auth token + count + page: independent of the number of posts/authors.
    assert len(ctx.captured_queries) <= 4, [q["sql"] for q in ctx.captured_queries]


def test_pagination(auth_client, user) -> None:
    PostFactory.create_batch(25, author=user)
    first = auth_client.get("/api/posts/").json()
    assert len(first["results"]) == 20 and first["next"] and first["previous"] is None
    second = auth_client.get(first["next"]).json()
    assert len(second["results"]) == 5 and second["next"] is None
    assert len(auth_client.get("/api/posts/?page_size=500").json()["results"]) == 25  # capped at 100
    assert len(auth_client.get("/api/posts/?page_size=3").json()["results"]) == 3
    bad = auth_client.get("/api/posts/?page=99")
    assert bad.status_code == 404 and bad.json()["detail"]


def test_page_size_cap(auth_client, user) -> None:
    Post.objects.bulk_create([Post(author=user, text=str(i)) for i in range(105)])
    assert len(auth_client.get("/api/posts/?page_size=1000").json()["results"]) == 100


def test_list_filters(auth_client, user, make_user) -> None:
    bob, carol = make_user(username="bob"), make_user(username="carol")
    PostFactory(author=bob, text="by bob")
    PostFactory(author=carol, text="by carol")
    by_bob = auth_client.get("/api/posts/?author=bob").json()["results"]
    assert [p["text"] for p in by_bob] == ["by bob"]
    auth_client.post("/api/users/carol/follow/")
    following = auth_client.get("/api/posts/?following=true").json()["results"]
    assert [p["text"] for p in following] == ["by carol"]
    assert auth_client.get("/api/posts/?author=nobody").status_code == 404
    assert auth_client.get("/api/posts/?following=perhaps").status_code == 400


def test_detail_and_delete_by_author(auth_client, user, settings, image_bytes) -> None:
    created = auth_client.post(
        "/api/posts/", {"text": "bye", "image": _upload(image_bytes())}, format="multipart"
    ).json()
    post = Post.objects.get(pk=created["id"])
    path = Path(settings.MEDIA_ROOT) / post.image.name
    assert path.exists()
    assert auth_client.get(f"/api/posts/{post.pk}/").json()["text"] == "bye"
    resp = auth_client.delete(f"/api/posts/{post.pk}/")
    assert resp.status_code == 204
    assert not Post.objects.filter(pk=post.pk).exists()
    assert auth_client.get(f"/api/posts/{post.pk}/").status_code == 404


def test_delete_removes_image_after_commit(
    auth_client, user, settings, image_bytes, django_capture_on_commit_callbacks
) -> None:
    created = auth_client.post("/api/posts/", {"image": _upload(image_bytes())}, format="multipart").json()
    path = Path(settings.MEDIA_ROOT) / Post.objects.get(pk=created["id"]).image.name
    with django_capture_on_commit_callbacks(execute=True):
        auth_client.delete(f"/api/posts/{created['id']}/")
    assert not path.exists()


def test_delete_by_other_user_is_403(client_for, user, make_user) -> None:
    post = PostFactory(author=user)
    resp = client_for(make_user(username="mallory")).delete(f"/api/posts/{post.pk}/")
    assert resp.status_code == 403
    assert resp.json() == {"detail": "You can only delete your own posts."}
    assert Post.objects.filter(pk=post.pk).exists()


def test_missing_post_404(auth_client) -> None:
    for method in ("get", "delete"):
        resp = getattr(auth_client, method)("/api/posts/999999/")
        assert resp.status_code == 404 and resp.json()["detail"]
    assert auth_client.post("/api/posts/999999/like/").status_code == 404


def test_like_is_idempotent(auth_client, user, make_user, client_for) -> None:
    post = PostFactory(author=make_user(username="bob"))
    first = auth_client.post(f"/api/posts/{post.pk}/like/")
    assert first.status_code == 201 and first.json() == {"liked": True, "like_count": 1}
    again = auth_client.post(f"/api/posts/{post.pk}/like/")
    assert again.status_code == 200 and again.json() == {"liked": True, "like_count": 1}
    client_for(make_user(username="carol")).post(f"/api/posts/{post.pk}/like/")
    assert auth_client.get(f"/api/posts/{post.pk}/").json()["like_count"] == 2
    assert auth_client.get(f"/api/posts/{post.pk}/").json()["liked_by_me"] is True

    gone = auth_client.delete(f"/api/posts/{post.pk}/like/")
    assert gone.status_code == 200 and gone.json() == {"liked": False, "like_count": 1}
    gone_again = auth_client.delete(f"/api/posts/{post.pk}/like/")
    assert gone_again.status_code == 200 and gone_again.json() == {"liked": False, "like_count": 1}
    assert Reaction.objects.filter(post=post).count() == 1


def test_wrong_method_is_405(auth_client, user) -> None:
    post = PostFactory(author=user)
    resp = auth_client.put(f"/api/posts/{post.pk}/", {"text": "x"})
    assert resp.status_code == 405 and resp.json()["detail"]
