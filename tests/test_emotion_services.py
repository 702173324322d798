"""Emotion services: submitting, running (idempotently), erasing and exporting analyses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from emotion import model_versions, privacy, selectors, signals, submission
from emotion.analysis import analysis_run
from emotion.fixtures import (  # noqa: F401
    consenting_user,
    face_jpeg,
    faces_png,
    fer_model,
    fer_model_dir,
    no_face_png,
    upload,
)
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from feedmood import services as core_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Any:
    """Collect analysis_finished / readings_erased signals."""
    events: list[tuple[str, dict]] = []

    def on_finished(sender: Any, **kwargs: Any) -> None:
        events.append(("finished", kwargs))

    def on_erased(sender: Any, **kwargs: Any) -> None:
        events.append(("erased", kwargs))

    signals.analysis_finished.connect(on_finished, dispatch_uid="test-finished")
    signals.readings_erased.connect(on_erased, dispatch_uid="test-erased")
    yield events
    signals.analysis_finished.disconnect(dispatch_uid="test-finished")
    signals.readings_erased.disconnect(dispatch_uid="test-erased")


def submit(user: Any, data: bytes, upload: Any, django_capture_on_commit_callbacks: Any) -> ImageAnalysis:
    with django_capture_on_commit_callbacks(execute=True):
        analysis = submission.selfie_submit(user=user, uploaded_file=upload(data))
    analysis.refresh_from_db()
    return analysis


# --- Submitting ---------------------------------------------------------------------------------


def test_selfie_requires_consent(make_user, upload, face_jpeg: bytes) -> None:
    user = make_user(username="nope")
    with pytest.raises(PermissionDenied, match="emotion_consent"):
        submission.selfie_submit(user=user, uploaded_file=upload(face_jpeg))
    assert not ImageAnalysis.objects.exists()


@pytest.mark.parametrize("data", [b"", b"GIF89a not really", b"\xff\xd8\xff\xe0 truncated"])
def test_selfie_is_validated_by_decoding(consenting_user, upload, settings, data: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        submission.selfie_submit(user=consenting_user, uploaded_file=upload(data))
    assert "image" in info.value.message_dict
    assert not ImageAnalysis.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "selfies").exists() or not any(
        (Path(settings.MEDIA_ROOT) / "selfies").iterdir()
    )


def test_selfie_is_analysed_and_deleted(
    consenting_user, fer_model, upload, face_jpeg, settings, received, django_capture_on_commit_callbacks
) -> None:
    analysis = submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    assert analysis.status == ImageAnalysis.Status.DONE
    assert analysis.face_count == 1 and analysis.model_version == fer_model
    assert analysis.attempts == 1 and analysis.error == ""
    assert (analysis.image_width, analysis.image_height) == (640, 480)
    for name in ("queue_wait_ms", "decode_ms", "detect_ms", "classify_ms", "total_ms"):
        assert getattr(analysis, name) is not None and getattr(analysis, name) >= 0, name
    assert analysis.started_at and analysis.finished_at and analysis.finished_at >= analysis.started_at
    reading = analysis.readings.get()
    assert reading.model_version == fer_model and reading.face_index == 0
    assert reading.dominant_emotion in fer_model.labels and set(reading.probabilities) == set(fer_model.labels)
    # The raw selfie is gone from storage and from the row.
    assert analysis.image.name == ""
    assert not any((Path(settings.MEDIA_ROOT) / "selfies").iterdir())
    assert [kind for kind, _ in received] == ["finished"]
    assert received[0][1]["analysis"].pk == analysis.pk


def test_selfie_is_kept_when_retention_is_on(
    consenting_user, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    analysis = submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    assert analysis.status == ImageAnalysis.Status.DONE
    assert analysis.image.name.startswith("selfies/") and analysis.image.name.endswith(".jpg")
    assert default_storage.exists(analysis.image.name)
    assert default_storage.open(analysis.image.name).read() == face_jpeg


def test_selfie_without_face_is_no_face(
    consenting_user, fer_model, upload, no_face_png, received, django_capture_on_commit_callbacks
) -> None:
    analysis = submit(consenting_user, no_face_png, upload, django_capture_on_commit_callbacks)
    assert analysis.status == ImageAnalysis.Status.NO_FACE
    assert analysis.face_count == 0 and not analysis.readings.exists()
    assert [kind for kind, _ in received] == ["finished"]


def test_post_with_image_creates_an_analysis(
    make_user, fer_model, faces_png, upload, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="poster", emotion_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        post = core_services.post_create(
            author=author, text="group photo", image=upload(faces_png, "g.png", "image/png")
        )
    analysis = ImageAnalysis.objects.get(post=post)
    assert analysis.source == ImageAnalysis.Source.POST and analysis.owner == author
    assert analysis.status == ImageAnalysis.Status.DONE and analysis.face_count == 3
    assert analysis.image.name == ""  # the post's image is read in place, never copied
    assert default_storage.exists(post.image.name)  # and never deleted by the analysis
    assert list(analysis.readings.values_list("face_index", flat=True)) == [0]  # one aggregate, not per face


def test_post_without_image_creates_no_analysis(make_user, fer_model, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        core_services.post_create(author=make_user(username="texter"), text="just words")
    assert not ImageAnalysis.objects.exists()


# --- Running -------------------------------------------------------------------------------------


def test_analysis_run_is_idempotent(
    make_user, fer_model, faces_png, upload, received, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="poster", emotion_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        post = core_services.post_create(author=author, image=upload(faces_png, "g.png", "image/png"))
    analysis = ImageAnalysis.objects.get(post=post)
    assert FaceReading.objects.filter(analysis=analysis).count() == 1

    assert analysis_run(analysis.pk) is None  # already final for the active model: no-op
    # Forced re-runs (e.g. a redelivered task after a crash) replace, never duplicate.
    for _ in range(2):
        ImageAnalysis.objects.filter(pk=analysis.pk).update(status=ImageAnalysis.Status.PROCESSING)
        with django_capture_on_commit_callbacks(execute=True):
            assert analysis_run(analysis.pk).status == ImageAnalysis.Status.DONE
    assert FaceReading.objects.filter(analysis=analysis).count() == 1
    analysis.refresh_from_db()
    assert analysis.status == ImageAnalysis.Status.DONE and analysis.attempts == 3


def test_analysis_run_of_a_missing_analysis_does_nothing(fer_model) -> None:
    assert analysis_run(987654) is None


def test_corrupt_stored_image_ends_failed_with_a_clear_error(consenting_user, fer_model, received) -> None:
    analysis = ImageAnalysis.objects.create(owner=consenting_user, source=ImageAnalysis.Source.SELFIE)
    analysis.image.save("x.jpg", ContentFile(b"\xff\xd8\xff garbage"), save=True)
    result = analysis_run(analysis.pk)
    assert result.status == ImageAnalysis.Status.FAILED
    assert "Not an image" in result.error
    assert not result.readings.exists()


def test_missing_file_ends_failed(consenting_user, fer_model) -> None:
    analysis = ImageAnalysis.objects.create(
        owner=consenting_user, source=ImageAnalysis.Source.SELFIE, image="selfies/vanished.jpg"
    )
    result = analysis_run(analysis.pk)
    assert result.status == ImageAnalysis.Status.FAILED and "missing" in result.error


def test_no_model_ends_failed_with_instructions(
    consenting_user, settings, tmp_path, upload, face_jpeg, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_MODEL_DIR = tmp_path / "nothing-here"
    analysis = submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    assert analysis.status == ImageAnalysis.Status.FAILED
    assert "register_model" in analysis.error


# --- Model versions ---------------------------------------------------------------------------------


def test_active_model_is_auto_registered_from_settings(settings, fer_model_dir: Path) -> None:
    settings.FEEDMOOD_MODEL_DIR = fer_model_dir
    assert not ModelVersion.objects.exists()
    version = model_versions.model_version_ensure_active()
    assert version is not None and version.is_active and version.activated_at
    assert version.artifact_dir.resolve() == fer_model_dir.resolve()
    assert version.labels == json.loads((fer_model_dir / "model_card.json").read_text())["labels"]
    assert model_versions.model_version_ensure_active() == version  # no second registration
    assert selectors.active_model_version() == version
    assert selectors.active_model_version_id() == version.pk
    assert ModelVersion.objects.count() == 1


def test_the_active_model_selector_never_writes(settings, fer_model_dir: Path) -> None:
    """Reading the active model on a fresh install registers nothing: only the service does."""
    settings.FEEDMOOD_MODEL_DIR = fer_model_dir
    assert selectors.active_model_version() is None
    assert selectors.active_model_version_id() is None
    assert not ModelVersion.objects.exists()


def test_register_is_idempotent_and_activation_is_exclusive(fer_model_dir: Path, tmp_path: Path) -> None:
    first, created = model_versions.model_version_register(path=fer_model_dir, name="one", activate=True)
    again, created_again = model_versions.model_version_register(path=fer_model_dir, name="one")
    assert created and not created_again and again == first
    second, _ = model_versions.model_version_register(path=fer_model_dir, name="two")
    assert not second.is_active and first.metrics.get("accuracy") is not None
    model_versions.model_version_activate(second)
    first.refresh_from_db()
    assert not first.is_active and second.is_active
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    with pytest.raises(ValidationError, match="not an exported model"):
        model_versions.model_version_register(path=tmp_path)


# --- Privacy: erase and export --------------------------------------------------------------------------


def test_consent_withdrawal_erases_everything(
    consenting_user, make_user, fer_model, upload, face_jpeg, settings, received, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    mine = submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    other = make_user(username="dave", emotion_consent=True)
    theirs = submit(other, face_jpeg, upload, django_capture_on_commit_callbacks)
    assert default_storage.exists(mine.image.name)

    with django_capture_on_commit_callbacks(execute=True):
        core_services.profile_update(user=consenting_user, data={"emotion_consent": False})
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists()
    assert not FaceReading.objects.filter(analysis__owner=consenting_user).exists()
    assert not default_storage.exists(mine.image.name)
    assert ("erased", {"signal": signals.readings_erased, "user": consenting_user}) in received
    # Nobody else's data is touched.
    assert ImageAnalysis.objects.filter(pk=theirs.pk).exists() and default_storage.exists(theirs.image.name)


def test_readings_erase_is_complete(
    consenting_user, fer_model, upload, face_jpeg, settings, django_capture_on_commit_callbacks
) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    for _ in range(2):
        submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert privacy.readings_erase(user=consenting_user) == 2
    assert not ImageAnalysis.objects.exists() and not FaceReading.objects.exists()
    assert not any((Path(settings.MEDIA_ROOT) / "selfies").iterdir())


def test_export_has_everything_and_is_json(
    consenting_user, fer_model, upload, face_jpeg, no_face_png, django_capture_on_commit_callbacks
) -> None:
    submit(consenting_user, face_jpeg, upload, django_capture_on_commit_callbacks)
    submit(consenting_user, no_face_png, upload, django_capture_on_commit_callbacks)
    data = json.loads(json.dumps(privacy.readings_export(user=consenting_user)))
    assert data["user"] == "carol" and data["emotion_consent"] is True
    assert [a["status"] for a in data["analyses"]] == ["done", "no_face"]
    reading = data["analyses"][0]["readings"][0]
    assert reading["model_version"] == fer_model.name
    assert set(reading) >= {"box", "probabilities", "dominant_emotion", "confidence", "valence", "arousal"}
