"""Model-version writes: register an exported artifact, activate it (through batch rescoring) or switch to it.

Every write to ``ModelVersion`` goes through here; reads are ``emotion.selectors.active_model_version`` and
friends, which never write.  ``model_version_ensure_active`` is the one place a fresh install registers the
shipped model (``settings.FEEDMOOD_MODEL_DIR``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from emotion import pipeline, selectors, signals
from emotion.inference import load_classifier
from emotion.models import ModelVersion
from feedmood.tasks_utils import run_on_commit
from ml.runtime import CARD_NAME

logger = logging.getLogger(__name__)


def model_version_activate(version: ModelVersion) -> ModelVersion:
    """Make ``version`` the active model, after rescoring the stored images with it.

    With no active version (fresh install) it is switched to at once.  Otherwise
    a ``RescoringJob`` re-analyses the stored images with ``version`` on the
    ``batch`` queue and the switch happens when it completes (at once if there
    is nothing to rescore); see ``emotion.rescoring.rescoring_start``, which
    also returns the job.  Returns ``version`` (check ``is_active``).
    """
    from emotion import rescoring  # rescoring switches versions through this module

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
        pipeline.config_from(card.pipeline_settings)  # a card whose pipeline the runtime cannot apply is refused
        classifier = load_classifier(directory)
        if smoke_test:
            probs = classifier.predict_proba(np.full((1, pipeline.FACE_SIDE, pipeline.FACE_SIDE), 128, np.uint8))
            if probs.shape != (1, len(classifier.labels)):
                raise ValueError(f"prediction has shape {probs.shape}")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidationError(f"The model at {directory} does not load: {exc}") from None
    name = (name or card.name).strip()
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
                card=card.to_json(),
                metrics=dict(card.metrics or {}),
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


def model_version_ensure_active() -> ModelVersion | None:
    """The active model version, registering one first on a fresh install.

    With no ``ModelVersion`` at all, the artifact at ``settings.FEEDMOOD_MODEL_DIR`` is registered and
    activated, so ``make run`` works without a manual ``register_model``.  Returns ``None`` when versions
    exist but none is active, or nothing can be registered.
    """
    version = selectors.active_model_version()
    if version is not None or ModelVersion.objects.exists():
        return version
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
        return selectors.active_model_version()
    return version
