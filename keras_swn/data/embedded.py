"""Image arrays that need no download: bundled digits and `.npz` files.

The digits are package data: `digits.npz` beside this module holds the
1,797 8x8 images of scikit-learn's `load_digits()` (the UCI optical
recognition of handwritten digits test set; pixel counts 0..16) as
`uint8` arrays `images` `(1797, 8, 8)` and `labels` `(1797,)`, written
once with `np.savez_compressed`. A test checks them against
scikit-learn's copy wherever scikit-learn is installed.

Both loaders return NumPy arrays `((x_train, y_train), (x_val, y_val))`:
images `float32` of shape `(N, H, W, C)` scaled to `[0, 1]` (optionally
normalised per channel), labels `int32` of shape `(N,)`. Splits are
stratified and seeded, so the same seed gives the same split everywhere.
No Keras import.
"""

from __future__ import annotations

import importlib.resources
import os
import zipfile
from typing import Sequence

import numpy as np

from keras_swn.validation import ArgumentError
from keras_swn.validation import invalid_argument

#: The package-data file of the digits (beside this module).
DIGITS_FILE = "digits.npz"

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

_XY_KEYS = ("x", "y")
_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_split(validation_split: object) -> float:
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, (int, float))
        or not 0.0 < float(validation_split) < 1.0
    ):
        raise invalid_argument(
            "validation_split",
            "Expected a float strictly between 0 and 1.",
            validation_split,
        )
    return float(validation_split)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise invalid_argument("seed", "Expected an int.", seed)
    return int(seed)


def stratified_split(
    y: np.ndarray, *, validation_split: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified, seeded train / validation split.

    Every class sends `round(n_c * validation_split)` of its `n_c` examples
    to validation (at least one, and at least one stays in training when the
    class has two or more examples); which ones is drawn from a generator
    seeded by `seed`. Both index arrays are sorted, so the original order of
    the data is kept within each split.

    Args:
        y: 1D array of integer labels.
        validation_split: float in `(0, 1)`, the validation fraction.
        seed: int, the seed of the draw.

    Returns:
        `(train_indices, val_indices)`, two sorted `int64` arrays.

    Examples:
        >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        >>> train, val = stratified_split(y, validation_split=0.5, seed=0)
        >>> len(train), len(val), sorted(y[val].tolist())
        (5, 5, [0, 0, 1, 1, 1])
    """
    validation_split = _check_split(validation_split)
    rng = np.random.default_rng(_check_seed(seed))
    y = np.asarray(y).reshape(-1)
    val = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_val = int(round(len(idx) * validation_split))
        n_val = max(1, n_val) if len(idx) >= 2 else 0
        n_val = min(n_val, len(idx) - 1) if len(idx) >= 2 else n_val
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx.astype(np.int64)


def _as_images(x: np.ndarray, name: str, where: str) -> np.ndarray:
    """`(N, H, W)` or `(N, H, W, C)` -> float32 `(N, H, W, C)`."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"Invalid array `{name}` in {where}. Expected images of shape "
            f"(N, H, W) or (N, H, W, C). Received: {name}.shape={x.shape}"
        )
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if not (
        np.issubdtype(x.dtype, np.floating)
        or np.issubdtype(x.dtype, np.integer)
    ):
        raise ValueError(
            f"Invalid array `{name}` in {where}. Expected a numeric dtype. "
            f"Received: {name}.dtype={x.dtype}"
        )
    return x.astype(np.float32)


def _as_labels(y: np.ndarray, n: int, name: str, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"Invalid array `{name}` in {where}. Expected integer labels of "
            f"shape ({n},), one per image. Received: {name}.shape={y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(
            y == np.round(y)
        ):
            raise ValueError(
                f"Invalid array `{name}` in {where}. Expected integer class "
                f"labels. Received: {name}.dtype={y.dtype}"
            )
    if len(y) and y.min() < 0:
        raise ValueError(
            f"Invalid array `{name}` in {where}. Expected labels >= 0. "
            f"Received: min({name})={y.min()}"
        )
    return y.astype(np.int32)


