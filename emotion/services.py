"""Write operations of the emotion app (HackSoft style: all writes go through here).

Privacy rules enforced here:

- no image of a user without ``Profile.emotion_consent`` is ever face-analysed:
  consent is checked when a selfie or post image is queued, when the task
  claims it and again (under the profile's row lock) before readings are stored;
- a post image may show other people: only one aggregate reading of the whole
  image is stored for it (``pipeline.aggregate_faces``), never per-face readings;
- a selfie file is deleted as soon as its analysis is final, unless
  ``settings.FEEDMOOD_RETAIN_SELFIES`` is on;
- ``readings_erase`` removes every analysis, reading and stored selfie of a
  user through a durable erasure request (``feedmood.erasure``), as do a
  consent withdrawal and an account deletion;
- nothing leaves the process: the model runs locally.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from emotion import pipeline, selectors, signals
from emotion.inference import get_classifier, load_classifier
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from feedmood.erasure import erasure_record
from feedmood.images import read_upload, validate_image_upload
from feedmood.models import ErasureRequest, Post, Profile
from feedmood.services import profile_get_or_create
from feedmood.tasks_utils import enqueue_on_commit, run_on_commit
from ml.runtime import CARD_NAME

logger = logging.getLogger(__name__)

CONSENT_ENDPOINT = "/api/me/"


class ConsentRequired(PermissionDenied):
    """The user has not opted in to emotion analysis (the API answers 403)."""

    def __init__(self) -> None:
        super().__init__(
            "Emotion analysis is off for your account. Opt in with "
            f'PATCH {CONSENT_ENDPOINT} {{"emotion_consent": true}} to analyse selfies; '
            "you can withdraw at any time and your readings are then erased."
        )


# --- Model versions ---------------------------------------------------------------------


def public_test_metrics(card: dict[str, Any]) -> dict[str, Any]:
    """The card's PublicTest metrics (``metrics.PublicTest`` or a flat ``metrics`` dict)."""
    metrics = card.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    for key in ("PublicTest", "public_test", "publictest", "val", "validation"):
        if isinstance(metrics.get(key), dict):
            return metrics[key]
    return metrics


def model_version_activate(version: ModelVersion) -> ModelVersion:
    """Make ``version`` the active model, after rescoring the stored images with it.

    With no active version (fresh install) it is switched to at once.  Otherwise
    a ``RescoringJob`` re-analyses the stored images with ``version`` on the
    ``batch`` queue and the switch happens when it completes (at once if there
    is nothing to rescore); see ``emotion.rescoring.rescoring_start``, which
    also returns the job.  Returns ``version`` (check ``is_active``).
    """
    from emotion import rescoring

    rescoring.rescoring_start(version)
    version.refresh_from_db(fields=["is_active", "activated_at"])
    return version


@transaction.atomic
def model_version_switch(version: ModelVersion) -> ModelVersion:
    """Make ``version`` the only active model right now; new analyses use it.

    No rescoring: use ``model_version_activate``.  Sends ``model_activated`` on
    commit (the recommender then switches moods and post affect to ``version``).
    """
    list(ModelVersion.objects.select_for_update().filter(is_active=True))  # serialise activations
    ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
    if not version.is_active:
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])
    run_on_commit(lambda: signals.model_activated.send(sender=ModelVersion, version=version))
    return version


def model_version_register(
    *, path: str | Path, name: str | None = None, activate: bool = False, smoke_test: bool = True
) -> tuple[ModelVersion, bool]:
    """Register the artifact at ``path`` (a directory with model_card.json).

    The artifact must load with ``ml.runtime.EmotionClassifier`` and (with
    ``smoke_test``) answer a prediction.  Idempotent for the same name and
    path.  Returns ``(version, created)``; raises ``ValidationError``.
    """
    directory = Path(path).expanduser().resolve()
    if directory.name == CARD_NAME:
        directory = directory.parent
    card = selectors.artifact_card(directory)
    try:
        pipeline.config_from(card.get("pipeline"))  # a card whose pipeline the runtime cannot apply is refused
        classifier = load_classifier(directory)
        if smoke_test:
            probs = classifier.predict_proba(np.full((1, pipeline.FACE_SIDE, pipeline.FACE_SIDE), 128, np.uint8))
            if probs.shape != (1, len(classifier.labels)):
                raise ValueError(f"prediction has shape {probs.shape}")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidationError(f"The model at {directory} does not load: {exc}") from None
    name = (name or str(card.get("name") or directory.name)).strip()
    if not name or len(name) > ModelVersion._meta.get_field("name").max_length:
        raise ValidationError(f"Invalid model version name {name!r}.")

    existing = ModelVersion.objects.filter(name=name).first()
    if existing is not None:
        if existing.artifact_dir.resolve() != directory:
            raise ValidationError(f"A model version named {name!r} already exists at {existing.artifact_path}.")
        if activate:
            model_version_activate(existing)
        return existing, False
    try:
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=name,
                labels=list(classifier.labels),
                artifact_path=_portable_path(directory),
                card=card,
                metrics=public_test_metrics(card),
            )
            if activate:
                model_version_activate(version)
    except IntegrityError:  # a concurrent registration of the same name won
        version = ModelVersion.objects.get(name=name)
        return version, False
    return version, True


