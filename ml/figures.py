"""The PublicTest figures an artifact's card ships: the `metrics` block, the regression slice the
shipped-model tests check, the other test-time-flip mode's calibration (`other_tta`), and the check that
a data directory reproduces a card's recorded accuracy before its figures are rewritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml import data as D
from ml import metrics as M
from ml.card import CARD_NAME, ModelCard, load_card
from ml.data import Split
from ml.hostinfo import timing_host
from ml.protocols import PROTOCOLS, load_eval_split
from ml.runtime import EmotionClassifier
from ml.speed import measure_speed

REGRESSION_ROWS = 600


def publictest_metrics(
    raw: np.ndarray,
    calibrated: np.ndarray,
    targets: np.ndarray,
    names,
    mode: str,
    cross: dict,
    temperature: float,
    *,
    tta: bool,
    limit: int | None = None,
    class_bias: list[float] | None = None,
) -> tuple[dict, dict]:
    """The card's `metrics` block for what ships (raw and calibrated PublicTest probabilities), and the
    calibrated `M.evaluate_probs` result it was built from."""
    result = M.evaluate_probs(calibrated, targets, names)
    uncalibrated = M.evaluate_probs(raw, targets, names)
    metrics = {
        "split": "PublicTest",
        "label_mode": mode,
        "protocol": PROTOCOLS[mode],
        "limit": limit,
        "tta": tta,
        "temperature": temperature,
        **({"class_bias": class_bias} if class_bias is not None else {}),
        **{k: v for k, v in result.items() if k != "ece"},
        "loss_uncalibrated": uncalibrated["loss"],
        "ece_uncalibrated": uncalibrated["ece"],
        "ece_calibrated_in_sample": result["ece"],
        "cross_calibration": cross,
        "ece_before_calibration": cross["ece_before"],
        "ece_after_calibration": cross["ece_after"],
        "note": (
            "ece_before/after_calibration are 2-fold cross-calibrated on PublicTest (T fitted on one half, "
            "ECE measured on the other, averaged): the honest estimate. The shipped temperature is fitted on "
            "all PublicTest rows, so 'ece' / ece_calibrated_in_sample is optimistic. PublicTest also chose "
            "the checkpoint during training; PrivateTest is the untouched test set."
            + (
                " With class_bias (fitted with T on all rows) the top class can move, so accuracy is in-sample "
                "too; cross_calibration.accuracy_after is its held-out estimate."
                if class_bias is not None
                else ""
            )
        ),
    }
    return metrics, result


def regression_slice(clf: EmotionClassifier, public, mode: str, rows: int) -> dict:
    """Accuracy of the shipped classifier on the first `rows` PublicTest rows (tests/test_shipped_models.py)."""
    head = D.head_for(mode)
    n = min(rows, len(public))
    probs = clf.predict_proba(public.images[:n])
    accuracy = float((probs.argmax(1) == public.targets[head][:n].argmax(1)).mean())
    return {
        "split": "PublicTest",
        "label_mode": mode,
        "rows": n,
        "selection": "first rows of the protocol's PublicTest set, in file order",
        "accuracy": round(accuracy, 4),
    }


#: The card's accuracy must be reproduced this closely before anything is written.
ACCURACY_MATCH = 1e-9


def measure_other_tta(
    directory: Path,
    card: ModelCard,
    images: np.ndarray,
    targets: np.ndarray,
    names: list[str],
    *,
    seed: int = 0,
    bench_runs: int = 10,
    latency_runs: int = 50,
) -> dict:
    """Temperature and metrics of the artifact at `directory` with its card's TTA flag flipped.

    Speed is measured for both modes in this process, one after the other, so the two figures compare.
    """
    tta = not card.tta
    y = targets.argmax(axis=1)
    raw = EmotionClassifier.load(directory, temperature=1.0, tta=tta).predict_proba(images)
    fits_bias = card.class_bias is not None  # the same kind of calibration as the card's own mode
    fit = M.calibration_fit(raw, y, fits_bias, seed)
    temperature, bias, cross = fit["temperature"], fit["class_bias"], fit["cross"]
    calibrated = EmotionClassifier.load(directory, temperature=temperature, tta=tta, class_bias=bias)
    probs = calibrated.predict_proba(images)
    result = M.evaluate_probs(probs, targets, names)
    rows = min(REGRESSION_ROWS, len(images))
    slice_accuracy = float((probs[:rows].argmax(1) == y[:rows]).mean())
    speed = measure_speed(calibrated, images, bench_runs, latency_runs)
    card_mode = measure_speed(EmotionClassifier(card, directory), images, bench_runs, latency_runs)
    return {
        "tta": tta,
        "temperature": temperature,
        **({"class_bias": bias} if bias is not None else {}),
        **{
            k: result[k]
            for k in (
                "n",
                "accuracy",
                "loss",
                "macro_f1",
                "weighted_f1",
                "macro_precision",
                "macro_recall",
                "per_class",
                "confusion_matrix",
            )
        },
        **({"accuracy_held_out": cross["accuracy_after"]} if bias is not None else {}),
        "ece_before_calibration": cross["ece_before"],
        "ece_after_calibration": cross["ece_after"],
        "regression_slice": {"rows": rows, "accuracy": round(slice_accuracy, 4)},
        "speed": {
            **speed,
            "card_mode_faces_per_s_b64": card_mode["faces_per_s_b64"],
            "card_mode_ms_per_face_b1": card_mode["ms_per_face_b1"],
            "timing_host": timing_host(),
        },
        "note": (
            f"the same model files with test-time flip {'on' if tta else 'off'}, calibrated for that mode "
            "(EmotionClassifier.load(path, tta=...) uses this temperature and class_bias); PublicTest, ECE 2-fold "
            "cross-calibrated as in metrics; speed measured beside the card's mode in one process"
        ),
    }


def checked_artifact(directory: Path, data: str) -> tuple[Path, ModelCard, Split, float]:
    """(card path, card, PublicTest split, accuracy) of an artifact written by ml.export, after checking that
    `data` reproduces the card's recorded PublicTest accuracy (else the figures would not compare)."""
    if directory.name == CARD_NAME:
        directory = directory.parent
    card_path = directory / CARD_NAME
    card = load_card(card_path)
    recorded, mode, head = card.metrics or {}, card.label_mode, card.head
    if not mode or card.accuracy is None:
        raise ValueError(f"{card_path}: needs label_mode and metrics.accuracy (a card written by ml.export)")
    if recorded.get("limit"):
        raise ValueError(f"{card_path}: its metrics cover only {recorded['limit']} PublicTest rows (a smoke export)")
    public = load_eval_split(data, mode, "PublicTest", head, None)
    names = list(public.labels[head])
    if names != list(card.labels):
        raise ValueError(f"{data}: PublicTest labels {names} are not the card's {list(card.labels)}")
    accuracy = M.accuracy(
        EmotionClassifier(card, directory).predict_proba(public.images), public.targets[head].argmax(axis=1)
    )
    if abs(accuracy - card.accuracy) > ACCURACY_MATCH:
        raise ValueError(
            f"{data} gives PublicTest accuracy {accuracy:.6f} for {directory}, the card records "
            f"{card.accuracy:.6f}: not the data (or the model files) the card was made with"
        )
    return card_path, card, public, accuracy
