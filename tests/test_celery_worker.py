"""A real Celery worker (subprocess) consuming from Redis, against the test database.

Skipped unless CELERY_BROKER_URL is redis://... and Redis answers.
"""

from __future__ import annotations

import pytest

from feedmood import tasks
from feedmood.models import Post
from tests.factories import PostFactory, ReactionFactory
from tests.worker_tools import needs_redis_broker

pytestmark = [
    pytest.mark.slow,
    needs_redis_broker,
]


@pytest.mark.celery_worker(queues=("default", "fer", "batch"))
def test_worker_runs_tasks_from_redis(celery_worker_process) -> None:
    # No DB: round trip through the broker and the Redis result backend.
    result = tasks.ping.apply_async()
    assert result.get(timeout=30) == "pong"
    assert result.status == "SUCCESS"

    # With DB: the worker sees rows committed by this test (transactional_db).
    assert celery_worker_process.db_shared, "worker cannot share an in-memory SQLite test DB"
    post = PostFactory()
    ReactionFactory.create_batch(3, post=post)
    Post.objects.filter(pk=post.pk).update(like_count=0)
    assert tasks.recount_likes.apply_async(args=[post.pk], queue="batch").get(timeout=30) == 3
    post.refresh_from_db()
    assert post.like_count == 3

    log = celery_worker_process.log()
    assert "feedmood.tasks.ping" in log and "succeeded" in log
