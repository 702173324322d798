"""ImageNet backbones (ResNet50, ResNet50V2, VGG16) adapted to 48x48 grayscale faces.

The model repeats the gray channel to RGB, resizes to `base_size`, applies the backbone's own
preprocessing, and adds a small head. ImageNet weights come only from a local file
(`weights=PATH`); `weights=None` is random init. Phase 1 trains the head with the base frozen
(its BatchNorm layers stay in inference mode); phase 2 unfreezes it, see :func:`unfreeze_base`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

BASES: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "resnet50": (keras.applications.ResNet50, "caffe"),
    "resnet50v2": (keras.applications.ResNet50V2, "tf"),
    "vgg16": (keras.applications.VGG16, "caffe"),
}
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="feedmood")
class ImagenetPreprocess(layers.Layer):
    """The backbone's ImageNet preprocessing on 0-255 RGB input, as a serialisable layer.

    `caffe` (ResNet50, VGG16): RGB -> BGR and subtract the ImageNet mean; `tf` (ResNet50V2): scale to [-1, 1].
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x / 127.5 - 1.0
        bgr = keras.ops.flip(x, axis=-1)
        return bgr - keras.ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


BASE_LAYER_NAME = "base"


def _build_transfer(
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | None = None,
    base_size: int = 96,
    dropout: float = 0.4,
    trainable_base: bool = False,
) -> keras.Model:
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"ImageNet weights file {weights} not found (FeedMood never downloads weights)")
    constructor, mode = BASES[arch]
    base = constructor(include_top=False, weights=None, input_shape=(base_size, base_size, 3), pooling="avg")
    if weights is not None:
        base.load_weights(weights)
    base.name = BASE_LAYER_NAME
    base.trainable = trainable_base

    inputs = keras.Input(input_shape, name="face")
    x = inputs if input_shape[-1] == 3 else layers.Concatenate()([inputs] * 3)
    x = layers.Resizing(base_size, base_size, interpolation="bilinear")(x)
    x = ImagenetPreprocess(mode, name="imagenet_preprocess")(x)
    # training=False keeps BatchNorm statistics frozen even after the base is unfrozen.
    x = base(x, training=False)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=arch)


def build_resnet50(input_shape=(48, 48, 1), num_classes=7, **kwargs) -> keras.Model:
    """ResNet50 transfer model (see module docstring for the recipe)."""
    return _build_transfer("resnet50", input_shape, num_classes, **kwargs)


def build_resnet50v2(input_shape=(48, 48, 1), num_classes=7, **kwargs) -> keras.Model:
    """ResNet50V2 transfer model."""
    return _build_transfer("resnet50v2", input_shape, num_classes, **kwargs)


def build_vgg16(input_shape=(48, 48, 1), num_classes=7, **kwargs) -> keras.Model:
    """VGG16 transfer model."""
    return _build_transfer("vgg16", input_shape, num_classes, **kwargs)


def unfreeze_base(model: keras.Model) -> None:
    """Phase 2: make the backbone trainable (BatchNorm stays in inference mode)."""
    model.get_layer(BASE_LAYER_NAME).trainable = True
