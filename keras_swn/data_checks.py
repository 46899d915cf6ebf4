"""One check for every form of training data.

`check_data` reads NumPy arrays `(x, y)`, a `tf.data.Dataset`, a
`keras.utils.PyDataset`, a list of `(x, y)` batches or a Python generator
the same way: inputs of the model's `input_shape` (channels-first images
and unbatched elements named), a numeric dtype, finite values, integer
class ids in `[0, num_classes)`, at least one example, and no infinite
dataset without `steps_per_epoch`. Arrays are checked whole; the other
forms on their first `PEEK` batches, read without consuming anything (a
one-shot generator comes back wrapped so that it yields the batches read
first again).

`SWNModel.fit`, `SearchAndRefine.search` (through
`keras_swn.training.data.DataSource`) and the `keras-swn` command call it,
so the messages are the same everywhere.
"""

from __future__ import annotations

import collections.abc
import itertools
import sys
import weakref
from typing import Any
from typing import Iterator
from typing import Mapping
from typing import Sequence

import keras
import numpy as np

from keras_swn.validation import invalid_argument

#: The batches read from a dataset, a generator or a list of batches.
PEEK = 2

#: `tf.data.experimental.cardinality` of an infinite dataset.
_INFINITE = -1


def is_arrays(data: Any) -> bool:
    """Whether `data` is a tuple or list of arrays `(x, y)` (not batches).

    Examples:
        >>> is_arrays((np.zeros((2, 3)), np.zeros(2)))
        True
        >>> is_arrays([(np.zeros((2, 3)), np.zeros(2))])
        False
    """
    return (
        isinstance(data, (tuple, list))
        and len(data) in (2, 3)
        and all(hasattr(a, "shape") for a in data)
    )


def is_tf_dataset(data: Any) -> bool:
    """Whether `data` is a `tf.data.Dataset` (without importing TF)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def is_one_shot(data: Any) -> bool:
    """Whether `data` is an iterator (a generator): one pass only."""
    return isinstance(data, collections.abc.Iterator)


def _numpy(value: Any) -> np.ndarray:
    """A batch entry as NumPy: a TensorFlow tensor (tf.data on any
    backend), a backend tensor or an array."""
    if type(value).__module__.startswith("tensorflow") and hasattr(
        value, "numpy"
    ):
        return np.asarray(value.numpy())
    return np.asarray(keras.ops.convert_to_numpy(value))


def _received(where: str, text: str) -> str:
    return f"{where}: {text}" if where else text


def check_arrays(
    x: Any,
    y: Any,
    name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    labels: bool = True,
    y_name: str | None = None,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Check inputs `x` and labels `y` (all examples, or one batch).

    Args:
        x: the inputs, `(N, *input_shape)`.
        y: the labels: integer class ids `(N,)` or `(N, 1)`.
        name: str, the argument `x` is (for the messages).
        input_shape: the shape of one input, or None not to check it.
        num_classes: int or None, the classes the labels must be below.
        labels: bool, check `y` as class ids (False: its length only).
        y_name: str or None, the argument `y` is (default: `name`).
        where: str, e.g. `"batch 0"`, written before the value received.

    Returns:
        `(x, y)` as NumPy arrays.

    Raises:
        ValueError: an `ArgumentError` naming `name` or `y_name`.

    Examples:
        >>> x, y = np.zeros((4, 8, 8, 1), "float32"), np.arange(4)
        >>> check_arrays(x, y, "x", input_shape=(8, 8, 1))[0].shape
        (4, 8, 8, 1)
        >>> check_arrays(x, y + 8, "x", num_classes=10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... Expected class ids in [0, 10)...
    """
    y_name = y_name or name
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise invalid_argument(
            name,
            "Expected inputs x and labels y of the same length, one label "
            "per example.",
            _received(where, f"x of shape {x.shape}, y of shape {y.shape}"),
        )
    if len(x) == 0:
        raise invalid_argument(
            name,
            "Expected at least one example: the data is empty.",
            _received(where, f"x of shape {x.shape}"),
        )
    _check_inputs(x, name, input_shape, where)
    if labels:
        check_labels(y, y_name, num_classes=num_classes, where=where)
    return x, y


def _check_inputs(x: np.ndarray, name, input_shape, where: str) -> None:
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise invalid_argument(
            name,
            "Expected numeric inputs (e.g. float32 images).",
            _received(where, f"x of dtype {x.dtype}"),
        )
    if input_shape is not None:
        _check_shape(x.shape, name, tuple(input_shape), where)
    if np.issubdtype(x.dtype, np.inexact):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise invalid_argument(
                name,
                "Expected finite inputs: x holds non-finite values "
                "(NaN or inf); clean or drop those examples.",
                _received(where, f"{bad} non-finite values in x"),
            )


