"""Trained Keras checkpoints: load one for inference, slice out one head, score it.

A checkpoint is a `.keras` file written by `ml.train` (single- or multi-head) or a whole-model `.h5`
file (the seeds' `models/cnn_best.h5`). Keras and TensorFlow are imported on first use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml import data as D
from ml import metrics as M
from ml.protocols import HEAD_LABELS

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
