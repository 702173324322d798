"""Training-time augmentation as the reference FER projects used it, as one batched affine warp.

Random rotation of +-15 degrees, width/height shift of +-10 %, zoom 0.9-1.1 and horizontal flip
are folded into a single projective transform per image, so a batch costs one
`ImageProjectiveTransformV3` op. Optional random erasing (Zhong et al. 2020) then hides one
rectangle per image, and optional mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) blends
each image with another of its batch, targets and loss weights alike. Pixels are rescaled to
[0, 1] by the model, not here.

Each function takes an optional `seed` (an int32/int64 tensor of shape (2,)): with it every draw is
stateless, a pure function of the seed, so a batch is augmented the same way whatever the thread,
process or resumed run that builds it (see ml.pipeline); without it, TensorFlow's stateful RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf


class Draws:
    """The random draws of one augmentation call: stateless from `seed` (each draw folds in its own counter),
    or TensorFlow's stateful RNG when `seed` is None."""

    def __init__(self, seed: tf.Tensor | None = None):
        self.seed = None if seed is None else tf.cast(seed, tf.int64)
        self.count = 0

    def _next_seed(self) -> tf.Tensor:
        self.count += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape, low: float = 0.0, high: float = 1.0, dtype=tf.float32) -> tf.Tensor:
        if self.seed is None:
            return tf.random.uniform(shape, low, high, dtype=dtype)
        return tf.random.stateless_uniform(shape, self._next_seed(), low, high, dtype=dtype)

    def normal(self, shape) -> tf.Tensor:
        if self.seed is None:
            return tf.random.normal(shape)
        return tf.random.stateless_normal(shape, self._next_seed())

    def gamma(self, shape, alpha: float) -> tf.Tensor:
        if self.seed is None:
            return tf.random.gamma(shape, alpha)
        return tf.random.stateless_gamma(shape, self._next_seed(), alpha)

    def permutation(self, n: tf.Tensor) -> tf.Tensor:
        if self.seed is None:
            return tf.random.shuffle(tf.range(n))
        return tf.argsort(self.uniform([n]), stable=True)


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    shift: float = 0.10
    zoom: tuple[float, float] = (0.9, 1.1)
    hflip: bool = True


def random_affine(
    images: tf.Tensor, config: AugmentConfig = AugmentConfig(), seed: tf.Tensor | None = None
) -> tf.Tensor:
    """Warp a float batch (B, H, W, C) with independent random affine transforms (edge pixels repeat)."""
    batch = tf.shape(images)[0]
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    draws = Draws(seed)

    def uniform(low: float, high: float) -> tf.Tensor:
        return draws.uniform([batch], low, high)

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


def _active(name: str, probability: float) -> bool:
    """Whether an augmentation applied with ``probability`` does anything; a value outside [0, 1] is an error."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"{name} probability must be in [0, 1], got {probability}")
    return probability > 0.0


def _box_mask(
    top: tf.Tensor, bottom: tf.Tensor, left: tf.Tensor, right: tf.Tensor, height: tf.Tensor, width: tf.Tensor
) -> tf.Tensor:
    """(B, H, W) booleans, true inside each image's box: rows [top, bottom), columns [left, right) (floats)."""
    rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < bottom[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < right[:, None])  # (B, W)
    return in_rows[:, :, None] & in_cols[:, None, :]


def random_erasing(
    images: tf.Tensor,
    probability: float,
    area: tuple[float, float] = (0.02, 0.25),
    aspect: tuple[float, float] = (0.3, 3.3),
    max_value: float = 255.0,
    seed: tf.Tensor | None = None,
) -> tf.Tensor:
    """With `probability`, fill one random rectangle of each image (B, H, W, C) with uniform noise.

    The rectangle covers `area` (a fraction of the image, drawn uniformly) with a log-uniform
    height/width ratio in `aspect`, clipped to the image; noise is uniform in [0, max_value].
    """
    if not _active("random erasing", probability):
        return images
    draws = Draws(seed)
    shape = tf.shape(images)
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    fraction = draws.uniform([batch], *area)
    ratio = tf.exp(draws.uniform([batch], math.log(aspect[0]), math.log(aspect[1])))
    h = tf.minimum(tf.round(tf.sqrt(fraction * height * width * ratio)), height)
    w = tf.minimum(tf.round(tf.sqrt(fraction * height * width / ratio)), width)
    top = tf.floor(draws.uniform([batch]) * (height - h + 1.0))
    left = tf.floor(draws.uniform([batch]) * (width - w + 1.0))
    chosen = draws.uniform([batch]) < probability
    mask = _box_mask(top, top + h, left, left + w, height, width) & chosen[:, None, None]  # (B, H, W)
    noise = draws.uniform(tf.shape(images), 0.0, max_value, dtype=images.dtype)
    return tf.where(mask[..., None], noise, images)


