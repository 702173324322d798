"""Evaluate a FER model: `python -m ml.evaluate --checkpoint runs/x/best.keras`.

The checkpoint is a `.keras` file written by `ml.train` (single- or multi-head), a whole-model `.h5`
file (the seeds' `models/cnn_best.h5`), or an artifact
directory written by `ml.export` (evaluated through `ml.runtime`, exactly as the service runs it).
Scores one head on one split (default PublicTest) under that head's protocol: the `fer2013` head
against the Kaggle FER-2013 labels, the `ferplus` head against the FER+ majority vote.
Prints accuracy, loss, macro/weighted F1, ECE, per-class precision/recall/F1 and the confusion
matrix; `--json` and `--confusion-png` save them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ml import cli
from ml import data as D
from ml import metrics as M
from ml.checkpoints import choose_head, head_sizes, keras_predict, load_checkpoint, single_head_model
from ml.cli import DEFAULT_DATA, positive_float, positive_int
from ml.protocols import HEAD_LABELS, HEADS, PROTOCOLS, load_eval_split, resolve_label_mode
from ml.runtime import CARD_NAME, EmotionClassifier


def is_artifact(path: Path) -> bool:
    """True for an artifact directory written by ml.export (or its model card)."""
    return (path.is_dir() and (path / CARD_NAME).is_file()) or path.name == CARD_NAME


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--checkpoint", required=True, help=".keras or .h5 checkpoint, or exported artifact directory (model_card.json)"
    )
    p.add_argument(
        "--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv] or class folders"
    )
    p.add_argument("--split", choices=("Training", "PublicTest"), default="PublicTest")
    p.add_argument(
        "--labels",
        choices=D.LABEL_MODES,
        default=None,
        help="evaluation protocol (default: fer2013 for the fer2013 head, ferplus-majority for ferplus)",
    )
    p.add_argument(
        "--head", default=None, help="head of a multi-head checkpoint (default: the one --labels scores, else ferplus)"
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average with the horizontally flipped face (artifacts default to their card's setting)",
    )
    p.add_argument(
        "--temperature",
        type=positive_float,
        default=None,
        help="temperature applied to log-probabilities (artifacts default to their card's)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N rows")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--json", default=None, help="write all metrics to this JSON file")
    p.add_argument("--confusion-png", default=None, help="write the confusion matrix as a PNG")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = Path(args.checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if args.head is not None and args.head not in HEADS:
        raise ValueError(f"unknown head {args.head!r}; choose from {', '.join(HEADS)}")

    predict: Callable[[np.ndarray], np.ndarray]
    started = time.time()
    if is_artifact(path):
        clf = EmotionClassifier.load(path, temperature=args.temperature, tta=args.tta)
        head = clf.card.head
        if head not in HEAD_LABELS:
            raise ValueError(f"artifact {path}: unknown head {head!r} in its model card")
        if args.head is not None and args.head != head:
            raise ValueError(f"artifact {path} holds the {head} head only, not {args.head}")
        if list(clf.labels) != list(HEAD_LABELS[head]):
            raise ValueError(f"artifact labels {clf.labels} do not match the canonical {head} labels")
        mode = resolve_label_mode(head, args.labels or clf.card.label_mode)
        temperature, tta, source = clf.temperature, clf.tta, f"artifact ({clf.format})"
        predict = clf.predict_proba
    else:
        model = load_checkpoint(path)
        head = choose_head(head_size := head_sizes(model), args.head, args.labels)
        if len(head_size) > 1 and args.head is None and args.labels is None:
            print(
                f"note: multi-head checkpoint ({', '.join(head_size)}); evaluating {head} (choose with --head)",
                file=sys.stderr,
            )
        mode = resolve_label_mode(head, args.labels)
        sub = single_head_model(model, head)
        temperature, tta, source = args.temperature or 1.0, bool(args.tta), "keras checkpoint"

        def predict(faces: np.ndarray) -> np.ndarray:
            probs = keras_predict(sub, faces, args.batch_size, tta)
            return M.apply_temperature(probs, temperature) if temperature != 1.0 else probs

    data = load_eval_split(args.data, mode, args.split, head, args.limit)
    names = data.labels[head]
    probs = predict(data.images)
    result = M.evaluate_probs(probs, data.targets[head], names)
    seconds = time.time() - started

    title = (
        f"{path} [{source}]  head={head}  split={args.split}  protocol={mode}  "
        f"tta={'on' if tta else 'off'}  T={temperature:.3f}"
    )
    print(M.format_report(result, title))
    report = {
        "checkpoint": str(path),
        "source": source,
        "head": head,
        "label_mode": mode,
        "protocol": PROTOCOLS[mode],
        "split": args.split,
        "data": str(Path(args.data).resolve()),
        "limit": args.limit,
        "tta": tta,
        "temperature": temperature,
        "seconds": round(seconds, 2),
        "metrics": result,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    if args.confusion_png:
        M.save_confusion_png(
            result["confusion_matrix"],
            names,
            args.confusion_png,
            f"{path.name} {head} on {args.split} ({mode}): acc {100 * result['accuracy']:.1f}%",
        )
        print(f"wrote {args.confusion_png}")
    return 0


if __name__ == "__main__":
    cli.run(main)
