"""Staff admin dashboard: access, aggregates on small data, the suppression rule, admin polish."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard import selectors, views
from emotion.models import ImageAnalysis
from feedmood.models import Post, Profile, Reaction
from ml.card import new_card
from recommender.mood import LABELS
from tests.dashboard_seed import (
    SEEDED_CHARTS,
    make_analysis,
    make_reading,
    make_users,
    make_version,
    seed_dashboard,
    seed_rescoring_jobs,
    selfie,
)
from tests.factories import PostFactory, ReactionFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"
LOGIN_REDIRECT = f"/admin/login/?next={URL}"


# --- The suppression rule -----------------------------------------------------------------------


def test_four_users_are_suppressed_five_are_shown() -> None:
    assert selectors.is_suppressed(4, 5) is True
    assert selectors.is_suppressed(5, 5) is False
    assert selectors.is_suppressed(1, 5) is True
    assert selectors.is_suppressed(0, 5) is False  # an empty group has nothing to hide: "no data"
    assert selectors.is_suppressed(500, 5) is False


def test_suppression_threshold_comes_from_settings(settings) -> None:
    assert selectors.min_group_size() == 5  # the default
    assert selectors.is_suppressed(4) and not selectors.is_suppressed(5)
    settings.FEEDMOOD_DASHBOARD_MIN_GROUP = 3
    assert selectors.is_suppressed(2) and not selectors.is_suppressed(3)
    settings.FEEDMOOD_DASHBOARD_MIN_GROUP = 0  # never below 1
    assert selectors.min_group_size() == 1


# --- Access -------------------------------------------------------------------------------------


def test_staff_gets_the_dashboard(admin_client) -> None:
    seed_dashboard()
    resp = admin_client.get(URL)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "FeedMood dashboard" in html
    for chart_id in SEEDED_CHARTS:
        assert f'id="{chart_id}"' in html, chart_id
    assert html.count('class="bar"') > 20
    assert "no-data" not in html
    assert "suppressed (&lt; 5 users)" in html
    assert "dashboard/dashboard.css" in html


def test_dashboard_renders_without_any_data(admin_client) -> None:
    resp = admin_client.get(URL)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "no active model" in html
    assert "no analyses in the last 24 hours" in html
    assert "Batch rescoring is not installed yet" in html or "No rescoring job" in html


def test_non_staff_user_is_redirected_to_login(make_user) -> None:
    client = Client()
    client.force_login(make_user(username="bob"))
    resp = client.get(URL)
    assert resp.status_code == 302
    assert resp["Location"] == LOGIN_REDIRECT


def test_anonymous_is_redirected_to_login() -> None:
    resp = Client().get(URL)
    assert resp.status_code == 302
    assert resp["Location"] == LOGIN_REDIRECT


def test_api_token_does_not_open_the_dashboard(auth_client) -> None:
    resp = auth_client.get(URL)
    assert resp.status_code == 302 and resp["Location"] == LOGIN_REDIRECT


def test_admin_index_links_to_the_dashboard(admin_client) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{URL}"' in html
    assert 'id="dashboard-link"' in html


# --- Aggregates on small data ----------------------------------------------------------------------


def test_analyses_per_hour_by_status() -> None:
    (user,) = make_users(1)
    now = timezone.now()
    this_hour = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    make_analysis(user, at=this_hour + timedelta(seconds=1), status="done")
    make_analysis(user, at=this_hour + timedelta(seconds=2), status="done")
    make_analysis(user, at=this_hour - timedelta(minutes=30), status="failed")
    make_analysis(user, at=this_hour - timedelta(hours=5, minutes=1), status="no_face")
    make_analysis(user, at=this_hour - timedelta(hours=30), status="done")  # outside the window
    data = selectors.analyses_per_hour(now=now, hours=24)
    assert len(data.hours) == 24 and data.hours[-1] == this_hour
    assert data.total == 4
    assert data.counts["done"][-1] == 2
    assert data.counts["failed"][-2] == 1
    assert data.counts["no_face"][-7] == 1
    assert sum(data.counts["pending"]) == 0


def test_percentile_matches_linear_interpolation() -> None:
    values = sorted(float(v) for v in range(1, 101))  # 1..100
    assert selectors.percentile(values, 0.5) == pytest.approx(50.5)
    assert selectors.percentile(values, 0.95) == pytest.approx(95.05)
    assert selectors.percentile(values, 0.99) == pytest.approx(99.01)
    assert selectors.percentile([7.0], 0.99) == 7.0
    assert selectors.percentile([], 0.5) is None
    assert selectors.summarize([None, 3.0, 1.0, 2.0]) == {
        "n": 3,
        "p50": 2.0,
        "p95": pytest.approx(2.9),
        "p99": pytest.approx(2.98),
    }


@pytest.mark.parametrize("use_database", [False, True])
def test_latency_percentiles(use_database) -> None:
    from django.db import connection

    if use_database and connection.vendor != "postgresql":
        pytest.skip("percentile_cont needs PostgreSQL")
    (user,) = make_users(1)
    now = timezone.now()
    at = now - timedelta(minutes=10)
    for i in range(1, 101):
        make_analysis(user, at=at, status="done", queue_wait_ms=float(i), total_ms=float(1000 + i))
    make_analysis(user, at=at, status="pending")  # no timings: ignored
    report = selectors.latency_percentiles(now=now, use_database=use_database)
    qw, proc = report.overall["queue_wait"], report.overall["processing"]
    assert qw["n"] == 100 and proc["n"] == 100
    assert qw["p50"] == pytest.approx(50.5) and qw["p95"] == pytest.approx(95.05) and qw["p99"] == pytest.approx(99.01)
    assert proc["p50"] == pytest.approx(1050.5)
    hour = next(i for i, h in enumerate(report.hours) if h <= timezone.localtime(at) < h + timedelta(hours=1))
    assert report.hourly["queue_wait"]["p95"][hour] == pytest.approx(95.05)
    assert report.hourly["processing"]["p99"][hour] == pytest.approx(1099.01)
    others = [v for i, v in enumerate(report.hourly["queue_wait"]["p50"]) if i != hour]
    assert all(v is None for v in others)


def test_latency_python_sample_is_bounded_and_spread_over_the_window() -> None:
    (user,) = make_users(1)
    now = timezone.now()
    for i in range(40):  # two per hour over the last 20 hours
        make_analysis(user, at=now - timedelta(minutes=30 * i + 1), status="done", queue_wait_ms=float(i), total_ms=1.0)
    report = selectors.latency_percentiles(now=now, use_database=False, sample_limit=10)
    assert report.sampled and "sample" in report.method
    assert 8 <= report.overall["queue_wait"]["n"] <= 10
    hours_with_data = [i for i, v in enumerate(report.hourly["queue_wait"]["p50"]) if v is not None]
    assert len(hours_with_data) >= 6 and hours_with_data[0] <= 8 and hours_with_data[-1] >= 20  # not just the newest
    full = selectors.latency_percentiles(now=now, use_database=False)
    assert not full.sampled and full.overall["queue_wait"]["n"] == 40


def test_emotion_distribution_suppresses_every_cell_below_five_users() -> None:
    version = make_version()
    now = timezone.now()
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    day = {n: today - timedelta(days=n) + timedelta(hours=12) for n in (1, 2, 3, 4)}
    happy, sad = make_users(6, prefix="happy"), make_users(5, prefix="sad")
    for user in happy:
        for n in (1, 2, 3):
            selfie(user, version, "happiness", at=day[n])
    selfie(happy[0], version, "happiness", at=day[1] + timedelta(minutes=5))  # a second reading, same user
    for user in sad:
        selfie(user, version, "sadness", at=day[1])
    for i, user in enumerate(sad):  # day 2: 3 + 2 users of two small emotions, 5 together
        selfie(user, version, "fear" if i < 3 else "anger", at=day[2])
    selfie(sad[0], version, "sadness", at=day[3])  # day 3: "sadness: 1 of 7"
    for user in make_users(4, prefix="four"):  # day 4: 4 users in all
        selfie(user, version, "anger", at=day[4])
    for user in sad:  # today: never shown
        selfie(user, version, "sadness", at=now - timedelta(seconds=1))
    data = selectors.emotion_distribution(now=now, days=14, model_version=version)
    by_day = {timezone.localtime(b.start).date(): b for b in data.buckets}
    assert today.date() not in by_day and len(data.buckets) == 14  # completed days only
    b1, b2, b3, b4 = (by_day[day[n].date()] for n in (1, 2, 3, 4))
    assert (b1.users, b1.readings, b1.counts) == (11, 12, {"happiness": 7, "sadness": 5})
    assert b1.share("happiness") == pytest.approx(7 / 12)
    assert b2.counts == {"happiness": 6, "other": 5} and "fear" not in b2.counts
    for small in (b3, b4):  # nothing about a small group leaks, not even inside a shown day
        assert small.suppressed and small.counts == {} and small.readings == 0 and small.users == 0
    assert data.suppressed_count == 2 and data.shown_count == 2


def test_emotion_distribution_counts_only_accounts_older_than_the_minimum_age(settings) -> None:
    version = make_version()
    now = timezone.now()
    yesterday = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=12)
    users = make_users(5)
    type(users[0]).objects.filter(pk__in=[u.pk for u in users[:1]]).update(date_joined=now - timedelta(days=2))
    for user in users:
        selfie(user, version, "happiness", at=yesterday)
    settings.FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS = 7  # four established accounts + a fresh one: not a group
    assert selectors.emotion_distribution(now=now, days=2, model_version=version).buckets[-1].suppressed
    settings.FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS = 1
    assert selectors.emotion_distribution(now=now, days=2, model_version=version).buckets[-1].counts == {"happiness": 5}


def test_emotion_distribution_counts_unknown_labels_as_other() -> None:
    version = make_version()
    now = timezone.now()
    yesterday = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=1)
    users = make_users(10)
    for user in users[:5]:
        selfie(user, version, "happiness", at=yesterday)
    for user in users[5:]:
        reading = make_reading(make_analysis(user, at=yesterday, version=version), version, "happiness")
        type(reading).objects.filter(pk=reading.pk).update(dominant_emotion="confused")
    data = selectors.emotion_distribution(now=now, days=1, model_version=version)
    assert data.buckets[-1].counts == {"happiness": 5, "other": 5} and data.labels[-1] == "other"


def test_emotion_distribution_without_active_model() -> None:
    data = selectors.emotion_distribution(days=3)
    assert data.model_version is None and len(data.buckets) == 3


def test_mood_distribution_counts_moods_of_consenting_users_on_the_last_completed_day() -> None:
    version = make_version()
    now = timezone.now()
    yesterday = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=6)
    happy, sad = make_users(5, prefix="happy"), make_users(4, prefix="sad")
    for user in happy:
        selfie(user, version, "happiness", at=yesterday)
    for user in sad:
        selfie(user, version, "sadness", at=yesterday)
    (no_consent,) = make_users(1, prefix="private", consent=False)
    selfie(no_consent, version, "happiness", at=yesterday)  # never counted
    today_only = make_users(5, prefix="today")
    for user in today_only:  # today is not a completed day: these count as "no selfie that day"
        selfie(user, version, "anger", at=now - timedelta(seconds=1))
    data = selectors.mood_distribution(now=now)
    labels = {b.key: b for b in data.labels}
    assert labels["happiness"].users == 5 and not labels["happiness"].suppressed
    assert labels["sadness"].suppressed and labels["sadness"].users == 0
    assert "anger" not in labels
    valence = {b.key: b for b in data.valence}
    assert valence["positive"].users + valence["very positive"].users == 5
    assert valence["negative"].suppressed or valence["very negative"].suppressed
    assert data.known_users == 5
    assert data.unknown.users == 5


def test_valence_bins() -> None:
    assert [selectors.valence_bin(v) for v in (-1.0, -0.6, -0.2, 0.0, 0.2, 0.21, 0.6, 0.61, 1.0, 3.0)] == [
        0,
        1,
        2,
        2,
        2,
        3,
        3,
        4,
        4,
        4,
    ]


def test_policy_usage() -> None:
    make_users(6, prefix="rep", policy="repair", consent=True)
    make_users(4, prefix="con", policy="congruent", consent=False)
    data = selectors.policy_usage()
    by_key = {b.key: b for b in data.buckets}
    assert by_key["repair"].users == 6 and not by_key["repair"].suppressed
    assert by_key["repair"].extra["mean_strength"] == pytest.approx(0.5)
    assert by_key["congruent"].suppressed and by_key["congruent"].users == 0 and by_key["congruent"].extra == {}
    assert by_key["off"].users == 0 and not by_key["off"].suppressed
    assert data.consenting.users == 6


def test_model_summary_reads_the_card_metrics() -> None:
    version = make_version()
    (user,) = make_users(1)
    make_reading(make_analysis(user, at=timezone.now(), version=version), version, "happiness")
    summary = selectors.model_summary()
    assert summary is not None and summary.version == version
    assert summary.accuracy == pytest.approx(0.7134)
    assert summary.macro_f1 == pytest.approx(0.6421)
    assert summary.ece == pytest.approx(0.0312) and "calibrated" in summary.ece_label
    assert [label for label, _ in summary.per_class_f1][:2] == ["anger", "contempt"]
    assert dict(summary.per_class_f1)["happiness"] == pytest.approx(0.88)
    assert summary.analyses_24h == 1


def whole_card(name: str, **keys) -> dict:
    """A model card as registration stores it (``keys``: further card entries)."""
    return new_card(name=name, head="ferplus", labels=LABELS, fmt="tflite", file="model.tflite", **keys).to_json()


def test_model_summary_follows_the_services_tta_mode(settings, admin_client) -> None:
    version = make_version()
    other = {
        "tta": False,
        "temperature": 1.2,
        "accuracy": 0.70,
        "macro_f1": 0.63,
        "ece_after_calibration": 0.025,
        "n": 3589,
        "per_class": {"happiness": {"f1": 0.86}},
    }
    version.card = whole_card(version.name, tta=True, other_tta=other)
    version.save(update_fields=["card"])
    settings.FEEDMOOD_MODEL_TTA = None
    summary = selectors.model_summary()
    assert summary.tta is True and summary.accuracy == pytest.approx(0.7134)
    settings.FEEDMOOD_MODEL_TTA = False
    summary = selectors.model_summary()
    assert summary.tta is False and summary.accuracy == pytest.approx(0.70) and summary.ece == pytest.approx(0.025)
    assert summary.per_class_f1 == [("happiness", pytest.approx(0.86))] and summary.split == "PublicTest"
    assert "3,589 faces), test-time flip off ·" in admin_client.get(URL).content.decode()
    version.card = whole_card(version.name, tta=True)  # the other mode was never measured: the card's own figures
    version.save(update_fields=["card"])
    summary = selectors.model_summary()
    assert summary.tta is True and summary.accuracy == pytest.approx(0.7134)
    assert summary.flip_below is None

    version.card = whole_card(version.name, tta=True, tta_flip_below=0.7, other_tta=other)  # selective flip
    version.save(update_fields=["card"])
    settings.FEEDMOOD_MODEL_TTA = None
    assert selectors.model_summary().flip_below == pytest.approx(0.7)
    assert "test-time flip on for faces whose top probability is below 0.7 ·" in admin_client.get(URL).content.decode()
    settings.FEEDMOOD_MODEL_TTA = False  # the service turned the flip off: no threshold applies
    assert selectors.model_summary().flip_below is None


def test_model_summary_gives_the_held_out_accuracy_of_a_class_bias_calibration(settings, admin_client) -> None:
    version = make_version()
    settings.FEEDMOOD_MODEL_TTA = None
    summary = selectors.model_summary()
    assert summary.class_bias is False and summary.accuracy_held_out is None  # temperature only: nothing to add
    assert "per-class offset" not in admin_client.get(URL).content.decode()
    version.metrics = {
        **version.metrics,
        "class_bias": [0.1, -0.1, 0.0],
        "accuracy": 0.7005,
        "cross_calibration": {"accuracy_after": 0.6951},
    }
    version.save(update_fields=["metrics"])
    summary = selectors.model_summary()
    assert summary.class_bias is True and summary.accuracy_held_out == pytest.approx(0.6951)
    page = admin_client.get(URL).content.decode()
    assert "69.5% held out" in page and "calibrated by temperature and a per-class offset" in page
    other = {"tta": False, "temperature": 1.1, "accuracy": 0.69, "class_bias": [0.0] * 8, "accuracy_held_out": 0.688}
    version.card = whole_card(version.name, tta=True, other_tta=other)  # the service turned the flip off
    version.save(update_fields=["card"])
    settings.FEEDMOOD_MODEL_TTA = False
    assert selectors.model_summary().accuracy_held_out == pytest.approx(0.688)


def test_model_summary_notices_a_card_changed_on_disk(tmp_path, admin_client) -> None:
    version = make_version()
    version.card = whole_card(version.name, tta=True)
    version.save(update_fields=["card"])
    assert selectors.model_summary().card_changed is False  # no card on disk (artifact_path does not exist)
    (tmp_path / "model_card.json").write_text(json.dumps(version.card))
    version.artifact_path = str(tmp_path)
    version.save(update_fields=["artifact_path"])
    assert selectors.model_summary().card_changed is False
    assert "changed after this version was registered" not in admin_client.get(URL).content.decode()
    (tmp_path / "model_card.json").write_text(json.dumps({**version.card, "tta_flip_below": 0.6}))
    assert selectors.model_summary().card_changed is True
    page = admin_client.get(URL).content.decode()
    assert f"The model card at {tmp_path} changed after this version was registered." in page
    assert f"manage.py register_model {tmp_path} --name NEW --activate" in page
    (tmp_path / "model_card.json").write_text("{not json")
    assert selectors.model_summary().card_changed is False  # unreadable: loading the model reports that


def test_model_summary_tolerates_sparse_cards() -> None:
    make_version(metrics={"accuracy": "n/a", "ece": 0.05})
    summary = selectors.model_summary()
    assert summary.accuracy is None and summary.ece == pytest.approx(0.05) and summary.per_class_f1 == []
    assert selectors.model_summary(None) is not None
    from emotion.models import ModelVersion

    ModelVersion.objects.update(is_active=False)
    assert selectors.model_summary() is None


# --- FER backlog ------------------------------------------------------------------------------------------


def test_backlog_in_eager_mode_has_no_queue() -> None:
    (user,) = make_users(1)
    make_analysis(user, at=timezone.now() - timedelta(minutes=3), status="pending")
    make_analysis(user, at=timezone.now() - timedelta(minutes=1), status="pending")
    make_analysis(user, at=timezone.now(), status="processing")
    backlog = selectors.queue_backlog()  # the tests run tasks eagerly
    assert backlog.mode == "eager" and backlog.message.startswith("eager mode: no queue")
    assert backlog.fer is None
    assert (backlog.pending, backlog.processing) == (2, 1)
    assert timezone.now() - backlog.oldest_pending >= timedelta(minutes=3)


def test_backlog_reads_redis_list_lengths() -> None:
    url = str(django_settings.CELERY_BROKER_URL or "")
    if not url.startswith("redis://"):
        pytest.skip("needs CELERY_BROKER_URL=redis://...")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"Redis at {url} does not answer")
    queue = f"dashboard-test-{uuid.uuid4().hex[:8]}"
    keys = [queue, f"{queue}{selectors.REDIS_PRIORITY_SEP}3"]
    try:
        client.rpush(keys[0], "a", "b", "c")
        client.rpush(keys[1], "d")
        backlog = selectors.queue_backlog(broker_url=url, eager=False, queues=[queue, f"{queue}-empty"])
        assert backlog.mode == "redis"
        assert backlog.queues == {queue: 4, f"{queue}-empty": 0}
    finally:
        client.delete(*keys)
        client.close()


def test_backlog_with_an_unreachable_broker_still_renders() -> None:
    backlog = selectors.queue_backlog(broker_url="redis://user:secret@127.0.0.1:1/0", eager=False, queues=["fer"])
    assert backlog.mode == "error" and "unreachable" in backlog.message
    assert "secret" not in backlog.broker and backlog.fer is None
    other = selectors.queue_backlog(broker_url="amqp://guest@localhost//", eager=False, queues=["fer"])
    assert other.mode == "unavailable"


# --- Rescoring jobs ------------------------------------------------------------------------------------------


def test_rescoring_panel_shows_jobs_with_progress(admin_client) -> None:
    from emotion.models import ModelVersion

    v2 = ModelVersion.objects.create(name="fer-v2", labels=["anger"], artifact_path="/nowhere")
    v3 = ModelVersion.objects.create(name="fer-v3", labels=["anger"], artifact_path="/nowhere")
    done, running = seed_rescoring_jobs(finished_to=v2, running_to=v3, finished=(200, 198, 2), running=(1000, 250, 0))
    jobs = selectors.rescoring_jobs()
    assert [j.pk for j in jobs] == [running.pk, done.pk]
    assert jobs[0].progress == pytest.approx(0.25) and jobs[0].status_display == "Running"
    assert jobs[1].progress == pytest.approx(1.0) and jobs[1].model_version == "fer-v2"
    html = admin_client.get(URL).content.decode()
    assert f'id="chart-rescore-{running.pk}"' in html and "25% · 250 / 1,000" in html
    assert "fer-v3" in html and "Running" in html


def test_rescoring_panel_without_jobs(admin_client) -> None:
    assert selectors.rescoring_jobs() == []
    assert "No rescoring job has run yet." in admin_client.get(URL).content.decode()


# --- The whole page -----------------------------------------------------------------------------------------


def test_build_context_on_seeded_data() -> None:
    seeded = seed_dashboard()
    ctx = views.build_context()
    assert ctx["analyses"]["total"] == seeded.counts["analyses_24h"] + 4  # + pending/processing just now
    assert ctx["emotions"]["shown"] == 5 and ctx["emotions"]["suppressed"] == 1  # completed days only
    assert ctx["model"]["summary"].version == seeded.version
    assert ctx["backlog"]["data"].pending == 3
    mood_svg = str(ctx["mood"]["donut"])
    assert "sadness" in mood_svg and "neutral" in mood_svg and "no-data" not in mood_svg
    assert "congruent" not in str(ctx["policies"]["svg"]) or "suppressed" in str(ctx["policies"]["svg"])


def test_heavy_aggregates_are_cached_until_refresh(admin_client, settings) -> None:
    settings.FEEDMOOD_DASHBOARD_CACHE_SECONDS = 60
    (user,) = make_users(1)
    make_analysis(user, at=timezone.now() - timedelta(minutes=5), status="failed")
    first = admin_client.get(URL).context
    assert first["analyses"]["total"] == 1 and not first["cached"]
    make_analysis(user, at=timezone.now() - timedelta(minutes=4), status="failed")
    make_analysis(user, at=timezone.now() - timedelta(minutes=4), status="pending")
    second = admin_client.get(URL).context
    assert second["cached"] and second["analyses"]["total"] == 1  # from the cache
    assert second["backlog"]["data"].pending == 1  # cheap panels are always fresh
    assert "cached up to 60 s" in admin_client.get(URL).content.decode()
    fresh = admin_client.get(URL + "?refresh=1").context
    assert not fresh["cached"] and fresh["analyses"]["total"] == 3
    settings.FEEDMOOD_DASHBOARD_MIN_GROUP = 3  # another threshold never reuses cached groups
    assert not admin_client.get(URL).context["cached"]


def test_cache_can_be_turned_off(admin_client, settings) -> None:
    settings.FEEDMOOD_DASHBOARD_CACHE_SECONDS = 0
    admin_client.get(URL)
    assert not admin_client.get(URL).context["cached"]


def test_dashboard_never_shows_a_username(admin_client) -> None:
    seeded = seed_dashboard()
    html = admin_client.get(URL).content.decode()
    for user in seeded.users:
        assert user.username not in html


def test_dashboard_query_count_is_bounded(admin_client, django_assert_max_num_queries) -> None:
    seed_dashboard()
    with django_assert_max_num_queries(30):
        assert admin_client.get(URL).status_code == 200


# --- Admin polish -----------------------------------------------------------------------------------------------


def test_admin_changelists_and_forms_render(admin_client) -> None:
    seed_dashboard()
    user = UserFactory(username="carol")
    post = PostFactory(author=user)
    reaction = ReactionFactory(post=post)
    analysis = ImageAnalysis.objects.first()
    for url in [
        "/admin/auth/user/",
        "/admin/auth/user/?q=dash",
        "/admin/auth/user/?profile__emotion_consent__exact=1",
        f"/admin/auth/user/{user.pk}/change/",
        "/admin/auth/user/add/",
        "/admin/feedmood/profile/",
        f"/admin/feedmood/profile/{user.profile.pk}/change/",
        "/admin/feedmood/post/?has_image=no",
        f"/admin/feedmood/post/{post.pk}/change/",
        "/admin/feedmood/follow/",
        "/admin/feedmood/reaction/",
        f"/admin/feedmood/reaction/{reaction.pk}/change/",
        "/admin/emotion/imageanalysis/",
        f"/admin/emotion/imageanalysis/{analysis.pk}/change/",
        "/admin/emotion/modelversion/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_admin_user_add_creates_exactly_one_profile(admin_client) -> None:
    resp = admin_client.post("/admin/auth/user/add/", {
        "username": "dave", "password1": "a-long-enough-pass-123", "password2": "a-long-enough-pass-123",
        "usable_password": "true",
    })  # fmt: skip
    assert resp.status_code == 302, resp.content.decode()[:2000]
    dave = get_user_model().objects.get(username="dave")
    assert Profile.objects.filter(user=dave).count() == 1


def test_admin_cannot_change_consent_or_like_counts(admin_client) -> None:
    user = UserFactory(username="erin")
    html = admin_client.get(f"/admin/feedmood/profile/{user.profile.pk}/change/").content.decode()
    assert 'name="emotion_consent"' not in html  # read-only: consent goes through the API only
    assert 'name="mood_policy"' in html
    post = PostFactory(author=user)
    html = admin_client.get(f"/admin/feedmood/post/{post.pk}/change/").content.decode()
    assert 'name="like_count"' not in html and 'name="text"' in html
    assert admin_client.get("/admin/feedmood/post/add/").status_code == 403
    assert admin_client.get("/admin/feedmood/reaction/add/").status_code == 403
    assert admin_client.get("/admin/feedmood/follow/add/").status_code == 403
    assert admin_client.get("/admin/feedmood/profile/add/").status_code == 403


def test_deleting_a_reaction_in_the_admin_recounts_likes(admin_client) -> None:
    post = PostFactory()
    reactions = [ReactionFactory(post=post) for _ in range(3)]
    Post.objects.filter(pk=post.pk).update(like_count=3)
    resp = admin_client.post(f"/admin/feedmood/reaction/{reactions[0].pk}/delete/", {"post": "yes"})
    assert resp.status_code == 302
    assert Post.objects.get(pk=post.pk).like_count == 2
    resp = admin_client.post("/admin/feedmood/reaction/", {
        "action": "delete_selected", "_selected_action": [r.pk for r in reactions[1:]], "post": "yes",
    })  # fmt: skip
    assert resp.status_code == 302
    assert Reaction.objects.filter(post=post).count() == 0
    assert Post.objects.get(pk=post.pk).like_count == 0
