"""ml.quant: training through int8 weight rounding, and the export keeping exactly those weights."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ml.models.feednet import build_feednet  # noqa: E402
from ml.quant import Int8WeightConv2D, int8_grid, strip_int8_weights, with_int8_weights  # noqa: E402
from ml.synthetic import faces  # noqa: E402


def tiny_feednet(seed: int = 0):
    keras.utils.set_random_seed(seed)
    return build_feednet((48, 48, 1), 8, width=4, stages=2, batch_norm=False)


def test_int8_grid_gives_each_output_channel_at_most_255_levels_and_keeps_its_peak():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 16, 5)).astype(np.float32)
    kernel[..., 4] = 0.0  # a dead channel stays zero (no division by a zero scale)
    grid = int8_grid(kernel)
    for channel in range(4):
        scale = np.abs(kernel[..., channel]).max() / 127
        steps = grid[..., channel] / scale
        assert np.allclose(steps, np.round(steps), atol=1e-4) and np.abs(steps).max() == pytest.approx(127)
        assert np.abs(grid[..., channel] - kernel[..., channel]).max() <= scale / 2 + 1e-7
    assert not grid[..., 4].any()
    assert np.array_equal(int8_grid(grid), grid)  # already on the grid: unchanged


def test_int8_weight_convs_compute_with_rounded_kernels_and_train_the_float_ones():
    plain = tiny_feednet()
    qat = with_int8_weights(plain)
    assert sum(isinstance(layer, Int8WeightConv2D) for layer in qat.layers) == 4
    x = faces(8, seed=1)[0][..., None].astype(np.float32)
    rounded = tiny_feednet()
    for layer in rounded.layers:
        if layer.name.endswith("_conv"):
            kernel, bias = layer.get_weights()
            layer.set_weights([int8_grid(kernel), bias])
    assert np.allclose(qat.predict(x, verbose=0), rounded.predict(x, verbose=0), atol=1e-5)
    assert not np.allclose(qat.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5)

    before = qat.get_layer("s0_c0_conv").get_weights()[0].copy()
    qat.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    qat.fit(x, np.eye(8)[np.arange(8)], epochs=1, batch_size=8, verbose=0)
    after = qat.get_layer("s0_c0_conv").get_weights()[0]
    assert np.abs(after - before).max() > 0  # the straight-through gradient reached the float kernel
    assert not np.array_equal(int8_grid(after), after)  # which is stored unrounded


def test_checkpoint_loads_as_plain_convs_whose_kernels_the_int8_export_keeps(tmp_path):
    from ml.checkpoints import load_checkpoint
    from ml.formats import to_tflite
    from ml.warmstart import folded_weights

    qat = with_int8_weights(tiny_feednet())
    qat.save(tmp_path / "best.keras")
    model = load_checkpoint(tmp_path / "best.keras")
    assert not any(isinstance(layer, Int8WeightConv2D) for layer in model.layers)
    assert strip_int8_weights(model) is model
    x = faces(4, seed=2)[0][..., None].astype(np.float32)
    assert np.allclose(model.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-5)

    convs, _ = folded_weights(to_tflite(model, tmp_path / "m.tflite", representative=faces(32, seed=3)[0]))
    assert sorted(convs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for (stage, conv), (kernel, _bias) in convs.items():
        trained = model.get_layer(f"s{stage}_c{conv}_conv").get_weights()[0]
        scale = np.abs(trained).max(axis=(0, 1, 2)) / 127
        assert np.abs(kernel - trained).max() <= 1e-3 * scale.min(), (stage, conv)  # rounding changed nothing


def test_with_int8_weights_needs_a_conv_layer():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="no Conv2D layer"):
        with_int8_weights(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
