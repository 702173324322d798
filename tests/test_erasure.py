"""Erasure is durable.

The request is recorded in the same transaction as the consent change; when
the erase fails (a database lock timeout, a file that cannot be deleted) the
rows or files stay listed and the periodic sweep finishes the job.  The
failures are real: a second PostgreSQL connection holds the rows locked, a
non-empty directory sits where the file is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from emotion import submission
from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from feedmood import erasure
from feedmood import services as core_services
from feedmood.models import ErasureRequest, Post
from recommender.models import MoodState
from tests.conftest import test_database_url


def retained_selfie(user: Any, upload: Any, data: bytes, capture: Any) -> ImageAnalysis:
    with capture(execute=True):
        analysis = submission.selfie_submit(user=user, uploaded_file=upload(data))
    analysis.refresh_from_db()
    assert analysis.status == ImageAnalysis.Status.DONE and default_storage.exists(analysis.image.name)
    return analysis


def block_deletion(name: str) -> Path:
    """Put a non-empty directory where the file is: deleting it then fails with OSError (even as root)."""
    path = Path(default_storage.path(name))
    path.unlink()
    path.mkdir()
    (path / "pinned").write_bytes(b"x")
    return path


@pytest.mark.django_db
def test_a_file_that_cannot_be_deleted_is_finished_by_the_sweep(
    consenting_user, client_for, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    analysis = retained_selfie(consenting_user, upload, face_jpeg, django_capture_on_commit_callbacks)
    blocked = block_deletion(analysis.image.name)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(consenting_user).patch("/api/me/", {"emotion_consent": False}, format="json")
    assert response.status_code == 200
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists() and not FaceReading.objects.exists()
    request = ErasureRequest.objects.get(user_id=consenting_user.pk)
    assert request.completed_at is None and request.files == [analysis.image.name]
    assert "OSError" in request.last_error and analysis.image.name in request.last_error

    # The obstacle goes (an operator fixed the volume); the selfie's bytes are back in place.
    (blocked / "pinned").unlink()
    blocked.rmdir()
    blocked.write_bytes(face_jpeg)
    assert erasure.erasure_sweep(min_age_seconds=0)["completed"] == 1
    request.refresh_from_db()
    assert request.completed_at is not None and request.files == []
    assert not blocked.exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_error_on_the_first_try_is_finished_by_the_sweep(
    consenting_user, client_for, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    settings.FEEDMOOD_ERASURE_LOCK_TIMEOUT_MS = 200
    analysis = retained_selfie(consenting_user, upload, face_jpeg, django_capture_on_commit_callbacks)
    assert MoodState.objects.filter(user=consenting_user).exists()

    url, _ = test_database_url()
    with psycopg.connect(url) as blocker:  # another session holds the user's analyses locked
        blocker.execute(
            f"SELECT 1 FROM {ImageAnalysis._meta.db_table} WHERE owner_id = %s FOR UPDATE", [consenting_user.pk]
        )
        response = client_for(consenting_user).patch("/api/me/", {"emotion_consent": False}, format="json")
        assert response.status_code == 200  # consent is off whatever happens to the erase
        request = ErasureRequest.objects.get(user_id=consenting_user.pk)
        assert request.completed_at is None and request.rows_erased_at is None
        assert "lock timeout" in request.last_error and request.attempts == 0
        assert ImageAnalysis.objects.filter(pk=analysis.pk).exists()  # not erased yet
        blocker.rollback()

    assert erasure.erasure_sweep(min_age_seconds=0)["completed"] == 1
    request.refresh_from_db()
    assert request.completed_at is not None
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists() and not FaceReading.objects.exists()
    assert not MoodState.objects.filter(user=consenting_user).exists()
    assert not default_storage.exists(analysis.image.name)


@pytest.mark.django_db
def test_the_request_commits_with_the_consent_change_and_the_sweep_runs_it_if_nothing_else_did(
    consenting_user, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    analysis = retained_selfie(consenting_user, upload, face_jpeg, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):  # the process dies right after the commit
        core_services.profile_update(user=consenting_user, data={"emotion_consent": False})
    request = ErasureRequest.objects.get(user_id=consenting_user.pk, scope=ErasureRequest.Scope.EMOTION)
    assert ImageAnalysis.objects.filter(pk=analysis.pk).exists()

    assert erasure.erasure_sweep(min_age_seconds=3600)["open"] == 0  # a young request is left to its own run
    with django_capture_on_commit_callbacks(execute=True):
        assert erasure.erasure_sweep(min_age_seconds=0) == {"open": 1, "completed": 1, "orphan_files": 0}
    request.refresh_from_db()
    assert request.completed_at is not None
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists()
    assert not default_storage.exists(analysis.image.name)


@pytest.mark.django_db
def test_the_sweep_deletes_old_files_no_row_references(make_user, image_bytes, settings) -> None:
    author = make_user(username="poster")
    post = Post(author=author, text="kept")
    post.image.save("kept.png", ContentFile(image_bytes("PNG")), save=True)
    orphan = default_storage.save("posts/orphan.png", ContentFile(image_bytes("PNG")))
    young_orphan = default_storage.save("selfies/young.jpg", ContentFile(image_bytes("JPEG")))
    two_hours_ago = time.time() - 7200
    for name in (post.image.name, orphan):
        os.utime(default_storage.path(name), (two_hours_ago, two_hours_ago))

    assert erasure.media_orphans_sweep(grace_seconds=3600) == 1
    assert not default_storage.exists(orphan)
    assert default_storage.exists(post.image.name)  # referenced by its row
    assert default_storage.exists(young_orphan)  # may be an upload whose row is not committed yet
