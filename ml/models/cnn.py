"""The reference custom CNN: four conv blocks (128, 256, 512, 512) then Dense 512 -> 256 -> K.

The layers are the seeds' exactly. One detail differs from Keras' defaults: the ReLU layers start from He
initialisation (He et al. 2015). With the default Glorot-uniform kernels and no BatchNorm, each of the six
ReLU layers shrinks the signal (the first conv by far the most: 9 inputs against 1,152 outputs), so at
initialisation the softmax hardly depends on the face (its spread across faces is ~50x smaller than with
He kernels) and training first sits at the majority class; see docs/seed-models.md.
"""

from __future__ import annotations

import keras
from keras import layers

#: Kernel initialiser of the ReLU layers (the softmax layer keeps Glorot-uniform).
RELU_INIT = "he_uniform"


def build_cnn(
    input_shape: tuple[int, int, int] = (48, 48, 1), num_classes: int = 7, dropout: float = 0.4
) -> keras.Model:
    """The reference project's CNN: each conv block is Conv3x3-ReLU, MaxPool, Dropout; He-initialised ReLUs."""
    inputs = keras.Input(input_shape, name="face")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for filters in (128, 256, 512, 512):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=RELU_INIT)(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu", kernel_initializer=RELU_INIT)(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(256, activation="relu", kernel_initializer=RELU_INIT)(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn")