def _portable_path(directory: Path) -> str:
    """Store paths inside the project relative to it, so the database survives a move (e.g. into a container)."""
    try:
        return str(directory.relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(directory)


def model_version_register_default() -> ModelVersion | None:
    """Register and activate ``settings.FEEDMOOD_MODEL_DIR`` if no version exists (fresh install)."""
    directory = Path(settings.FEEDMOOD_MODEL_DIR)
    if not (directory / CARD_NAME).is_file():
        logger.warning("No emotion model registered and none at FEEDMOOD_MODEL_DIR=%s", directory)
        return None
    try:
        version, _ = model_version_register(path=directory, activate=True, smoke_test=False)
    except ValidationError as exc:
        logger.error("Could not register the default emotion model: %s", " ".join(exc.messages))
        return None
    if not version.is_active:  # lost a race against another registration: use whatever is active
        return ModelVersion.objects.filter(is_active=True).first()
    return version


# --- Submitting images ------------------------------------------------------------------------


def selfie_submit(*, user: AbstractBaseUser, uploaded_file: IO[bytes] | None) -> ImageAnalysis:
    """Accept a selfie for analysis: consent check, decode validation, private storage.

    Raises ``ConsentRequired`` (403) without consent and ``ValidationError``
    (400) for anything that is not an acceptable image.  The analysis is
    queued on the ``fer`` queue once the transaction commits.
    """
    if not profile_get_or_create(user=user).emotion_consent:
        raise ConsentRequired()
    try:
        validated = validate_image_upload(uploaded_file, owner_id=user.pk)
    except ValidationError as exc:
        raise ValidationError({"image": exc.messages}) from None

    analysis = ImageAnalysis(
        owner=user,
        source=ImageAnalysis.Source.SELFIE,
        image_width=validated.info.width,
        image_height=validated.info.height,
    )
    analysis.image.save(validated.filename, ContentFile(validated.data), save=False)
    stored_name = analysis.image.name
    try:
        with transaction.atomic():
            analysis.save()
            _enqueue(analysis)
    except Exception:
        _delete_file_quietly(stored_name)  # no row, so no orphan file either
        raise
    return analysis


def post_image_submit(*, post: Post) -> ImageAnalysis | None:
    """Queue an analysis of a post's image (read in place, never copied).

    ``None`` if the post has no image or its author has not opted in to emotion analysis.
    """
    if not post.image or not consents(user_id=post.author_id):
        return None
    with transaction.atomic():
        analysis = ImageAnalysis.objects.create(
            owner_id=post.author_id,
            source=ImageAnalysis.Source.POST,
            post=post,
            image_width=post.image_width,
            image_height=post.image_height,
        )
        _enqueue(analysis)
    return analysis


def consents(*, user_id: int, lock: bool = False) -> bool:
    """Whether the user opted in to emotion analysis (``lock``: hold their profile row until commit)."""
    profiles = Profile.objects.filter(user_id=user_id)
    if lock:
        profiles = profiles.select_for_update()
    return bool(profiles.values_list("emotion_consent", flat=True).first())


def _enqueue(analysis: ImageAnalysis) -> None:
    from emotion.tasks import analyze_image

    enqueue_on_commit(analyze_image, analysis.pk)


# --- Running an analysis ------------------------------------------------------------------------


def _read_image_bytes(analysis: ImageAnalysis) -> bytes:
    """The bytes to analyse: the stored selfie, or the post's image in place."""
    if analysis.source == ImageAnalysis.Source.POST:
        field = analysis.post.image if analysis.post_id else None
    else:
        field = analysis.image
    if not field:
        raise pipeline.PipelineError(
            "The image is no longer stored (it was deleted after an earlier analysis).", "gone"
        )
    try:
        with field.storage.open(field.name, "rb") as handle:
            return read_upload(handle)
    except FileNotFoundError:
        raise pipeline.PipelineError("The image file is missing from storage.", "gone") from None
    except ValidationError as exc:
        raise pipeline.PipelineError(" ".join(exc.messages), "too_large") from None


def pipeline_config(version: ModelVersion | None = None) -> pipeline.PipelineConfig:
    """Detection and framing: ``settings.FEEDMOOD_FER_PIPELINE`` (a name or dict) if set, else the
    ``pipeline`` of the version's model card, else the default (see ``pipeline.config_from``)."""
    override = getattr(settings, "FEEDMOOD_FER_PIPELINE", None)
    if override:
        return pipeline.config_from(override)
    return pipeline.config_from((version.card or {}).get("pipeline") if version is not None else None)


def _claim(analysis_id: int, version: ModelVersion | None) -> ImageAnalysis | None:
    """Lock the row and mark it processing; ``None`` if nothing is to be done."""
    with transaction.atomic():
        analysis = (
            ImageAnalysis.objects.select_for_update(of=("self",)).select_related("post").filter(pk=analysis_id).first()
        )
        if analysis is None:
            return None  # erased in the meantime
        if not consents(user_id=analysis.owner_id):
            logger.info("Analysis %s dropped: its owner does not consent to emotion analysis", analysis_id)
            analysis.delete()  # a queued selfie file goes with it (analysis_deleted)
            return None
        if analysis.is_final and version is not None and analysis.model_version_id == version.pk:
            return None  # already done with this model: idempotent no-op
        if _is_poison(analysis):
            return None
        now = timezone.now()
        if analysis.started_at is None:
            analysis.queue_wait_ms = max(0.0, (now - analysis.created_at).total_seconds() * 1000.0)
        analysis.status = ImageAnalysis.Status.PROCESSING
        analysis.started_at = now
        analysis.attempts += 1
        analysis.save(update_fields=["status", "started_at", "queue_wait_ms", "attempts"])
        return analysis


def _is_poison(analysis: ImageAnalysis) -> bool:
    """An analysis delivered ``FEEDMOOD_ANALYSIS_MAX_ATTEMPTS`` times without finishing ends failed (caller holds the lock).

    Each delivery counts at claim time, so a message whose task kills its worker (e.g. out of memory)
    is redelivered only until then, instead of forever.
    """
    limit = int(settings.FEEDMOOD_ANALYSIS_MAX_ATTEMPTS)
    if analysis.is_final or analysis.attempts < limit:
        return False
    analysis.status = ImageAnalysis.Status.FAILED
    analysis.error = (
        f"Analysis abandoned after {analysis.attempts} attempts: the worker stopped while processing this image "
        "each time (for example it ran out of memory). Try a smaller image."
    )
    analysis.finished_at = timezone.now()
    analysis.save(update_fields=["status", "error", "finished_at"])
    logger.error("Emotion analysis %s is a poison message: %s", analysis.pk, analysis.error)
    run_on_commit(lambda: signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis))
    return True


