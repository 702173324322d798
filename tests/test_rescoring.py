"""Batch rescoring at the service level, with Celery eager: jobs, resume, no mixing, beat tasks.

The real-worker runs (a full job on Redis, a worker killed mid-job) are in
``test_rescoring_worker.py``.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

import emotion.analysis
from emotion import model_versions, privacy, rescoring
from emotion.analysis import analysis_run
from emotion.fixtures import fer_model, fer_model_dir  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis, ModelVersion, RescoringJob
from recommender import selectors as rec_selectors
from recommender import services as rec_services
from recommender.models import MoodState, PostAffect
from tests import rescoring_factories as rf
from tests.rescoring_factories import v1, v2  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def retain(settings: Any) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True


def run_lane(job: RescoringJob, lane: int = 0, *, max_chunks: int = 100) -> list[rescoring.ChunkResult]:
    """Run a lane's chunks in-process until it has no more work (what the task chain does)."""
    results = [rescoring.rescoring_run_chunk(job.pk, lane)]
    while results[-1].more and len(results) < max_chunks:
        results.append(rescoring.rescoring_run_chunk(job.pk, lane))
    return results


def active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


# --- A full job ---------------------------------------------------------------------------------------


def test_activation_rescores_every_stored_image_then_switches(
    v1, v2, retain, settings, make_user, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="author")
    fan = make_user(username="fan", emotion_consent=True)
    forgetful = make_user(username="forgetful", emotion_consent=True)
    posts = [rf.post_analysis(author, kind) for kind in ("one", "one", "three", "none", "one")]
    selfies = [rf.selfie_analysis(fan), rf.selfie_analysis(fan)]
    settings.FEEDMOOD_RETAIN_SELFIES = False
    gone = rf.selfie_analysis(forgetful)  # not retained: cannot be rescored
    settings.FEEDMOOD_RETAIN_SELFIES = True
    assert not gone.image and gone.status == "done"
    rec_services.mood_recompute(user=fan)
    rec_services.mood_recompute(user=forgetful)
    assert MoodState.objects.get(user=forgetful).model_version == v1

    with django_capture_on_commit_callbacks(execute=True):
        model_versions.model_version_activate(v2)

    job = RescoringJob.objects.get()
    assert job.status == "completed" and job.model_version == v2 and job.previous_version == v1
    assert (job.total, job.done, job.failed) == (7, 7, 0)
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at and not job.error
    assert job.cursor == max(a.pk for a in posts + selfies) and job.progress == 1.0
    assert active() == v2
    rf.assert_scored_once(posts + selfies, v1, v2)  # old readings kept, new ones once per face
    assert [a.face_count for a in posts] == [1, 1, 3, 0, 1]
    assert all(a.model_version_id == v2.pk for a in posts + selfies)
    assert rf.readings_per_version(gone) == {v1.pk: [0]}
    # model_activated -> the recommender switched moods and post affect to v2's readings only.
    assert MoodState.objects.get(user=fan).model_version == v2
    assert MoodState.objects.get(user=fan).reading_count == 2
    assert not MoodState.objects.filter(user=forgetful).exists()  # unknown until the next selfie
    assert set(PostAffect.objects.filter(source="faces").values_list("model_version_id", flat=True)) == {v2.pk}


def test_activating_with_nothing_to_rescore_switches_at_once(v1, v2) -> None:
    model_versions.model_version_activate(v2)
    job = RescoringJob.objects.get()
    assert job.status == "completed" and (job.total, job.done, job.failed) == (0, 0, 0)
    assert active() == v2


def test_first_activation_and_reactivation_need_no_job(fer_model_dir: Path) -> None:
    first, _ = model_versions.model_version_register(path=fer_model_dir, name="first", activate=True, smoke_test=False)
    assert first.is_active and not RescoringJob.objects.exists()
    assert rescoring.rescoring_start(first) is None and not RescoringJob.objects.exists()


# --- Resuming, duplicates, no mixing ------------------------------------------------------------------------


