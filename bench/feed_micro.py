"""Micro-benchmarks of the feed's parts on a seeded database (run by ``feed_scale.py``).

Measures, for the bench users (each following ~500 accounts):

- candidate generation: PostgreSQL LATERAL (index-only per author) vs the
  portable ROW_NUMBER window query vs a Redis sorted set per user (what
  fan-out-on-write via Celery would maintain) + a primary-key lookup;
- the fan-out write amplification that the Redis design would cost;
- mood: one stored ``MoodState`` row vs recomputing from selfie readings;
- the pure ranking pipeline (base -> mood -> diversity) on real candidates.

Usage: ``DATABASE_URL=... REDIS_URL=... python bench/feed_micro.py TOKENS_JSON`` -> JSON on stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from emotion.selectors import active_model_version_id  # noqa: E402
from feedmood.models import Post  # noqa: E402
from recommender import conf, selectors  # noqa: E402
from recommender.models import PostAffect  # noqa: E402
from recommender.mood import MAX_AGE_HALF_LIVES, estimate_mood  # noqa: E402
from recommender.ranking import Candidate, Source, rank_feed  # noqa: E402


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 3),
        "n": len(samples),
    }


def redis_candidates(r: Any, key: str, user_id: int, limit: int) -> list[Candidate]:
    ids = [int(x) for x in r.zrevrange(key, 0, limit - 1)]
    sql = f"""
        SELECT p.id, p.author_id, EXTRACT(EPOCH FROM p.created_at)::float8, p.like_count,
               a.valence, a.arousal, a.confidence, a.dominant_emotion, a.face_count
        FROM {Post._meta.db_table} p
        LEFT JOIN {PostAffect._meta.db_table} a ON a.post_id = p.id AND a.source = 'faces'
        WHERE p.id = ANY(%s)"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        rows = cursor.fetchall()
    return [
        Candidate(pid, aid, ts, likes, Source.OWN if aid == user_id else Source.NETWORK)
        for pid, aid, ts, likes, *_ in rows
    ]


def main(tokens_path: str, repeat: int = 30) -> dict[str, Any]:
    import redis

    bench = json.loads(Path(tokens_path).read_text())["bench_users"]
    User = get_user_model()
    users = list(User.objects.filter(pk__in=[b["user_id"] for b in bench[:10]]))
    now = timezone.now()
    out: dict[str, Any] = {
        "config": {k: conf.get(k) for k in ("WINDOW_DAYS", "PER_AUTHOR", "MAX_CANDIDATES", "FEED_MAX_ITEMS")}
    }
    authors = {u.pk: [*selectors.followee_ids(user=u), u.pk] for u in users}
    i = 0

    def next_user() -> Any:
        nonlocal i
        i += 1
        return users[i % len(users)]

    def lateral() -> None:
        u = next_user()
        selectors.network_candidates(user_id=u.pk, author_ids=authors[u.pk], snapshot=now, strategy="lateral")

    def window() -> None:
        u = next_user()
        selectors.network_candidates(user_id=u.pk, author_ids=authors[u.pk], snapshot=now, strategy="window")

    lateral()
    out["candidates_lateral"] = timed(lateral, repeat)
    out["candidates_window"] = timed(window, max(5, repeat // 3))
    sample = selectors.network_candidates(user_id=users[0].pk, author_ids=authors[users[0].pk], snapshot=now)
    out["candidates_per_feed"] = len(sample)

    # Redis sorted sets: what fan-out on write would keep per user (newest 800 post ids of the network).
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    since = now - timedelta(days=conf.get("WINDOW_DAYS"))
    keys = {}
    t0 = time.perf_counter()
    for u in users:
        key = f"bench:feedzset:{u.pk}"
        rows = Post.objects.filter(author_id__in=authors[u.pk], created_at__gt=since).values_list("id", "created_at")
        r.delete(key)
        pipe = r.pipeline()
        for pid, created in rows:
            pipe.zadd(key, {pid: created.timestamp()})
        pipe.zremrangebyrank(key, 0, -801)
        pipe.execute()
        keys[u.pk] = key
    out["redis_zset_build_s_for_bench_users"] = round(time.perf_counter() - t0, 2)

    def redis_path() -> None:
        u = next_user()
        redis_candidates(r, keys[u.pk], u.pk, conf.get("MAX_CANDIDATES"))

    out["candidates_redis_zset"] = timed(redis_path, repeat)
    for key in keys.values():
        r.delete(key)
    with connection.cursor() as cursor:
        # Fan-out on write: each post is pushed to every follower's set.
        cursor.execute("""
            SELECT COALESCE(SUM(pc.n * fc.n), 0)::float8, (SELECT COUNT(*) FROM feedmood_post)::float8
            FROM (SELECT author_id, COUNT(*) AS n FROM feedmood_post GROUP BY author_id) pc
            JOIN (SELECT followee_id, COUNT(*) AS n FROM feedmood_follow GROUP BY followee_id) fc
              ON fc.followee_id = pc.author_id""")
        pushes, posts = cursor.fetchone()
        cursor.execute("SELECT COUNT(*) FROM feedmood_follow GROUP BY followee_id ORDER BY 1 DESC LIMIT 1")
        top_followers = cursor.fetchone()[0]
    out["fanout"] = {
        "zadd_per_post_avg": round(pushes / max(posts, 1), 1),
        "zadd_per_post_max": int(top_followers),
        "zadd_total_for_seed": int(pushes),
    }

    # Mood: stored state (1 row) vs recomputation from readings.
    def mood_state() -> None:
        selectors.mood_report(user=next_user(), now=now)

    def mood_readings() -> None:
        u = next_user()
        version = active_model_version_id()
        readings = selectors.selfie_readings(
            user=u, model_version_id=version, since=now - timedelta(hours=MAX_AGE_HALF_LIVES * 24)
        )
        estimate_mood(readings, now=now, half_life_hours=24)

    out["mood_from_state"] = timed(mood_state, repeat)
    out["mood_from_readings"] = timed(mood_readings, repeat)

    # Pure ranking stages on real candidates.
    cands = selectors.feed_candidates(user=users[0], snapshot=now)
    mood = selectors.mood_get(user=users[0], now=now)
    out["rank_pipeline"] = timed(
        lambda: rank_feed(cands, now=now, mood=mood, policy="repair", strength=0.5, limit=conf.get("FEED_MAX_ITEMS")),
        repeat,
    )
    out["rank_pipeline"]["candidates"] = len(cands)

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + selectors.network_candidates_sql(),
            {
                "authors": authors[users[0].pk],
                "snapshot": now,
                "since": since,
                "per_author": conf.get("PER_AUTHOR"),
                "limit": conf.get("MAX_CANDIDATES"),
            },
        )
        plan = cursor.fetchone()[0][0]
    out["lateral_explain"] = {"execution_ms": plan.get("Execution Time"), "planning_ms": plan.get("Planning Time")}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)))
