"""Rewrite an exported artifact's shipped figures after its calibration or its flip rule changed.

`ml.selective_flip` (a new `tta_flip_below`) and `ml.calibrate` (a new kind of calibration) both
change what `EmotionClassifier.load(path)` returns, so both rewrite the same parts of the card from
the PublicTest probabilities: `metrics`, `regression_slice`, `other_tta`, `output`, `amendments`,
`reproduce`, plus `metrics.json` and `confusion_matrix.png`. Everything else in the card stays.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

import numpy as np

from ml import metrics as M
from ml.card import ModelCard, write_card
from ml.data import Split
from ml.figures import REGRESSION_ROWS, measure_other_tta, publictest_metrics, regression_slice
from ml.runtime import EmotionClassifier


def output_text(card: ModelCard) -> str:
    """The card's `output` sentence: what `predict_proba` returns for this card."""
    formula = (
        "softmax(log(p) / temperature + class_bias)" if card.class_bias is not None else "softmax(log(p) / temperature)"
    )
    flip = ""
    if card.tta:
        flip = " (p averaged with the horizontally flipped face first"
        flip += " when p's top probability is below tta_flip_below)" if card.tta_flip_below is not None else ")"
    return f"calibrated probabilities: {formula} of the model's softmax p{flip}"


def rewrite_shipped_figures(
    card_path: Path,
    card: ModelCard,
    public: Split,
    raw: np.ndarray,
    cross: dict,
    *,
    program: str,
    argv: list[str],
    what: str,
    title: str,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Write `card` (its calibration already updated) with figures recomputed from `raw`, the uncalibrated
    PublicTest probabilities of the card's mode. `program` ("python -m ml.calibrate") run with `argv` is
    recorded in `amendments` and `reproduce`, replacing that program's earlier entries.

    Returns (metrics, the `M.evaluate_probs` result behind them).
    """
    directory, head, mode = card_path.parent, card.head, card.label_mode
    if mode is None:
        raise ValueError(f"{card_path}: needs label_mode (a card written by ml.export)")
    targets, names = public.targets[head], list(public.labels[head])
    final = EmotionClassifier(card, directory)
    metrics, result = publictest_metrics(
        raw,
        final.predict_proba(public.images),
        targets,
        names,
        mode,
        cross,
        card.temperature,
        tta=card.tta,
        class_bias=None if card.class_bias is None else list(card.class_bias),
    )
    if card.tta_flip_below is not None:
        metrics["tta_flip_below"] = card.tta_flip_below
    command = f"{program} {shlex.join(argv)}"
    amendments = [
        a for a in card.extra.get("amendments", []) if not str(a.get("command", "")).startswith(program + " ")
    ]
    amendments.append({"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": command, "what": what})
    card = card.updated(
        metrics=metrics,
        regression_slice=regression_slice(final, public, mode, REGRESSION_ROWS),
        output=output_text(card),
        other_tta=measure_other_tta(directory, card, public.images, targets, names, seed=seed),
        amendments=amendments,
        reproduce=[c for c in card.reproduce if not c.startswith(program + " ")] + [command],
    )
    write_card(directory, card)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    M.save_confusion_png(
        result["confusion_matrix"],
        names,
        directory / "confusion_matrix.png",
        f"{card.name} ({card.format}, {title}) {head} on PublicTest ({mode}): acc {100 * result['accuracy']:.1f}%",
    )
    return metrics, result
