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


#: Retries of an erasure that could not finish (backoff 30 s, 60 s, ... capped at 15 min); then the sweep.
ERASE_MAX_RETRIES = 6


@shared_task(bind=True, name="feedmood.tasks.erase_user_data", max_retries=ERASE_MAX_RETRIES, acks_late=True)
def erase_user_data(self, request_id: int) -> bool:
    """Finish one erasure request; retried with backoff while it cannot (``sweep_erasures`` takes over after)."""
    from feedmood import erasure

    if erasure.erasure_run(request_id=request_id):
        return True
    if self.request.is_eager or self.request.retries >= self.max_retries:
        return False  # in-process (tests, no broker) or out of retries: the periodic sweep finishes it
    raise self.retry(countdown=min(900, 30 * 2**self.request.retries))


@shared_task(name="feedmood.tasks.sweep_erasures", ignore_result=True)
def sweep_erasures() -> dict[str, int]:
    """Beat: finish open erasure requests and delete media files no row references."""
    from feedmood import erasure

    return erasure.erasure_sweep()
