"""The model card: the typed schema of an artifact's ``model_card.json``, read and written only here.

    card = load_card("ml/artifacts/ferplus")       # checks schema_version, types and ranges
    card.temperature, card.labels, card.pipeline    # typed fields
    write_card(directory, card.updated(temperature=1.2))

The fields that code reads are typed (:class:`ModelCard`, :class:`OtherTTA`, :class:`PipelineSpec`);
the free-form blocks that record how an artifact was made and measured (``formats``, ``training``,
``amendments``, ``calibration``, ...) are kept in ``extra`` and written back unchanged, in their order.
Pure standard library: importable without numpy or TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CARD_NAME = "model_card.json"
#: The version :func:`write_card` records; :func:`load_card` reads exactly the versions in SUPPORTED_VERSIONS.
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
FORMATS = ("tflite", "tflite-int8", "onnx", "keras")
INPUT_SPEC: dict[str, Any] = {"shape": [48, 48], "dtype": "uint8", "color": "grayscale", "range": [0, 255]}
PREPROCESSING = (
    "face crop (detector box) -> grayscale -> resize to 48x48 with cv2.INTER_AREA -> uint8 array "
    "(N, 48, 48), pixel values 0..255 unnormalised (the model rescales internally)"
)


class CardError(ValueError):
    """A model card that does not follow the schema (the message names the file and the field)."""


# --------------------------------------------------------------------------- checks


def _number(where: str, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CardError(f"{where}: model card {key} must be a {'positive ' if positive else ''}number, got {value!r}")
    if positive and not value > 0:
        raise CardError(f"{where}: model card {key} must be a positive number, got {value!r}")
    return float(value)


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise CardError(f"{where}: model card {key!r} must be a non-empty string, got {value!r}")
    return value


def _texts(where: str, key: str, value: Any, *, non_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or (non_empty and not value) or not all(isinstance(x, str) and x for x in value):
        what = "a non-empty list of class names" if key == "labels" else "a list of non-empty strings"
        raise CardError(f"{where}: model card '{key}' must be {what}")
    return tuple(value)


def _class_bias(where: str, value: Any, labels: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == labels
    ok = ok and all(not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) for x in value)
    if not ok:
        raise CardError(
            f"{where}: model card class_bias must be {labels} finite numbers (one per label), got {value!r}"
        )
    return tuple(float(x) for x in value)


def _block(where: str, key: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CardError(f"{where}: model card {key!r} must be a JSON object, got {type(value).__name__}")
    return dict(value)


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class PipelineSpec:
    """The photo pipeline the service runs in front of the model (``emotion.pipeline.config_from`` applies it):
    a named configuration and the detector, framing and alignment settings it overrides."""

    #: One of the named configurations (PIPELINES) the settings start from.
    name: str = "blazeface"
    detector: str | None = None
    min_score: float | None = None
    min_face: float | None = None
    fallback_face: float | None = None
    #: How faces below the whole-image pass are searched: "tiles" or "pyramid" (``emotion.pipeline``).
    search: str | None = None
    cascade: str | None = None
    detect_max_pixels: int | None = None
    scale_factor: float | None = None
    min_neighbors: int | None = None
    margin: float | None = None
    #: Crop square from the detector's box: (side / box width, dx / box width, dy / box width).
    framing: tuple[float, float, float] | None = None
    align: bool | None = None
    align_slack: float | None = None
    #: How the settings were chosen (documentation, not a setting).
    fitted_by: str | None = None

    @classmethod
    def from_json(cls, value: Any, where: str = CARD_NAME) -> PipelineSpec:
        """A card's ``pipeline``: a configuration name or an object of settings."""
        if isinstance(value, str):
            return cls(name=_text(where, "pipeline", value))
        if not isinstance(value, dict):
            raise CardError(f"{where}: model card 'pipeline' must be a name or an object, got {value!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise CardError(f"{where}: model card pipeline has unknown settings {unknown}")
        values: dict[str, Any] = dict(value)
        framing = values.get("framing")
        if framing is not None:
            if not isinstance(framing, list) or len(framing) != 3:
                raise CardError(f"{where}: model card pipeline framing must be [scale, dx, dy], got {framing!r}")
            values["framing"] = tuple(_number(where, "pipeline framing", v) for v in framing)
        for key in ("name", "detector", "search", "cascade", "fitted_by"):
            if key in values:
                _text(where, f"pipeline {key}", values[key])
        for key in ("min_score", "min_face", "fallback_face", "scale_factor", "margin", "align_slack"):
            if values.get(key) is not None:
                values[key] = _number(where, f"pipeline {key}", values[key])
        for key in ("detect_max_pixels", "min_neighbors"):
            if values.get(key) is not None and (isinstance(values[key], bool) or not isinstance(values[key], int)):
                raise CardError(f"{where}: model card pipeline {key} must be an integer, got {values[key]!r}")
        if values.get("align") is not None and not isinstance(values["align"], bool):
            raise CardError(f"{where}: model card pipeline align must be true or false, got {values['align']!r}")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The card's ``pipeline`` object (unset settings left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


_BLAZEFACE = PipelineSpec(
    name="blazeface",
    detector="blazeface",
    min_score=0.5,
    min_face=0.0,
    fallback_face=0.2,
    framing=(1.15, 0.0, -0.1),
    align=True,
    align_slack=10.0,
    fitted_by="bench/photo_pipeline.py (bench/results/photo_pipeline.md)",
)
_HAAR = PipelineSpec(
    name="haar",
    detector="haar",
    cascade="haarcascade_frontalface_alt2.xml",
    detect_max_pixels=288 * 216,
    scale_factor=1.15,
    min_neighbors=1,
    margin=0.15,
    framing=(1.3, 0.0, 0.0),
    align=False,
)
#: The named photo pipelines, as cards record them (``emotion.pipeline.CONFIGS``; a test checks they agree).
PIPELINES: dict[str, PipelineSpec] = {
    "blazeface": _BLAZEFACE,
    # group photos: faces down to 5% of the short side, a scale pyramid checked by the face-mesh verifier
    "blazeface-group": replace(_BLAZEFACE, name="blazeface-group", min_face=0.05, search="pyramid", fitted_by=None),
    # the previous group search: tiles down to 5% of the short side
    "blazeface-tiles": replace(_BLAZEFACE, name="blazeface-tiles", min_face=0.05, fitted_by=None),
    "haar": _HAAR,
    "haar-thorough": replace(
        _HAAR,
        name="haar-thorough",
        cascade="haarcascade_frontalface_alt.xml",
        detect_max_pixels=448 * 336,
        scale_factor=1.1,
    ),
}
#: What the service runs for a card without a ``pipeline`` (and what ``ml.export`` records by default).
DEFAULT_PIPELINE = "blazeface"


@dataclass(frozen=True)
class OtherTTA:
    """The card's calibration and figures for its other test-time-flip mode (``other_tta``)."""

    tta: bool
    temperature: float
    class_bias: tuple[float, ...] | None = None
    #: Its metrics, regression slice, speed and note, as ``ml.figures.measure_other_tta`` wrote them.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any, labels: int, where: str = CARD_NAME) -> OtherTTA:
        block = _block(where, "other_tta", value) or {}
        if not isinstance(block.get("tta"), bool):
            raise CardError(f"{where}: model card other_tta.tta must be true or false")
        return cls(
            tta=block.pop("tta"),
            temperature=_number(where, "other_tta temperature", block.pop("temperature", None), positive=True),
            class_bias=_class_bias(where, block.pop("class_bias", None), labels),
            extra=block,
        )

    def to_json(self) -> dict[str, Any]:
        bias = {"class_bias": list(self.class_bias)} if self.class_bias is not None else {}
        return {"tta": self.tta, "temperature": self.temperature, **bias, **self.extra}

    @property
    def accuracy(self) -> float | None:
        value = self.extra.get("accuracy")
        return float(value) if isinstance(value, (int, float)) else None


# --------------------------------------------------------------------------- the card


@dataclass(frozen=True)
class ModelCard:
    """One artifact's card. Required: what the runtime needs to load and calibrate the model files."""

    name: str
    head: str
    labels: tuple[str, ...]
    format: str
    #: The model file; ``ensemble`` lists the other members' files (softmax outputs averaged).
    file: str
    temperature: float = 1.0
    tta: bool = False
    schema_version: int = SCHEMA_VERSION
    #: The evaluation protocol the figures were measured under (``fer2013``, ``ferplus-majority``, ...).
    label_mode: str | None = None
    ensemble: tuple[str, ...] = ()
    #: Bias-corrected temperature scaling: one logit offset per label.
    class_bias: tuple[float, ...] | None = None
    #: Selective flip: only faces whose first-pass top probability is below this get the mirrored pass.
    tta_flip_below: float | None = None
    other_tta: OtherTTA | None = None
    pipeline: PipelineSpec | None = None
    file_sha256: str | None = None
    #: PublicTest figures of what ships (``accuracy``, ``limit``, per class, confusion matrix, ECE, ...).
    metrics: Mapping[str, Any] | None = None
    #: Accuracy of the first PublicTest rows (``rows``, ``accuracy``, ``label_mode``), checked by the tests.
    regression_slice: Mapping[str, Any] | None = None
    #: The training run (``ml.provenance.training_info``) with ``train_wall_seconds_all_phases``.
    training: Mapping[str, Any] | None = None
    #: Every command from the shared data to this artifact.
    reproduce: tuple[str, ...] = ()
    #: Every other key of the card (free-form records), written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The card's key order when it was read (kept when it is written back).
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.name
        if self.schema_version not in SUPPORTED_VERSIONS:
            raise CardError(f"{where}: model card schema_version {self.schema_version!r} is not supported")
        if self.format not in FORMATS:
            raise CardError(f"{where}: unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")
        if not self.labels:
            raise CardError(f"{where}: model card 'labels' must be a non-empty list of class names")
        if self.class_bias is not None and len(self.class_bias) != len(self.labels):
            raise CardError(f"{where}: model card class_bias must be {len(self.labels)} finite numbers (one per label)")
        if not self.temperature > 0:
            raise CardError(f"{where}: model card temperature must be a positive number, got {self.temperature!r}")

    # ------------------------------------------------------------------ JSON

    @classmethod
    def from_json(cls, data: Any, where: str = CARD_NAME) -> ModelCard:
        """Validate a parsed ``model_card.json``; raises :class:`CardError` naming `where` and the field."""
        if not isinstance(data, dict):
            raise CardError(f"{where}: expected a JSON object")
        if "schema_version" not in data:
            raise CardError(
                f"{where}: no schema_version (a card written by ml.export has one; this code reads version "
                f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})"
            )
        version = data["schema_version"]
        if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
            raise CardError(
                f"{where}: model card schema_version {version!r} is not supported (this code reads "
                f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))}); update FeedMood or re-export the model"
            )
        fmt = data.get("format")
        if fmt not in FORMATS:
            raise CardError(f"{where}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        rest = dict(data)
        typed = {f.name for f in fields(cls)} - {"extra", "key_order"}
        labels = _texts(where, "labels", rest.get("labels"), non_empty=True)
        tta = rest.get("tta", False)
        if not isinstance(tta, bool):
            raise CardError(f"{where}: model card tta must be true or false, got {tta!r}")
        flip = rest.get("tta_flip_below")
        other, pipeline = rest.get("other_tta"), rest.get("pipeline")
        return cls(
            name=_text(where, "name", rest.get("name")),
            head=_text(where, "head", rest.get("head")),
            labels=labels,
            format=fmt,
            file=_text(where, "file", rest.get("file")),
            temperature=_number(where, "temperature", rest.get("temperature", 1.0), positive=True),
            tta=tta,
            schema_version=version,
            label_mode=None if rest.get("label_mode") is None else _text(where, "label_mode", rest["label_mode"]),
            ensemble=_texts(where, "ensemble", rest.get("ensemble", [])),
            class_bias=_class_bias(where, rest.get("class_bias"), len(labels)),
            tta_flip_below=None if flip is None else _number(where, "tta_flip_below", flip, positive=True),
            other_tta=None if other is None else OtherTTA.from_json(other, len(labels), where),
            pipeline=None if pipeline is None else PipelineSpec.from_json(pipeline, where),
            file_sha256=None if rest.get("file_sha256") is None else _text(where, "file_sha256", rest["file_sha256"]),
            metrics=_block(where, "metrics", rest.get("metrics")),
            regression_slice=_block(where, "regression_slice", rest.get("regression_slice")),
            training=_block(where, "training", rest.get("training")),
            reproduce=_texts(where, "reproduce", rest.get("reproduce", [])),
            extra={k: v for k, v in rest.items() if k not in typed},
            key_order=tuple(rest),
        )

    def to_json(self) -> dict[str, Any]:
        """The card as JSON data: the keys it was read with in their order, then new ones; unset fields left out."""
        typed: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "key_order"):
                continue
            value = getattr(self, f.name)
            if value is None or (f.name in ("ensemble", "reproduce") and not value):
                continue
            if isinstance(value, (OtherTTA, PipelineSpec)):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            typed[f.name] = value
        merged = {**typed, **self.extra}
        ordered = {k: merged[k] for k in self.key_order if k in merged}
        return ordered | merged

    def updated(self, **changes: Any) -> ModelCard:
        """A copy with card keys set (JSON values; None removes an optional key), validated like a read card."""
        data = self.to_json()
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        card = ModelCard.from_json(data, self.name)
        return replace(card, key_order=tuple(dict.fromkeys([*self.key_order, *card.key_order])))

    # ------------------------------------------------------------------ reading

    @property
    def files(self) -> tuple[str, ...]:
        """The model file and the other ensemble members' files."""
        return (self.file, *self.ensemble)

    @property
    def accuracy(self) -> float | None:
        """The shipped PublicTest accuracy (``metrics.accuracy``), None before an export measured it."""
        value = (self.metrics or {}).get("accuracy")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def train_wall_seconds(self) -> float | None:
        """Training time of every network in the artifact, the runs it built on included."""
        value = (self.training or {}).get("train_wall_seconds_all_phases")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def pipeline_settings(self) -> dict[str, Any] | None:
        """The ``pipeline`` entry for ``emotion.pipeline.config_from`` (None: the service's default)."""
        return None if self.pipeline is None else self.pipeline.to_json()

    def other_tta_for(self, tta: bool) -> OtherTTA | None:
        """``other_tta`` when it describes the `tta` mode and the card's own mode is the other one."""
        if tta != self.tta and self.other_tta is not None and self.other_tta.tta == tta:
            return self.other_tta
        return None