def test_interrupted_job_resumes_where_it_stopped_without_duplicates(v1, v2, make_user) -> None:
    author = make_user(username="author")
    analyses = [rf.post_analysis(author, kind) for kind in ("one", "three", "one", "none", "one")]
    job = rescoring.rescoring_start(v2, chunk_size=2, parallelism=1)  # lanes queue on commit: never here
    assert job.status == "pending" and job.total == 5 and active() == v1

    first = rescoring.rescoring_run_chunk(job.pk)
    job.refresh_from_db()
    assert first.more and (first.done, first.failed) == (2, 0)
    assert job.status == "running" and (job.done, job.cursor) == (2, analyses[1].pk) and job.heartbeat_at
    # A worker scored the next analysis, then died before committing the chunk ...
    analysis_run(analyses[2].pk, model_version=v2, notify=False)
    # ... and a stale duplicate of the first chunk (redelivered after a broker restart) commits nothing.
    stale = rescoring._commit_chunk(job.pk, 0, 0, analyses[1].pk, 2, 0)
    assert stale.duplicate and not stale.more
    job.refresh_from_db()
    assert job.done == 2

    results = run_lane(job)
    job.refresh_from_db()
    assert [r.processed for r in results] == [2, 1, 0] and results[-1].status == "completed"
    assert job.status == "completed" and (job.total, job.done, job.failed) == (5, 5, 0)
    rf.assert_scored_once(analyses, v1, v2)
    analyses[2].refresh_from_db()
    assert analyses[2].attempts == 2  # once with v1, once with v2: the resumed chunk did not redo it
    assert active() == v2
    # Re-running a finished job is a no-op.
    assert rescoring.rescoring_run_chunk(job.pk) == rescoring.ChunkResult(job.pk, 0, "completed")


def test_moods_use_only_the_active_version_until_the_switch(v1, v2, retain, make_user) -> None:
    fan = make_user(username="fan", emotion_consent=True)
    selfies = [rf.selfie_analysis(fan) for _ in range(3)]
    job = rescoring.rescoring_start(v2, chunk_size=2, parallelism=1)
    rescoring.rescoring_run_chunk(job.pk)  # two of three selfies now have v2 readings as well
    assert FaceReading.objects.filter(model_version=v2).count() == 2

    state = rec_services.mood_recompute(user=fan)
    assert active() == v1 and state.model_version == v1 and state.reading_count == 3  # v1 only, all three
    new_selfie = rf.selfie_analysis(fan)  # interactive analyses keep using the active version during the job
    assert rf.readings_per_version(new_selfie) == {v1.pk: [0]}
    analysis_run(selfies[0].pk)  # e.g. a redelivered interactive task: its result is v1's again
    assert ImageAnalysis.objects.get(pk=selfies[0].pk).model_version == v1

    run_lane(job)
    assert active() == v2
    rf.assert_scored_once([*selfies, new_selfie], v1, v2)  # the job swept the analysis created meanwhile
    assert set(ImageAnalysis.objects.values_list("model_version_id", flat=True)) == {v2.pk}  # current: v2's
    state = rec_services.mood_recompute(user=fan)
    assert state.model_version == v2 and state.reading_count == 4
    readings = rec_selectors.selfie_readings(user=fan, model_version_id=v2.pk)
    assert len(readings) == 4


def test_lanes_reopen_for_analyses_created_while_the_job_ran(
    v1, v2, make_user, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(4)]
    job = rescoring.rescoring_start(v2, chunk_size=10, parallelism=2)
    lane_of = {a.pk: a.pk % 2 for a in analyses}
    run_lane(job, 0)
    job.refresh_from_db()
    assert job.lanes[0]["finished"] and not job.lanes[1]["finished"] and job.status == "running"
    late = [rf.post_analysis(author) for _ in range(2)]  # one per lane, created after lane 0 finished
    assert {a.pk % 2 for a in late} == {0, 1}

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_lane(job, 1)
    job.refresh_from_db()
    assert job.status == "running" and not job.lanes[0]["finished"] and len(callbacks) == 1  # lane 0 re-enqueued
    run_lane(job, 0)
    job.refresh_from_db()
    assert job.status == "completed" and (job.done, job.total) == (6, 6)
    rf.assert_scored_once(analyses + late, v1, v2)
    assert set(lane_of.values()) == {0, 1}