def _beta(shape: tf.Tensor, alpha: float, draws: Draws) -> tf.Tensor:
    """Beta(alpha, alpha) draws as a ratio of two gamma draws."""
    a = draws.gamma(shape, alpha)
    b = draws.gamma(shape, alpha)
    return a / tf.maximum(a + b, 1e-12)


def _cutmix_boxes(shape: tf.Tensor, alpha: float, draws: Draws) -> tuple[tf.Tensor, tf.Tensor]:
    """One CutMix box per image of a batch of `shape` (B, H, W, C): its (B, H, W) mask and the share lam it keeps.

    lam ~ Beta(alpha, alpha) sets the box's side ratios to sqrt(1 - lam); the centre is uniform and the box is
    clipped to the image, so lam is then recomputed from the box actually cut.
    """
    batch, h, w = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    ratio = tf.sqrt(1.0 - _beta([batch], alpha, draws))
    cy, cx = draws.uniform([batch]) * h, draws.uniform([batch]) * w
    top, bottom = tf.clip_by_value(cy - ratio * h / 2, 0.0, h), tf.clip_by_value(cy + ratio * h / 2, 0.0, h)
    left, right = tf.clip_by_value(cx - ratio * w / 2, 0.0, w), tf.clip_by_value(cx + ratio * w / 2, 0.0, w)
    top, bottom, left, right = (tf.round(v) for v in (top, bottom, left, right))
    return _box_mask(top, bottom, left, right, h, w), 1.0 - (bottom - top) * (right - left) / (h * w)


def mix_batch(
    images: tf.Tensor,
    targets: Any,
    weights: Any,
    *,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    probability: float = 1.0,
    seed: tf.Tensor | None = None,
) -> tuple[tf.Tensor, Any, Any]:
    """Blend each image of a float batch (B, H, W, C) with a random partner from the same batch.

    With `probability` an image is mixed: by mixup (`lam * x + (1 - lam) * x_partner`, lam ~ Beta(mixup, mixup))
    or by CutMix (a box of the partner pasted in, covering a share 1 - lam of the image, lam ~ Beta(cutmix,
    cutmix) and then set to the share actually kept); with both concentrations set, each image takes one of the
    two at even odds. `targets` and `weights` are a tensor or a dict of tensors per head ((B, K) distributions
    and (B,) loss weights, 0 where a row has no label for that head); each target becomes the same blend
    `lam * y + (1 - lam) * y_partner`, each weight `lam * w + (1 - lam) * w_partner`, and a mixed row whose
    partner has no label for a head gets weight 0 there. Returns (images, targets, weights).
    """
    for name, value in (("mixup", mixup), ("cutmix", cutmix)):
        if not value >= 0.0:
            raise ValueError(f"{name} concentration must be >= 0, got {value}")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"mix probability must be in [0, 1], got {probability}")
    if (mixup == 0.0 and cutmix == 0.0) or probability == 0.0:
        return images, targets, weights
    draws = Draws(seed)
    batch = tf.shape(images)[0]
    partner = draws.permutation(batch)
    others = tf.gather(images, partner)
    mixed = draws.uniform([batch]) < probability
    lam = _beta([batch], mixup, draws) if mixup > 0.0 else tf.ones([batch])
    if cutmix > 0.0:  # each image takes CutMix, or mixup at even odds when both are on
        use_cut = draws.uniform([batch]) < 0.5 if mixup > 0.0 else tf.ones([batch], tf.bool)
        box, lam_cut = _cutmix_boxes(tf.shape(images), cutmix, draws)
        lam = tf.where(use_cut, lam_cut, lam)
    lam = tf.where(mixed, lam, 1.0)
    out = lam[:, None, None, None] * images + (1.0 - lam[:, None, None, None]) * others
    if cutmix > 0.0:
        pasted = tf.where(box[..., None], others, images)
        out = tf.where((mixed & use_cut)[:, None, None, None], pasted, out)

    def mix_targets(y: tf.Tensor) -> tf.Tensor:
        y = tf.cast(y, tf.float32)
        return lam[:, None] * y + (1.0 - lam[:, None]) * tf.gather(y, partner)

    def mix_weights(wt: tf.Tensor) -> tf.Tensor:
        wt = tf.cast(wt, tf.float32)
        other = tf.gather(wt, partner)
        both = (wt > 0) & ((other > 0) | (lam >= 1.0))
        return tf.where(both, lam * wt + (1.0 - lam) * other, 0.0)

    return out, tf.nest.map_structure(mix_targets, targets), tf.nest.map_structure(mix_weights, weights)


