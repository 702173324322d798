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
from ml import labels as L
from ml import metrics as M
from ml.train import DEFAULT_DATA, positive_float, positive_int

HEADS = ("fer2013", "ferplus")
#: The label mode each head is evaluated with unless --labels says otherwise.
DEFAULT_PROTOCOL = {"fer2013": "fer2013", "ferplus": "ferplus-majority"}
PROTOCOLS = {
    "fer2013": "FER-2013 (Kaggle labels, 7 classes)",
    "ferplus-majority": "FER+ majority vote (Barsoum et al. 2016: single votes dropped; rows whose top choice "
    "is unknown/not-a-face or has no >50% majority excluded; 8 classes)",
    "ferplus-distribution": "FER+ vote distribution (single votes dropped; rows whose top choice is "
    "unknown/not-a-face excluded; accuracy vs the plurality emotion; 8 classes)",
}
HEAD_LABELS = {"fer2013": L.FER2013_LABELS, "ferplus": L.FERPLUS_LABELS}


# --------------------------------------------------------------------------- checkpoints

#: Whole-model checkpoint files: the native Keras format and the legacy HDF5 one the seeds saved (cnn_best.h5).
CHECKPOINT_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_checkpoint(path: str | Path):
    """Load a `.keras` or legacy `.h5` whole-model checkpoint for inference (no optimizer); clear errors for bad paths."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a directory without model_card.json; pass a .keras checkpoint "
            "(e.g. runs/NAME/best.keras) or an artifact directory written by ml.export"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"{path}: expected a .keras or .h5 checkpoint or an exported artifact directory")
    import keras

    import ml.models.transfer  # noqa: F401  registers ImagenetPreprocess for deserialisation
    from ml.quant import strip_int8_weights  # registers Int8WeightConv2D

    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        hint = (
            " (an .h5 file must hold a whole model saved by model.save, not weights only)"
            if path.suffix != ".keras"
            else ""
        )
        raise ValueError(f"{path}: cannot load Keras checkpoint{hint} ({exc})") from exc
    return strip_int8_weights(model)  # an --int8-weights run: plain convs with the rounded kernels it trained


def head_sizes(model) -> dict[str, int]:
    """{head: number of classes}; a single-output model's head is named by its class count."""
    if isinstance(model.output, dict):
        return {name: int(t.shape[-1]) for name, t in model.output.items()}
    k = int(model.output.shape[-1])
    for head, names in HEAD_LABELS.items():
        if len(names) == k:
            return {head: k}
    raise ValueError(f"model outputs {k} classes; expected 7 (fer2013) or 8 (ferplus)")


def choose_head(sizes: dict[str, int], head: str | None, label_mode: str | None) -> str:
    """The head to evaluate: --head, else the one --labels trains, else ferplus if present."""
    if head is None and label_mode is not None:
        head = D.head_for(label_mode)
    if head is None:
        head = "ferplus" if "ferplus" in sizes else next(iter(sizes))
    if head not in sizes:
        raise ValueError(f"the model has no head {head!r}; its heads: {', '.join(sizes)}")
    if head not in HEAD_LABELS or len(HEAD_LABELS[head]) != sizes[head]:
        raise ValueError(f"head {head!r} has {sizes[head]} outputs; expected fer2013 (7) or ferplus (8)")
    return head


def single_head_model(model, head: str):
    """The inference model of one head (`keras.Model(model.input, model.output[head])`)."""
    import keras

    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.output[head], name=f"{model.name}_{head}")


def as_float32(model):
    """The same network with every layer computing in float32 (a mixed_bfloat16 checkpoint otherwise
    exports bfloat16 ops that TFLite cannot run). Returns `model` itself when it is float32 already."""

    def fix(node):
        if isinstance(node, dict):
            if (
                node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
                and isinstance(node.get("config"), dict)
                and str(node["config"].get("name", "")).startswith("mixed_")
            ):
                return "float32"
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        if isinstance(node, str) and node.startswith("mixed_"):
            return "float32"
        return node

    config = model.get_config()
    if '"mixed_' not in json.dumps(config, default=str):
        return model
    import ml.models.transfer  # noqa: F401

    clone = model.__class__.from_config(fix(config))
    clone.set_weights(model.get_weights())
    return clone


def keras_predict(model, faces: np.ndarray, batch_size: int = 256, tta: bool = False) -> np.ndarray:
    """Probabilities of a single-output Keras model for uint8 faces (N, 48, 48), optionally flip-averaged."""
    x = faces[..., None].astype(np.float32)
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if tta:
        probs = 0.5 * (
            probs + np.asarray(model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0), dtype=np.float64)
        )
    return probs


def report_heads(model, data: D.Split, batch_size: int = 256) -> dict[str, dict]:
    """The metrics (ml.metrics.evaluate_probs) of each head of `data` scored by the trained Keras `model`,
    on the rows labelled for that head."""
    report = {}
    for head, targets in data.targets.items():
        valid = data.weights[head] > 0
        probs = keras_predict(single_head_model(model, head), data.images[valid], batch_size)
        report[head] = M.evaluate_probs(probs, targets[valid], data.labels[head])
    return report


def is_artifact(path: Path) -> bool:
    from ml.runtime import CARD_NAME

    return (path.is_dir() and (path / CARD_NAME).is_file()) or path.name == CARD_NAME


def resolve_label_mode(head: str, label_mode: str | None) -> str:
    mode = label_mode or DEFAULT_PROTOCOL[head]
    if D.head_for(mode) != head:
        raise ValueError(f"--labels {mode} scores the {D.head_for(mode)} head, but the model's head is {head}")
    return mode


def load_eval_split(data_dir: str, mode: str, split: str, head: str, limit: int | None) -> D.Split:
    data = D.load_split(data_dir, mode, split)
    if limit:
        data = data.subset(np.arange(min(limit, len(data))))
    got = data.labels.get(head)
    if got is None:
        # class folders choose their own label set from the folder names
        raise D.DataError(f"{data_dir}: the {split} data carries {', '.join(data.labels)} labels, not {head}")
    if len(data) == 0:
        raise D.DataError(f"{data_dir}: no {split} rows are valid for {mode}")
    return data


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
        from ml.runtime import EmotionClassifier

        clf = EmotionClassifier.load(path, temperature=args.temperature, tta=args.tta)
        head = clf.card.get("head") or ("ferplus" if len(clf.labels) == len(L.FERPLUS_LABELS) else "fer2013")
        if head not in HEAD_LABELS:
            raise ValueError(f"artifact {path}: unknown head {head!r} in its model card")
        if args.head is not None and args.head != head:
            raise ValueError(f"artifact {path} holds the {head} head only, not {args.head}")
        if list(clf.labels) != list(HEAD_LABELS[head]):
            raise ValueError(f"artifact labels {clf.labels} do not match the canonical {head} labels")
        mode = resolve_label_mode(head, args.labels or clf.card.get("label_mode"))
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
