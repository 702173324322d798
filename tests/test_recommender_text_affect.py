"""Text affect end to end: post (API) -> after commit -> default-queue task -> PostAffect(text) -> feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from feedmood import services as social_services
from feedmood.models import Follow, Post
from recommender import services
from recommender.models import PostAffect
from recommender.text_affect import confidence_for
from tests import recommender_factories as rf
from tests.worker_tools import needs_redis_broker, wait_for

pytestmark = pytest.mark.django_db

FEED = "/api/feed/"
POSITIVE = ["What a wonderful day, I love this city! 😍", "Best news ever, so happy for you!"]
NEGATIVE = ["This is awful. I hate everything about today 😢", "Terrible, sad and lonely evening."]
PLAIN = ["Meeting moved to room 3 at five", "Le film était super, je n'ai pas aimé la fin"]  # no cue; French


def text_row(post_id: int) -> PostAffect | None:
    return PostAffect.objects.filter(post_id=post_id, source=PostAffect.Source.TEXT).first()


def create_post(client: Any, text: str, capture: Any) -> int:
    with capture(execute=True):
        resp = client.post("/api/posts/", {"text": text}, format="json")
        assert resp.status_code == 201, resp.content
        assert text_row(resp.json()["id"]) is None  # never computed in the request
    return resp.json()["id"]


def test_a_new_post_gets_text_affect_after_commit(make_user, client_for, django_capture_on_commit_callbacks):
    client = client_for(make_user(username="poster"))
    row = text_row(create_post(client, "I am not happy with this at all", django_capture_on_commit_callbacks))
    assert row is not None and row.valence < -0.3 and row.arousal is None
    assert row.language == "en" and row.confidence == confidence_for(row.valence) > 0.3
    assert row.model_version_id is None and row.known
    french = text_row(create_post(client, PLAIN[1], django_capture_on_commit_callbacks))
    assert french is not None and french.valence is None and french.language == "fr" and not french.known


@pytest.fixture
def world(make_user, client_for, django_capture_on_commit_callbacks):
    """A sad, consenting viewer following 6 authors; negative, plain and positive text posts
    alternate, newest first (the plain ranking puts each positive post below a negative one),
    plus one post with an image without faces and no text."""
    version = rf.model_version()
    viewer = make_user(username="reader", emotion_consent=True)
    posts: dict[str, list[int]] = {"positive": [], "negative": [], "plain": []}
    hours, n = 0.5, 0
    for i in range(2):
        for kind, texts in (("negative", NEGATIVE), ("plain", PLAIN), ("positive", POSITIVE)):
            author = make_user(username=f"writer{n}")
            n += 1
            Follow.objects.create(follower=viewer, followee=author)
            pid = create_post(client_for(author), texts[i], django_capture_on_commit_callbacks)
            Post.objects.filter(pk=pid).update(created_at=timezone.now() - timedelta(hours=hours))
            posts[kind].append(pid)
            hours += 0.5
    faceless = rf.post_with_faces(make_user(username="photographer"), version, [], hours_ago=hours, text="")
    Follow.objects.create(follower=viewer, followee=faceless.author)
    posts["plain"].append(faceless.pk)
    rf.selfie(viewer, version, rf.SAD, hours_ago=0.2)
    services.mood_recompute(user=viewer)
    cache.clear()
    return {"viewer": viewer, "posts": posts}


def ranked(client: Any, **params: Any) -> tuple[dict[int, int], dict[int, str]]:
    data = client.get(FEED, {**params, "refresh": "true"}).json()
    items = data["results"]
    return ({it["post"]["id"]: i for i, it in enumerate(items)}, {it["post"]["id"]: it["reason"] for it in items})


def test_repair_lifts_positive_text_lowers_negative_text_and_names_the_text(world, client_for):
    client = client_for(world["viewer"])
    plain, _ = ranked(client, policy="off")
    repaired, reasons = ranked(client, policy="repair", strength=1)
    for pid in world["posts"]["positive"]:
        assert repaired[pid] < plain[pid] and reasons[pid] == "lifted: uplifting text while you seem sad"
    for pid in world["posts"]["negative"]:
        assert repaired[pid] > plain[pid] and reasons[pid] == "lowered: gloomy text while you seem sad"
    for pid in world["posts"]["plain"]:  # no cue, another language, no text and no faces
        assert reasons[pid] == "base ranking"
    plain_order = [p for p in sorted(plain, key=plain.get) if p in world["posts"]["plain"]]
    assert [p for p in sorted(repaired, key=repaired.get) if p in world["posts"]["plain"]] == plain_order


def test_congruent_lifts_negative_text_for_a_sad_user(world, client_for):
    client = client_for(world["viewer"])
    plain, _ = ranked(client, policy="off")
    congruent, reasons = ranked(client, policy="congruent", strength=1)
    for pid in world["posts"]["negative"]:
        assert reasons[pid] == "lifted: gloomy text that matches your sad mood"
    assert max(congruent[p] for p in world["posts"]["negative"]) < min(congruent[p] for p in world["posts"]["positive"])
    for pid in world["posts"]["positive"]:
        assert congruent[pid] >= plain[pid]
        assert reasons[pid] == "lowered: uplifting text that clashes with your sad mood"


def test_recompute_all_rereads_text_affect(make_user):
    author = make_user(username="rewriter")
    happy, emptied = rf.post(author, text=POSITIVE[0]), rf.post(author, text=NEGATIVE[0])
    services.post_text_affect_recompute(post=happy)
    services.post_text_affect_recompute(post=emptied)
    expected = text_row(happy.pk).valence
    PostAffect.objects.filter(post=happy, source="text").update(valence=-1.0, confidence=0.01, language="xx")
    Post.objects.filter(pk=emptied.pk).update(text="")
    missing = rf.post(author, text=NEGATIVE[1])  # never read (e.g. created before text affect existed)

    assert services.recompute_all(include_text=False)["texts"] == 0
    assert text_row(happy.pk).valence == -1.0 and text_row(missing.pk) is None

    result = services.recompute_all()
    assert result["texts"] == 2
    row = text_row(happy.pk)
    assert row.valence == pytest.approx(expected) and row.language == "en" and row.confidence > 0.5  # was 0.01
    assert text_row(emptied.pk) is None  # no text: no row
    assert text_row(missing.pk).valence < 0


def test_text_affect_needs_no_consent_and_goes_with_the_posts(
    make_user, client_for, django_capture_on_commit_callbacks
):
    author = make_user(username="leaving", emotion_consent=True)
    client = client_for(author)
    kept, deleted = (create_post(client, t, django_capture_on_commit_callbacks) for t in POSITIVE)
    services.mood_erase(user=author)  # consent withdrawn / readings erased: content affect stays
    assert text_row(kept) is not None and text_row(deleted) is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/posts/{deleted}/").status_code == 204
    assert text_row(deleted) is None and text_row(kept) is not None
    author.delete()  # account erasure removes the posts and their text affect
    assert not PostAffect.objects.filter(post_id=kept).exists()


@pytest.mark.slow
@needs_redis_broker
@pytest.mark.celery_worker(queues=("default",))
def test_text_affect_is_read_by_a_real_worker_on_the_default_queue(celery_worker_process, make_user):
    post = social_services.post_create(author=make_user(username="workerwriter"), text=NEGATIVE[1])
    wait_for(lambda: text_row(post.pk) is not None, 30, "the text affect", celery_worker_process.log)
    assert text_row(post.pk).valence < -0.3
    assert "recommender.tasks.post_text_affect_recompute" in celery_worker_process.log()


def test_cached_candidate_rows_from_before_text_affect_still_rank():
    from recommender.mood import Affect
    from recommender.ranking import Candidate, Source
    from recommender.selectors import _popular_candidate, candidate_from_row

    old, new = (1, 2, 3.0, 4, 0.5, 0.1, 0.9), (1, 2, 3.0, 4, None, None, None, -0.6, None, 0.56)
    assert candidate_from_row(old, 9).text_affect is None and candidate_from_row(old, 9).affect.valence == 0.5
    text = candidate_from_row(new, 9).text_affect
    assert candidate_from_row(new, 9).affect is None and (text.valence, text.arousal, text.confidence) == (
        -0.6,
        None,
        0.56,
    )
    assert _popular_candidate((1, 2, 3.0, 4, 0.5, 0.1, 0.9, "happiness", 1)) == Candidate.of(
        1, 2, 3.0, 4, Affect(0.5, 0.1, 0.9), Source.POPULAR
    )
    assert _popular_candidate((1, 2, 3.0, 4, None, None, None, None, None, 0.7, None, 0.78)) == Candidate.of(
        1, 2, 3.0, 4, None, Source.POPULAR, Affect(0.7, None, 0.78, "", 0)
    )
    assert _popular_candidate((1, 2, 3.0, 4, 0.5, None, 0.9, None, None, None, None, None)).affect is None


def test_candidates_from_rows_build_one_object_per_row():
    """A fresh ranking builds ~400 candidates: their affect is plain numbers, not an object per known source (each
    tracked object counts towards the next garbage collection)."""
    import gc

    from recommender.selectors import candidates_from_rows

    rows = [(i, 7, 1.0, 0, 0.5, 0.1, 0.9, -0.6, None, 0.56) for i in range(300)]
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        candidates = candidates_from_rows(rows, 9)
        allocated = gc.get_count()[0] - before
    finally:
        if enabled:
            gc.enable()
    assert len(candidates) == 300 and allocated <= 300 + 10  # the list, a bound method: not one per row


def test_candidates_from_rows_give_each_known_source_an_affect():
    """The one loop building a fresh ranking's candidates: face and text affect from their own fields, ``own``
    for the viewer's posts, rows cached before text affect (7 fields) without text affect."""
    from recommender.mood import Affect
    from recommender.ranking import Candidate, Source
    from recommender.selectors import candidates_from_rows

    rows = [
        (1, 9, 3.0, 4, 0.5, 0.1, 0.9, -0.6, None, 0.56),  # both sources, the viewer's own post
        (2, 7, 2.0, 0, None, None, 0.0, 0.7, None, None),  # text only (no confidence read: 0)
        (3, 7, 1.0, 1, -0.2, 0.3, None, None, None, None),  # faces only
        (4, 8, 0.5, 2, 0.4, -0.1, 0.8),  # cached before text affect
    ]
    assert candidates_from_rows(rows, 9) == [
        Candidate.of(1, 9, 3.0, 4, Affect(0.5, 0.1, 0.9), Source.OWN, Affect(-0.6, None, 0.56, "", 0)),
        Candidate.of(2, 7, 2.0, 0, None, Source.NETWORK, Affect(0.7, None, 0.0, "", 0)),
        Candidate.of(3, 7, 1.0, 1, Affect(-0.2, 0.3, 0.0), Source.NETWORK, None),
        Candidate.of(4, 8, 0.5, 2, Affect(0.4, -0.1, 0.8), Source.NETWORK, None),
    ]