def analysis_run(
    analysis_id: int, *, model_version: ModelVersion | None = None, notify: bool = True
) -> ImageAnalysis | None:
    """Run the FER pipeline for one analysis and store its readings.

    Idempotent: an analysis already final for the model version is left
    alone, and readings for ``(analysis, model_version)`` are replaced in one
    transaction, so redelivered or repeated tasks never duplicate them.  Bad
    input ends as ``failed`` / ``no_face`` (never an exception); database
    errors propagate so the task can retry.  Readings of other model versions
    are kept.  ``notify=False`` (batch rescoring) does not send
    ``analysis_finished``.  Returns the analysis, or ``None`` if it was
    already final or no longer exists.
    """
    version = model_version or selectors.active_model_version()
    claimed = _claim(analysis_id, version)
    if claimed is None:
        return None
    if version is None:
        return _finish(
            claimed, None, None, notify=notify,
            error="No emotion model is installed: register one with `manage.py register_model PATH --activate`.",
        )  # fmt: skip

    started = timezone.now()
    result: pipeline.PipelineResult | None = None
    error = ""
    try:
        data = _read_image_bytes(claimed)
        result = pipeline.analyze_bytes(
            data,
            get_classifier(version.artifact_dir),
            pipeline_config(version),
            max_pixels=settings.FEEDMOOD_WORKER_MAX_IMAGE_PIXELS,
        )
    except pipeline.PipelineError as exc:
        error = exc.message
    except Exception as exc:
        logger.exception("Emotion analysis %s failed unexpectedly", analysis_id)
        error = f"Internal error while analysing the image ({type(exc).__name__})."
    elapsed_ms = (timezone.now() - started).total_seconds() * 1000.0
    analysis = _finish(claimed, version, result, error=error, elapsed_ms=elapsed_ms, notify=notify)
    if model_version is None and analysis is not None:
        current = ModelVersion.objects.filter(is_active=True).first()
        if current is not None and current.pk != version.pk:
            # A batch rescoring switched models while we worked: score with the new one as well.
            return analysis_run(analysis_id, model_version=current, notify=notify)
    return analysis


