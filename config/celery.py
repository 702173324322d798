"""Celery application, configured from Django settings (``CELERY_*`` namespace).

Workers keep Django's logging (JSON in production), carry the request id of the HTTP request that
queued a task, may serve metrics on ``FEEDMOOD_WORKER_METRICS_PORT``, and answer ``feedmood.ping``.
"""

import os

from celery import Celery

from feedmood.observability import request_id, worker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("feedmood")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
worker.connect(app)
request_id.connect_celery_signals()