def _normalize(x_train: np.ndarray, x_val: np.ndarray):
    """Per-channel standardisation with the training split's statistics."""
    mean = x_train.mean(axis=(0, 1, 2), keepdims=True, dtype=np.float64)
    std = x_train.std(axis=(0, 1, 2), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    return (x_train - mean) / std, (x_val - mean) / std


def _split_and_finish(
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_split: float,
    seed: int,
    normalize: bool,
) -> Arrays:
    train, val = stratified_split(
        y, validation_split=validation_split, seed=seed
    )
    return _finish(x[train], y[train], x[val], y[val], normalize=normalize)


def _finish(x_train, y_train, x_val, y_val, *, normalize: bool) -> Arrays:
    if normalize:
        x_train, x_val = _normalize(x_train, x_val)
    return (
        (np.ascontiguousarray(x_train), y_train),
        (np.ascontiguousarray(x_val), y_val),
    )


def load_digits_dataset(
    *,
    validation_split: float = 0.2,
    seed: int = 0,
    normalize: bool = False,
) -> Arrays:
    """The 1,797 real 8x8 handwritten digits, shipped with the package.

    The UCI optical-recognition digits (10 classes, about 180 per class),
    the same arrays as scikit-learn's `load_digits()`, ship inside
    keras_swn as package data (`digits.npz`, 45 KB), so they load offline
    in milliseconds without scikit-learn. Pixels (0 to 16) are scaled to
    `[0, 1]`; the split is stratified and seeded.

    Args:
        validation_split: float in `(0, 1)`, the validation fraction.
        seed: int, the seed of the split.
        normalize: bool, standardise each channel with the mean and
            standard deviation of the training split.

    Returns:
        `((x_train, y_train), (x_val, y_val))`: images `float32` of shape
        `(N, 8, 8, 1)`, labels `int32` of shape `(N,)`.

    Raises:
        ValueError: on a bad `validation_split` or `seed`.

    Examples:
        >>> (x, y), (xv, yv) = keras_swn.data.load_digits_dataset()
        >>> x.shape, xv.shape, x.dtype.name, int(y.max())
        ((1438, 8, 8, 1), (359, 8, 8, 1), 'float32', 9)
    """
    _check_split(validation_split)
    _check_seed(seed)
    images, labels = digits_arrays()
    x = (images.astype(np.float32) / np.float32(16.0))[..., None]
    y = labels.astype(np.int32)
    return _split_and_finish(
        x, y, validation_split=validation_split, seed=seed, normalize=normalize
    )


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits of the package data: `uint8` images and labels.

    Returns:
        `(images, labels)`: `uint8` arrays of shapes `(1797, 8, 8)` (pixel
        counts 0..16) and `(1797,)` (digits 0..9), in scikit-learn's
        order.

    Examples:
        >>> images, labels = digits_arrays()
        >>> images.shape, int(images.max()), labels[:5].tolist()
        ((1797, 8, 8), 16, [0, 1, 2, 3, 4])
    """
    resource = importlib.resources.files("keras_swn.data").joinpath(DIGITS_FILE)
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as data:
        return data["images"], data["labels"]


def load_npz(
    path: str | os.PathLike,
    *,
    validation_split: float = 0.2,
    seed: int = 0,
    normalize: bool = False,
) -> Arrays:
    """Images and labels from a NumPy `.npz` file.

    The file holds either `x` and `y` (all examples: they are split here,
    stratified and seeded, by `validation_split`), or `x_train`, `y_train`,
    `x_test`, `y_test` (used as given: the test arrays become the
    validation data and `validation_split` is not used). Images are
    `(N, H, W)` or `(N, H, W, C)`; `uint8` images are scaled to `[0, 1]`,
    other dtypes are cast to `float32` unchanged. Labels are integers,
    `(N,)` or `(N, 1)`. Other arrays in the file (e.g. class names) are
    ignored. The file is read with `allow_pickle=False`.

    Args:
        path: path of the `.npz` file.
        validation_split: float in `(0, 1)`, the validation fraction when
            the file holds `x` and `y`.
        seed: int, the seed of the split.
        normalize: bool, standardise each channel with the mean and
            standard deviation of the training split.

    Returns:
        `((x_train, y_train), (x_val, y_val))`: images `float32` of shape
        `(N, H, W, C)`, labels `int32` of shape `(N,)`.

    Raises:
        ValueError: if the file is missing or unreadable, lacks the arrays
            named above, or holds arrays of the wrong shape.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
        >>> x = np.zeros((20, 4, 4, 3), np.uint8)
        >>> np.savez(path, x=x, y=np.arange(20) % 2)
        >>> (x, y), (xv, yv) = keras_swn.data.load_npz(path)
        >>> x.shape, xv.shape, x.dtype.name
        ((16, 4, 4, 3), (4, 4, 4, 3), 'float32')
    """
    _check_split(validation_split)
    _check_seed(seed)
    fspath = os.fspath(path)
    if not os.path.isfile(fspath):
        raise invalid_argument(
            "path", "No such file. Expected an existing .npz file.", fspath
        )
    try:
        loaded = np.load(fspath, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as f:
            keys = sorted(f.files)
            if all(k in keys for k in _SPLIT_KEYS):
                arrays = {k: f[k] for k in _SPLIT_KEYS}
            elif all(k in keys for k in _XY_KEYS):
                arrays = {k: f[k] for k in _XY_KEYS}
            else:
                arrays = None
    except ArgumentError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise invalid_argument(
            "path", f"Not a readable .npz archive ({e}).", fspath
        ) from None
    if arrays is None:
        raise invalid_argument(
            "path",
            f"The file lacks the arrays to load. Expected keys "
            f"{list(_XY_KEYS)} or {list(_SPLIT_KEYS)}.",
            fspath,
            shown=f"path={fspath!r} with keys {keys}",
        )
    where = repr(fspath)
    if "x" in arrays:
        x = _as_images(arrays["x"], "x", where)
        y = _as_labels(arrays["y"], len(x), "y", where)
        return _split_and_finish(
            x,
            y,
            validation_split=validation_split,
            seed=seed,
            normalize=normalize,
        )
    x_train = _as_images(arrays["x_train"], "x_train", where)
    y_train = _as_labels(arrays["y_train"], len(x_train), "y_train", where)
    x_test = _as_images(arrays["x_test"], "x_test", where)
    y_test = _as_labels(arrays["y_test"], len(x_test), "y_test", where)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"Invalid arrays in {where}: `x_train` and `x_test` hold images "
            "of different shapes. Received: "
            f"x_train.shape={x_train.shape}, x_test.shape={x_test.shape}"
        )
    return _finish(x_train, y_train, x_test, y_test, normalize=normalize)


def describe(arrays: Arrays, names: Sequence[str] = ("train", "val")) -> str:
    """A one-line summary of loaded arrays, e.g. for a CLI."""
    parts = []
    classes = 0
    for name, (x, y) in zip(names, arrays):
        classes = max(classes, int(y.max()) + 1 if len(y) else 0)
        parts.append(f"{name} {x.shape[0]} x {tuple(x.shape[1:])}")
    return ", ".join(parts) + f"; {classes} classes"
