"""``manage.py seed_feed`` at tiny scale (COPY on PostgreSQL, bulk_create on SQLite)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from feedmood.models import Follow, Post
from recommender.models import MoodState, PostAffect

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_feed_builds_a_network_the_feed_can_rank(tmp_path, api_client):
    out = tmp_path / "tokens.json"
    call_command(
        "seed_feed",
        users=40,
        posts=600,
        follows_per_user=6,
        readings=2,
        bench_users=2,
        bench_follows=20,
        tokens_out=str(out),
        stdout=open(tmp_path / "log.txt", "w"),
    )
    info = json.loads(out.read_text())
    assert info["counts"]["posts"] == Post.objects.count() == 600
    assert PostAffect.objects.exists() and MoodState.objects.count() == info["counts"]["mood_states"]
    bench = info["bench_users"][0]
    assert Follow.objects.filter(follower_id=bench["user_id"]).count() == 20
    # New rows get fresh ids after the explicit-id COPY (sequences were reset).
    assert Post.objects.create(author_id=bench["user_id"], text="after seeding").pk > 600

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {bench['token']}")
    data = api_client.get("/api/feed/").json()
    assert data["mood"]["state"] == "known" and data["mood"]["label"] in ("sadness", "anger")
    assert data["policy"]["applied"] is True and data["results"]
    assert any(item["reason"].startswith(("moved up", "moved down")) for item in data["results"])


# --- Seeding never installs a model without a file -------------------------------------


def test_seed_feed_on_a_fresh_database_then_a_real_selfie_ends_done(tmp_path, client_for, settings) -> None:
    from django.contrib.auth import get_user_model

    from emotion.models import ModelVersion
    from emotion.testing import one_face_jpeg
    from tests.conftest import PROJECT_DIR

    settings.FEEDMOOD_MODEL_DIR = PROJECT_DIR / "ml" / "artifacts" / "ferplus"
    assert not ModelVersion.objects.exists()
    call_command("seed_feed", users=6, posts=20, follows_per_user=2, readings=1, bench_users=1, bench_follows=3,
                 stdout=open(tmp_path / "log.txt", "w"))  # fmt: skip

    user = get_user_model().objects.create_user("selfie-taker", password="pw-123456789")
    user.profile.emotion_consent = True
    user.profile.save()
    response = client_for(user).post("/api/selfies/?wait=10", {"image": _jpeg_upload(one_face_jpeg())},
                                     format="multipart")  # fmt: skip
    assert response.status_code in (200, 202), response.content
    analysis = client_for(user).get(f"/api/analyses/{response.json()['id']}/").json()
    assert analysis["status"] == "done", analysis
    assert analysis["face_count"] == 1
    assert (ModelVersion.objects.get(is_active=True).artifact_dir / "model_card.json").is_file()


def test_seed_feed_refuses_an_active_version_without_an_artifact(tmp_path) -> None:
    from django.core.management.base import CommandError

    from emotion.models import ModelVersion

    ModelVersion.objects.create(name="placeholder", labels=["neutral"], artifact_path="", is_active=True)
    with pytest.raises(CommandError, match="has no artifact"):
        call_command("seed_feed", users=4, posts=5, stdout=open(tmp_path / "log.txt", "w"))
    assert not Post.objects.exists()


def _jpeg_upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("selfie.jpg", data, content_type="image/jpeg")
