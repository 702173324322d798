"""Choose an artifact's calibration: temperature scaling, or temperature plus one offset per class.

    python -m ml.calibrate ml/artifacts/fer2013 --compare          # both kinds, 2-fold cross-calibrated; writes nothing
    python -m ml.calibrate ml/artifacts/fer2013 --class-bias       # ship softmax(log(p) / T + b)
    python -m ml.calibrate ml/artifacts/fer2013 --temperature-only # ship softmax(log(p) / T)
    python -m ml.calibrate ml/artifacts/fer2013 --auto             # the class bias when it lowers held-out NLL

Temperature scaling cannot move the top class. Bias-corrected temperature scaling (Alexandari et
al. 2020) also fits an offset b per class, which corrects class priors the training left skewed
(class weights lift rare classes such as disgust; FER-2013's labels are noisy). It is fitted on
PublicTest like the temperature, in the card's own mode (test-time flip and `tta_flip_below` as
shipped); the held-out figures are 2-fold cross-calibrated, so a gain there is not in-sample.
Writing rewrites `temperature`, `class_bias`, `metrics`, `regression_slice`, `other_tta`,
`metrics.json` and `confusion_matrix.png`, and records both kinds' figures under `calibration`.
`ml.selective_flip` and `ml.tta_mode` then fit the same kind the card has.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ml import cli
from ml import metrics as M
from ml.amend import rewrite_shipped_figures
from ml.cli import DEFAULT_DATA
from ml.figures import checked_artifact
from ml.runtime import EmotionClassifier

COMMAND = "python -m ml.calibrate"
KINDS = {False: "temperature", True: "temperature + class bias"}


def kind_figures(raw: np.ndarray, y: np.ndarray, class_bias: bool, seed: int) -> dict:
    """One kind of calibration fitted on all rows, with its 2-fold cross-calibrated (held-out) figures."""
    fit = M.calibration_fit(raw, y, class_bias, seed)
    cross = fit["cross"]
    return {
        "kind": KINDS[class_bias],
        "temperature": fit["temperature"],
        **({"class_bias": fit["class_bias"]} if class_bias else {}),
        "accuracy_in_sample": fit["accuracy"],
        "accuracy_held_out": cross["accuracy_after"],
        "ece_after_held_out": cross["ece_after"],
        "nll_after_held_out": cross["nll_after"],
        "cross": cross,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", help="exported artifact directory (model_card.json inside)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--compare", action="store_true", help="print both kinds' PublicTest figures; write nothing")
    what.add_argument("--class-bias", action="store_true", help="ship temperature + one offset per class")
    what.add_argument("--temperature-only", action="store_true", help="ship temperature scaling alone")
    what.add_argument(
        "--auto",
        action="store_true",
        help="ship the class bias when it lowers the held-out NLL (the fitting criterion), else temperature alone",
    )
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv]")
    p.add_argument("--seed", type=int, default=0, help="split of the 2-fold cross-calibration")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    card_path, card, public, _ = checked_artifact(Path(args.artifact), args.data)
    y = public.targets[card.head].argmax(axis=1)
    raw = EmotionClassifier.load(card_path.parent, temperature=1.0).predict_proba(public.images)
    figures = {bias: kind_figures(raw, y, bias, args.seed) for bias in (False, True)}
    print(f"{card.name}: PublicTest {len(y)} rows; uncalibrated accuracy {100 * M.accuracy(raw, y):.2f}%")
    for row in figures.values():
        print(
            f"  {row['kind']:<25} T={row['temperature']:.3f}  accuracy {100 * row['accuracy_in_sample']:.2f}% "
            f"(held out {100 * row['accuracy_held_out']:.2f}%)  ECE {row['ece_after_held_out']:.4f}  "
            f"NLL {row['nll_after_held_out']:.4f} (held out)"
        )
    if args.compare:
        return 0
    use_bias = args.class_bias or (
        args.auto and figures[True]["nll_after_held_out"] < figures[False]["nll_after_held_out"]
    )
    chosen = figures[use_bias]
    calibration = {
        "kind": chosen["kind"],
        "labels": list(card.labels),
        **({"rule": "auto: the class bias when it lowers the held-out NLL"} if args.auto else {}),
        "compared": [{k: v for k, v in row.items() if k != "cross"} for row in figures.values()],
        "note": (
            "fitted on all PublicTest rows in the card's mode; *_held_out are 2-fold cross-calibrated (fitted on "
            "one half, measured on the other, averaged); class_bias is in the order of labels"
        ),
    }
    card = card.updated(
        temperature=chosen["temperature"],
        class_bias=chosen["class_bias"] if use_bias else None,
        calibration=calibration,
    )
    _, result = rewrite_shipped_figures(
        card_path,
        card,
        public,
        raw,
        chosen["cross"],
        program=COMMAND,
        argv=argv_used,
        seed=args.seed,
        title=chosen["kind"],
        what=f"ships {chosen['kind']} calibration: rewrote temperature, class_bias, metrics, "
        "regression_slice, other_tta, calibration; metrics.json and confusion_matrix.png",
    )
    print(
        f"{card.name}: ships {chosen['kind']}: {100 * result['accuracy']:.2f}% on PublicTest, "
        f"ECE {chosen['ece_after_held_out']:.4f} (held out); wrote {card_path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
