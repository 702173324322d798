"""Page 1 reuses a recent snapshot only while nothing that feeds the ranking changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from feedmood.models import Follow
from recommender import feed, freshness, selectors, services
from tests import recommender_factories as rf

pytestmark = pytest.mark.django_db

FEED = "/api/feed/"


@pytest.fixture
def viewer_world(make_user):
    viewer = make_user(username="viewer", emotion_consent=True)
    friend = make_user(username="friend")
    Follow.objects.create(follower=viewer, followee=friend)
    for i in range(3):
        rf.post(friend, hours_ago=1 + i, text=f"old {i}")
    return viewer, friend


def first_page(client, **params):
    response = client.get(FEED, params)
    assert response.status_code == 200, response.content
    return response.json()


def ids(page):
    return [item["post"]["id"] for item in page["results"]]


def test_a_second_first_page_reuses_the_snapshot_and_refresh_ranks_anew(viewer_world, client_for):
    viewer, _ = viewer_world
    client = client_for(viewer)
    first = first_page(client)
    again = first_page(client)
    assert first["snapshot_reused"] is False
    assert again["snapshot_reused"] is True and again["snapshot"] == first["snapshot"]
    assert ids(again) == ids(first)
    fresh = first_page(client, refresh="true")
    assert fresh["snapshot_reused"] is False and fresh["snapshot"] > first["snapshot"]


def test_other_parameters_get_their_own_snapshot(viewer_world, client_for):
    client = client_for(viewer_world[0])
    first_page(client)
    assert first_page(client, policy="off")["snapshot_reused"] is False
    assert first_page(client, page_size=5)["snapshot_reused"] is False
    assert first_page(client, policy="off")["snapshot_reused"] is True


def test_a_new_post_in_the_network_ends_reuse(viewer_world, client_for, django_capture_on_commit_callbacks):
    viewer, friend = viewer_world
    client = client_for(viewer)
    first_page(client)
    with django_capture_on_commit_callbacks(execute=True):
        created = client_for(friend).post("/api/posts/", {"text": "brand new"}, format="json")
    assert created.status_code == 201
    page = first_page(client)
    assert page["snapshot_reused"] is False
    assert ids(page)[0] == created.json()["id"]


def test_own_post_ends_reuse(viewer_world, client_for, django_capture_on_commit_callbacks):
    viewer, _ = viewer_world
    client = client_for(viewer)
    first_page(client)
    with django_capture_on_commit_callbacks(execute=True):
        mine = client.post("/api/posts/", {"text": "me, now"}, format="json").json()
    page = first_page(client)
    assert page["snapshot_reused"] is False and mine["id"] in ids(page)


def test_following_someone_ends_reuse(viewer_world, client_for, make_user, django_capture_on_commit_callbacks):
    viewer, _ = viewer_world
    newcomer = make_user(username="newcomer")
    news = rf.post(newcomer, hours_ago=0.1, text="hello")
    client = client_for(viewer)
    assert news.pk not in ids(first_page(client))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/users/newcomer/follow/").status_code in (200, 201)
    page = first_page(client)
    assert page["snapshot_reused"] is False and news.pk in ids(page)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete("/api/users/newcomer/follow/").status_code in (200, 204)
    page = first_page(client)
    assert page["snapshot_reused"] is False and news.pk not in ids(page)


def test_a_new_mood_ends_reuse(viewer_world, client_for):
    viewer, _ = viewer_world
    version = rf.model_version()
    client = client_for(viewer)
    assert first_page(client)["mood"]["state"] == "unknown"
    rf.selfie(viewer, version, rf.SAD, hours_ago=0.1)
    services.mood_recompute(user=viewer)
    page = first_page(client)
    assert page["snapshot_reused"] is False and page["mood"]["label"] == "sadness"


def test_a_model_switch_ends_reuse_for_everyone(viewer_world, client_for, django_capture_on_commit_callbacks):
    client = client_for(viewer_world[0])
    first_page(client)
    with django_capture_on_commit_callbacks(execute=True):
        services.recompute_all()
    assert first_page(client)["snapshot_reused"] is False


def test_reuse_ends_after_the_window(viewer_world, settings):
    settings.RECOMMENDER_SNAPSHOT_REUSE_SECONDS = 30
    viewer, _ = viewer_world
    t0 = timezone.now()
    assert feed.feed_page(user=viewer, now=t0).reused is False
    assert feed.feed_page(user=viewer, now=t0 + timedelta(seconds=29)).reused is True
    late = feed.feed_page(user=viewer, now=t0 + timedelta(seconds=31))
    assert late.reused is False
    assert late.snapshot.timestamp() == pytest.approx((t0 + timedelta(seconds=31)).timestamp(), abs=0.002)


def test_window_zero_never_reuses(viewer_world, client_for, settings):
    settings.RECOMMENDER_SNAPSHOT_REUSE_SECONDS = 0
    client = client_for(viewer_world[0])
    assert first_page(client)["snapshot_reused"] is False
    assert first_page(client)["snapshot_reused"] is False
    assert freshness.mark_changed(selectors.cache_namespace(), [1, 2]) == 2  # candidate caches still use stamps
    settings.RECOMMENDER_CANDIDATES_TTL = 0
    assert freshness.mark_changed(selectors.cache_namespace(), [1, 2]) == 2  # and so do built pages
    settings.RECOMMENDER_PAGE_CACHE_SECONDS = 0
    assert freshness.mark_changed(selectors.cache_namespace(), [1, 2]) == 0


def test_feed_changed_stamps_the_author_and_every_follower(make_user):
    author = make_user(username="author")
    fans = [make_user(username=f"fan{i}") for i in range(3)]
    bystander = make_user(username="bystander")
    for fan in fans:
        Follow.objects.create(follower=fan, followee=author)
    assert services.feed_changed(author_id=author.pk) == 4
    namespace = selectors.cache_namespace()
    from django.core.cache import cache

    stamped = cache.get_many([freshness.changed_key(namespace, u.pk) for u in (author, *fans, bystander)])
    assert len(stamped) == 4 and freshness.changed_key(namespace, bystander.pk) not in stamped


# --- Built pages (PAGE_CACHE_SECONDS) ------------------------------------------------------------


def texts(page):
    return [item["post"]["text"] for item in page["results"]]


def test_a_built_page_is_served_again_until_it_expires(
    viewer_world, client_for, settings, django_assert_max_num_queries
):
    viewer, friend = viewer_world
    client = client_for(viewer)
    first = first_page(client)
    friend.posts.update(text="edited behind the cache")  # no signal: the built page stays valid
    with django_assert_max_num_queries(1):  # the token (with profile and mood); no post query
        again = first_page(client)
    assert again["results"] == first["results"] and "edited behind the cache" not in texts(again)
    settings.RECOMMENDER_PAGE_CACHE_SECONDS = 0
    assert set(texts(first_page(client))) == {"edited behind the cache"}


def test_cursor_pages_are_cached_too(viewer_world, client_for):
    viewer, friend = viewer_world
    client = client_for(viewer)
    page1 = first_page(client, page_size=2)
    cursor = page1["next"].split("cursor=", 1)[1]
    page2 = first_page(client, cursor=cursor)
    friend.posts.update(text="edited")
    assert first_page(client, cursor=cursor) == page2 and page2["results"] and "edited" not in texts(page2)


def test_own_like_shows_at_once_others_likes_within_the_cache_time(
    viewer_world, client_for, make_user, django_capture_on_commit_callbacks
):
    viewer, _friend = viewer_world
    client = client_for(viewer)
    post = first_page(client)["results"][0]["post"]
    stranger = make_user(username="stranger")
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(stranger).post(f"/api/posts/{post['id']}/like/").status_code == 201
    seen = first_page(client)["results"][0]["post"]
    assert (seen["like_count"], seen["liked_by_me"]) == (post["like_count"], False)  # someone else's: later
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/posts/{post['id']}/like/").status_code == 201
    seen = first_page(client)["results"][0]["post"]
    assert (seen["like_count"], seen["liked_by_me"]) == (post["like_count"] + 2, True)  # own like: at once
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/posts/{post['id']}/like/").status_code == 200
    assert first_page(client)["results"][0]["post"]["liked_by_me"] is False


def test_a_deleted_post_leaves_the_followers_pages(viewer_world, client_for, django_capture_on_commit_callbacks):
    viewer, friend = viewer_world
    client = client_for(viewer)
    gone = first_page(client)["results"][0]["post"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(friend).delete(f"/api/posts/{gone}/").status_code == 204
    page = first_page(client)
    assert gone not in ids(page) and len(ids(page)) == 2
