"""Calibrate and measure an artifact in its other test-time-augmentation mode, and record it in the card.

    python -m ml.tta_mode ml/artifacts/ferplus      # adds/refreshes the card's "other_tta" entry

Flip TTA doubles the work per face. An operator on a slow CPU may turn it off
(`EmotionClassifier.load(path, tta=False)`, or FEEDMOOD_MODEL_TTA=off in the service), and the
probabilities stay calibrated only with a temperature fitted for that mode. `ml.export` writes
`other_tta` itself; this command adds it to an artifact exported before it did, checking first that
the data reproduces the card's recorded PublicTest accuracy. Nothing else in the card changes
besides an `amendments` entry naming this command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from ml import cli
from ml import metrics as M
from ml.data import Split
from ml.evaluate import load_eval_split
from ml.export import REGRESSION_ROWS, measure_speed, timing_host
from ml.runtime import CARD_NAME, EmotionClassifier
from ml.train import DEFAULT_DATA, positive_int

#: The card's accuracy must be reproduced this closely before anything is written.
ACCURACY_MATCH = 1e-9


def measure_other_tta(
    directory: Path,
    card: dict,
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
    tta = not bool(card.get("tta", False))
    y = targets.argmax(axis=1)
    raw = EmotionClassifier.load(directory, temperature=1.0, tta=tta).predict_proba(images)
    fits_bias = card.get("class_bias") is not None  # the same kind of calibration as the card's own mode
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


def checked_artifact(directory: Path, data: str) -> tuple[Path, dict, Split, float]:
    """(card path, card, PublicTest split, accuracy) of an artifact written by ml.export, after checking that
    `data` reproduces the card's recorded PublicTest accuracy (else the figures would not compare)."""
    if directory.name == CARD_NAME:
        directory = directory.parent
    card_path = directory / CARD_NAME
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} not found: {directory} is not an exported model artifact")
    card = json.loads(card_path.read_text())
    recorded = card.get("metrics") or {}
    mode, head = card.get("label_mode"), card.get("head")
    if not mode or not head or "accuracy" not in recorded:
        raise ValueError(f"{card_path}: needs label_mode, head and metrics.accuracy (a card written by ml.export)")
    if recorded.get("limit"):
        raise ValueError(f"{card_path}: its metrics cover only {recorded['limit']} PublicTest rows (a smoke export)")
    public = load_eval_split(data, mode, "PublicTest", head, None)
    names = list(public.labels[head])
    if names != list(card.get("labels") or []):
        raise ValueError(f"{data}: PublicTest labels {names} are not the card's {card.get('labels')}")
    accuracy = M.accuracy(
        EmotionClassifier.load(directory).predict_proba(public.images), public.targets[head].argmax(axis=1)
    )
    if abs(accuracy - recorded["accuracy"]) > ACCURACY_MATCH:
        raise ValueError(
            f"{data} gives PublicTest accuracy {accuracy:.6f} for {directory}, the card records "
            f"{recorded['accuracy']:.6f}: not the data (or the model files) the card was made with"
        )
    return card_path, card, public, accuracy


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.tta_mode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("artifact", help="exported artifact directory (model_card.json inside)")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv]")
    p.add_argument("--bench-runs", type=positive_int, default=10, help="timed batch-64 calls per mode")
    p.add_argument("--latency-runs", type=positive_int, default=50, help="timed single-face calls per mode")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    card_path, card, public, accuracy = checked_artifact(Path(args.artifact), args.data)
    directory = card_path.parent
    targets, names = public.targets[card["head"]], list(public.labels[card["head"]])
    other = measure_other_tta(
        directory, card, public.images, targets, names, bench_runs=args.bench_runs, latency_runs=args.latency_runs
    )
    card["other_tta"] = other
    # Earlier entries of this command described the block replaced now: keep the other amendments and this one.
    card["amendments"] = [
        a for a in card.get("amendments", []) if not str(a.get("command", "")).startswith("python -m ml.tta_mode")
    ]
    card["amendments"].append(
        {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m ml.tta_mode " + shlex.join(argv_used),
            "what": f"wrote other_tta (test-time flip {'on' if other['tta'] else 'off'}: its temperature and metrics)",
        }
    )
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    s = other["speed"]
    print(
        f"{card.get('name')}: tta {'on' if card.get('tta') else 'off'} {100 * accuracy:.2f}% "
        f"{s['card_mode_faces_per_s_b64']:.0f} faces/s; tta {'on' if other['tta'] else 'off'} "
        f"{100 * other['accuracy']:.2f}% {s['faces_per_s_b64']:.0f} faces/s, T={other['temperature']:.3f}, "
        f"ECE {other['ece_before_calibration']:.4f} -> {other['ece_after_calibration']:.4f}; wrote {card_path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
