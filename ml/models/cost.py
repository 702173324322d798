"""Multiply-accumulates per face of a Keras model, counted from its conv and dense layers (library part of
``python -m ml.models.macs``; ``ml.export`` records it in the model card)."""

from __future__ import annotations


def layer_macs(layer) -> int:
    """MACs of one layer for one input, 0 for layers without multiply-accumulates."""
    import keras
    import numpy as np

    if isinstance(layer, keras.Model):
        return count_macs(layer)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, c = layer.output.shape
        return int(h * w * c * np.prod(layer.kernel_size))
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, c = layer.output.shape
        return int(h * w * c * np.prod(layer.kernel_size) * layer.input.shape[-1] // layer.groups)
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1] * layer.units)
    return 0


def count_macs(model) -> int:
    """MACs per face of a functional Keras model."""
    return sum(layer_macs(layer) for layer in model.layers)
