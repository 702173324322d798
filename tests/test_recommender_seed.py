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
    call_command("seed_feed", users=40, posts=600, follows_per_user=6, readings=2, bench_users=2,
                 bench_follows=20, tokens_out=str(out), stdout=open(tmp_path / "log.txt", "w"))
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
