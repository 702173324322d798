"""FeedMood: the Django project and its social core app (label ``feedmood``).

The Celery app is imported here so ``@shared_task`` binds to it whenever Django starts.
"""

from feedmood.celery import app as celery_app

__all__ = ("celery_app",)
