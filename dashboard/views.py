"""The staff dashboard at ``/admin/dashboard/``: aggregates rendered as server-side SVG charts.

Wrapped in ``admin.site.admin_view`` (see ``config/urls.py``): anonymous and
non-staff users are redirected to ``/admin/login/?next=/admin/dashboard/``; staff
without the dedicated permission ``recommender.view_emotion_dashboard`` get 403.
The emotion panels cover completed days only (see ``selectors.period_end``), so
recomputing them never reveals what someone did today. The panels that scan many
rows are cached for ``FEEDMOOD_DASHBOARD_CACHE_SECONDS`` (default 60) in Django's
cache; ``?refresh=1`` recomputes them (the same completed days: no new emotion data).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from dashboard import charts, selectors
from dashboard.charts import Item, Series
from emotion.models import ImageAnalysis
from emotion.selectors import active_model_version

HOURS = 24
DAYS = 14
WIDE = 1240  # natural widths (px) of the charts of a full-width card and of a half-width card
HALF = 600


def _safe(svg: str) -> SafeString:
    # charts.* escape every string they embed
    return mark_safe(svg)


def _suppressed_label(k: int) -> str:
    return f"suppressed (< {k} users)"


def _hour_labels(hours: list[datetime]) -> list[str]:
    return [timezone.localtime(h).strftime("%H:00") for h in hours]


def _day_labels(days: list[datetime]) -> list[str]:
    return [timezone.localtime(d).strftime("%b %d") for d in days]


# --- Panels -------------------------------------------------------------------------------------


def analyses_panel(data: selectors.HourlyStatus) -> dict[str, Any]:
    labels = dict(ImageAnalysis.Status.choices)
    series = [
        Series(
            str(labels.get(status, status)),
            data.counts.get(status, [0] * len(data.hours)),
            charts.STATUS_COLORS.get(status, charts.color_for(status)),
        )
        for status in data.counts
    ]
    totals = {status: sum(values) for status, values in data.counts.items()}
    final = sum(totals.get(s, 0) for s in ImageAnalysis.FINAL_STATUSES)
    return {
        "svg": _safe(
            charts.stacked_bar_chart(
                title=f"Image analyses per hour by status (last {HOURS} h)",
                categories=_hour_labels(data.hours),
                series=series,
                unit="analyses",
                label_every=2,
                chart_id="chart-analyses",
                width=WIDE,
                height=280,
                empty_message=f"no analyses in the last {HOURS} hours",
            )
        ),
        "total": data.total,
        "totals": [(labels.get(s, s), totals.get(s, 0), charts.STATUS_COLORS.get(s, "#999")) for s in data.counts],
        "done_share": (totals.get("done", 0) / final) if final else None,
        "failed_share": (totals.get("failed", 0) / final) if final else None,
    }


def latency_panel(data: selectors.LatencyReport) -> dict[str, Any]:
    cats = _hour_labels(data.hours)
    out: dict[str, Any] = {"method": data.method, "rows": []}
    for metric, title in (("queue_wait", "Queue wait"), ("processing", "Processing (total_ms)")):
        series = [
            Series(name, data.hourly[metric][name], charts.PERCENTILE_COLORS[name]) for name, _ in selectors.PERCENTILES
        ]
        out[f"{metric}_svg"] = _safe(charts.line_chart(
            title=f"{title} latency percentiles per hour (last {HOURS} h)", categories=cats, series=series,
            unit="ms", value_fmt=lambda v: charts.fmt_number(v, 0) if v >= 10 else charts.fmt_number(v, 1),
            label_every=3, chart_id=f"chart-latency-{metric}", height=220, width=620,
            empty_message="no timed analyses in the window",
        ))  # fmt: skip
        stats = data.overall[metric]
        out["rows"].append({
            "name": title, "n": stats["n"],
            **{name: charts.fmt_ms(stats[name]) for name, _ in selectors.PERCENTILES},
        })  # fmt: skip
    out["processing_p95"] = data.overall["processing"]["p95"]
    out["queue_wait_p95"] = data.overall["queue_wait"]["p95"]
    return out


def emotion_panel(data: selectors.EmotionTimeline) -> dict[str, Any]:
    k = data.min_group
    sup = [i for i, b in enumerate(data.buckets) if b.suppressed]
    series = [
        Series(label, [b.counts.get(label, 0) for b in data.buckets], charts.emotion_color(label))
        for label in data.labels
    ]
    if data.model_version is None:
        svg = charts.empty_chart(
            "Emotion distribution over time", "no active model", chart_id="chart-emotions", width=WIDE
        )
    else:
        svg = charts.stacked_bar_chart(
            title=f"Share of dominant emotions per day (selfie readings, last {DAYS} days)",
            categories=_day_labels([b.start for b in data.buckets]), series=series, normalize=True,
            suppressed=sup, suppressed_label=_suppressed_label(k), label_every=1, chart_id="chart-emotions",
            width=WIDE, height=300, empty_message=f"no selfie readings by the active model in the last {DAYS} days",
        )  # fmt: skip
    return {
        "svg": _safe(svg),
        "model_version": data.model_version,
        "suppressed": data.suppressed_count,
        "shown": data.shown_count,
        "readings": sum(b.readings for b in data.buckets),
        "min_group": k,
    }


def mood_panel(data: selectors.MoodDistribution) -> dict[str, Any]:
    k = data.min_group
    sl = _suppressed_label(k)
    label_items = [Item(b.label, b.users, charts.emotion_color(b.key), b.suppressed) for b in data.labels]
    valence_items = [Item(b.label, b.users, charts.VALENCE_COLORS[i], b.suppressed) for i, b in enumerate(data.valence)]
    return {
        "donut": _safe(
            charts.donut_chart(
                title=f"Mood of consenting users on {_day_labels([data.day])[0] if data.day else 'the last day'}, "
                "by dominant emotion",
                items=label_items,
                center_label=charts.fmt_number(data.known_users),
                center_sub="users",
                unit="users",
                suppressed_label=sl,
                chart_id="chart-mood-labels",
                empty_message="no selfies that day",
            )
        ),
        "valence": _safe(
            charts.bar_chart(
                title="Mood valence of consenting users on that day",
                items=valence_items,
                unit="users",
                suppressed_label=sl,
                chart_id="chart-mood-valence",
                width=HALF,
                label_width=190,
                empty_message="no selfies that day",
            )
        ),
        "unknown": data.unknown,
        "suppressed_label": sl,
    }


def policy_panel(data: selectors.PolicyUsage) -> dict[str, Any]:
    sl = _suppressed_label(data.min_group)
    items = []
    for b in data.buckets:
        strength = b.extra.get("mean_strength")
        note = f"mean strength {strength:.2f}" if strength is not None and b.key != "off" and b.users else ""
        items.append(
            Item(b.label, b.users, charts.POLICY_COLORS.get(b.key, charts.color_for(b.key)), b.suppressed, note)
        )
    return {
        "svg": _safe(
            charts.bar_chart(
                title="Feed mood policy of all users",
                items=items,
                unit="users",
                suppressed_label=sl,
                chart_id="chart-policies",
                width=HALF,
                label_width=210,
                empty_message="no users",
            )
        ),
        "consenting": data.consenting,
        "suppressed_label": sl,
    }


def model_panel(summary: selectors.ModelSummary | None) -> dict[str, Any]:
    if summary is None:
        return {"summary": None, "versions": selectors.recent_model_versions()}
    items = [Item(label, f1, charts.emotion_color(label)) for label, f1 in summary.per_class_f1]
    return {
        "summary": summary,
        "versions": selectors.recent_model_versions(),
        "f1_svg": _safe(
            charts.bar_chart(
                title=f"Per-class F1 of {summary.version.name} on {summary.split}",
                items=items,
                max_value=1.0,
                value_fmt=lambda v: f"{v:.2f}",
                chart_id="chart-model-f1",
                width=HALF,
                label_width=90,
                empty_message="the model card has no per-class metrics",
            )
        ),
    }


def backlog_panel(data: selectors.QueueBacklog) -> dict[str, Any]:
    items = [
        Item(f"{name} queue", value, "#6c63d9" if name == "fer" else charts.AXIS_COLOR)
        for name, value in data.queues.items()
        if value is not None
    ]
    items += [
        Item("pending in DB", data.pending, charts.STATUS_COLORS["pending"]),
        Item("processing in DB", data.processing, charts.STATUS_COLORS["processing"]),
    ]
    oldest_age = (timezone.now() - data.oldest_pending).total_seconds() * 1000 if data.oldest_pending else None
    return {
        "data": data,
        "svg": _safe(
            charts.bar_chart(
                title="FER backlog: broker queues and unfinished analyses",
                items=items,
                unit="",
                chart_id="chart-backlog",
                width=HALF,
                label_width=130,
                empty_message="nothing waiting: the queue is empty",
            )
        ),
        "oldest_age": charts.fmt_ms(oldest_age) if oldest_age is not None else None,
    }


def rescoring_panel(jobs: list[selectors.RescoringJobRow]) -> dict[str, Any]:
    rows = []
    for job in jobs:
        rows.append({
            "job": job,
            "svg": _safe(charts.progress_bar(title=f"Rescoring job {job.pk} progress", done=job.done,
                                              failed=job.failed, total=job.total, chart_id=f"chart-rescore-{job.pk}")),
        })  # fmt: skip
    return {"rows": rows}


# --- View --------------------------------------------------------------------------------------------


CACHE_KEY = "feedmood:admin-dashboard:aggregates:v1"


def forget_cached_aggregates() -> None:
    """Drop the cached aggregates (a person's emotion data was erased)."""
    cache.delete(CACHE_KEY)


def cache_seconds() -> int:
    """``settings.FEEDMOOD_DASHBOARD_CACHE_SECONDS`` (default 60; 0 turns the cache off)."""
    return max(0, int(settings.FEEDMOOD_DASHBOARD_CACHE_SECONDS))


def heavy_panels(*, now: datetime, min_group: int, version: Any) -> dict[str, Any]:
    """The panels that scan many rows (analyses, latency, emotions, moods)."""
    return {
        "computed_at": now,
        "analyses": analyses_panel(selectors.analyses_per_hour(now=now, hours=HOURS)),
        "latency": latency_panel(selectors.latency_percentiles(now=now, hours=HOURS)),
        "emotions": emotion_panel(
            selectors.emotion_distribution(now=now, days=DAYS, model_version=version, min_group=min_group)
        ),
        "mood": mood_panel(selectors.mood_distribution(now=now, min_group=min_group, model_version=version)),
    }


def build_context(*, now: datetime | None = None, use_cache: bool = False) -> dict[str, Any]:
    """Every panel's data and SVG (no request needed: also used by tests and benchmarks).

    With ``use_cache`` the heavy panels come from Django's cache when they are
    younger than :func:`cache_seconds` (same minimum group size and active
    model); the cheap panels are always fresh.
    """
    now = now or timezone.now()
    k = selectors.min_group_size()
    version = active_model_version()
    ttl = cache_seconds() if use_cache else 0
    heavy = cache.get(CACHE_KEY) if ttl else None
    if not heavy or heavy.get("min_group") != k or heavy.get("version_id") != getattr(version, "pk", None):
        heavy = {
            **heavy_panels(now=now, min_group=k, version=version),
            "min_group": k,
            "version_id": getattr(version, "pk", None),
        }
        if ttl:
            cache.set(CACHE_KEY, heavy, ttl)
    return {
        **heavy,
        "now": now,
        "cached": heavy["computed_at"] != now,
        "min_group": k,
        "min_account_age_days": selectors.min_account_age_days(),
        "hours": HOURS,
        "days": DAYS,
        "policies": policy_panel(selectors.policy_usage(min_group=k, now=now)),
        "model": model_panel(selectors.model_summary(version, now=now)),
        "backlog": backlog_panel(selectors.queue_backlog()),
        "rescoring": rescoring_panel(selectors.rescoring_jobs()),
        "cache_seconds": ttl,
    }


#: The dedicated permission the dashboard needs (being staff is not enough).
PERMISSION = "recommender.view_emotion_dashboard"


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Staff with :data:`PERMISSION` only (wrap with ``admin.site.admin_view``); ``?refresh=1``
    recomputes the cached aggregates."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("The dashboard needs the permission to view the aggregate emotion dashboard.")
    started = time.perf_counter()
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "subtitle": None,
        **build_context(use_cache="refresh" not in request.GET),
    }
    context["build_ms"] = (time.perf_counter() - started) * 1000
    return TemplateResponse(request, "admin/dashboard.html", context)
