"""Offline knowledge distillation: blend a shipped artifact's predictions into training targets.

`python -m ml.train ... --teacher ferplus=ml/artifacts/ferplus-ensemble --distill-alpha 0.5`
trains each named head on `alpha * teacher + (1 - alpha) * label`. The teacher is any artifact
that `ml.runtime` loads (an ensemble, with or without flip TTA).

- offline (the default): the teacher scores the un-augmented training images once; the scores
  are cached in the run directory so a resumed run reuses them.
- online (`--teacher-mode online`): the teacher scores every augmented batch inside the input
  pipeline, so the student matches the teacher on the very view it trains on ("consistent
  teaching"). Its flip TTA is off there: the augmentation already flips at random.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np


class DistillError(ValueError):
    """A --teacher argument does not fit the run (unknown head, other labels, unreadable artifact)."""


def parse_teacher(value: str) -> tuple[str, str]:
    """`HEAD=ARTIFACT_DIR` -> (head, directory)."""
    head, sep, path = value.partition("=")
    if not sep or not head.strip() or not path.strip():
        raise ValueError(f"expected HEAD=ARTIFACT_DIR (e.g. ferplus=ml/artifacts/ferplus-ensemble), got {value!r}")
    return head.strip(), path.strip()


def load_teacher(artifact: str | Path, labels: tuple[str, ...], tta: bool | None = None):
    """(classifier, column order giving `labels`) of a teacher artifact; DistillError when it does not fit."""
    from ml.runtime import EmotionClassifier

    try:
        teacher = EmotionClassifier.load(artifact, tta=tta)
    except (FileNotFoundError, ValueError) as exc:
        raise DistillError(f"teacher {artifact}: {exc}") from exc
    if set(teacher.labels) != set(labels):
        raise DistillError(f"teacher {artifact} predicts {list(teacher.labels)}, but the head expects {list(labels)}")
    return teacher, [teacher.labels.index(name) for name in labels]


def teacher_probabilities(
    images: np.ndarray, artifact: str | Path, labels: tuple[str, ...], cache_dir: Path | None = None
) -> np.ndarray:
    """Calibrated probabilities (N, K) of `artifact` on uint8 `images` (N, 48, 48), in `labels` order."""
    teacher, order = load_teacher(artifact, labels)
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    bias = None if teacher.class_bias is None else teacher.class_bias.tolist()
    flip_below = teacher.flip_below if math.isfinite(teacher.flip_below) else None
    key = hashlib.sha256(
        json.dumps(
            [
                teacher.card.file_sha256,
                list(teacher.card.ensemble) or None,
                teacher.temperature,
                bias,
                teacher.tta,
                flip_below,
                digest,
            ]
        ).encode()
    ).hexdigest()[:16]
    cached = cache_dir / f"teacher-{teacher.name}-{key}.npy" if cache_dir else None
    if cached and cached.is_file():
        return np.load(cached)
    probs = teacher.predict_proba(images)[:, order].astype(np.float32)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, probs)
    return probs


class OnlineTeacher:
    """Blends an artifact's probabilities on each augmented batch into one head's targets."""

    def __init__(self, head: str, artifact: str | Path, labels: tuple[str, ...], alpha: float):
        check_alpha(alpha)
        self.classifier, self.order = load_teacher(artifact, labels, tta=False)
        self.head, self.alpha = head, alpha

    def blend(self, images: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Targets for float images (B, 48, 48[, 1]) in 0..255; rows with weight 0 keep theirs."""
        faces = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(images.shape[0], 48, 48)
        probs = self.classifier.predict_proba(faces)[:, self.order]
        return blend_targets(targets.astype(np.float32), weights > 0, probs, self.alpha)


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise DistillError(f"--distill-alpha must be within [0, 1], got {alpha}")


def blend_targets(targets: np.ndarray, valid: np.ndarray, teacher: np.ndarray, alpha: float) -> np.ndarray:
    """`alpha * teacher + (1 - alpha) * targets` on valid rows; invalid rows keep their (zero) targets."""
    check_alpha(alpha)
    if teacher.shape != targets.shape:
        raise DistillError(f"teacher scores have shape {teacher.shape}, targets {targets.shape}")
    mixed = alpha * teacher + (1.0 - alpha) * targets
    return np.where(np.asarray(valid, bool)[:, None], mixed, targets).astype(np.float32)


def agreement(targets: np.ndarray, valid: np.ndarray, teacher: np.ndarray) -> float:
    """Share of valid rows where the teacher's top class is the label's top class."""
    rows = np.asarray(valid, bool)
    if not rows.any():
        return float("nan")
    return float((teacher[rows].argmax(1) == targets[rows].argmax(1)).mean())