def test_images_analysed_with_the_old_model_around_the_switch_are_caught_up(
    v1, v2, make_user, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(3)]
    hole = analyses.pop(1)
    hole_id = hole.pk
    hole.post.delete()  # its id is free again
    job = rescoring.rescoring_start(v2, chunk_size=10, parallelism=1)
    run_lane(job, max_chunks=1)
    # An id handed out before the lane passed it, committed after (concurrent transactions), done with v1.
    late = rf.post_analysis(author, run=False)
    ImageAnalysis.objects.filter(pk=late.pk).update(id=hole_id)
    analysis_run(hole_id)
    assert rf.readings_per_version(ImageAnalysis.objects.get(pk=hole_id)) == {v1.pk: [0]}

    with django_capture_on_commit_callbacks(execute=True):
        run_lane(job)
    assert active() == v2 and RescoringJob.objects.get().done == 2
    caught_up = ImageAnalysis.objects.get(pk=hole_id)
    assert caught_up.model_version == v2 and rf.readings_per_version(caught_up) == {v1.pk: [0], v2.pk: [0]}


def test_an_analysis_in_flight_across_the_switch_is_scored_with_the_new_model(v1, v2, make_user, monkeypatch) -> None:
    author = make_user(username="author")
    analysis = rf.post_analysis(author, run=False)
    original = emotion.analysis._finish

    def finish_then_switch(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not ModelVersion.objects.filter(pk=v2.pk, is_active=True).exists():
            model_versions.model_version_switch(v2)  # the job completed while this analysis ran with v1
        return result

    monkeypatch.setattr(emotion.analysis, "_finish", finish_then_switch)
    analysis_run(analysis.pk)
    analysis.refresh_from_db()
    assert analysis.model_version == v2 and rf.readings_per_version(analysis) == {v1.pk: [0], v2.pk: [0]}


# --- Activation rules, failures, cancelling -------------------------------------------------------------------


def test_reactivating_returns_the_open_job_and_another_version_supersedes_it(v1, v2, fer_model_dir, make_user) -> None:
    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(3)]
    job = rescoring.rescoring_start(v2, chunk_size=2)
    assert rescoring.rescoring_start(v2) == job
    rescoring.rescoring_run_chunk(job.pk, 0)
    assert ImageAnalysis.objects.filter(model_version=v2).exists()  # the job's current results so far

    v3, _ = model_versions.model_version_register(path=fer_model_dir, name="candidate-v3", smoke_test=False)
    newer = rescoring.rescoring_start(v3)
    job.refresh_from_db()
    assert job.status == "cancelled" and "candidate-v3" in job.error and job.finished_at
    assert newer.is_open and newer.model_version == v3 and active() == v1
    # Cancelled: analyses show the active version's result again (v2's readings stay, unused).
    assert set(ImageAnalysis.objects.values_list("model_version_id", flat=True)) == {v1.pk}
    assert rescoring.rescoring_run_chunk(job.pk, 0).status == "cancelled"

    assert rescoring.rescoring_start(v1) is None  # back to the active one: nothing to rescore
    newer.refresh_from_db()
    assert newer.status == "cancelled" and active() == v1
    assert len(analyses) == 3


def test_a_model_that_does_not_load_fails_the_job_and_keeps_the_old_one(v1, v2, make_user, tmp_path) -> None:
    rf.post_analysis(make_user(username="author"))
    job = rescoring.rescoring_start(v2)
    ModelVersion.objects.filter(pk=v2.pk).update(artifact_path=str(tmp_path))
    result = rescoring.rescoring_run_chunk(job.pk, 0)
    job.refresh_from_db()
    assert result.status == job.status == "failed" and "does not load" in job.error
    assert active() == v1


