"""Photo degradations for training (ml.augment.photo_degrade) and the --photo-degrade flag of ml.train."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ml.augment import PhotoDegradeConfig, _gaussian_blur, photo_degrade  # noqa: E402
from ml.pipeline import make_dataset  # noqa: E402
from ml.train import build_parser  # noqa: E402


def checkerboard(batch: int = 6) -> tf.Tensor:
    """(B, 48, 48, 1) float batch: 4-px black and white squares, the sharpest pattern a blur can spoil."""
    cells = (np.indices((48, 48)) // 4).sum(axis=0) % 2
    return tf.constant(np.repeat((cells * 255.0)[None, :, :, None], batch, axis=0), tf.float32)


def sharpness(images: np.ndarray) -> np.ndarray:
    """Mean absolute difference between horizontal neighbours, per image."""
    return np.abs(np.diff(images[..., 0], axis=2)).mean(axis=(1, 2))


def test_off_is_the_identity_and_bad_probabilities_are_refused() -> None:
    x = checkerboard()
    assert np.array_equal(photo_degrade(x, 0.0).numpy(), x.numpy())
    with pytest.raises(ValueError, match="probability"):
        photo_degrade(x, 1.5)


def test_every_image_is_spoiled_and_stays_an_image() -> None:
    x = checkerboard()
    out = photo_degrade(x, 1.0, seed=tf.constant([3, 4], tf.int64)).numpy()
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 255.0
    assert (sharpness(out) < 0.8 * sharpness(x.numpy())).all()  # low resolution and blur take the edges


def test_a_seed_fixes_the_draws() -> None:
    x = checkerboard()
    a = photo_degrade(x, 0.5, seed=tf.constant([1, 2], tf.int64)).numpy()
    b = photo_degrade(x, 0.5, seed=tf.constant([1, 2], tf.int64)).numpy()
    c = photo_degrade(x, 0.5, seed=tf.constant([1, 3], tf.int64)).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_each_image_gets_its_own_blur() -> None:
    x = checkerboard(2)
    out = _gaussian_blur(x, tf.constant([0.01, 1.5])).numpy()
    assert np.allclose(out[0], x.numpy()[0], atol=1e-3)
    assert sharpness(out[1:])[0] < 0.5 * sharpness(x.numpy()[1:])[0]


def test_the_training_flag_reaches_the_batches() -> None:
    args = build_parser().parse_args(["--model", "feednet", "--photo-degrade", "0.3"])
    assert args.photo_degrade == 0.3 and build_parser().parse_args(["--model", "feednet"]).photo_degrade == 0.0
    images = np.asarray(checkerboard(8).numpy()[..., 0], np.uint8)
    targets = {"ferplus": np.eye(8, dtype=np.float32)}
    weights = {"ferplus": np.ones(8, np.float32)}

    def first_batch(photo: float) -> np.ndarray:
        ds = make_dataset(images, targets, weights, 8, shuffle=False, augment=True, photo=photo, seed=7, epochs=(0, 1))
        return next(iter(ds))[0].numpy()

    plain, spoiled = first_batch(0.0), first_batch(1.0)
    assert np.array_equal(plain, first_batch(0.0))
    assert sharpness(spoiled).mean() < 0.8 * sharpness(plain).mean()


def test_config_ranges_are_sane() -> None:
    config = PhotoDegradeConfig()
    assert 0 < config.low_res[0] < config.low_res[1] < 48
    assert 1 <= config.jpeg_quality[0] < config.jpeg_quality[1] <= 100
