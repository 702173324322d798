"""The reference custom CNN: four conv blocks (128, 256, 512, 512) then Dense 512 -> 256 -> K."""

from __future__ import annotations

import keras
from keras import layers


def build_cnn(
    input_shape: tuple[int, int, int] = (48, 48, 1), num_classes: int = 7, dropout: float = 0.4
) -> keras.Model:
    """The reference project's CNN exactly: each conv block is Conv3x3-ReLU, MaxPool, Dropout."""
    inputs = keras.Input(input_shape, name="face")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for filters in (128, 256, 512, 512):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn")
