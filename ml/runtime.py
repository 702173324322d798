"""Inference runtime the FeedMood service uses: load an exported artifact, predict emotion probabilities.

    from ml.runtime import EmotionClassifier
    clf = EmotionClassifier.load("ml/artifacts/feednet-ferplus")
    probs = clf.predict_proba(faces)          # faces: uint8 (N, 48, 48) grayscale crops
    dict(zip(clf.labels, probs[0]))

An artifact is a directory with `model_card.json` (schema: :mod:`ml.card`) and one model file, or
several for an ensemble (the card's `ensemble` lists the files after `file`; their softmax
outputs are averaged before test-time augmentation and calibration).
Test-time flip (`tta`) averages each face's probabilities with those of its mirror image. With the
card's `tta_flip_below` set, only faces whose first-pass top probability is below it get the
second pass ("selective flip"): confident faces rarely change their answer, so most of the gain
comes at a fraction of the cost.
Calibration is temperature scaling, softmax(log(p) / T), or with the card's `class_bias` b (one
offset per label) bias-corrected temperature scaling, softmax(log(p) / T + b).
TFLite artifacts need only numpy + ai_edge_litert, ONNX ones numpy + onnxruntime; TensorFlow/Keras
are imported lazily and only for `keras`-format artifacts. The interpreter is created on first use and re-created whenever the
process id changes, so a classifier loaded in a Celery prefork parent is safe to use in the
forked children (each child builds its own interpreter). Instances are thread-safe (one lock each).
This module never imports Django and holds no module-level state besides constants.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.card import CARD_NAME, FORMATS, ModelCard, card_path_of, load_card

__all__ = ["CARD_NAME", "FORMATS", "EmotionClassifier", "ModelCard"]

FACE_SIDE = 48
BATCH = 64
THREADS_ENV = "FEEDMOOD_INFER_THREADS"
#: TFLite batches are padded up to the next of these sizes, so a process holds at most one
#: interpreter per bucket (7) however the number of faces per call varies.
BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def bucket(n: int) -> int:
    """The padded batch size for a chunk of `n` (1..64) faces."""
    return next(b for b in BUCKETS if b >= n)


def chunk_sizes(n: int) -> list[int]:
    """How `n` (1..64) faces are run: one padded bucket when padding wastes at most a quarter of it,
    else the largest bucket that fits, then the rest the same way (17 -> [16, 1], 40 -> [32, 8], 63 -> [63])."""
    sizes: list[int] = []
    while n:
        size = bucket(n)
        if size - n <= n // 4:
            return [*sizes, n]
        size = max(b for b in BUCKETS if b <= n)
        sizes.append(size)
        n -= size
    return sizes


def default_threads() -> int:
    """Inference threads: $FEEDMOOD_INFER_THREADS, else the CPU count capped at 2."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}") from None
        if threads < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return threads
    return max(1, min(os.cpu_count() or 1, 2))


def as_faces(faces: Any) -> np.ndarray:
    """Validate and normalise input to a C-contiguous uint8 array (N, 48, 48)."""
    if not isinstance(faces, np.ndarray):
        faces = np.asarray(faces)
    if faces.dtype != np.uint8:
        raise ValueError(
            f"faces must be uint8 grayscale pixels 0..255, got dtype {faces.dtype} "
            "(convert with np.clip(x, 0, 255).astype(np.uint8) after checking the range)"
        )
    if faces.ndim == 2:
        faces = faces[None]
    elif faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIDE, FACE_SIDE):
        raise ValueError(
            f"faces must have shape (N, {FACE_SIDE}, {FACE_SIDE}), ({FACE_SIDE}, {FACE_SIDE}) or "
            f"(N, {FACE_SIDE}, {FACE_SIDE}, 1), got {faces.shape}"
        )
    return np.ascontiguousarray(faces)


def card_temperature(card: ModelCard, tta: bool) -> float:
    """The card's temperature for this TTA mode: its own, or `other_tta`'s when the mode is flipped.

    A card without a calibration for the asked mode gives its own temperature (fitted for the other mode).
    """
    other = card.other_tta_for(tta)
    return other.temperature if other is not None else card.temperature


