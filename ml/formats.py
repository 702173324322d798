"""Runtime formats of an artifact: convert a single-output Keras model to TFLite (float32 or full int8),
ONNX or Keras, and write a loadable artifact (model file + minimal card) from it."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.card import ModelCard, new_card, write_card

FORMAT_FILES = {
    "tflite": "model.tflite",
    "tflite-int8": "model_int8.tflite",
    "onnx": "model.onnx",
    "keras": "model.keras",
}
CANDIDATES = ("keras", "tflite", "tflite-int8", "onnx")


@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter on stdout (stderr is left alone for real errors)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _saved_model(model, directory: Path) -> Path:
    path = directory / "saved_model"
    with _quiet():
        model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def to_tflite(model, path: Path, representative: np.ndarray | None = None) -> Path:
    """Convert a single-output Keras model to TFLite (float32, or full-int8 with uint8 input when
    `representative` uint8 faces are given). Goes through a SavedModel, which works with Keras 3."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(model, Path(tmp))))
        if representative is not None:
            faces = representative[..., None].astype(np.float32).copy()
            faces[0, 0, 0, 0], faces[0, 0, 1, 0] = 0.0, 255.0  # pin the input range so uint8 input maps 1:1

            def dataset():
                for face in faces:
                    yield [face[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.float32
        with _quiet():
            blob = converter.convert()
    path.write_bytes(blob)
    return path


def to_onnx(model, path: Path) -> Path:
    """Convert with tf2onnx (raises ImportError when tf2onnx is not installed)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, 48, 48, 1), tf.float32, name="face"),)
    with _quiet():
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return path


def save_format(model, fmt: str, directory: Path, representative: np.ndarray | None = None) -> Path:
    """Write `model` in runtime format `fmt` into `directory`; returns the model file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FORMAT_FILES[fmt]
    if fmt == "keras":
        model.save(path)
    elif fmt == "tflite":
        to_tflite(model, path)
    elif fmt == "tflite-int8":
        if representative is None:
            raise ValueError("tflite-int8 needs representative faces")
        to_tflite(model, path, representative)
    elif fmt == "onnx":
        to_onnx(model, path)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMAT_FILES)}")
    return path


def minimal_card(
    name: str, head: str, labels: Sequence[str], fmt: str, tta: bool, temperature: float = 1.0, **extra: Any
) -> ModelCard:
    """The card of a fresh `fmt` artifact before it is measured: what the runtime needs to load it."""
    return new_card(
        name=name, head=head, labels=labels, fmt=fmt, file=FORMAT_FILES[fmt], tta=tta, temperature=temperature, **extra
    )


def make_artifact(
    model,
    fmt: str,
    directory: Path,
    *,
    name: str,
    head: str,
    labels,
    tta: bool = False,
    temperature: float = 1.0,
    representative: np.ndarray | None = None,
    **extra,
) -> Path:
    """Write a loadable artifact (model file + minimal card) for a single-output model."""
    save_format(model, fmt, directory, representative)
    write_card(directory, minimal_card(name, head, labels, fmt, tta, temperature, **extra))
    return directory
