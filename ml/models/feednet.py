"""FeedNet: FeedMood's own production FER network, built for accuracy per CPU millisecond.

A VGG-style stack of 3x3 conv + BatchNorm + ReLU layers in four stages (widths
width * 1, 2, 4, 8 at 48, 24, 12, 6 pixels), global average pooling and a softmax head. Plain
dense convolutions train and run faster on a 2-core CPU under oneDNN than depthwise-separable
ones of the same accuracy (measured: 1.2 M params trains at ~400 img/s vs 210 img/s for a
0.4 M-param separable net). Width and depth are arguments so tests build tiny versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def build_feednet(
    input_shape: tuple[int, int, int] = (48, 48, 1),
    num_classes: int = 8,
    width: int = 32,
    convs_per_stage: int = 2,
    stages: int = 4,
    dropout: float = 0.3,
    batch_norm: bool = True,
    stage_widths: Sequence[int] | None = None,
    stage_convs: Sequence[int] | None = None,
) -> keras.Model:
    """FeedNet: `stages` stages of `convs_per_stage` conv-BN-ReLU layers, each stage ending in 2x2 max-pool.

    `stage_widths` / `stage_convs` set each stage's channels and conv count on their own (default
    `width * 2**stage` and `convs_per_stage`); both give the number of stages when set. For example
    `stage_widths=(32, 64, 128, 192), stage_convs=(1, 2, 2, 2)`: one conv at 48 px, 192 channels at
    6 px. Stage 0's activations are the largest, so dropping its second conv (18% of the MACs) speeds
    int8 inference by 20-36% (bench/feednet_shapes.py).

    `batch_norm=False` builds the folded network an export runs (conv with bias, no BN): the shape
    `ml.warmstart` rebuilds from a shipped artifact to fine-tune it.
    """
    widths, convs = stage_plan(width, convs_per_stage, stages, stage_widths, stage_convs)
    inputs = keras.Input(input_shape, name="face")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for stage, (filters, count) in enumerate(zip(widths, convs)):
        for conv in range(count):
            name = f"s{stage}_c{conv}"
            x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.ReLU(name=f"{name}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="feednet")


def stage_plan(
    width: int,
    convs_per_stage: int,
    stages: int,
    stage_widths: Sequence[int] | None = None,
    stage_convs: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels per stage, convs per stage) from the uniform arguments or the per-stage lists."""
    if stage_widths is not None and stage_convs is not None and len(stage_widths) != len(stage_convs):
        raise ValueError(f"stage_widths {tuple(stage_widths)} and stage_convs {tuple(stage_convs)} differ in length")
    n = len(stage_widths) if stage_widths is not None else len(stage_convs) if stage_convs is not None else stages
    widths = tuple(stage_widths) if stage_widths is not None else tuple(width * 2**s for s in range(n))
    convs = tuple(stage_convs) if stage_convs is not None else (convs_per_stage,) * n
    if not widths or min(widths) < 1 or min(convs) < 1:
        raise ValueError(f"every stage needs at least one conv and one channel (widths {widths}, convs {convs})")
    return widths, convs