def card_class_bias(card: ModelCard, tta: bool) -> np.ndarray | None:
    """The card's per-class calibration offsets for this TTA mode (its own, or `other_tta`'s), or None."""
    other = card.other_tta_for(tta)
    return checked_class_bias((other if other is not None else card).class_bias, len(card.labels))


def checked_class_bias(value: Any, labels: int) -> np.ndarray | None:
    """`value` as a float64 (labels,) array of finite offsets, or None when it is None."""
    if value is None:
        return None
    bias = np.asarray(value, dtype=np.float64) if isinstance(value, (list, tuple, np.ndarray)) else None
    if bias is None or bias.shape != (labels,) or not np.isfinite(bias).all():
        raise ValueError(f"model card class_bias must be {labels} finite numbers (one per label), got {value!r}")
    return bias


def card_flip_below(card: ModelCard, tta: bool) -> float:
    """The card's selective-flip threshold when it runs in its own TTA mode with one, else inf (flip every face)."""
    if tta != card.tta or card.tta_flip_below is None:
        return math.inf
    return card.tta_flip_below


def _softmax_log(probs: np.ndarray, temperature: float, class_bias: np.ndarray | None = None) -> np.ndarray:
    """softmax(log(p) / T [+ b]) row-wise, float32."""
    logits = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    if class_bias is not None:
        logits += class_bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    out: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class Backend(Protocol):
    """One model file run by a runtime: ``faces`` uint8 (N, 48, 48) -> raw probabilities (N, K)."""

    def __init__(self, model_path: Path, threads: int) -> None: ...

    def reset(self) -> None:
        """Forget the runtime objects (after a fork); the next call builds new ones."""

    def __call__(self, faces: np.ndarray) -> np.ndarray: ...


