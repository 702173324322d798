"""Training-time augmentation as the reference FER projects used it, as one batched affine warp.

Random rotation of +-15 degrees, width/height shift of +-10 %, zoom 0.9-1.1 and horizontal flip
are folded into a single projective transform per image, so a batch costs one
`ImageProjectiveTransformV3` op. Optional random erasing (Zhong et al. 2020) then hides one
rectangle per image. Pixels are rescaled to [0, 1] by the model, not here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    shift: float = 0.10
    zoom: tuple[float, float] = (0.9, 1.1)
    hflip: bool = True


def random_affine(images: tf.Tensor, config: AugmentConfig = AugmentConfig(), seed: tf.Tensor | None = None) -> tf.Tensor:
    """Warp a float batch (B, H, W, C) with independent random affine transforms (edge pixels repeat)."""
    batch = tf.shape(images)[0]
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)

    def uniform(low: float, high: float) -> tf.Tensor:
        return tf.random.uniform([batch], low, high)

    angle = uniform(-config.rotation_deg, config.rotation_deg) * (math.pi / 180.0)
    scale = uniform(*config.zoom)
    tx = uniform(-config.shift, config.shift) * width
    ty = uniform(-config.shift, config.shift) * height
    flip = tf.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if config.hflip else tf.ones([batch])

    # The op maps each *output* pixel to an input pixel: build the inverse of
    # (flip, rotate, zoom about the centre, then shift).
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    a0, a1 = cos * flip, sin * flip
    b0, b1 = -sin, cos
    ox, oy = cx + tx, cy + ty
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    zeros = tf.zeros([batch])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )


def random_erasing(images: tf.Tensor, probability: float, area: tuple[float, float] = (0.02, 0.25),
                   aspect: tuple[float, float] = (0.3, 3.3), max_value: float = 255.0) -> tf.Tensor:
    """With `probability`, fill one random rectangle of each image (B, H, W, C) with uniform noise.

    The rectangle covers `area` (a fraction of the image, drawn uniformly) with a log-uniform
    height/width ratio in `aspect`, clipped to the image; noise is uniform in [0, max_value].
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"random erasing probability must be in [0, 1], got {probability}")
    if probability == 0.0:
        return images
    shape = tf.shape(images)
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    fraction = tf.random.uniform([batch], *area)
    ratio = tf.exp(tf.random.uniform([batch], math.log(aspect[0]), math.log(aspect[1])))
    h = tf.minimum(tf.round(tf.sqrt(fraction * height * width * ratio)), height)
    w = tf.minimum(tf.round(tf.sqrt(fraction * height * width / ratio)), width)
    top = tf.floor(tf.random.uniform([batch]) * (height - h + 1.0))
    left = tf.floor(tf.random.uniform([batch]) * (width - w + 1.0))
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
    chosen = tf.random.uniform([batch]) < probability
    mask = in_rows[:, :, None] & in_cols[:, None, :] & chosen[:, None, None]  # (B, H, W)
    noise = tf.random.uniform(tf.shape(images), 0.0, max_value, dtype=images.dtype)
    return tf.where(mask[..., None], noise, images)
