"""What one feed request costs in Redis round trips and SQL queries, on the real Redis.

A fresh ranking reads the user's latest snapshots, the cached candidates with their stamps and the popular list,
and writes the snapshot's parameters, ranked rows, latest entry and built page in one pipeline; a later page
reads its snapshot and built page in one round trip; the consent re-check of a cursor uses the profile that token
authentication read with the request.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from emotion.models import ModelVersion
from feedmood.cache import set_each
from recommender import services
from tests import recommender_factories as rf
from tests.test_feed_cursor_privacy import FEED, redis_cache, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts commands and pipelines sent to Redis (one each: a round trip)."""
    counter = {"n": 0}
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        counter["n"] += 1
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return counter


def test_set_each_writes_every_key_with_its_own_timeout_in_one_round_trip(redis_cache, round_trips):
    cache.set("gone", 1, 60)
    round_trips["n"] = 0
    set_each(cache, {"a": ({"x": 1}, 30), "b": ([1, 2], 900), "gone": (None, 0)})
    assert round_trips["n"] == 1
    assert cache.get("a") == {"x": 1} and cache.get("b") == [1, 2] and cache.get("gone", "missing") == "missing"
    client = cache._cache.get_client()
    assert 25 <= client.ttl(cache.make_key("a")) <= 30 and 890 <= client.ttl(cache.make_key("b")) <= 900


def test_set_each_sets_each_key_on_other_backends():
    set_each(cache, {"a": (1, 30), "b": (2, 0)})
    assert cache.get("a") == 1 and cache.get("b") is None


def _get(client: Any, params: dict[str, Any], counter: dict[str, int]) -> tuple[dict[str, Any], int, int]:
    counter["n"] = 0
    with CaptureQueriesContext(connection) as queries:
        response = client.get(FEED, params)
    assert response.status_code == 200, response.content
    return response.json(), counter["n"], len(queries)


def test_feed_requests_round_trips_and_queries(world, client_for, round_trips):
    viewer = world["viewer"]
    version = ModelVersion.objects.get(is_active=True)
    for hours_ago in (0.2, 0.3):  # evidence above one reading's worth: the confidence stops drifting between requests
        rf.selfie(viewer, version, rf.SAD, hours_ago=hours_ago)
    services.mood_recompute(user=viewer)
    client = client_for(viewer)
    _get(client, {"page_size": 2}, round_trips)  # cold caches: candidates and popular list read and cached
    # A fresh ranking: throttle (get, set), latest snapshots, candidates + stamps, popular list, one write pipeline.
    _, trips, _ = _get(client, {"page_size": 2, "refresh": "true"}, round_trips)
    assert trips == 6
    # Page 1 again: throttle, latest snapshots, the built page.
    data, trips, queries = _get(client, {"page_size": 2}, round_trips)
    assert data["snapshot_reused"] and trips == 4 and queries == 1
    cursor = data["next"].split("cursor=")[1]
    _get(client, {"cursor": cursor}, round_trips)  # builds page 2
    # Page 2 again: throttle, the snapshot with its built page; consent from the authentication's row (no query).
    data, trips, queries = _get(client, {"cursor": cursor}, round_trips)
    assert data["mood"]["label"] == "sadness"
    assert trips == 3 and queries == 1
