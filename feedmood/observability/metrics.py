"""FeedMood's own Prometheus series, and how they are exposed.

Request and response series come from ``django-prometheus`` middleware; this module adds:

- ``feedmood_emotion_analyses_total{status,source}``: finished analyses (done, no_face, failed);
- ``feedmood_emotion_stage_seconds{stage}``: pipeline latency per stage (queue_wait, decode, detect, classify, total);
- ``feedmood_model_inference_seconds``: the model's share (face crops classified) of each analysis;
- ``feedmood_feed_ranking_seconds``: ranking one feed snapshot (candidates read and ranked);
- ``feedmood_celery_queue_depth{queue}``: messages waiting in each broker queue (read at scrape time);
- ``feedmood_rescoring_analyses{job,model,state}`` / ``feedmood_rescoring_progress_ratio{job,model}``:
  progress of open batch rescoring jobs (read at scrape time).

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn workers, Celery prefork children) values are shared
through files in that directory and summed at scrape time (prometheus_client multiprocess mode).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

ANALYSES = Counter("feedmood_emotion_analyses", "Emotion analyses that reached a final status.", ["status", "source"])
STAGE_SECONDS = Histogram(
    "feedmood_emotion_stage_seconds", "Emotion pipeline latency per stage.", ["stage"], buckets=_STAGE_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "feedmood_model_inference_seconds", "Emotion model time per analysis (faces classified).", buckets=_STAGE_BUCKETS
)
FEED_RANKING_SECONDS = Histogram(
    "feedmood_feed_ranking_seconds", "Time to read and rank one feed snapshot.", buckets=_STAGE_BUCKETS
)

STAGE_FIELDS = {"queue_wait": "queue_wait_ms", "decode": "decode_ms", "detect": "detect_ms",
                "classify": "classify_ms", "total": "total_ms"}  # fmt: skip


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when this process shares metrics through files."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def record_analysis(sender: Any = None, analysis: Any = None, **kwargs: Any) -> None:
    """``emotion.signals.analysis_finished`` receiver: count the outcome, observe its stage timings."""
    if analysis is None:
        return
    ANALYSES.labels(status=str(analysis.status), source=str(analysis.source)).inc()
    for stage, field in STAGE_FIELDS.items():
        value = getattr(analysis, field, None)
        if value is not None:
            STAGE_SECONDS.labels(stage=stage).observe(value / 1000.0)
    if getattr(analysis, "classify_ms", None) is not None and getattr(analysis, "face_count", 0):
        INFERENCE_SECONDS.observe(analysis.classify_ms / 1000.0)


class QueueDepthCollector(Collector):
    """Length of each configured Celery queue in the Redis broker, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings

        family = GaugeMetricFamily("feedmood_celery_queue_depth", "Messages waiting in a Celery queue.",
                                   labels=["queue"])  # fmt: skip
        broker = str(settings.CELERY_BROKER_URL or "")
        if broker.startswith(("redis://", "rediss://")):
            import redis

            try:
                client = redis.Redis.from_url(broker, socket_connect_timeout=1, socket_timeout=1)
                for queue in settings.CELERY_TASK_QUEUES:
                    family.add_metric([queue.name], float(client.llen(queue.name)))
            except redis.RedisError as exc:
                logger.warning("Queue depth not collected: %s", type(exc).__name__)
        yield family


class RescoringCollector(Collector):
    """Analyses done, failed and left in each open batch rescoring job, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db import DatabaseError

        from emotion.selectors import rescoring_job_open

        counts = GaugeMetricFamily("feedmood_rescoring_analyses", "Analyses of an open rescoring job by state.",
                                   labels=["job", "model", "state"])  # fmt: skip
        ratio = GaugeMetricFamily("feedmood_rescoring_progress_ratio", "Share of an open rescoring job processed.",
                                  labels=["job", "model"])  # fmt: skip
        try:
            jobs = [job for job in [rescoring_job_open()] if job is not None]
        except DatabaseError as exc:
            logger.warning("Rescoring progress not collected: %s", type(exc).__name__)
            jobs = []
        for job in jobs:
            labels = [str(job.pk), job.model_version.name]
            left = max(0, job.total - job.done - job.failed)
            for state, value in (("total", job.total), ("done", job.done), ("failed", job.failed), ("left", left)):
                counts.add_metric([*labels, state], float(value))
            ratio.add_metric(labels, (job.done + job.failed) / job.total if job.total else 1.0)
        yield counts
        yield ratio


_SCRAPE_TIME_COLLECTORS = (QueueDepthCollector(), RescoringCollector())


def registry_for_scrape(*, scrape_time: bool = True) -> CollectorRegistry:
    """The registry to expose: every process's files in multiprocess mode, else this process's own."""
    from prometheus_client import REGISTRY

    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistryView(REGISTRY))
    if scrape_time:
        for collector in _SCRAPE_TIME_COLLECTORS:
            registry.register(collector)
    return registry


class _DefaultRegistryView(Collector):
    """Expose the default registry inside another one (so scrape-time collectors stay per request)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def render_latest(*, scrape_time: bool = True) -> bytes:
    """The text exposition of :func:`registry_for_scrape`."""
    return generate_latest(registry_for_scrape(scrape_time=scrape_time))