def test_too_many_failures_keep_the_old_model(v1, v2, make_user) -> None:
    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(3)]
    for analysis in analyses[:2]:
        analysis.post.image.storage.delete(analysis.post.image.name)  # lost from storage since
    job = rescoring.rescoring_start(v2, parallelism=1)
    run_lane(job)
    job.refresh_from_db()
    assert job.status == "failed" and (job.done, job.failed) == (1, 2) and "2 of 3" in job.error
    assert active() == v1
    assert ImageAnalysis.objects.get(pk=analyses[2].pk).model_version == v1  # pointed back at the active result


# --- Beat: resuming stalled jobs, pruning selfies --------------------------------------------------------------


def test_beat_resumes_stalled_jobs(v1, v2, make_user, django_capture_on_commit_callbacks) -> None:
    from emotion.tasks import resume_stalled_rescoring_jobs

    author = make_user(username="author")
    analyses = [rf.post_analysis(author) for _ in range(3)]
    job = rescoring.rescoring_start(v2, chunk_size=1, parallelism=1)  # its messages were lost (not run)
    rescoring.rescoring_run_chunk(job.pk)
    assert resume_stalled_rescoring_jobs.delay().get() == []  # progress a moment ago: not stalled

    RescoringJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert resume_stalled_rescoring_jobs.delay().get() == [job.pk]
    job.refresh_from_db()
    assert job.status == "completed" and (job.done, job.failed) == (3, 0) and active() == v2
    rf.assert_scored_once(analyses, v1, v2)


def test_prune_expired_selfies(v1, settings, make_user, django_capture_on_commit_callbacks) -> None:
    from emotion.tasks import prune_expired_selfies

    settings.FEEDMOOD_RETAIN_SELFIES = True
    settings.FEEDMOOD_SELFIE_RETENTION_HOURS = 24
    user = make_user(username="selfish", emotion_consent=True)
    old, recent = rf.selfie_analysis(user), rf.selfie_analysis(user)
    pending = rf.selfie_analysis(user, run=False)
    ImageAnalysis.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    files = {a.pk: Path(settings.MEDIA_ROOT) / a.image.name for a in (old, recent, pending)}
    assert all(path.exists() for path in files.values())

    with django_capture_on_commit_callbacks(execute=True):
        assert prune_expired_selfies.delay().get() == 1
    assert not files[old.pk].exists() and files[recent.pk].exists() and files[pending.pk].exists()
    assert ImageAnalysis.objects.get(pk=old.pk).image == ""
    assert FaceReading.objects.filter(analysis=old).exists()  # readings stay, only the raw image goes

    settings.FEEDMOOD_RETAIN_SELFIES = False  # retention turned off: finished selfies go, pending ones wait
    with django_capture_on_commit_callbacks(execute=True):
        assert privacy.selfies_prune_expired() == 1
    assert not files[recent.pk].exists() and files[pending.pk].exists()


def test_beat_schedule_is_synced_to_the_database_scheduler(transactional_db: None) -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from config.celery import app

    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    tasks = {entry["task"] for entry in schedule.values()}
    assert {"emotion.tasks.resume_stalled_rescoring_jobs", "emotion.tasks.prune_expired_selfies"} <= tasks
    assert tasks <= set(app.tasks)
    DatabaseScheduler(app=app)  # what `celery -A config beat` does at start-up
    synced = dict(PeriodicTask.objects.values_list("task", "enabled"))
    assert synced["emotion.tasks.resume_stalled_rescoring_jobs"] and synced["emotion.tasks.prune_expired_selfies"]
    router = app.amqp.router
    for name in ("emotion.tasks.rescore_chunk", "emotion.tasks.resume_stalled_rescoring_jobs",
                 "emotion.tasks.prune_expired_selfies"):  # fmt: skip
        assert router.route({}, name)["queue"].name == "batch", name
    assert router.route({}, "emotion.tasks.analyze_image")["queue"].name == "fer"


