"""Model builders: one `build_<name>(input_shape, num_classes, ...)` per architecture.

Every model takes uint8-range grayscale faces (B, H, W, 1) as float input, rescales to [0, 1]
itself, and ends in a softmax `Dense` layer, so a checkpoint is a complete inference model.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from ml.models.cnn import build_cnn
from ml.models.feednet import build_feednet
from ml.models.transfer import build_resnet50, build_resnet50v2, build_vgg16

BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "cnn": build_cnn,
    "resnet50": build_resnet50,
    "resnet50v2": build_resnet50v2,
    "vgg16": build_vgg16,
    "feednet": build_feednet,
}
TRANSFER_MODELS = frozenset({"resnet50", "resnet50v2", "vgg16"})


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **kwargs) -> keras.Model:
    """Build the architecture called `name`; raises ValueError naming the choices otherwise."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(BUILDERS))}")
    return BUILDERS[name](input_shape, num_classes, **kwargs)


def add_heads(model: keras.Model, heads: dict[str, int]) -> keras.Model:
    """Replace the final softmax layer by one softmax head per entry of `heads` (multi-task)."""
    features = model.layers[-1].input
    outputs = {
        name: keras.layers.Dense(k, activation="softmax", dtype="float32", name=name)(features)
        for name, k in heads.items()
    }
    return keras.Model(model.inputs, outputs, name=model.name)