#: The channels-first hint of the messages.
CHANNELS_FIRST = (
    "The data looks channels-first (N, C, H, W) and the model takes "
    "channels-last (N, H, W, C): pass x.transpose(0, 2, 3, 1)."
)


def looks_channels_first(shape: Sequence[int]) -> bool:
    """Whether images of `shape` `(N, a, b, c)` look channels-first: a
    first axis of 1, 3 or 4 channels before square images larger than 4.

    Used where no `input_shape` says which it is (the command line reads
    the shape from the data).

    Examples:
        >>> looks_channels_first((10, 3, 32, 32)), looks_channels_first(
        ...     (10, 32, 32, 3))
        (True, False)
    """
    return (
        len(shape) == 4 and shape[1] in (1, 3, 4) and shape[2] == shape[3] > 4
    )


def _check_shape(shape: tuple, name: str, want: tuple, where: str) -> None:
    one = tuple(shape[1:])
    if one == want:
        return
    hint = ""
    if len(want) == 3 and one == (want[2], want[0], want[1]):
        hint = " " + CHANNELS_FIRST
    raise invalid_argument(
        name,
        f"Expected inputs of shape {want} (the model's input_shape), one "
        f"per row.{hint}",
        _received(where, f"x of shape {tuple(shape)}"),
    )


def check_labels(
    y: Any, name: str, *, num_classes: int | None = None, where: str = ""
) -> np.ndarray:
    """Check labels: integer class ids in `[0, num_classes)`, one per
    example (`(N,)` or `(N, 1)`), not one-hot, not strings.

    Args:
        y: the labels.
        name: str, the argument for the messages.
        num_classes: int or None, the classes the labels must be below.
        where: str, e.g. `"batch 0"`, written before the value received.

    Returns:
        The labels as an `(N,)` array.

    Raises:
        ValueError: an `ArgumentError` naming `name`.

    Examples:
        >>> check_labels(np.array(["cat", "dog"]), "y")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... not strings...
    """
    y = np.asarray(y)
    if y.dtype.kind in "USO":
        try:
            if y.dtype.kind != "O" or any(
                isinstance(v, (str, bytes)) for v in y.flat
            ):
                raise TypeError("text")
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise invalid_argument(
                name,
                "Expected integer class ids 0..K-1, not strings: map the "
                "class names to ids, e.g. "
                "np.unique(y, return_inverse=True)[1].",
                _received(where, f"labels {y.reshape(-1)[:3].tolist()}"),
            ) from None
    if y.dtype.kind not in "biuf":
        raise invalid_argument(
            name,
            "Expected integer class ids.",
            _received(where, f"y of dtype {y.dtype}"),
        )
    if y.ndim == 2 and y.shape[1] > 1:
        raise invalid_argument(
            name,
            "Expected integer class ids, not one-hot rows: pass y.argmax(-1).",
            _received(where, f"y of shape {y.shape}"),
        )
    if y.ndim > 2 or y.ndim == 0:
        raise invalid_argument(
            name,
            "Expected class ids, one per example.",
            _received(where, f"y of shape {y.shape}"),
        )
    labels = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
    bad = int(np.size(labels) - np.count_nonzero(np.isfinite(labels)))
    if bad:
        raise invalid_argument(
            name,
            "Expected finite class ids, one per example.",
            _received(where, f"{bad} non-finite labels"),
        )
    if np.any(labels != np.round(labels)):
        raise invalid_argument(
            name,
            "Expected integer class ids.",
            _received(where, f"labels {labels[:5].tolist()}"),
        )
    if num_classes is not None and len(labels):
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise invalid_argument(
                name,
                f"Expected class ids in [0, {num_classes}) (num_classes="
                f"{num_classes}).",
                _received(where, f"labels from {low} to {high}"),
            )
    return labels


def _check_batch(batch: Any, index: int, name: str, **checks: Any) -> None:
    where = f"batch {index}"
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple) or len(batch) not in (2, 3):
        raise invalid_argument(
            name,
            "Expected batches (x, y) or (x, y, sample_weight).",
            _received(where, f"a {type(batch).__name__}"),
        )
    x, y = (_numpy(a) for a in batch[:2])
    shape = checks.get("input_shape")
    if (shape is not None and x.ndim == len(shape)) or y.ndim == 0:
        raise invalid_argument(
            name,
            "Expected batches of examples: these are single examples "
            "(unbatched elements). Call .batch(batch_size) on the dataset.",
            _received(where, f"x of shape {x.shape}, y of shape {y.shape}"),
        )
    check_arrays(x, y, name, where=where, **checks)


