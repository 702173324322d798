"""Selective test-time flip: run the mirrored pass only for faces the first pass is unsure of.

    python -m ml.selective_flip ml/artifacts/ferplus --sweep                 # the trade-off; writes nothing
    python -m ml.selective_flip ml/artifacts/ferplus --flip-below 0.7        # ship that threshold in the card
    python -m ml.selective_flip ml/artifacts/ferplus --flip-below auto       # the lowest within 0.1 points of every face

Flip TTA doubles the work per face, but a face whose first pass is confident rarely changes its
answer when the mirror image is averaged in. With `tta_flip_below: t` in the card, `ml.runtime`
flips only the faces whose top (uncalibrated) probability is below t. This command measures a
threshold on PublicTest against flipping every face, fits the calibration for it (the averaged
and the single-pass rows are calibrated together; the card's kind: temperature, plus `class_bias`
when the card has one, see `ml.calibrate`), and rewrites the card's shipped figures:
`temperature`, `metrics`, `regression_slice`, `metrics.json` and `confusion_matrix.png`. The
full-flip figures it replaces stay in the card's `selective_flip.full_flip`. The threshold is
tuned on PublicTest, like the checkpoint and the temperature; PrivateTest stays untouched.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ml import cli
from ml import metrics as M
from ml.amend import rewrite_shipped_figures
from ml.cli import DEFAULT_DATA, positive_int
from ml.figures import checked_artifact
from ml.hostinfo import timing_host
from ml.runtime import EmotionClassifier
from ml.speed import measure_speed

SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)
TOLERANCE_POINTS = 0.1
MAX_ECE = 0.03  # the calibration target of the shipped models
COMMAND = "python -m ml.selective_flip"


def threshold(text: str) -> float | str:
    """argparse type: "auto" or a threshold in (0, 1]; 1 flips nearly every face."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected auto or a number in (0, 1], got {value}")
    return value


def flip_share(directory: Path, images: np.ndarray, flip_below: float) -> float:
    """Share of `images` whose first-pass top probability is below `flip_below` (the ones flipped)."""
    first = EmotionClassifier.load(directory, temperature=1.0, tta=False).predict_proba(images)
    return float((first.max(axis=1) < flip_below).mean())


def mode_figures(
    directory: Path, images: np.ndarray, y: np.ndarray, flip_below: float, seed: int = 0, class_bias: bool = False
) -> dict:
    """Accuracy, calibration and 2-fold cross-calibrated ECE of flip TTA with this threshold (inf: every face).

    With `class_bias` the calibration can move the top class, so accuracy is that of the calibrated
    probabilities (in-sample, like the shipped figure) and `accuracy_held_out` the cross-calibrated one.
    """
    raw = EmotionClassifier.load(directory, temperature=1.0, tta=True, flip_below=flip_below).predict_proba(images)
    fit = M.calibration_fit(raw, y, class_bias, seed)
    cross, bias = fit["cross"], fit["class_bias"]
    return {
        "flip_below": None if math.isinf(flip_below) else flip_below,
        "flipped_share": round(flip_share(directory, images, flip_below), 4),
        "accuracy": fit["accuracy"],
        "accuracy_held_out": cross["accuracy_after"],
        "temperature": fit["temperature"],
        **({"class_bias": bias} if bias is not None else {}),
        "ece_before_calibration": cross["ece_before"],
        "ece_after_calibration": cross["ece_after"],
        "raw": raw,
        "cross": cross,
    }


