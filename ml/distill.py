"""Offline knowledge distillation: blend a shipped artifact's predictions into training targets.

`python -m ml.train ... --teacher ferplus=ml/artifacts/ferplus-ensemble --distill-alpha 0.5`
trains each named head on `alpha * teacher + (1 - alpha) * label`. The teacher (any artifact
that `ml.runtime` loads: an ensemble, with or without flip TTA) scores the un-augmented
training images once; the scores are cached in the run directory so a resumed run reuses them.
"""
from __future__ import annotations

import hashlib
import json
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


def teacher_probabilities(images: np.ndarray, artifact: str | Path, labels: tuple[str, ...],
                          cache_dir: Path | None = None) -> np.ndarray:
    """Calibrated probabilities (N, K) of `artifact` on uint8 `images` (N, 48, 48), in `labels` order."""
    from ml.runtime import EmotionClassifier

    try:
        teacher = EmotionClassifier.load(artifact)
    except (FileNotFoundError, ValueError) as exc:
        raise DistillError(f"teacher {artifact}: {exc}") from exc
    if set(teacher.labels) != set(labels):
        raise DistillError(f"teacher {artifact} predicts {list(teacher.labels)}, but the head expects {list(labels)}")
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    key = hashlib.sha256(json.dumps([teacher.card.get("file_sha256"), teacher.card.get("ensemble"),
                                     teacher.temperature, teacher.tta, digest]).encode()).hexdigest()[:16]
    cached = cache_dir / f"teacher-{teacher.name}-{key}.npy" if cache_dir else None
    if cached and cached.is_file():
        return np.load(cached)
    probs = teacher.predict_proba(images)
    order = [teacher.labels.index(name) for name in labels]
    probs = probs[:, order].astype(np.float32)
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, probs)
    return probs


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
