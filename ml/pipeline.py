"""tf.data input pipelines for training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from ml.augment import mix_batch, photo_degrade, random_affine, random_erasing
from ml.data import class_weights

if TYPE_CHECKING:
    from ml.distill import OnlineTeacher

fold_in = tf.random.experimental.stateless_fold_in


def sample_weights(targets: np.ndarray, valid: np.ndarray, kind: str) -> np.ndarray:
    """Per-sample loss weights: the class weight of each row's label, 0 for rows invalid for this head."""
    per_class = class_weights(targets, valid, kind)
    return (per_class[targets.argmax(axis=1)] * valid).astype(np.float32)


def make_dataset(
    images: np.ndarray,
    targets: dict[str, np.ndarray],
    weights: dict[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool,
    augment: bool,
    erase: float = 0.0,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    mix_prob: float = 1.0,
    photo: float = 0.0,
    seed: int = 0,
    single_output: bool = True,
    teachers: Sequence[OnlineTeacher] = (),
    epochs: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """(x, y, sample_weight) batches; x is float32 (B, 48, 48, 1) in 0..255, augmented when asked.

    `photo` is the probability of each photo degradation step (ml.augment.photo_degrade), applied after the
    affine warp when augmenting; `erase` is the random-erasing probability per image, applied after that;
    `mixup` / `cutmix` (Beta concentrations, 0 = off) then blend images with batch partners, each image with
    probability `mix_prob` (see ml.augment.mix_batch), before any online teacher scores the batch.

    With `single_output` the only head's arrays are passed bare, else as dicts keyed by head.
    Augmentation runs batched and in parallel so both cores stay busy. Each online teacher then
    rewrites its head's targets from the augmented batch (see ml.distill.OnlineTeacher).

    `epochs=(first, last)` makes one stream of the epochs first..last-1 (fit it with `steps_per_epoch`):
    each epoch's order and each batch's augmentation are then pure functions of (seed, epoch, batch), so a
    run resumed at epoch `first` sees exactly the batches an uninterrupted run sees from that epoch on.
    Without it, a re-iterable dataset reshuffled each iteration (stateful RNG).
    """
    x = images[..., None] if images.ndim == 3 else images
    y = next(iter(targets.values())) if single_output else dict(targets)
    w = next(iter(weights.values())) if single_output else dict(weights)
    if epochs is not None:
        ds = epoch_stream((x, y, w), batch_size, seed, *epochs, shuffle=shuffle)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y, w))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)

    def prepare(xb, yb, wb, batch_seed=None):
        xb = tf.cast(xb, tf.float32)
        if augment:
            seeds = [None] * 4 if batch_seed is None else [fold_in(batch_seed, part) for part in range(4)]
            xb = photo_degrade(random_affine(xb, seed=seeds[0]), photo, seed=seeds[3])
            xb = random_erasing(xb, erase, seed=seeds[1])
            xb, yb, wb = mix_batch(xb, yb, wb, mixup=mixup, cutmix=cutmix, probability=mix_prob, seed=seeds[2])
        return xb, yb, wb

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if teachers:
        ds = ds.map(_teach(teachers, single_output))  # sequential: a teacher's interpreter is one at a time anyway
    return ds.prefetch(tf.data.AUTOTUNE)


def epoch_stream(arrays, batch_size: int, seed: int, first: int, last: int, *, shuffle: bool) -> tf.data.Dataset:
    """Batches of epochs first..last-1 of `arrays` (a nest of equal-length arrays) as (x, y, w, batch_seed).

    Epoch e's order is a stateless permutation keyed by (seed, e); batch b's seed is keyed by (seed, e, b).
    """
    if not 0 <= first <= last:
        raise ValueError(f"epoch range must satisfy 0 <= first <= last, got {first}..{last}")
    tensors = tf.nest.map_structure(tf.constant, arrays)
    n = len(tf.nest.flatten(arrays)[0])
    base = tf.constant([seed, 0x5EED], tf.int64)

    def one_epoch(epoch):
        epoch_seed = fold_in(base, epoch)
        order = tf.argsort(tf.random.stateless_uniform([n], epoch_seed), stable=True) if shuffle else tf.range(n)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(
            lambda b, index: (*tf.nest.map_structure(lambda t: tf.gather(t, index), tensors), fold_in(epoch_seed, b))
        )

    return tf.data.Dataset.range(first, last).flat_map(one_epoch)


def _teach(teachers: Sequence[OnlineTeacher], single_output: bool):
    """A tf.data map function that replaces each teacher's head targets with its blend."""

    def teach(xb, yb, wb):
        ys = dict(yb) if not single_output else {teachers[0].head: yb}
        ws = dict(wb) if not single_output else {teachers[0].head: wb}
        for teacher in teachers:
            blended = tf.numpy_function(
                teacher.blend, [xb, ys[teacher.head], ws[teacher.head]], tf.float32, stateful=False
            )
            ys[teacher.head] = tf.ensure_shape(blended, ys[teacher.head].shape)
        return xb, (ys if not single_output else ys[teachers[0].head]), wb

    return teach
