"""Cached network candidates topped up with recent posts give the same candidates as a full read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from feedmood.models import Follow, Post
from recommender import candidates, selectors, services
from tests import recommender_factories as rf

pytestmark = pytest.mark.django_db


def row(pid, author, ts, likes=0):
    return (pid, author, float(ts), likes, None, None, None)


# --- merge_rows (pure) --------------------------------------------------------------------------


def merge(cached, recent, **kw):
    args = {"recent_start_ts": 100.0, "window_start_ts": 0.0, "snapshot_ts": 1000.0, "per_author": 2, "limit": 10}
    return candidates.merge_rows(cached, recent, **(args | kw))


def test_merge_puts_recent_rows_first_and_caps_each_author():
    cached = [row(3, 1, 90), row(2, 1, 80), row(1, 2, 70)]
    recent = [row(5, 1, 150), row(4, 3, 120)]
    assert [r[0] for r in merge(cached, recent)] == [5, 4, 3, 1]  # author 1 keeps its 2 newest


def test_merge_trusts_the_recent_read_for_its_window():
    cached = [row(9, 1, 150, likes=0), row(8, 1, 140), row(1, 2, 50)]
    recent = [row(9, 1, 150, likes=7)]  # 8 was deleted, 9 got likes
    merged = merge(cached, recent)
    assert [r[0] for r in merged] == [9, 1] and merged[0][3] == 7


def test_merge_applies_window_snapshot_and_limit():
    cached = [row(i, i, 100 - i) for i in range(1, 8)]
    assert [r[0] for r in merge(cached, [], window_start_ts=95.0)] == [1, 2, 3, 4]
    assert [r[0] for r in merge(cached, [], snapshot_ts=97.0)] == [3, 4, 5, 6, 7]
    assert len(merge(cached, [], limit=3)) == 3


def test_merge_orders_ties_by_id_descending():
    assert [r[0] for r in merge([row(1, 1, 50), row(3, 2, 50), row(2, 3, 50)], [])] == [3, 2, 1]


# --- against the database ------------------------------------------------------------------------


@pytest.fixture
def network(make_user):
    viewer = make_user(username="viewer")
    authors = [make_user(username=f"a{i}") for i in range(5)]
    for a in authors:
        Follow.objects.create(follower=viewer, followee=a)
    for i in range(20):
        rf.post(authors[i % 5], hours_ago=2 + i, likes=i, text=f"old {i}")
    rf.post(viewer, hours_ago=5, text="mine")
    return viewer, authors


def ids(cands):
    return [(c.post_id, c.source.value) for c in cands]


def post_at(author, when, **kw):
    p = rf.post(author, hours_ago=0, **kw)
    Post.objects.filter(pk=p.pk).update(created_at=when)
    return p


def test_cached_candidates_equal_a_full_read_after_new_posts(network, settings):
    settings.RECOMMENDER_PER_AUTHOR = 3
    settings.RECOMMENDER_MAX_CANDIDATES = 12
    viewer, authors = network
    t0 = timezone.now()
    first = candidates.feed_candidates(user=viewer, snapshot=t0)
    assert ids(first) == ids(selectors.feed_candidates(user=viewer, snapshot=t0))
    # New posts after the cached read: one author now has more than PER_AUTHOR recent posts.
    for k in range(4):
        post_at(authors[0], t0 + timedelta(seconds=10 + k), text=f"new {k}")
    post_at(viewer, t0 + timedelta(seconds=20), text="my new one")
    t1 = t0 + timedelta(seconds=30)
    with CountQueries() as queries:
        cached = candidates.feed_candidates(user=viewer, snapshot=t1)
    assert ids(cached) == ids(selectors.feed_candidates(user=viewer, snapshot=t1))
    # Served by one range read of recent posts: no per-author probes, no separate follow list.
    assert not any("ROW_NUMBER" in q.upper() or "UNNEST" in q.upper() for q in queries.sql)
    assert all("EXISTS" in q.upper() for q in queries.sql if "feedmood_follow" in q)


def test_the_cache_is_not_used_past_its_ttl_or_for_older_snapshots(network, settings):
    settings.RECOMMENDER_CANDIDATES_TTL = 60
    viewer, authors = network
    t0 = timezone.now()
    candidates.feed_candidates(user=viewer, snapshot=t0)
    old = post_at(authors[1], t0 - timedelta(minutes=30), text="backdated")  # outside the recent window
    later = candidates.feed_candidates(user=viewer, snapshot=t0 + timedelta(seconds=30))
    assert old.pk not in [c.post_id for c in later]  # served from the cache: the trade-off
    assert old.pk in [c.post_id for c in candidates.feed_candidates(user=viewer, snapshot=t0 + timedelta(seconds=61))]
    assert old.pk in [c.post_id for c in candidates.feed_candidates(user=viewer, snapshot=t0 - timedelta(seconds=1))]


def test_following_someone_drops_the_cache(network, make_user, django_capture_on_commit_callbacks):
    viewer, _ = network
    newcomer = make_user(username="newcomer")
    theirs = rf.post(newcomer, hours_ago=3, text="older than the recent window")
    t0 = timezone.now()
    assert theirs.pk not in [c.post_id for c in candidates.feed_candidates(user=viewer, snapshot=t0)]
    with django_capture_on_commit_callbacks(execute=True):
        Follow.objects.create(follower=viewer, followee=newcomer)
    found = candidates.feed_candidates(user=viewer, snapshot=timezone.now())
    assert theirs.pk in [c.post_id for c in found]


def test_erased_readings_leave_every_cached_affect(network, django_capture_on_commit_callbacks):
    viewer, authors = network
    version = rf.model_version()
    happy = rf.post_with_faces(authors[2], version, [rf.HAPPY], hours_ago=1, text="smile")
    t0 = timezone.now()
    affect = {c.post_id: c.affect for c in candidates.feed_candidates(user=viewer, snapshot=t0)}
    assert affect[happy.pk] is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.mood_erase(user=authors[2])
    affect = {c.post_id: c.affect for c in candidates.feed_candidates(user=viewer, snapshot=timezone.now())}
    assert affect[happy.pk] is None


class CountQueries:
    """Collect the SQL run inside the block."""

    def __enter__(self):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self._ctx = CaptureQueriesContext(connection)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self.sql = [q["sql"] for q in self._ctx.captured_queries]


# --- popular posts: one request computes a new bucket, the others serve the last one -------------


def test_a_new_popular_bucket_is_computed_once_while_the_last_one_is_served(make_user, django_assert_num_queries):
    from django.core.cache import cache

    author = make_user(username="popular-author")
    ttl = selectors.conf.get("POPULAR_CACHE_SECONDS")
    start = timezone.now().replace(microsecond=0)
    start -= timedelta(seconds=start.timestamp() % ttl)  # the beginning of a bucket
    liked = Post.objects.create(author=author, text="liked", like_count=5)
    Post.objects.filter(pk=liked.pk).update(created_at=start - timedelta(hours=1))
    assert [c.post_id for c in selectors.popular_candidates(as_of=start)] == [liked.pk]
    with django_assert_num_queries(0):  # same bucket: from the cache
        selectors.popular_candidates(as_of=start + timedelta(seconds=1))

    newer = Post.objects.create(author=author, text="newer", like_count=9)
    Post.objects.filter(pk=newer.pk).update(created_at=start + timedelta(seconds=2))
    next_bucket = start + timedelta(seconds=ttl + 1)
    lock = f"{selectors._popular_key(int(next_bucket.timestamp() // ttl))}:computing"
    assert cache.add(lock, 1, 30)  # another request is computing the next bucket
    with django_assert_num_queries(0):  # so this one serves the previous bucket's list
        assert [c.post_id for c in selectors.popular_candidates(as_of=next_bucket)] == [liked.pk]
    cache.delete(lock)
    assert [c.post_id for c in selectors.popular_candidates(as_of=next_bucket)] == [newer.pk, liked.pk]
    assert cache.add(lock, 1, 30)  # computed and released: the lock is free again
    cache.delete(lock)


def test_without_a_previous_bucket_a_held_lock_does_not_block(make_user):
    from django.core.cache import cache

    liked = Post.objects.create(author=make_user(username="cold"), text="x", like_count=1)
    now = timezone.now() + timedelta(seconds=1)
    ttl = selectors.conf.get("POPULAR_CACHE_SECONDS")
    lock = f"{selectors._popular_key(int(now.timestamp() // ttl))}:computing"
    cache.add(lock, 1, 30)
    assert [c.post_id for c in selectors.popular_candidates(as_of=now)] == [liked.pk]  # cold cache: computed anyway
    assert not cache.add(lock, 1, 30)  # and the other request's lock is left alone