def _finish(
    claimed: ImageAnalysis,
    version: ModelVersion | None,
    result: pipeline.PipelineResult | None,
    *,
    error: str = "",
    elapsed_ms: float | None = None,
    notify: bool = True,
) -> ImageAnalysis | None:
    """Store the outcome atomically; send ``analysis_finished`` and drop the selfie on commit."""
    with transaction.atomic():
        analysis = ImageAnalysis.objects.select_for_update().filter(pk=claimed.pk).first()
        if analysis is None:
            return None  # erased while we were working: store nothing
        # Under the profile's lock: a withdrawal committing now either sees these readings (and its
        # erasure removes them) or makes us store nothing.
        if not consents(user_id=analysis.owner_id, lock=True):
            analysis.delete()
            return None
        if version is not None:
            FaceReading.objects.filter(analysis=analysis, model_version=version).delete()
        if result is not None:
            faces = result.faces
            if analysis.source == ImageAnalysis.Source.POST:
                faces = tuple(filter(None, [pipeline.aggregate_faces(faces, result.width, result.height)]))
            FaceReading.objects.bulk_create(
                FaceReading(
                    analysis=analysis,
                    model_version=version,
                    face_index=face.index,
                    x=face.box.x,
                    y=face.box.y,
                    w=face.box.w,
                    h=face.box.h,
                    probabilities=face.probabilities,
                    dominant_emotion=face.dominant,
                    confidence=face.confidence,
                    valence=face.valence,
                    arousal=face.arousal,
                )
                for face in faces
            )
            analysis.status = ImageAnalysis.Status.DONE if result.faces else ImageAnalysis.Status.NO_FACE
            analysis.error = ""
            analysis.face_count = result.face_count
            analysis.image_width, analysis.image_height = result.width, result.height
            analysis.decode_ms = round(result.decode_ms, 3)
            analysis.detect_ms = round(result.detect_ms, 3)
            analysis.classify_ms = round(result.classify_ms, 3)
        else:
            analysis.status = ImageAnalysis.Status.FAILED
            analysis.error = error or "The image could not be analysed."
            analysis.face_count = 0
            analysis.decode_ms = analysis.detect_ms = analysis.classify_ms = None
        analysis.model_version = version
        analysis.total_ms = round(elapsed_ms, 3) if elapsed_ms is not None else None
        analysis.finished_at = timezone.now()
        selfie_name = ""
        if analysis.image and not settings.FEEDMOOD_RETAIN_SELFIES:
            selfie_name, analysis.image = analysis.image.name, ""
        analysis.save()
        if selfie_name:
            run_on_commit(lambda: _delete_file_quietly(selfie_name))
        if notify:
            run_on_commit(lambda: signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis))
    return analysis


def analysis_mark_failed(*, analysis_id: int, error: str) -> None:
    """Best effort: mark a non-final analysis failed (a task gave up after its retries)."""
    with transaction.atomic():
        analysis = ImageAnalysis.objects.select_for_update().filter(pk=analysis_id).first()
        if analysis is None or analysis.is_final:
            return
        analysis.status = ImageAnalysis.Status.FAILED
        analysis.error = error[:1000]
        analysis.finished_at = timezone.now()
        analysis.save(update_fields=["status", "error", "finished_at"])
        run_on_commit(lambda: signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis))


# --- Privacy: erase and export ---------------------------------------------------------------------


def readings_erase(*, user: AbstractBaseUser) -> int:
    """Erase all of ``user``'s analyses, readings and stored selfies; returns how many analyses there were.

    Recorded as a durable erasure request and run right after commit (retried
    and swept if that fails); ``readings_erased`` is sent once the rows are gone.
    """
    with transaction.atomic():
        count = ImageAnalysis.objects.filter(owner=user).count()
        erasure_record(user=user, scope=ErasureRequest.Scope.EMOTION)
    return count


