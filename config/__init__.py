"""FeedMood project configuration: settings, root URLconf, Celery app, WSGI/ASGI entry points.

The Celery app is imported here so ``@shared_task`` binds to it whenever Django starts.
"""

from config.celery import app as celery_app

__all__ = ("celery_app",)
