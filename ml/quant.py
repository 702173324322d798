"""Quantization-aware fine-tuning of conv weights for the int8 export.

`ml.export` ships full-int8 TFLite, whose converter rounds each conv kernel to 255 levels per
output channel (symmetric, scale = max|w| / 127). On a lean `ferplus` checkpoint that rounding
alone cost 0.2-0.3 accuracy points (float activations kept: 86.96% -> 86.78% on PublicTest), as
much as the whole int8 file. `ml.train --int8-weights` trains through the same rounding
(`Int8WeightConv2D`: the forward pass uses the rounded kernel, the gradient passes straight
through to the float kernel), and `strip_int8_weights` turns such a
model back into plain `Conv2D` layers whose kernels already lie on the int8 grid, so the
converter's rounding changes nothing.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

LEVELS = 127  # symmetric int8: -127..127, as TFLite's per-channel weight quantization


def rounded_to_grid(kernel):
    """`kernel` rounded to the per-output-channel (last axis) symmetric int8 grid (a tensor)."""
    axes = tuple(range(len(kernel.shape) - 1))
    scale = ops.max(ops.abs(kernel), axis=axes, keepdims=True) / LEVELS
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    return ops.round(kernel / scale) * scale


def int8_grid(kernel: np.ndarray) -> np.ndarray:
    """`rounded_to_grid` for a numpy kernel, as float32 numpy."""
    return ops.convert_to_numpy(rounded_to_grid(ops.convert_to_tensor(np.asarray(kernel, dtype=np.float32))))


def fake_quant(kernel):
    """The kernel rounded to the int8 grid in the forward pass; the identity for the gradient."""
    return kernel + ops.stop_gradient(rounded_to_grid(kernel) - kernel)


@keras.saving.register_keras_serializable(package="feedmood")
class Int8WeightConv2D(keras.layers.Conv2D):
    """A Conv2D whose forward pass sees its kernel rounded to the int8 grid (straight-through gradient)."""

    def convolution_op(self, inputs, kernel):
        rounded = ops.cast(fake_quant(ops.cast(kernel, "float32")), self.compute_dtype)
        return super().convolution_op(inputs, rounded)


def _swap_convs(model: keras.Model, to_int8: bool) -> keras.Model:
    source, target = (keras.layers.Conv2D, Int8WeightConv2D) if to_int8 else (Int8WeightConv2D, keras.layers.Conv2D)

    def clone(layer):
        if type(layer) is source:
            return target.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    clone_model = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, Int8WeightConv2D) and not to_int8:
            weights = [int8_grid(weights[0]), *weights[1:]]
        clone_model.get_layer(layer.name).set_weights(weights)
    return clone_model


def with_int8_weights(model: keras.Model) -> keras.Model:
    """The same network (same weights) with every plain Conv2D trained through int8 weight rounding."""
    if not any(type(layer) is keras.layers.Conv2D for layer in model.layers):
        raise ValueError(f"{model.name}: no Conv2D layer to train through int8 rounding")
    return _swap_convs(model, to_int8=True)


def has_int8_weights(model: keras.Model) -> bool:
    return any(isinstance(layer, Int8WeightConv2D) for layer in model.layers)


def strip_int8_weights(model: keras.Model) -> keras.Model:
    """Plain Conv2D layers with the rounded kernels (what the forward pass used); `model` if it has none."""
    return _swap_convs(model, to_int8=False) if has_int8_weights(model) else model
