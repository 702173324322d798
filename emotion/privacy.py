"""Privacy: erase and export a user's emotion data; prune stored selfies; delete files of deleted analyses.

``readings_erase`` removes every analysis, reading and stored selfie of a user through a durable erasure
request (``feedmood.erasure``), as do a consent withdrawal and an account deletion.  Raw selfies are kept
at most ``FEEDMOOD_SELFIE_RETENTION_HOURS`` and, with ``FEEDMOOD_RETAIN_SELFIES`` off, only until their
analysis is final.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from emotion import selectors, signals
from emotion.models import ImageAnalysis
from feedmood.erasure import erasure_record
from feedmood.models import ErasureRequest
from feedmood.services import profile_get_or_create
from feedmood.tasks_utils import run_on_commit

logger = logging.getLogger(__name__)


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
                "timings_ms": selectors.timings_of(analysis),
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
            run_on_commit(lambda names=names: [delete_file_quietly(name) for name in names])
        pruned += len(rows)


def analysis_deleted(*, analysis: ImageAnalysis) -> None:
    """However an analysis is deleted (erase, user or post deletion, admin), its selfie goes too."""
    if analysis.image:
        name = analysis.image.name
        run_on_commit(lambda: delete_file_quietly(name))


def delete_file_quietly(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        logger.warning("Could not delete media file %s", name, exc_info=True)
