"""Celery tasks of the social core: thin wrappers around services."""

from celery import shared_task

from feedmood import services


@shared_task(name="feedmood.tasks.ping")
def ping() -> str:
    """Health check for workers: returns ``"pong"``."""
    return "pong"


@shared_task(name="feedmood.tasks.recount_likes")
def recount_likes(post_id: int) -> int | None:
    """Recompute a post's denormalised ``like_count``; returns it (None if the post is gone)."""
    return services.post_recount_likes(post_id=post_id)