def card_path_of(path: str | os.PathLike[str]) -> Path:
    """The card file of an artifact directory (or the card file itself)."""
    path = Path(path)
    return path if path.name == CARD_NAME else path / CARD_NAME


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and check the card of the artifact at `path` (its directory or its ``model_card.json``).

    Raises FileNotFoundError when there is no card, :class:`CardError` (a ValueError) when it is not valid
    JSON or does not follow the schema of a supported ``schema_version``.
    """
    card_path = card_path_of(path)
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} not found: {card_path.parent} is not an exported model artifact")
    try:
        data = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise CardError(f"{card_path}: not valid JSON ({exc})") from exc
    return ModelCard.from_json(data, str(card_path))


def write_card(directory: str | os.PathLike[str], card: ModelCard) -> Path:
    """Write `card` as ``directory/model_card.json`` (indented JSON, a newline at the end)."""
    path = Path(directory) / CARD_NAME
    path.write_text(json.dumps(card.to_json(), indent=2, default=str) + "\n")
    return path


def new_card(
    *,
    name: str,
    head: str,
    labels: Sequence[str],
    fmt: str,
    file: str,
    tta: bool = False,
    temperature: float = 1.0,
    **extra: Any,
) -> ModelCard:
    """A card for a freshly written model file (``extra``: further card keys, typed or free-form)."""
    data: dict[str, Any] = {
        "name": name,
        "head": head,
        "labels": list(labels),
        "input": INPUT_SPEC,
        "preprocessing": PREPROCESSING,
        "format": fmt,
        "file": file,
        "temperature": temperature,
        "tta": tta,
        **extra,
        "schema_version": SCHEMA_VERSION,
    }
    return ModelCard.from_json(data, name)