class _TFLiteBackend:
    """LiteRT interpreters keyed by (bucketed) batch size, created lazily in the current process."""

    def __init__(self, model_path: Path, threads: int):
        self.model_path = model_path
        self.threads = threads
        self._content: bytes | None = None
        self._interpreters: dict[int, tuple[Any, dict[str, Any], dict[str, Any]]] = {}
        self._abandoned: list[Any] = []
        self.created = 0  # interpreters built so far (tests and diagnostics)

    def reset(self) -> None:
        # After fork the parent's interpreters (and their thread pools) are unusable here. Do not run
        # their destructors in the child (a thread pool may wait for threads that only exist in the
        # parent); the pages are shared copy-on-write with the parent anyway.
        self._abandoned.extend(self._interpreters.values())
        self._interpreters = {}

    def _interpreter(self, batch: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        entry = self._interpreters.get(batch)
        if entry is None:
            from ai_edge_litert.interpreter import Interpreter

            if self._content is None:
                self._content = self.model_path.read_bytes()
            interp = Interpreter(model_content=self._content, num_threads=self.threads)
            detail = interp.get_input_details()[0]
            if list(detail["shape"]) != [batch, FACE_SIDE, FACE_SIDE, 1]:
                interp.resize_tensor_input(detail["index"], [batch, FACE_SIDE, FACE_SIDE, 1], strict=False)
            interp.allocate_tensors()
            entry = (interp, interp.get_input_details()[0], interp.get_output_details()[0])
            self._interpreters[batch] = entry
            self.created += 1
        return entry

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        sizes = chunk_sizes(len(faces))
        if len(sizes) == 1:
            return self._run(faces)
        starts = np.cumsum([0, *sizes])
        return np.concatenate([self._run(faces[a:b]) for a, b in itertools.pairwise(starts)])

    def _run(self, faces: np.ndarray) -> np.ndarray:
        n = len(faces)
        size = bucket(n)
        if size != n:  # pad with copies of the first face; rows are independent at inference
            faces = np.concatenate([faces, np.repeat(faces[:1], size - n, axis=0)])
        interp, inp, out = self._interpreter(size)
        x = faces[..., None]
        if inp["dtype"] == np.float32:
            x = x.astype(np.float32)
        elif inp["dtype"] != np.uint8 or inp["quantization"] != (1.0, 0):  # quantised: q = x / scale + zero
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x.astype(np.float32) / scale + zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.array(y[:n], dtype=np.float32, copy=True)


class _OnnxBackend:
    """An onnxruntime session (dynamic batch), created lazily in the current process."""

    def __init__(self, model_path: Path, threads: int):
        self.model_path = model_path
        self.threads = threads
        self._session: Any = None
        self._abandoned: list[Any] = []
        self.created = 0

    def reset(self) -> None:
        if self._session is not None:
            self._abandoned.append(self._session)  # see _TFLiteBackend.reset
        self._session = None

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
            self.created += 1
        (y,) = self._session.run(None, {self._input: faces[..., None].astype(np.float32)})[:1]
        return np.asarray(y, dtype=np.float32)


class _KerasBackend:
    """A single-output Keras model (TensorFlow imported on first use)."""

    def __init__(self, model_path: Path, threads: int):
        self.model_path = model_path
        self.threads = threads
        self._model: Any = None
        self.created = 0

    def reset(self) -> None:
        self._model = None

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        if self._model is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras
            import tensorflow as tf

            import ml.models.transfer  # noqa: F401  registers the custom ImagenetPreprocess layer

            try:  # only possible before TensorFlow has started its thread pools in this process
                tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass

            self._model = keras.saving.load_model(self.model_path, compile=False)
            self.created += 1
        y = self._model.predict_on_batch(faces[..., None].astype(np.float32))
        if isinstance(y, dict):
            y = next(iter(y.values()))
        return np.asarray(y, dtype=np.float32)


class EmotionClassifier:
    """A facial-emotion classifier loaded from an artifact directory.

    `labels` is the canonical label of each output column; `predict_proba` returns calibrated
    probabilities (the card's temperature and class bias, optional horizontal-flip test-time augmentation).
    """

    def __init__(
        self,
        card: ModelCard | dict[str, Any],
        directory: Path,
        *,
        temperature: float | None = None,
        tta: bool | None = None,
        threads: int | None = None,
        flip_below: float | None = None,
        class_bias: Any = None,
    ):
        if not isinstance(card, ModelCard):
            card = ModelCard.from_json(card, str(directory / CARD_NAME))
        model_files = [directory / name for name in card.files]
        for model_file in model_files:
            if not model_file.is_file():
                raise FileNotFoundError(f"model file {model_file} named by {directory / CARD_NAME} not found")
        self.card: ModelCard = card
        self.directory = directory
        self.name: str = card.name
        self.labels: tuple[str, ...] = card.labels
        self.format: str = card.format
        self.tta = card.tta if tta is None else bool(tta)
        # Selective flip: only faces whose first-pass top probability is below this get the flipped pass.
        self.flip_below = float(card_flip_below(card, self.tta) if flip_below is None else flip_below)
        if not self.flip_below > 0:
            raise ValueError(f"flip_below must be positive (inf flips every face), got {self.flip_below}")
        self.temperature = float(card_temperature(card, self.tta) if temperature is None else temperature)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        # An explicit temperature replaces the card's whole calibration (temperature=1.0: raw probabilities).
        bias = card_class_bias(card, self.tta) if temperature is None and class_bias is None else class_bias
        self.class_bias = checked_class_bias(bias, len(self.labels))
        self.threads = default_threads() if threads is None else int(threads)
        backends: dict[str, type[Backend]] = {"keras": _KerasBackend, "onnx": _OnnxBackend}
        backend = backends.get(card.format, _TFLiteBackend)
        self._backends: list[Backend] = [backend(model_file, self.threads) for model_file in model_files]
        self._backend = self._backends[0]
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        temperature: float | None = None,
        tta: bool | None = None,
        threads: int | None = None,
        flip_below: float | None = None,
        class_bias: Any = None,
    ) -> EmotionClassifier:
        """Read an artifact directory (or its model_card.json). Nothing heavy happens until the first predict.

        `temperature` / `tta` override the card (e.g. temperature=1.0 for raw probabilities: an explicit
        temperature drops the card's `class_bias` unless `class_bias` is given too). With `tta` flipped
        from the card's and no `temperature`, the card's `other_tta` calibration applies when it has one.
        `flip_below` overrides the card's selective-flip threshold (`tta_flip_below`; math.inf flips every
        face); the card's temperature was fitted for the card's own threshold.
        """
        card_path = card_path_of(path)
        card, directory = load_card(card_path), card_path.parent
        return cls(
            card,
            directory,
            temperature=temperature,
            tta=tta,
            threads=threads,
            flip_below=flip_below,
            class_bias=class_bias,
        )

    def __repr__(self) -> str:
        members = f", members={len(self._backends)}" if len(self._backends) > 1 else ""
        return (
            f"EmotionClassifier({self.name!r}, format={self.format}{members}, labels={len(self.labels)}, "
            f"T={self.temperature:.3f}{', class bias' if self.class_bias is not None else ''}, tta={self.tta}"
            + (f", flip_below={self.flip_below:g})" if self.tta and math.isfinite(self.flip_below) else ")")
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as "load this artifact again" (spawned workers rebuild their own interpreter).
        bias = None if self.class_bias is None else self.class_bias.tolist()
        return (
            _reload,
            (self.card, str(self.directory), self.temperature, self.tta, self.threads, self.flip_below, bias),
        )

    def _raw(self, faces: np.ndarray) -> np.ndarray:
        pid = os.getpid()
        if pid != self._pid:  # forked: never touch the parent's interpreter or its (maybe held) lock
            self._lock = threading.Lock()
            for backend in self._backends:
                backend.reset()
            self._pid = pid
        outputs = []
        with self._lock:
            for start in range(0, len(faces), BATCH):
                chunk = faces[start : start + BATCH]
                probs = self._backends[0](chunk)
                for backend in self._backends[1:]:  # ensemble: mean of the members' softmax outputs
                    probs = probs + backend(chunk)
                outputs.append(probs / len(self._backends) if len(self._backends) > 1 else probs)
        return np.concatenate(outputs, axis=0)

    def predict_proba(self, faces: Any) -> np.ndarray:
        """Probabilities float32 (N, len(labels)) for uint8 faces (N, 48, 48), (48, 48) or (N, 48, 48, 1)."""
        faces = as_faces(faces)
        k = len(self.labels)
        if len(faces) == 0:
            return np.zeros((0, k), dtype=np.float32)
        probs = self._raw(faces)
        if self.tta:
            unsure = np.flatnonzero(probs.max(axis=1) < self.flip_below)
            if len(unsure) == len(faces):
                probs = 0.5 * (probs + self._raw(np.ascontiguousarray(faces[:, :, ::-1])))
            elif len(unsure):
                probs[unsure] = 0.5 * (probs[unsure] + self._raw(np.ascontiguousarray(faces[unsure][:, :, ::-1])))
        if probs.shape != (len(faces), k):
            raise ValueError(f"model {self.name} returned shape {probs.shape}, card promises {k} labels")
        if self.temperature != 1.0 or self.class_bias is not None:
            return _softmax_log(probs, self.temperature, self.class_bias)
        probs = np.clip(probs, 0.0, None)
        normalised: np.ndarray = (probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return normalised

    def predict(self, faces: Any) -> list[dict[str, float]]:
        """Convenience: one {label: probability} dict per face."""
        return [dict(zip(self.labels, map(float, row))) for row in self.predict_proba(faces)]


def _reload(
    card: ModelCard,
    directory: str,
    temperature: float,
    tta: bool,
    threads: int,
    flip_below: float = math.inf,
    class_bias: list[float] | None = None,
) -> EmotionClassifier:
    return EmotionClassifier(
        card,
        Path(directory),
        temperature=temperature,
        tta=tta,
        threads=threads,
        flip_below=flip_below,
        class_bias=class_bias,
    )
