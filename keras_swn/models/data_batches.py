"""Iterate `(x, y, sample_weight)` batches of arrays or datasets."""

from __future__ import annotations

import itertools

import keras
import numpy as np

from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


def iterate_batches(x, y=None, *, batch_size: int = 128, batches=None):
    """Yield up to `batches` batches (None: all) as backend tensors.

    `x` may be arrays (with `y`), a `tf.data.Dataset`, a
    `keras.utils.PyDataset` or any iterable of `(x, y)` /
    `(x, y, sample_weight)` tuples.
    """
    if batches is not None and (
        isinstance(batches, bool) or not isinstance(batches, int) or batches < 1
    ):
        raise invalid_argument(
            "batches", "Expected a positive int or None.", batches
        )
    if isinstance(x, np.ndarray) or hasattr(x, "shape"):
        if y is None:
            raise invalid_argument(
                "y", "Argument `y` is required when `x` is an array.", y
            )
        batch_size = check_int("batch_size", batch_size, minimum=1)
        n = len(x)
        starts = range(0, n, batch_size)
        source = (
            (x[s : s + batch_size], y[s : s + batch_size]) for s in starts
        )
    else:
        source = iter(x)
    for batch in itertools.islice(source, batches):
        bx, by, bw = keras.utils.unpack_x_y_sample_weight(tuple(batch))
        yield (
            keras.ops.convert_to_tensor(np.asarray(bx, "float32")),
            keras.ops.convert_to_tensor(np.asarray(by)),
            None if bw is None else keras.ops.convert_to_tensor(bw),
        )
