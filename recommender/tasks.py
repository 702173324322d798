"""Celery tasks of the recommender: thin wrappers around services.

Per-item updates run on the ``default`` queue (they are cheap and should land
before the user's next feed); the full switch after a rescoring on ``batch``.
"""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from feedmood.models import Post
from recommender import services


@shared_task(name="recommender.tasks.mood_recompute", queue="default")
def mood_recompute_task(user_id: int) -> bool:
    """Recompute a user's stored mood; returns whether one is stored."""
    user = get_user_model().objects.filter(pk=user_id).first()
    return user is not None and services.mood_recompute(user=user) is not None


@shared_task(name="recommender.tasks.post_affect_recompute", queue="default")
def post_affect_recompute_task(post_id: int) -> bool:
    """Recompute a post's face affect; returns whether a row is stored."""
    post = Post.objects.filter(pk=post_id).first()
    return post is not None and services.post_affect_recompute(post=post) is not None


@shared_task(name="recommender.tasks.post_text_affect_recompute", queue="default")
def post_text_affect_recompute_task(post_id: int) -> bool:
    """Read a post's text affect; returns whether a row is stored."""
    post = Post.objects.filter(pk=post_id).first()
    return post is not None and services.post_text_affect_recompute(post=post) is not None


@shared_task(name="recommender.tasks.feed_changed", queue="default", ignore_result=True)
def feed_changed_task(author_id: int) -> int:
    """Stamp the feeds of an author and their followers as changed; returns how many."""
    return services.feed_changed(author_id=author_id)


@shared_task(name="recommender.tasks.recompute_all", queue="batch")
def recompute_all_task(model_version_id: int | None = None, include_text: bool = True) -> dict[str, int]:
    """Switch all moods and post affects to one model version (default: active); re-read texts too."""
    return services.recompute_all(model_version_id=model_version_id, include_text=include_text)


@shared_task(name="recommender.tasks.recompute_if_versions_mixed", queue="batch")
def recompute_if_versions_mixed_task() -> dict[str, int] | None:
    """Beat: re-run the switch to the active model version while any mood or post affect is on another."""
    return services.recompute_all_if_versions_mixed()