@dataclass(frozen=True)
class PhotoDegradeConfig:
    """How :func:`photo_degrade` spoils a face crop the way a photo and the face pipeline do.

    The residual roll, scale and shift left after detection, framing and eye levelling are within
    :func:`random_affine`'s ranges, so they are not repeated here. Each step is applied to an image
    independently with probability ``probability`` (the share of untouched images stays high).
    """

    blur_sigma: tuple[float, float] = (0.3, 1.2)
    low_res: tuple[int, int] = (16, 40)  # side (px) of the downscale-upscale round trip, on the 48-px crop
    jpeg_quality: tuple[int, int] = (25, 85)
    gamma: tuple[float, float] = (0.55, 1.8)  # log-uniform
    contrast: tuple[float, float] = (0.5, 1.15)
    brightness: float = 25.0  # +- shift on 0..255
    noise_sigma: tuple[float, float] = (1.0, 6.0)


def _gaussian_blur(images: tf.Tensor, sigma: tf.Tensor, radius: int = 3) -> tf.Tensor:
    """Each single-channel image of (B, H, W, 1) blurred with its own Gaussian ``sigma`` (B,), edges reflected."""
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(taps[None, :] ** 2) / (2.0 * tf.maximum(sigma, 1e-3)[:, None] ** 2))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (B, K)
    x = tf.transpose(images, [3, 1, 2, 0])  # batch as channels: one depthwise filter per image
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.transpose(kernel)[:, None, :, None]  # (K, 1, B, 1)
    cols = tf.transpose(kernel)[None, :, :, None]  # (1, K, B, 1)
    x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "VALID")
    return tf.transpose(x, [3, 1, 2, 0])


def photo_degrade(
    images: tf.Tensor,
    probability: float,
    config: PhotoDegradeConfig = PhotoDegradeConfig(),
    seed: tf.Tensor | None = None,
) -> tf.Tensor:
    """Blur, low resolution (downscale-upscale), JPEG, gamma / contrast / brightness and sensor noise on a
    single-channel float batch (B, H, W, 1) in 0..255, each step on each image with ``probability``.

    A face in a photo is often smaller than the model's 48 px (upscaled), out of focus, compressed and
    lit unlike FER-2013's crops; the model sees these only if it is trained on them. The low-resolution
    side is drawn once per batch (one resize pair), the rest per image.
    """
    if not _active("photo degradation", probability):
        return images
    draws = Draws(seed)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]

    def chosen() -> tf.Tensor:
        return (draws.uniform([batch]) < probability)[:, None, None, None]

    x = tf.clip_by_value(images, 0.0, 255.0)
    side = tf.cast(tf.floor(draws.uniform([], float(config.low_res[0]), float(config.low_res[1]) + 1.0)), tf.int32)
    small = tf.image.resize(x, tf.stack([side, side]), method="area")
    x = tf.where(chosen(), tf.image.resize(small, tf.stack([height, width]), method="bilinear"), x)
    x = tf.where(chosen(), _gaussian_blur(x, draws.uniform([batch], *config.blur_sigma)), x)
    quality = tf.cast(tf.floor(draws.uniform([batch], config.jpeg_quality[0], config.jpeg_quality[1] + 1.0)), tf.int32)
    compressed = tf.map_fn(
        lambda args: tf.cast(
            tf.image.adjust_jpeg_quality(tf.cast(tf.round(tf.clip_by_value(args[0], 0, 255)), tf.uint8), args[1]),
            tf.float32,
        ),
        (x, quality),
        fn_output_signature=tf.float32,
    )
    x = tf.where(chosen(), tf.reshape(compressed, tf.shape(x)), x)
    lo, hi = math.log(config.gamma[0]), math.log(config.gamma[1])
    gamma = tf.exp(draws.uniform([batch], lo, hi))[:, None, None, None]
    contrast = draws.uniform([batch], *config.contrast)[:, None, None, None]
    shift = draws.uniform([batch], -config.brightness, config.brightness)[:, None, None, None]
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    lit = 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, gamma)
    lit = (lit - mean) * contrast + mean + shift
    x = tf.where(chosen(), lit, x)
    sigma = draws.uniform([batch], *config.noise_sigma)[:, None, None, None]
    x = tf.where(chosen(), x + sigma * draws.normal(shape), x)
    return tf.clip_by_value(x, 0.0, 255.0)
