"""Feed cursors and caches keep no one's mood within reach.

Cursors are an opaque random snapshot id plus an offset (the mood stays
server-side), expire, and stop giving a mood once consent is withdrawn; cache
key names carry no mood; erasure drops the person's feed keys and the shared
caches ranked from their affect at once. These run against the real Redis.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.core.cache import cache

from feedmood.models import Follow
from recommender import selectors, services
from tests import recommender_factories as rf

pytestmark = pytest.mark.django_db

FEED, SETTINGS = "/api/feed/", "/api/me/mood-settings/"


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[Any]:
    """The real Redis cache under a key prefix of this test's own (removed afterwards)."""
    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "feedmood.cache.FeedMoodRedisCache",
                                   "LOCATION": django_settings.REDIS_URL, "KEY_PREFIX": prefix}}  # fmt: skip
    yield cache
    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def _keys() -> list[str]:
    client = cache._cache.get_client()
    return [k.decode() for k in client.scan_iter(match=cache.make_key("*"))]


@pytest.fixture
def world(make_user, redis_cache):
    """A sad, consenting viewer following an author with a happy face post, and a stranger's
    popular post."""
    version = rf.model_version()
    viewer = make_user(username="viewer", emotion_consent=True)
    author = make_user(username="author", emotion_consent=True)
    stranger = make_user(username="stranger")
    Follow.objects.create(follower=viewer, followee=author)
    for i in range(6):
        rf.post_with_faces(author, version, [rf.HAPPY], hours_ago=0.5 + i, text=f"happy {i}")
    rf.post_with_faces(stranger, version, [rf.SAD], hours_ago=1, likes=20, text="popular")
    rf.selfie(viewer, version, rf.SAD, hours_ago=0.1)
    services.mood_recompute(user=viewer)
    return {"viewer": viewer, "author": author, "stranger": stranger}


def _payload(token: str) -> str:
    """What anyone holding a signed token can read (signing is not encryption)."""
    body = token.split(":")[0]
    raw = signing.b64_decode(body.lstrip(".").encode())
    return (zlib.decompress(raw) if body.startswith(".") else raw).decode()


def _next_cursor(data: dict[str, Any]) -> str:
    return data["next"].split("cursor=")[1]


def test_cursor_is_an_opaque_snapshot_id_and_key_names_carry_no_mood(world, client_for):
    data = client_for(world["viewer"]).get(FEED, {"page_size": 2}).json()
    mood = data["mood"]
    assert mood["label"] == "sadness"
    payload = _payload(_next_cursor(data))
    for secret in ("sadness", f"{mood['valence']:.3f}", f"{abs(mood['valence']):.3f}", "repair"):
        assert secret not in payload
        assert not [key for key in _keys() if secret in key]
    snapshot_id, offset = signing.loads(_next_cursor(data), salt="recommender.feed.cursor.v2")
    assert offset == 2 and len(snapshot_id) >= 20


def test_an_old_cursor_after_consent_withdrawal_gives_no_mood(world, client_for, django_capture_on_commit_callbacks):
    client = client_for(world["viewer"])
    cursor = _next_cursor(client.get(FEED, {"page_size": 2}).json())
    assert client.get(FEED, {"cursor": cursor}).json()["mood"]["label"] == "sadness"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.patch(SETTINGS, {"emotion_consent": False}, format="json").status_code == 200
    response = client.get(FEED, {"cursor": cursor})
    assert response.status_code == 400
    assert response.json() == {"cursor": ["This feed cursor has expired; load the feed again from the first page."]}
    assert client.get(FEED).json()["mood"]["state"] == "unknown"


def test_consent_is_rechecked_on_every_page_even_if_the_snapshot_survived(world, client_for):
    """Consent switched off without the erasure events (e.g. before they ran): the cursor still gives no mood."""
    client = client_for(world["viewer"])
    cursor = _next_cursor(client.get(FEED, {"page_size": 2}).json())
    type(world["viewer"].profile).objects.filter(user=world["viewer"]).update(emotion_consent=False)
    response = client.get(FEED, {"cursor": cursor})
    assert response.status_code == 400 and "mood" not in response.json()


def test_a_cursor_expires_after_its_max_age(world, client_for, settings, monkeypatch):
    import time

    settings.RECOMMENDER_CURSOR_MAX_AGE = 60
    client = client_for(world["viewer"])
    cursor = _next_cursor(client.get(FEED, {"page_size": 2}).json())
    assert client.get(FEED, {"cursor": cursor}).status_code == 200
    later = time.time() + 61
    monkeypatch.setattr(signing.time, "time", lambda: later)
    assert client.get(FEED, {"cursor": cursor}).status_code == 400


def test_withdrawal_drops_own_feed_keys_and_shared_caches_holding_the_affect(
    world, client_for, django_capture_on_commit_callbacks
):
    namespace = selectors.cache_namespace()
    client_for(world["viewer"]).get(FEED, {"page_size": 2})
    client_for(world["author"]).get(FEED, {"page_size": 2})
    mine = f":{namespace}:feed:{world['author'].pk}:"
    theirs = f":{namespace}:feed:{world['viewer'].pk}:"
    before = _keys()
    assert any(mine in k for k in before) and any(theirs in k for k in before)
    assert any(":popular:" in k for k in before) and any(":candidates:" in k for k in before)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(world["author"]).patch(SETTINGS, {"emotion_consent": False}, format="json")
    after = _keys()
    assert not [k for k in after if mine in k]  # the author's own snapshots, cursors, pages
    assert not [k for k in after if f"{theirs}rows:" in k or f"{theirs}page:" in k]  # ranked with their affect
    assert not [k for k in after if ":popular:" in k or ":candidates:" in k]
    assert any(f"{theirs}snapshot:" in k for k in after)  # the viewer's cursors keep working


def test_account_deletion_drops_the_persons_feed_keys(world, client_for, django_capture_on_commit_callbacks):
    client_for(world["viewer"]).get(FEED, {"page_size": 2})
    prefix = f":{selectors.cache_namespace()}:feed:{world['viewer'].pk}:"
    assert any(prefix in k for k in _keys())
    with django_capture_on_commit_callbacks(execute=True):
        world["viewer"].delete()
    assert not [k for k in _keys() if prefix in k]
