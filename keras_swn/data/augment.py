"""Per-image preprocessing: normalisation and the training augmentation.

Pure `tf` functions of one image, used by the `tf.data` pipelines of
`keras_swn.data.cifar` and usable on their own. The augmentation is
stateless: the same seed gives the same image. TensorFlow is imported when
a function is called, not when this module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Sequence

if TYPE_CHECKING:
    import tensorflow as tf

ImageLike = Any
"""An image tensor or array: a `tf.Tensor`, a NumPy array, or nested lists."""


def _tf():
    import tensorflow as tf

    return tf


def _to_float(image: ImageLike) -> "tf.Tensor":
    """`uint8` in `[0, 255]` -> `float32` in `[0, 1]`; floats are cast."""
    tf = _tf()
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def normalize_image(
    image: ImageLike, *, mean: Sequence[float], std: Sequence[float]
) -> tf.Tensor:
    """Scale an image to `[0, 1]` (if `uint8`) and standardise each channel.

    Args:
        image: `(..., H, W, C)` tensor or array, `uint8` in `[0, 255]` or
            floating point in `[0, 1]`.
        mean: per-channel means, in `[0, 1]` scale.
        std: per-channel standard deviations, in `[0, 1]` scale.

    Returns:
        A `float32` `tf.Tensor` `(image - mean) / std`.

    Examples:
        >>> from keras_swn import data
        >>> image = np.full((32, 32, 3), 255, np.uint8)
        >>> out = data.normalize_image(image, mean=data.CIFAR10_MEAN,
        ...                             std=data.CIFAR10_STD)
        >>> out.shape, out.dtype.name
        (TensorShape([32, 32, 3]), 'float32')
    """
    tf = _tf()
    image = _to_float(image)
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (image - mean) / std


def augment_image(
    image: ImageLike,
    seed: ImageLike,
    *,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    padding: int = 4,
    cutout: int = 16,
) -> tf.Tensor:
    """The reference training augmentation of one image, seeded, stateless.

    Steps, in order: zero-pad `padding` pixels on each side and take a
    random crop of the original size (an offset in `[0, 2 * padding]` per
    axis); flip left-right with probability 1/2; normalise per channel
    (when `mean` and `std` are given); Cutout: draw a centre `(cy, cx)`
    uniformly over the image and set the rows `[cy - cutout // 2,
    cy + cutout // 2)` and the same columns, clipped at the border, to 0
    (in normalised space, as the reference's `Cutout` after `Normalize`).
    The same `seed` gives the same result on every run.

    Args:
        image: `(H, W, C)` tensor, `uint8` in `[0, 255]` or floating point
            in `[0, 1]`.
        seed: shape `(2,)` integer tensor, the seed of the stateless
            random ops (`tf.random.stateless_*`).
        mean: per-channel means in `[0, 1]` scale, or None to skip the
            normalisation.
        std: per-channel standard deviations, or None.
        padding: int, the zero padding before the random crop (0: no
            crop).
        cutout: int, the side of the Cutout square (0: no Cutout).

    Returns:
        A `float32` `(H, W, C)` `tf.Tensor`.

    Examples:
        >>> from keras_swn import data
        >>> image = np.ones((32, 32, 3), np.float32)
        >>> out = data.augment_image(image, [1, 2], mean=None, std=None,
        ...                           padding=0, cutout=16)
        >>> int((out.numpy() == 0).all(axis=-1).sum()) <= 16 * 16
        True
    """
    tf = _tf()
    image = _to_float(image)
    seeds = tf.random.experimental.stateless_split(
        tf.cast(tf.convert_to_tensor(seed), tf.int64), num=4
    )
    height, width = image.shape[0], image.shape[1]
    if height is None or width is None:
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
    if padding:
        padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        offsets = tf.random.stateless_uniform(
            (2,), seeds[0], minval=0, maxval=2 * padding + 1, dtype=tf.int32
        )
        image = tf.slice(
            padded,
            tf.stack([offsets[0], offsets[1], 0]),
            tf.stack([height, width, tf.shape(image)[-1]]),
        )
    flip = tf.random.stateless_uniform((), seeds[1]) < 0.5
    image = tf.where(flip, tf.reverse(image, axis=[1]), image)
    if mean is not None and std is not None:
        image = normalize_image(image, mean=mean, std=std)
    if cutout:
        cy = tf.random.stateless_uniform(
            (), seeds[2], minval=0, maxval=height, dtype=tf.int32
        )
        cx = tf.random.stateless_uniform(
            (), seeds[3], minval=0, maxval=width, dtype=tf.int32
        )
        half = cutout // 2
        rows = tf.range(height)
        cols = tf.range(width)
        in_rows = (rows >= cy - half) & (rows < cy + half)
        in_cols = (cols >= cx - half) & (cols < cx + half)
        square = in_rows[:, None] & in_cols[None, :]
        image = tf.where(square[:, :, None], tf.zeros_like(image), image)
    return image