def _empty(name: str, what: str) -> ValueError:
    return invalid_argument(
        name,
        "Expected at least one batch: the data is empty.",
        what,
    )


def _peek(iterator: Iterator, name: str, what: str, **checks: Any) -> list:
    """Read and check up to `PEEK` batches; at least one must come."""
    batches = list(itertools.islice(iterator, PEEK))
    if not batches:
        raise _empty(name, what)
    for i, batch in enumerate(batches):
        _check_batch(batch, i, name, **checks)
    return batches


def _replay(peeked: list, rest: Iterator) -> Iterator:
    """A generator of the batches read first, then the rest."""
    yield from peeked
    yield from rest


def check_data(
    data: Any,
    name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    labels: bool = True,
    steps: int | None = None,
    infinite_hint: str = "pass steps_per_epoch, as keras.Model.fit asks",
) -> Any:
    """Check training or validation data of any form; return it ready to
    use.

    Arrays `(x, y)` (or `(x, y, sample_weight)`) are checked whole. A
    `tf.data.Dataset`, a `keras.utils.PyDataset`, a list of batches or any
    re-iterable are checked on their first `PEEK` batches (read again by
    the training); a generator or other one-shot iterator comes back
    wrapped, yielding the batches read here first. Other objects are
    returned as given (Keras reports them).

    Args:
        data: the data.
        name: str, the argument for the messages.
        input_shape: the shape of one input, or None not to check it.
        num_classes: int or None, the classes the labels must be below.
        labels: bool, check the labels as class ids.
        steps: int or None, the `steps_per_epoch` given: an infinite
            `tf.data.Dataset` needs it.
        infinite_hint: str, what to do about an infinite dataset.

    Returns:
        `data`, or for a one-shot iterator a generator of the same batches.

    Raises:
        ValueError: an `ArgumentError` naming `name`.

    Examples:
        >>> batches = [(np.zeros((2, 4, 4, 1)), np.array([0, 11]))]
        >>> check_data(batches, "x", num_classes=10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... Received: x='batch 0: labels...
    """
    checks: dict[str, Any] = dict(
        input_shape=input_shape, num_classes=num_classes, labels=labels
    )
    if is_arrays(data):
        check_arrays(data[0], data[1], name, **checks)
        return data
    if is_tf_dataset(data):
        how = repr((name, steps is None, sorted(checks.items())))
        if how not in _checked(data):
            _check_dataset(data, name, steps, infinite_hint, checks)
            _checked(data).add(how)
        return data
    if isinstance(data, keras.utils.PyDataset):
        count = data.num_batches
        if count == 0:
            raise _empty(name, "a PyDataset of 0 batches")
        n = PEEK if count is None else min(PEEK, count)
        for i in range(n):
            _check_batch(data[i], i, name, **checks)
        return data
    if (
        isinstance(data, (str, bytes, Mapping))
        or hasattr(data, "shape")  # inputs without labels: Keras decides
        # other TensorFlow inputs (a distributed dataset): Keras decides
        or type(data).__module__.startswith("tensorflow")
        or not hasattr(data, "__iter__")
    ):
        return data
    if isinstance(data, (list, tuple)) and not data:
        raise _empty(name, f"an empty {type(data).__name__}")
    if is_one_shot(data):
        peeked = _peek(data, name, "an exhausted generator", **checks)
        return _replay(peeked, data)
    _peek(iter(data), name, f"an empty {type(data).__name__}", **checks)
    return data


#: The `tf.data.Dataset`s checked (immutable: once is enough), and how.
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _checked(dataset: Any) -> set:
    """The checks `dataset` passed (the search's `fit` calls read the same
    dataset every epoch); an empty set for one that cannot be recorded."""
    try:
        return _CHECKED.setdefault(dataset, set())
    except TypeError:  # not weak-referenceable
        return set()


def _check_dataset(dataset, name, steps, hint, checks) -> None:
    import tensorflow as tf

    cardinality = int(tf.data.experimental.cardinality(dataset))
    if cardinality == _INFINITE and steps is None:
        raise invalid_argument(
            name,
            "Expected a finite dataset: this one repeats forever "
            f"(.repeat()), so an epoch would never end; {hint}.",
            "an infinite tf.data.Dataset",
        )
    if cardinality == 0:
        raise _empty(name, "a tf.data.Dataset of 0 batches")
    _peek(iter(dataset.take(PEEK)), name, "an empty tf.data.Dataset", **checks)