def public_figures(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("raw", "cross")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", help="exported artifact directory (model_card.json inside) that ships flip TTA")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--flip-below",
        type=threshold,
        metavar="T|auto",
        help=f"write this threshold into the card; auto: the lowest of {SWEEP} whose PublicTest accuracy "
        "is within --tolerance of flipping every face and whose ECE is at most --max-ece",
    )
    what.add_argument("--sweep", action="store_true", help=f"print accuracy, ECE and speed at {SWEEP}; write nothing")
    p.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE_POINTS,
        metavar="POINTS",
        help="accuracy points --flip-below auto may give up against flipping every face",
    )
    p.add_argument(
        "--max-ece",
        type=float,
        default=MAX_ECE,
        metavar="ECE",
        help="--flip-below auto: the largest cross-calibrated ECE a threshold may have",
    )
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv]")
    p.add_argument("--bench-runs", type=positive_int, default=30, help="timed batch-64 calls per threshold")
    p.add_argument("--latency-runs", type=positive_int, default=100, help="timed single-face calls per threshold")
    p.add_argument("--seed", type=int, default=0, help="split of the 2-fold cross-calibration")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.tolerance >= 0:
        parser.error(f"--tolerance must be 0 or more accuracy points, got {args.tolerance}")
    if not args.max_ece > 0:
        parser.error(f"--max-ece must be positive, got {args.max_ece}")
    argv_used = sys.argv[1:] if argv is None else list(argv)
    card_path, card, public, _ = checked_artifact(Path(args.artifact), args.data)
    if not card.tta:
        raise ValueError(f"{card_path}: the card ships without test-time flip (tta false); nothing to make selective")
    directory = card_path.parent
    y = public.targets[card.head].argmax(axis=1)
    fits_bias = card.class_bias is not None

    def speed(flip_below: float) -> dict:
        clf = EmotionClassifier.load(directory, tta=True, flip_below=flip_below)
        return measure_speed(clf, public.images, args.bench_runs, args.latency_runs)

    full = mode_figures(directory, public.images, y, math.inf, args.seed, fits_bias)
    full["speed"] = speed(math.inf)
    if args.sweep:
        print(
            f"{card.name}: PublicTest {len(y)} rows; flip every face: {100 * full['accuracy']:.2f}%, "
            f"ECE after {full['ece_after_calibration']:.4f}, {full['speed']['faces_per_s_b64']:.0f} faces/s"
        )
        for t in SWEEP:
            row = mode_figures(directory, public.images, y, t, args.seed, fits_bias)
            s = speed(t)
            print(
                f"  flip below {t:.2f}: flips {100 * row['flipped_share']:5.1f}%  acc {100 * row['accuracy']:.2f}%  "
                f"ECE after {row['ece_after_calibration']:.4f}  {s['faces_per_s_b64']:.0f} faces/s  "
                f"{s['ms_per_face_b1']:.3f} ms/face"
            )
        return 0

    sweep = []
    if args.flip_below == "auto":
        sweep = [mode_figures(directory, public.images, y, t, args.seed, fits_bias) for t in SWEEP]
        within = [
            row
            for row in sweep
            if 100 * (full["accuracy"] - row["accuracy"]) <= args.tolerance + 1e-9
            and row["ece_after_calibration"] <= args.max_ece
        ]
        if not within:
            raise ValueError(
                f"{card_path}: no threshold of {list(SWEEP)} keeps PublicTest accuracy within "
                f"{args.tolerance:g} points of flipping every face ({100 * full['accuracy']:.2f}%) with a "
                f"calibrated ECE <= {args.max_ece:g}; the card is unchanged (see --sweep)"
            )
        args.flip_below = within[0]["flip_below"]
    chosen = mode_figures(directory, public.images, y, args.flip_below, args.seed, fits_bias)
    chosen["speed"] = speed(args.flip_below)
    temperature = chosen["temperature"]
    selective_flip = {
        "flip_below": args.flip_below,
        "flipped_share": chosen["flipped_share"],
        "speed": chosen["speed"],
        "full_flip": public_figures(full),
        "timing_host": timing_host(),
        **(
            {
                "rule": f"auto: the lowest of {list(SWEEP)} within {args.tolerance:g} accuracy points of flipping "
                f"every face, with a cross-calibrated ECE <= {args.max_ece:g}",
                "sweep": [public_figures(row) for row in sweep],
            }
            if sweep
            else {}
        ),
        "note": (
            "PublicTest; flipped_share is the share of faces whose first pass is below the threshold; both "
            "speeds measured in one process over the PublicTest faces in turn (batch i takes rows 64i..64i+63)"
        ),
    }
    card = card.updated(
        tta_flip_below=args.flip_below,
        temperature=temperature,
        selective_flip=selective_flip,
        **({"class_bias": chosen["class_bias"]} if fits_bias else {}),
        # an ensemble's card-mode speed (ml.export writes it for ensembles)
        **({"speed": chosen["speed"]} if "speed" in card.extra else {}),
    )
    _, result = rewrite_shipped_figures(
        card_path,
        card,
        public,
        chosen["raw"],
        chosen["cross"],
        program=COMMAND,
        argv=argv_used,
        seed=args.seed,
        title=f"selective flip < {args.flip_below:g}",
        what=f"ships selective flip below {args.flip_below}: rewrote temperature{', class_bias' if fits_bias else ''}, "
        "metrics, regression_slice, other_tta, selective_flip; metrics.json and confusion_matrix.png",
    )
    print(
        f"{card.name}: flip below {args.flip_below:g} flips {100 * chosen['flipped_share']:.1f}% of faces: "
        f"{100 * result['accuracy']:.2f}% (every face: {100 * full['accuracy']:.2f}%), T={temperature:.3f}, ECE "
        f"{chosen['ece_before_calibration']:.4f} -> {chosen['ece_after_calibration']:.4f}, "
        f"{chosen['speed']['faces_per_s_b64']:.0f} faces/s (every face: {full['speed']['faces_per_s_b64']:.0f}); "
        f"wrote {card_path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
