"""Aggregate reads for the staff dashboard.

Every function here returns aggregates only — counts, shares and percentiles
over groups of users — never one user's emotions.  Groups of emotion or mood
data (and of feed-policy users) with fewer than :func:`min_group_size`
distinct users are *suppressed*: their values are dropped before they leave
this module (see :func:`is_suppressed`).

Queries group with ``values()/annotate()`` by a bucket index computed in SQL
by :func:`bucket_index` (a ``CASE`` over the bucket start times, built in the
current time zone in Python): the same on SQLite and PostgreSQL, and no
per-row date function (``TruncHour`` is a Python UDF on SQLite, too slow for
100k rows).  Latency percentiles use PostgreSQL's ``percentile_cont`` when
available and a bounded, evenly spread sample in Python otherwise (same linear
interpolation, so both agree).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Aggregate, Avg, Case, Count, F, FloatField, IntegerField, Min, Q, Value, When
from django.db.models.functions import Mod
from django.utils import timezone

from emotion.models import FaceReading, ImageAnalysis, ModelVersion, RescoringJob
from emotion.selectors import active_model_version, artifact_card, stored_card
from feedmood.models import Profile
from ml.card import ModelCard
from ml.runtime import card_flip_below

logger = logging.getLogger(__name__)

PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
LATENCY_METRICS: tuple[tuple[str, str], ...] = (("queue_wait", "queue_wait_ms"), ("processing", "total_ms"))
#: Rows read at most for Python-computed percentiles (SQLite): an evenly spread sample of the window.
LATENCY_SAMPLE_LIMIT = 50_000
STATUS_ORDER: tuple[str, ...] = tuple(ImageAnalysis.Status.values)
#: Celery's Redis transport keeps one list per queue and priority step (kombu's defaults).
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
OTHER_LABEL = "other"
VALENCE_BINS: tuple[tuple[str, float, float], ...] = (
    ("very negative", -1.0, -0.6),
    ("negative", -0.6, -0.2),
    ("neutral", -0.2, 0.2),
    ("positive", 0.2, 0.6),
    ("very positive", 0.6, 1.0),
)


# --- The suppression rule -------------------------------------------------------------------


def min_group_size() -> int:
    """``settings.FEEDMOOD_DASHBOARD_MIN_GROUP`` (default 5), never below 1."""
    return max(1, int(settings.FEEDMOOD_DASHBOARD_MIN_GROUP))


def min_account_age_days() -> int:
    """``settings.FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS`` (default 7): younger accounts are not
    counted, so a handful of fresh fake accounts cannot pad a group up to k."""
    return max(0, int(settings.FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS))


def period_end(now: datetime) -> datetime:
    """End of the last completed day (today's local midnight): emotion aggregates never look past it,
    so nothing a user does today changes what the dashboard shows."""
    return day_buckets(now, 1)[0]


def joined_before(end: datetime) -> datetime:
    """Accounts counted in the period ending at ``end`` joined at or before this."""
    return end - timedelta(days=min_account_age_days())


def is_suppressed(distinct_users: int, min_group: int | None = None) -> bool:
    """A non-empty group of fewer than ``min_group`` distinct users is suppressed.

    An empty group (0 users) is not suppressed: it has nothing to hide and is
    shown as "no data".
    """
    k = min_group_size() if min_group is None else max(1, int(min_group))
    return 0 < int(distinct_users) < k


# --- Time windows ----------------------------------------------------------------------------


def hour_buckets(now: datetime, hours: int) -> list[datetime]:
    """The last ``hours`` hour starts (current time zone), oldest first, ending with ``now``'s hour."""
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def day_buckets(now: datetime, days: int) -> list[datetime]:
    """The last ``days`` local midnights, oldest first, ending with today's."""
    today = timezone.localtime(now).date()
    tz = timezone.get_current_timezone()
    return [
        timezone.make_aware(datetime.combine(today - timedelta(days=days - 1 - i), time.min), tz) for i in range(days)
    ]


def bucket_index(field_name: str, starts: Sequence[datetime]) -> Case:
    """SQL ``CASE`` giving the index of the bucket a row's ``field_name`` falls in (the last start <= value).

    Rows before ``starts[0]`` get -1 (filter them out).  Portable: plain comparisons only.
    """
    whens = [When(**{f"{field_name}__gte": start}, then=Value(i)) for i, start in reversed(list(enumerate(starts)))]
    return Case(*whens, default=Value(-1), output_field=IntegerField())


# --- Analyses per hour by status -------------------------------------------------------------


@dataclass
class HourlyStatus:
    hours: list[datetime]
    counts: dict[str, list[int]]  # status -> one count per hour
    total: int


def analyses_per_hour(*, now: datetime | None = None, hours: int = 24) -> HourlyStatus:
    """Image analyses created in each of the last ``hours`` hours, by status."""
    now = now or timezone.now()
    buckets = hour_buckets(now, hours)
    counts = {status: [0] * hours for status in STATUS_ORDER}
    rows = (
        ImageAnalysis.objects.filter(created_at__gte=buckets[0], created_at__lte=now)
        .annotate(bucket=bucket_index("created_at", buckets))
        .values("bucket", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    total = 0
    for row in rows:
        i = row["bucket"]
        if not 0 <= i < hours:
            continue
        counts.setdefault(row["status"], [0] * hours)[i] += row["n"]
        total += row["n"]
    return HourlyStatus(hours=buckets, counts=counts, total=total)


# --- Latency percentiles ------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL ``percentile_cont(f) WITHIN GROUP (ORDER BY expr)`` (linear interpolation)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        super().__init__(expression, fraction=repr(fraction), **extra)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile of already sorted values (same as ``percentile_cont``)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = fraction * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``{"n": count, "p50": ..., "p95": ..., "p99": ...}`` of the non-null values."""
    ordered = sorted(float(v) for v in values if v is not None)
    return {"n": len(ordered), **{name: percentile(ordered, f) for name, f in PERCENTILES}}


@dataclass
class LatencyReport:
    hours: list[datetime]
    #: metric ("queue_wait" | "processing") -> percentile name -> one value (or None) per hour
    hourly: dict[str, dict[str, list[float | None]]]
    #: metric -> {"n", "p50", "p95", "p99"} over the whole window
    overall: dict[str, dict[str, float | int | None]]
    method: str
    sampled: bool = False


def _latency_postgres(start: datetime, now: datetime, buckets: list[datetime]) -> LatencyReport:
    aggregates: dict[str, Any] = {}
    for metric, column in LATENCY_METRICS:
        aggregates[f"{metric}__n"] = Count(column)
        for name, f in PERCENTILES:
            aggregates[f"{metric}__{name}"] = PercentileCont(column, f)
    base = ImageAnalysis.objects.filter(created_at__gte=start, created_at__lte=now)
    hourly = {m: {p: [None] * len(buckets) for p, _ in PERCENTILES} for m, _ in LATENCY_METRICS}
    for row in (
        base.annotate(bucket=bucket_index("created_at", buckets)).values("bucket").annotate(**aggregates).order_by()
    ):
        i = row["bucket"]
        if not 0 <= i < len(buckets):
            continue
        for metric, _ in LATENCY_METRICS:
            for name, _ in PERCENTILES:
                hourly[metric][name][i] = row[f"{metric}__{name}"]
    totals = base.aggregate(**aggregates)
    overall = {
        m: {"n": totals[f"{m}__n"], **{p: totals[f"{m}__{p}"] for p, _ in PERCENTILES}} for m, _ in LATENCY_METRICS
    }
    return LatencyReport(buckets, hourly, overall, method="PostgreSQL percentile_cont over every analysis")


def _latency_python(start: datetime, now: datetime, buckets: list[datetime], limit: int) -> LatencyReport:
    columns = [c for _, c in LATENCY_METRICS]
    timed = ImageAnalysis.objects.filter(created_at__gte=start, created_at__lte=now).filter(
        Q(queue_wait_ms__isnull=False) | Q(total_ms__isnull=False)
    )
    total = timed.count()
    step = max(1, math.ceil(total / max(limit, 1)))
    sampled = step > 1
    if sampled:  # every step-th id: spread evenly over the window, unlike "the newest N"
        timed = timed.alias(id_mod=Mod(F("id"), step)).filter(id_mod=0)
    rows = list(timed.order_by().annotate(bucket=bucket_index("created_at", buckets)).values_list("bucket", *columns))
    per_hour: list[list[tuple]] = [[] for _ in buckets]
    for row in rows:
        if 0 <= row[0] < len(buckets):
            per_hour[row[0]].append(row)
    hourly = {m: {p: [None] * len(buckets) for p, _ in PERCENTILES} for m, _ in LATENCY_METRICS}
    overall = {}
    for col, (metric, _) in enumerate(LATENCY_METRICS, start=1):
        for i, bucket_rows in enumerate(per_hour):
            stats = summarize(r[col] for r in bucket_rows)
            for name, _ in PERCENTILES:
                hourly[metric][name][i] = stats[name]
        overall[metric] = summarize(r[col] for r in rows)
    method = (
        f"every {step}th of the window's {total:,} timed analyses (sample)"
        if sampled
        else "every analysis of the window"
    )
    return LatencyReport(buckets, hourly, overall, method=f"Python, {method}", sampled=sampled)


def latency_percentiles(
    *,
    now: datetime | None = None,
    hours: int = 24,
    sample_limit: int = LATENCY_SAMPLE_LIMIT,
    use_database: bool | None = None,
) -> LatencyReport:
    """p50/p95/p99 of queue wait and processing time (``total_ms``) per hour and overall.

    ``use_database``: ``None`` picks ``percentile_cont`` on PostgreSQL and Python elsewhere.
    """
    now = now or timezone.now()
    buckets = hour_buckets(now, hours)
    if use_database is None:
        use_database = connection.vendor == "postgresql"
    if use_database:
        return _latency_postgres(buckets[0], now, buckets)
    return _latency_python(buckets[0], now, buckets, sample_limit)


# --- Emotion distribution over time ---------------------------------------------------------------


@dataclass
class EmotionBucket:
    start: datetime
    users: int
    readings: int
    counts: dict[str, int] = field(default_factory=dict)  # empty when suppressed
    suppressed: bool = False

    def share(self, label: str) -> float:
        return self.counts.get(label, 0) / self.readings if self.readings and not self.suppressed else 0.0


@dataclass
class EmotionTimeline:
    model_version: ModelVersion | None
    source: str
    labels: list[str]
    buckets: list[EmotionBucket]
    min_group: int

    @property
    def suppressed_count(self) -> int:
        return sum(1 for b in self.buckets if b.suppressed)

    @property
    def shown_count(self) -> int:
        return sum(1 for b in self.buckets if b.readings and not b.suppressed)


def emotion_distribution(
    *,
    now: datetime | None = None,
    days: int = 14,
    source: str = ImageAnalysis.Source.SELFIE,
    model_version: ModelVersion | None = None,
    min_group: int | None = None,
) -> EmotionTimeline:
    """Share of dominant emotions per completed day among the active model's readings, across users.

    Only the ``days`` days before today (completed periods), of accounts older
    than :func:`min_account_age_days`. Days are bucketed by when the image was
    submitted (``analysis.created_at``, so rescored readings land on the
    selfie's day). Every cell is suppressed below ``min_group`` distinct users:
    an emotion of fewer users is folded into ``other``; a day whose ``other``
    (or whose total) has fewer users is suppressed whole: no counts at all.
    """
    now = now or timezone.now()
    k = min_group_size() if min_group is None else min_group
    version = model_version or active_model_version()
    end = period_end(now)
    buckets_at = day_buckets(end - timedelta(microseconds=1), days)
    labels = list(version.labels) if version is not None and isinstance(version.labels, list) else []
    if version is None:
        return EmotionTimeline(None, source, labels, [EmotionBucket(b, 0, 0) for b in buckets_at], k)
    base = (
        FaceReading.objects.filter(
            model_version=version,
            analysis__source=source,
            analysis__status=ImageAnalysis.Status.DONE,
            analysis__created_at__gte=buckets_at[0],
            analysis__created_at__lt=end,
            analysis__owner__date_joined__lte=joined_before(end),
        )
        .annotate(day=bucket_index("analysis__created_at", buckets_at))
        .order_by()
    )
    users = Count("analysis__owner", distinct=True)
    buckets = [EmotionBucket(b, 0, 0) for b in buckets_at]
    cells: dict[int, dict[str, tuple[int, int]]] = {}
    for row in base.values("day", "dominant_emotion").annotate(users=users, n=Count("id")):
        cells.setdefault(row["day"], {})[row["dominant_emotion"]] = (row["users"], row["n"])
    for row in base.values("day").annotate(users=users, n=Count("id")):
        i = row["day"]
        if 0 <= i < len(buckets):
            _fill_day(
                buckets[i],
                row["users"],
                row["n"],
                cells.get(i, {}),
                labels,
                k,
                lambda shown, i=i: base.filter(day=i).exclude(dominant_emotion__in=shown).aggregate(u=users)["u"],
            )
    if any(OTHER_LABEL in b.counts for b in buckets):
        labels.append(OTHER_LABEL)
    return EmotionTimeline(version, source, labels, buckets, k)


def _fill_day(
    bucket: EmotionBucket,
    users: int,
    readings: int,
    cells: dict[str, tuple[int, int]],
    labels: list[str],
    k: int,
    other_users: Any,
) -> None:
    """Fill one day's counts, cell by cell: listed emotions of at least ``k`` users, the rest as
    ``other`` if that has at least ``k`` users; otherwise the day stays suppressed and empty."""
    if is_suppressed(users, k):
        bucket.suppressed = True  # nothing about a small group leaves this module
        return
    shown = {label: n for label, (u, n) in cells.items() if label in labels and not is_suppressed(u, k)}
    rest = readings - sum(shown.values())
    if rest > 0 and is_suppressed(other_users(list(shown)), k):
        bucket.suppressed = True
        return
    bucket.users, bucket.readings = users, readings
    bucket.counts = {label: shown[label] for label in labels if shown.get(label)}
    if rest > 0:
        bucket.counts[OTHER_LABEL] = rest


# --- Current mood distribution ----------------------------------------------------------------------


@dataclass
class Bucket:
    """A group of users: ``users`` is 0 and ``suppressed`` True when the group is too small to show."""

    key: str
    label: str
    users: int
    suppressed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _bucket(key: str, label: str, users: int, k: int, **extra: Any) -> Bucket:
    if is_suppressed(users, k):
        return Bucket(key, label, 0, True)
    return Bucket(key, label, users, False, extra)


@dataclass
class MoodDistribution:
    labels: list[Bucket]
    valence: list[Bucket]
    known_users: int  # users in shown label buckets only
    unknown: Bucket  # consenting users without a selfie that day
    min_group: int
    day: datetime | None = None  # start of the (completed) day the moods are of


def valence_bin(valence: float) -> int:
    """Index into :data:`VALENCE_BINS` (edges belong to the bin nearer to neutral)."""
    v = min(max(float(valence), -1.0), 1.0)
    if v < -0.6:
        return 0
    if v < -0.2:
        return 1
    if v <= 0.2:
        return 2
    if v <= 0.6:
        return 3
    return 4


def mood_distribution(
    *, now: datetime | None = None, min_group: int | None = None, model_version: ModelVersion | None = None
) -> MoodDistribution:
    """Moods of consenting users on the last completed day, by label and valence bin.

    A user's mood that day is the confidence-weighted mean of their selfie readings
    of that day by the active model (label: the largest mean probability). Only
    accounts older than :func:`min_account_age_days`; ``unknown`` counts the
    consenting users without a selfie that day. Nothing of today is read, so a
    selfie taken now changes nothing shown.
    """
    from recommender.mood import LABELS

    now = now or timezone.now()
    k = min_group_size() if min_group is None else min_group
    version = model_version or active_model_version()
    end = period_end(now)
    counted = Q(emotion_consent=True, user__date_joined__lte=joined_before(end))
    rows = FaceReading.objects.filter(
        model_version=version, analysis__source=ImageAnalysis.Source.SELFIE, analysis__status=ImageAnalysis.Status.DONE,
        analysis__created_at__gte=end - timedelta(days=1), analysis__created_at__lt=end,
        analysis__owner__profile__emotion_consent=True, analysis__owner__date_joined__lte=joined_before(end),
    ).values_list("analysis__owner_id", "probabilities", "valence", "confidence")  # fmt: skip
    sums: dict[int, list[Any]] = {}
    for owner, probs, valence, confidence in rows.iterator(chunk_size=2000):
        w = max(float(confidence or 0.0), 1e-6)
        acc = sums.setdefault(owner, [0.0, 0.0, {}])
        acc[0], acc[1] = acc[0] + w, acc[1] + w * float(valence or 0.0)
        for label, p in (probs or {}).items():
            acc[2][label] = acc[2].get(label, 0.0) + w * float(p)
    by_label: dict[str, int] = {}
    by_valence = [0] * len(VALENCE_BINS)
    for weight, valence_sum, probs in sums.values():
        label = max(probs, key=probs.get) if probs else OTHER_LABEL
        by_label[label] = by_label.get(label, 0) + 1
        by_valence[valence_bin(valence_sum / weight)] += 1
    unknown = max(0, Profile.objects.filter(counted).count() - len(sums))
    order = list(LABELS) + sorted(set(by_label) - set(LABELS))
    label_buckets = [_bucket(lab, lab, by_label[lab], k) for lab in order if by_label.get(lab)]
    valence_buckets = [
        _bucket(name, f"{name} ({lo:+.1f} … {hi:+.1f})", by_valence[i], k)
        for i, (name, lo, hi) in enumerate(VALENCE_BINS)
    ]
    return MoodDistribution(
        labels=label_buckets,
        valence=valence_buckets,
        known_users=sum(b.users for b in label_buckets),
        unknown=_bucket("unknown", "no selfie that day", unknown, k),
        min_group=k,
        day=end - timedelta(days=1),
    )


# --- Feed policy usage --------------------------------------------------------------------------------


@dataclass
class PolicyUsage:
    buckets: list[Bucket]
    consenting: Bucket
    min_group: int


def policy_usage(*, min_group: int | None = None, now: datetime | None = None) -> PolicyUsage:
    """Users per ``Profile.mood_policy`` (accounts older than :func:`min_account_age_days`), with the
    mean mood strength of each shown group."""
    k = min_group_size() if min_group is None else min_group
    profiles = Profile.objects.filter(user__date_joined__lte=joined_before(period_end(now or timezone.now())))
    rows = {
        r["mood_policy"]: r
        for r in profiles.values("mood_policy").annotate(users=Count("id"), strength=Avg("mood_strength")).order_by()
    }
    buckets = []
    for value, label in Profile.MoodPolicy.choices:
        r = rows.get(value, {"users": 0, "strength": None})
        buckets.append(_bucket(value, str(label), r["users"], k, mean_strength=r["strength"]))
    for value, r in rows.items():  # values outside the choices (should not happen), still counted
        if value not in Profile.MoodPolicy.values:
            buckets.append(_bucket(str(value), str(value), r["users"], k, mean_strength=r["strength"]))
    consenting = profiles.filter(emotion_consent=True).count()
    return PolicyUsage(buckets, _bucket("consenting", "users who consent to emotion analysis", consenting, k), k)


# --- Active model ----------------------------------------------------------------------------------------


def _number(*values: Any) -> float | None:
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


@dataclass
class ModelSummary:
    version: ModelVersion
    accuracy: float | None
    macro_f1: float | None
    ece: float | None
    ece_label: str  # which ECE of the card: "calibrated, cross-fitted", "uncalibrated", ... or ""
    split: str
    samples: int | None
    per_class_f1: list[tuple[str, float]]
    analyses_24h: int
    tta: bool | None = None  # test-time flip as the service runs the model (None: the card does not say)
    flip_below: float | None = None  # selective flip: only faces whose first pass is less sure than this
    card_changed: bool = False  # the card on disk is not the one registered (the runtime follows the disk)
    class_bias: bool = False  # calibrated with per-class offsets besides the temperature (ml.calibrate)
    accuracy_held_out: float | None = None  # with class_bias the accuracy is in-sample; this is its 2-fold estimate


def service_metrics(card: ModelCard | None, metrics: dict) -> tuple[dict, bool | None]:
    """The card metrics of the TTA mode the service runs (``FEEDMOOD_MODEL_TTA``), and that mode.

    When the setting flips the card's mode and the card measured that mode (``other_tta``), its figures apply.
    """
    card_tta = card.tta if card is not None else None
    wanted = settings.FEEDMOOD_MODEL_TTA
    other = card.other_tta_for(wanted) if wanted is not None and card is not None else None
    if other is not None:
        return {"split": metrics.get("split"), **other.to_json()}, wanted
    return metrics, card_tta  # the card's own mode, or a flipped one it never measured: its own figures, so labelled


def card_changed_on_disk(version: ModelVersion) -> bool:
    """True when the artifact's model_card.json now differs from the card stored at registration.

    The runtime reads the card from disk, so the service then runs with the new card while the stored figures
    describe the old one. A missing or unreadable card is not reported here (loading the model reports it)."""
    try:
        on_disk = artifact_card(version.artifact_dir)
    except ValidationError:
        return False
    return isinstance(version.card, dict) and bool(version.card) and on_disk.to_json() != version.card


def service_flip_below(card: ModelCard | None, tta: bool | None) -> float | None:
    """The selective-flip threshold the runtime applies in this TTA mode (ml.runtime's rule), or None."""
    if not tta or card is None:  # no card: the stored one is incomplete, the runtime refuses it
        return None
    value = card_flip_below(card, tta)
    return value if math.isfinite(value) else None


def held_out_accuracy(metrics: dict) -> float | None:
    """The 2-fold cross-calibrated accuracy of a class-bias calibration (whose offsets can move the top class,
    so the card's accuracy is in-sample), or None when the figures are temperature-only or do not say."""
    if metrics.get("class_bias") is None:
        return None
    cross = metrics.get("cross_calibration") if isinstance(metrics.get("cross_calibration"), dict) else {}
    return _number(metrics.get("accuracy_held_out"), cross.get("accuracy_after"))


def model_summary(version: ModelVersion | None = None, *, now: datetime | None = None) -> ModelSummary | None:
    """The active model's card metrics (accuracy, macro F1, ECE, per-class F1) and usage counts."""
    version = version or active_model_version()
    if version is None:
        return None
    now = now or timezone.now()
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    card = stored_card(version)
    if not metrics and card is not None and card.metrics:
        metrics = dict(card.metrics)
    metrics, tta = service_metrics(card, metrics)
    ece_keys = (
        ("ece_after_calibration", "calibrated, cross-fitted"),
        ("ece", ""),
        ("ece_calibrated_in_sample", "calibrated, in-sample"),
        ("ece_uncalibrated", "uncalibrated"),
    )
    ece, ece_label = None, ""
    for key, name in ece_keys:
        ece = _number(metrics.get(key))
        if ece is not None:
            ece_label = name
            break
    per_class = metrics.get("per_class") if isinstance(metrics.get("per_class"), dict) else {}
    order = list(version.labels) if isinstance(version.labels, list) else []
    order += [k for k in per_class if k not in order]
    per_class_f1 = []
    for label in order:
        entry = per_class.get(label)
        f1 = _number(entry.get("f1")) if isinstance(entry, dict) else _number(entry)
        if f1 is not None:
            per_class_f1.append((label, f1))
    return ModelSummary(
        version=version,
        accuracy=_number(metrics.get("accuracy")),
        macro_f1=_number(metrics.get("macro_f1")),
        ece=ece,
        ece_label=ece_label,
        split=str(metrics.get("split") or "PublicTest"),
        samples=int(metrics["n"]) if isinstance(metrics.get("n"), int) else None,
        per_class_f1=per_class_f1,
        analyses_24h=ImageAnalysis.objects.filter(
            model_version=version, created_at__gte=now - timedelta(hours=24)
        ).count(),
        tta=tta,
        flip_below=service_flip_below(card, tta),
        card_changed=card_changed_on_disk(version),
        class_bias=metrics.get("class_bias") is not None,
        accuracy_held_out=held_out_accuracy(metrics),
    )


def recent_model_versions(limit: int = 5) -> list[ModelVersion]:
    return list(ModelVersion.objects.order_by("-is_active", "-created_at", "-pk")[:limit])


# --- FER queue backlog -------------------------------------------------------------------------------------


@dataclass
class QueueBacklog:
    mode: str  # "eager" | "redis" | "unavailable" | "error"
    message: str
    queues: dict[str, int | None]  # queue name -> messages waiting in the broker
    pending: int
    processing: int
    oldest_pending: datetime | None
    broker: str = ""

    @property
    def fer(self) -> int | None:
        return self.queues.get("fer")


def redis_queue_lengths(url: str, queues: Sequence[str], *, timeout: float = 0.5) -> dict[str, int]:
    """Messages waiting in Celery's Redis transport lists, all priority steps summed."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for step in REDIS_PRIORITY_STEPS:
                pipe.llen(queue if step == 0 else f"{queue}{REDIS_PRIORITY_SEP}{step}")
        lengths = pipe.execute()
    finally:
        client.close()
    n = len(REDIS_PRIORITY_STEPS)
    return {queue: int(sum(lengths[i * n : (i + 1) * n])) for i, queue in enumerate(queues)}


def _redact(url: str) -> str:
    """The broker URL without credentials (for display)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def queue_backlog(
    *, broker_url: str | None = None, eager: bool | None = None, queues: Sequence[str] | None = None
) -> QueueBacklog:
    """The FER backlog: messages waiting in the broker (Redis only) and unfinished analyses in the database."""
    from config.celery import app as celery_app

    if eager is None:
        eager = bool(celery_app.conf.task_always_eager)
    url = str(broker_url if broker_url is not None else (celery_app.conf.broker_url or "")).split(";")[0].strip()
    if queues is None:
        names = [q.name for q in settings.CELERY_TASK_QUEUES]
        queues = ["fer"] + [n for n in names if n != "fer"]
    rows = {
        r["status"]: r
        for r in ImageAnalysis.objects.filter(
            status__in=[ImageAnalysis.Status.PENDING, ImageAnalysis.Status.PROCESSING]
        )
        .values("status")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    }
    pending = rows.get(ImageAnalysis.Status.PENDING, {}).get("n", 0)
    processing = rows.get(ImageAnalysis.Status.PROCESSING, {}).get("n", 0)
    oldest = rows.get(ImageAnalysis.Status.PENDING, {}).get("oldest")
    lengths: dict[str, int | None] = dict.fromkeys(queues)
    if eager:
        mode, message = "eager", "eager mode: no queue (tasks run in-process)"
    elif url.startswith(("redis://", "rediss://", "unix://")):
        try:
            lengths.update(redis_queue_lengths(url, list(queues)))
            mode, message = "redis", f"Redis broker {_redact(url)}"
        except Exception as exc:
            logger.warning("Dashboard could not read queue lengths from %s: %s", _redact(url), exc)
            mode, message = "error", f"broker unreachable ({type(exc).__name__})"
    else:
        scheme = url.split("://", 1)[0] or "none"
        mode, message = "unavailable", f"queue length not available for the {scheme} broker"
    return QueueBacklog(mode, message, lengths, pending, processing, oldest, _redact(url) if url else "")


# --- Rescoring jobs ------------------------------------------------------------------------------------------


@dataclass
class RescoringJobRow:
    pk: Any
    status: str
    status_display: str
    model_version: str
    total: int
    done: int
    failed: int
    started_at: datetime | None
    finished_at: datetime | None
    admin_url: str | None

    @property
    def progress(self) -> float:
        return min(1.0, (self.done + self.failed) / self.total) if self.total else 0.0


def rescoring_jobs(*, limit: int = 8) -> list[RescoringJobRow]:
    """The newest batch-rescoring jobs with their progress, newest first."""
    from django.urls import reverse

    return [
        RescoringJobRow(
            pk=job.pk, status=job.status, status_display=job.get_status_display(),
            model_version=job.model_version.name, total=job.total, done=job.done, failed=job.failed,
            started_at=job.started_at, finished_at=job.finished_at,
            admin_url=reverse("admin:emotion_rescoringjob_change", args=[job.pk]),
        )
        for job in RescoringJob.objects.select_related("model_version").order_by("-pk")[:limit]
    ]  # fmt: skip
