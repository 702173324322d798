"""Running one analysis: claim it, run the FER pipeline, store its readings.

Privacy rules enforced here: consent is re-checked when the task claims the analysis and, under the
profile's row lock, before readings are stored; a post image may show other people, so only one aggregate
reading of the whole image is kept for it (``pipeline.aggregate_faces``), never per-face readings; a selfie
file is deleted as soon as its analysis is final, unless ``settings.FEEDMOOD_RETAIN_SELFIES`` is on.
Nothing leaves the process: the model runs locally.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from emotion import pipeline, selectors, signals
from emotion.consent import consents
from emotion.inference import get_classifier
from emotion.model_versions import model_version_ensure_active
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from emotion.privacy import delete_file_quietly
from feedmood.images import read_upload
from feedmood.tasks_utils import run_on_commit

logger = logging.getLogger(__name__)


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


def pipeline_config(
    version: ModelVersion | None = None, source: str = ImageAnalysis.Source.SELFIE
) -> pipeline.PipelineConfig:
    """Detection and framing: ``settings.FEEDMOOD_FER_PIPELINE`` (a name or dict) if set, else the
    ``pipeline`` of the version's model card, else the default (see ``pipeline.config_from``). Post images
    may show several people: with ``FEEDMOOD_POST_IMAGE_GROUP_SEARCH`` they get the group search."""
    override = settings.FEEDMOOD_FER_PIPELINE
    if override:
        config = pipeline.config_from(override)
    else:
        card = selectors.stored_card(version) if version is not None else None
        config = pipeline.config_from(card.pipeline_settings if card is not None else None)
    if source == ImageAnalysis.Source.POST and settings.FEEDMOOD_POST_IMAGE_GROUP_SEARCH:
        return pipeline.for_group_photos(config)
    return config


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
    version = model_version or model_version_ensure_active()
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
            pipeline_config(version, claimed.source),
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
        current = selectors.active_model_version()
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
            run_on_commit(lambda: delete_file_quietly(selfie_name))
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