def analyses_erase_rows(*, user_id: int) -> list[str]:
    """Delete the user's analyses and readings (inside an erasure's transaction); returns the selfie files.

    Sends ``readings_erased`` after commit.
    """
    # Lock first: an analysis being finished right now commits its readings before we delete.
    rows = list(ImageAnalysis.objects.select_for_update().filter(owner_id=user_id).values_list("pk", "image"))
    ImageAnalysis.objects.filter(pk__in=[pk for pk, _ in rows]).delete()  # readings cascade
    user = get_user_model()(pk=user_id)  # receivers only need the id (the account may be going too)
    run_on_commit(lambda: signals.readings_erased.send(sender=ImageAnalysis, user=user))
    return [name for _, name in rows if name]


def readings_export(*, user: AbstractBaseUser) -> dict[str, Any]:
    """Everything the emotion app stores about ``user``, as a JSON-ready dict."""
    analyses = []
    for analysis in selectors.analyses_for_export(user=user):
        analyses.append(
            {
                "id": analysis.pk,
                "source": analysis.source,
                "post_id": analysis.post_id,
                "status": analysis.status,
                "error": analysis.error,
                "model_version": analysis.model_version.name if analysis.model_version else None,
                "selfie_stored": bool(analysis.image),
                "image_width": analysis.image_width,
                "image_height": analysis.image_height,
                "face_count": analysis.face_count,
                "attempts": analysis.attempts,
                "timings_ms": timings_of(analysis),
                "created_at": _iso(analysis.created_at),
                "started_at": _iso(analysis.started_at),
                "finished_at": _iso(analysis.finished_at),
                "readings": [
                    {
                        "model_version": reading.model_version.name,
                        "face_index": reading.face_index,
                        "box": {"x": reading.x, "y": reading.y, "w": reading.w, "h": reading.h},
                        "probabilities": reading.probabilities,
                        "dominant_emotion": reading.dominant_emotion,
                        "confidence": reading.confidence,
                        "valence": reading.valence,
                        "arousal": reading.arousal,
                        "created_at": _iso(reading.created_at),
                    }
                    for reading in analysis.readings.all()
                ],
            }
        )
    profile = profile_get_or_create(user=user)
    return {
        "user": user.get_username(),
        "exported_at": _iso(timezone.now()),
        "emotion_consent": profile.emotion_consent,
        "emotion_consent_at": _iso(profile.emotion_consent_at),
        "selfies_retained": bool(settings.FEEDMOOD_RETAIN_SELFIES),
        "analyses": analyses,
    }


def timings_of(analysis: ImageAnalysis) -> dict[str, float | None]:
    return {
        "queue_wait": analysis.queue_wait_ms,
        "decode": analysis.decode_ms,
        "detect": analysis.detect_ms,
        "classify": analysis.classify_ms,
        "total": analysis.total_ms,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def selfies_prune_expired(*, now: Any = None, batch_size: int = 500) -> int:
    """Delete stored raw selfies that are no longer needed; returns how many.

    A selfie file goes when it is older than ``FEEDMOOD_SELFIE_RETENTION_HOURS``
    (whether or not selfies are retained), and, with retention off, as soon as
    its analysis is final (normally done right away by ``_finish``; this
    catches files whose deletion failed).  The field is cleared in the same
    transaction and the files are deleted after commit.  Run hourly by beat.
    """
    now = now or timezone.now()
    expired = Q(created_at__lt=now - timedelta(hours=settings.FEEDMOOD_SELFIE_RETENTION_HOURS))
    if not settings.FEEDMOOD_RETAIN_SELFIES:
        expired |= Q(status__in=ImageAnalysis.FINAL_STATUSES)
    candidates = ImageAnalysis.objects.filter(source=ImageAnalysis.Source.SELFIE).exclude(image="").filter(expired)
    pruned = 0
    while True:
        with transaction.atomic():
            rows = list(
                candidates.select_for_update(skip_locked=True).order_by("pk").values_list("pk", "image")[:batch_size]
            )
            if not rows:
                return pruned
            ImageAnalysis.objects.filter(pk__in=[pk for pk, _ in rows]).update(image="")
            names = [name for _, name in rows]
            run_on_commit(lambda names=names: [_delete_file_quietly(name) for name in names])
        pruned += len(rows)


def analysis_deleted(*, analysis: ImageAnalysis) -> None:
    """However an analysis is deleted (erase, user or post deletion, admin), its selfie goes too."""
    if analysis.image:
        name = analysis.image.name
        run_on_commit(lambda: _delete_file_quietly(name))


def _delete_file_quietly(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        logger.warning("Could not delete media file %s", name, exc_info=True)