# --- Admin and commands ---------------------------------------------------------------------------------------


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_activate_model_command_starts_a_job(v1, v2, make_user, fer_model_dir) -> None:
    rf.post_analysis(make_user(username="author"))
    out = run_command("activate_model", "candidate-v2", "--chunk-size", "4")
    job = RescoringJob.objects.get()
    assert f"Rescoring job {job.pk} started" in out and "stays active" in out and job.chunk_size == 4
    assert active() == v1
    assert f"job {job.pk}: candidate-v2 pending" in run_command("rescoring_status")
    run_lane(job, 0)
    run_lane(job, 1)
    assert "completed 100%" in run_command("rescoring_status", str(job.pk))
    assert "candidate-v2 is now the active model" in run_command("activate_model", "candidate-v2")
    with pytest.raises(CommandError, match="No rescoring job"):
        run_command("rescoring_status", "999999")
    out = run_command("register_model", str(fer_model_dir), "--name", "candidate-v3", "--activate")
    assert "inactive until rescoring job" in out and active() == v2
    newest = RescoringJob.objects.order_by("-pk").first()
    assert newest.model_version.name == "candidate-v3" and newest.previous_version == v2
    assert "cancelled" in run_command("rescoring_status", str(newest.pk), "--cancel") and active() == v2


SHIPPED_CNN = Path(__file__).resolve().parents[1] / "ml" / "artifacts" / "cnn-ferplus"


@pytest.mark.skipif(not SHIPPED_CNN.is_dir(), reason="ml/artifacts/cnn-ferplus is not exported (docs/seed-models.md)")
def test_the_shipped_reference_cnn_takes_over_through_register_model_and_rescoring(v1, retain, make_user) -> None:
    """``register_model ml/artifacts/cnn-ferplus --activate`` rescores what the active model analysed with the
    other architecture, switches when the job completes, and then serves new uploads."""
    author = make_user(username="author")
    fan = make_user(username="fan", emotion_consent=True)
    stored = [rf.post_analysis(author, "one"), rf.post_analysis(author, "three"), rf.selfie_analysis(fan)]
    out = run_command("register_model", str(SHIPPED_CNN), "--name", "reference-cnn", "--activate")
    job = RescoringJob.objects.get()
    assert "inactive until rescoring job" in out and active() == v1
    run_lane(job, 0)
    run_lane(job, 1)
    job.refresh_from_db()
    assert job.status == "completed" and (job.total, job.done, job.failed) == (3, 3, 0), job.error
    cnn = active()
    assert cnn is not None and cnn.name == "reference-cnn" and cnn.card["training"]["model"] == "cnn"
    assert v1.card.get("training", {}).get("model") != "cnn"
    rf.assert_scored_once(stored, v1, cnn)
    fresh = rf.post_analysis(author, "one")
    assert fresh.model_version_id == cnn.pk and rf.readings_per_version(fresh) == {cnn.pk: [0]}


def test_admin_activate_action_and_job_changelist(v1, v2, make_user) -> None:
    from django.contrib.auth import get_user_model

    rf.post_analysis(make_user(username="author"))
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-pw-pw-pw")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/emotion/modelversion/", {"action": "activate", "_selected_action": [v2.pk]}, follow=True
    )
    job = RescoringJob.objects.get()
    page = response.content.decode()
    assert f"Rescoring job #{job.pk} started" in page and "stays active until it completes" in page
    assert active() == v1
    page = client.get("/admin/emotion/rescoringjob/").content.decode()
    assert "<progress" in page and "candidate-v2" in page
    assert client.get(f"/admin/emotion/rescoringjob/{job.pk}/change/").status_code == 200
    assert client.get("/admin/emotion/rescoringjob/add/").status_code == 403
    client.post("/admin/emotion/rescoringjob/", {"action": "cancel", "_selected_action": [job.pk]}, follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled" and active() == v1
