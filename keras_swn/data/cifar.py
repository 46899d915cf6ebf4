"""CIFAR-10/100 as `tf.data` pipelines with the reference augmentation.

The training recipe of the algorithm page ([Training recipe][recipe]): a
random 32x32
crop of the image zero-padded by 4 pixels, a random horizontal flip, per-channel
normalisation with the dataset's mean and standard deviation, then
Cutout (one 16x16 square, clipped at the border, set to 0 in normalised
space). Test data is normalised only. The pipelines are `tf.data`
datasets of `(images, labels)` batches, which `model.fit` accepts on
every Keras backend (TensorFlow, JAX and PyTorch).

`load_cifar` reads CIFAR through TensorFlow Datasets (`tfds.load`), by
default without downloading; `make_dataset` applies the same pipeline to
in-memory arrays (e.g. from `keras_swn.data.load_npz`). TensorFlow is
imported when a function is called, not when this module is imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from keras_swn.data.augment import _tf
from keras_swn.data.augment import augment_image
from keras_swn.data.augment import normalize_image
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument

if TYPE_CHECKING:
    import tensorflow as tf

CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
"""Per-channel mean of CIFAR-10 in `[0, 1]` pixel scale."""

CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
"""Per-channel standard deviation of CIFAR-10 in `[0, 1]` scale."""

CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
"""Per-channel mean of CIFAR-100 in `[0, 1]` pixel scale."""

CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)
"""Per-channel standard deviation of CIFAR-100 in `[0, 1]` scale."""

NORMALIZATION = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
}
"""Dataset name -> `(mean, std)`, the constants `load_cifar` uses."""

_NAMES = tuple(NORMALIZATION)


def _check_optional_size(value: Any, name: str) -> int:
    """`None` or 0 switch a step off; otherwise a positive int."""
    return 0 if value is None else check_int(name, value, minimum=0)


def _stats(normalization: Any) -> tuple[tuple, tuple] | None:
    """`"cifar10"`, `"cifar100"`, `(mean, std)` or None -> stats."""
    if normalization is None:
        return None
    if isinstance(normalization, str):
        if normalization not in NORMALIZATION:
            raise invalid_argument(
                "normalization",
                f"Expected one of {list(_NAMES)}, a `(mean, std)` pair, or "
                "None.",
                normalization,
            )
        return NORMALIZATION[normalization]
    try:
        mean, std = normalization
        mean = tuple(float(m) for m in np.atleast_1d(mean))
        std = tuple(float(s) for s in np.atleast_1d(std))
    except (TypeError, ValueError):
        mean, std = (), ()
    if not mean or len(mean) != len(std) or min(std) <= 0:
        raise invalid_argument(
            "normalization",
            f"Expected one of {list(_NAMES)}, a `(mean, std)` pair of "
            "per-channel sequences of equal length with std > 0, or None.",
            normalization,
        )
    return mean, std


def _pipeline(
    ds,
    *,
    training: bool,
    batch_size: int,
    stats: tuple | None,
    padding: int,
    cutout: int,
    seed: int,
    shuffle: bool,
    shuffle_buffer: int,
    drop_remainder: bool,
):
    """`(image, label)` examples -> batched, prefetched `tf.data` pipeline."""
    tf = _tf()
    autotune = tf.data.AUTOTUNE
    mean, std = stats if stats is not None else (None, None)

    def label(y):
        return tf.cast(tf.reshape(y, ()), tf.int32)

    if shuffle:
        ds = ds.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    if training:
        # One fresh random integer per example and epoch, from a seeded
        # stream; the augmentation itself is stateless, so parallel
        # `map` calls stay deterministic.
        randoms = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )

        def train_map(example, r):
            x, y = example
            image = augment_image(
                x,
                tf.stack([r, tf.constant(seed, tf.int64)]),
                mean=mean,
                std=std,
                padding=padding,
                cutout=cutout,
            )
            return image, label(y)

        ds = tf.data.Dataset.zip((ds, randoms)).map(
            train_map, num_parallel_calls=autotune
        )
    else:

        def test_map(x, y):
            if mean is None:
                image = tf.convert_to_tensor(x)
                image = (
                    tf.cast(image, tf.float32) / 255.0
                    if image.dtype == tf.uint8
                    else tf.cast(image, tf.float32)
                )
            else:
                image = normalize_image(x, mean=mean, std=std)
            return image, label(y)

        ds = ds.map(test_map, num_parallel_calls=autotune)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(autotune)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 128,
    training: bool = True,
    normalization: str | tuple | None = "cifar10",
    padding: int = 4,
    cutout: int | None = 16,
    seed: int = 0,
    shuffle: bool | None = None,
    shuffle_buffer: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A `tf.data` pipeline with the reference augmentation over arrays.

    For images already in memory, e.g. the CIFAR subset read by
    [`keras_swn.data.load_npz`][]. With `training=True`
    each example is randomly cropped after zero padding, flipped, normalised and
    cut out (see [`augment_image`][keras_swn.data.augment_image]), with fresh
    random draws every epoch that are fixed by `seed`; with `training=False` it
    is normalised only and the order is kept.

    Args:
        x: `(N, H, W, C)` images, `uint8` in `[0, 255]` or floating point
            in `[0, 1]` (what `load_npz` returns).
        y: `(N,)` integer labels.
        batch_size: int, the batch size.
        training: bool, augment (True) or normalise only (False).
        normalization: `"cifar10"`, `"cifar100"` (the recipe's constants), a
            `(mean, std)` pair of per-channel sequences in `[0, 1]` scale,
            or None (no normalisation).
        padding: int, the zero padding before the random crop (0: none).
        cutout: int or None, the side of the Cutout square (0 or None:
            none).
        seed: int, the seed of the shuffle and the augmentation.
        shuffle: bool or None, shuffle every epoch (None: when
            `training`).
        shuffle_buffer: int or None, the shuffle buffer (None: all `N`).
        drop_remainder: bool, drop the last partial batch (the reference
            keeps it).

    Returns:
        A `tf.data.Dataset` of `(float32 images, int32 labels)` batches.

    Raises:
        ValueError: on arrays of the wrong shape or bad arguments.

    Examples:
        >>> x = np.zeros((10, 32, 32, 3), np.uint8)
        >>> y = np.arange(10) % 2
        >>> ds = keras_swn.data.make_dataset(x, y, batch_size=4, seed=0)
        >>> [tuple(b[0].shape) for b in ds]
        [(4, 32, 32, 3), (4, 32, 32, 3), (2, 32, 32, 3)]
    """
    tf = _tf()
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise invalid_argument(
            "x",
            "Expected images of shape (N, H, W, C).",
            x,
            shown=f"x.shape={x.shape}",
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise invalid_argument(
            "y",
            f"Expected one integer label per image, shape ({len(x)},).",
            y,
            shown=f"y.shape={y.shape}",
        )
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
    stats = _stats(normalization)
    if stats is not None and len(stats[0]) != x.shape[-1]:
        raise invalid_argument(
            "normalization",
            f"It has {len(stats[0])} channels but the images have "
            f"{x.shape[-1]}.",
            normalization,
        )
    if shuffle is None:
        shuffle = training
    buffer = len(x) if shuffle_buffer is None else shuffle_buffer
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    return _pipeline(
        ds,
        training=bool(training),
        batch_size=check_int("batch_size", batch_size, minimum=1),
        stats=stats,
        padding=_check_optional_size(padding, "padding"),
        cutout=_check_optional_size(cutout, "cutout"),
        seed=check_int("seed", seed, minimum=0),
        shuffle=bool(shuffle),
        shuffle_buffer=check_int("shuffle_buffer", max(buffer, 1), minimum=1),
        drop_remainder=bool(drop_remainder),
    )


def load_cifar(
    name: str = "cifar10",
    *,
    split: str = "train",
    batch_size: int = 128,
    training: bool | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    padding: int = 4,
    cutout: int | None = 16,
    seed: int = 0,
    shuffle: bool | None = None,
    shuffle_buffer: int = 50_000,
    cache: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """CIFAR-10 or CIFAR-100 from TensorFlow Datasets, as in the recipe.

    Calls `tfds.load(name, split=split, data_dir=data_dir, download=download,
    as_supervised=True)` and builds the pipeline of
    [`make_dataset`][keras_swn.data.make_dataset] over it: on a training split,
    shuffle, pad-and-crop, flip, normalise with the dataset's constants
    (`NORMALIZATION`), Cutout; on a test split, normalise only. By default
    nothing is
    downloaded: prepare the data once with `download=True` (or
    `tfds.builder(name, data_dir=...).download_and_prepare()`) on a
    machine with network access, then point `data_dir` at it.

    Args:
        name: `"cifar10"` or `"cifar100"`.
        split: a TFDS split string (`"train"`, `"test"`, `"train[:90%]"`).
        batch_size: int, the batch size.
        training: bool or None, augment (True) or normalise only (False);
            None: True when `split` starts with `"train"`.
        data_dir: the TFDS data directory (None: TFDS's default,
            `~/tensorflow_datasets`).
        download: bool, let TFDS download and prepare the data if absent.
        padding: int, the zero padding before the random crop (0: none).
        cutout: int or None, the side of the Cutout square (0 or None:
            none).
        seed: int, the seed of the file order, the shuffle and the
            augmentation.
        shuffle: bool or None, shuffle every epoch (None: when
            `training`).
        shuffle_buffer: int, the shuffle buffer (50,000: all of CIFAR's
            training set).
        cache: bool, keep the decoded `uint8` images in memory after the
            first epoch (about 150 MB for 50,000 images).
        drop_remainder: bool, drop the last partial batch (the reference
            keeps it).

    Returns:
        A `tf.data.Dataset` of `(float32 images (B, 32, 32, 3), int32
        labels (B,))` batches, for `model.fit` on any backend.

    Raises:
        ValueError: on an unknown `name` or bad arguments.
        FileNotFoundError: when the data is not in `data_dir` and
            `download=False`.
        ImportError: when `tensorflow_datasets` is not installed.

    Examples:
        >>> import tensorflow_datasets as tfds
        >>> with tfds.testing.mock_data(num_examples=6):
        ...     ds = keras_swn.data.load_cifar("cifar10", batch_size=4)
        >>> [tuple(b[0].shape) for b in ds]
        [(4, 32, 32, 3), (2, 32, 32, 3)]
    """
    if name not in NORMALIZATION:
        raise invalid_argument("name", f"Expected one of {list(_NAMES)}.", name)
    if not isinstance(split, str) or not split:
        raise invalid_argument(
            "split",
            "Expected a TFDS split string such as 'train' or 'test'.",
            split,
        )
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    padding = _check_optional_size(padding, "padding")
    cutout = _check_optional_size(cutout, "cutout")
    shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, minimum=1)
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "`keras_swn.data.load_cifar` reads CIFAR through TensorFlow "
            "Datasets, which is not installed. Install it with `pip "
            "install tensorflow-datasets`, or load arrays yourself and use "
            "`keras_swn.data.make_dataset(x, y)`."
        ) from e
    if training is None:
        training = split.startswith("train")
    if shuffle is None:
        shuffle = bool(training)
    data_dir = None if data_dir is None else os.fspath(data_dir)
    try:
        ds = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=bool(download),
            as_supervised=True,
            shuffle_files=bool(shuffle),
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except AssertionError as e:
        if download:
            raise
        where = data_dir if data_dir is not None else "TFDS's default data_dir"
        raise FileNotFoundError(
            f"{name} was not found in {where} and `download=False`. Prepare "
            f"it once with `keras_swn.data.load_cifar({name!r}, "
            "download=True, data_dir=...)` on a machine with network "
            "access (or `tfds.builder(name, data_dir=...)"
            ".download_and_prepare()`) and pass that `data_dir`; or read "
            "images into arrays and use `keras_swn.data.make_dataset(x, "
            f"y)`. Received: data_dir={data_dir!r}. TFDS said: {e}"
        ) from None
    if cache:
        ds = ds.cache()
    return _pipeline(
        ds,
        training=bool(training),
        batch_size=batch_size,
        stats=NORMALIZATION[name],
        padding=padding,
        cutout=cutout,
        seed=seed,
        shuffle=bool(shuffle),
        shuffle_buffer=shuffle_buffer,
        drop_remainder=bool(drop_remainder),
    )
