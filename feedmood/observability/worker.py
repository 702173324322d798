"""Celery worker side: Django's logging config is kept, and a worker can serve its metrics on a port.

Metrics are recorded in the prefork children, so the worker runs in prometheus_client multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, one directory per worker) and its main process serves the summed
values on ``FEEDMOOD_WORKER_METRICS_PORT``; compose keeps that port on the internal network only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)


def keep_django_logging(**kwargs: Any) -> None:
    """``setup_logging``: having a receiver stops Celery from replacing Django's handlers (one line per record)."""


def serve_worker_metrics(**kwargs: Any) -> None:
    """``worker_init``: start the metrics HTTP server in the worker's main process when a port is set."""
    from django.conf import settings

    port = settings.FEEDMOOD_WORKER_METRICS_PORT
    if not port:
        return
    from feedmood.observability.metrics import multiprocess_dir, registry_for_scrape

    if not multiprocess_dir():
        logger.error("FEEDMOOD_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR (pool children record the "
                     "metrics): not serving worker metrics")  # fmt: skip
        return
    from prometheus_client import start_http_server

    start_http_server(port, registry=registry_for_scrape(scrape_time=False))
    logger.info("Worker metrics on port %s", port)


def forget_dead_child(pid: int | None = None, **kwargs: Any) -> None:
    """``worker_process_shutdown``: drop a pool child's live gauges from the multiprocess files."""
    from feedmood.observability.metrics import multiprocess_dir

    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def connect(app: Any) -> None:
    """Wire the receivers above for ``app``'s workers."""
    from celery.signals import setup_logging, worker_init, worker_process_shutdown

    setup_logging.connect(keep_django_logging, weak=False, dispatch_uid="feedmood.keep_django_logging")
    worker_init.connect(serve_worker_metrics, weak=False, dispatch_uid="feedmood.worker_metrics")
    worker_process_shutdown.connect(forget_dead_child, weak=False, dispatch_uid="feedmood.forget_dead_child")
