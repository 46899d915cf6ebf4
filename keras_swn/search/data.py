"""`DataSource`: training or validation data as the search reads it.

Arrays `(x, y)` or an iterable of `(x, y)` batches (a `tf.data.Dataset`,
a generator factory, ...). Arrays are put in a seeded order by the
search itself (a pure function of the seed and the step, so a resumed
search sees the same batches); batches are used as given.
"""

from __future__ import annotations

import hashlib
from typing import Any
from typing import Mapping
from typing import Sequence
from typing import cast

import numpy as np
from keras import ops

from keras_swn import seeding
from keras_swn.validation import argument_error

_FORMS = (
    "Expected a tuple of arrays (x, y), a tf.data.Dataset or an iterable "
    "of (x, y) batches."
)


def floats(logs: Mapping | None) -> dict[str, float]:
    """Keras logs (tensors or numbers) as a dict of Python floats."""
    return {
        str(k): float(ops.convert_to_numpy(v)) for k, v in (logs or {}).items()
    }


class DataSource:
    """Training or validation data: arrays `(x, y)` or batches.

    Arrays are checked where they enter: finite inputs of
    `input_shape`, integer class ids in `[0, num_classes)` (not one-hot).

    Args:
        data: `(x, y)` arrays of the same non-zero length, or an iterable
            of `(x, y)` batches.
        name: str, the argument name for error messages.
        input_shape: the shape of one input, or None not to check it.
        num_classes: the number of classes, or None not to check labels.

    Raises:
        ValueError: an `ArgumentError` naming `name`.
    """

    def __init__(
        self,
        data: Any,
        name: str,
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
    ):
        self.name = name
        self.x = self.y = self.dataset = None
        if (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and hasattr(data[0], "shape")
        ):
            self.x = np.asarray(data[0])
            self.y = np.asarray(data[1])
            if len(self.x) != len(self.y) or len(self.x) == 0:
                raise argument_error(
                    name,
                    "Expected (x, y) arrays of the same non-zero length.",
                    f"(x of {len(self.x)}, y of {len(self.y)})",
                )
            self._check_arrays(input_shape, num_classes)
        elif (
            data is None
            or isinstance(data, (str, bytes, Mapping))
            or not hasattr(data, "__iter__")
            or (
                isinstance(data, (tuple, list))
                and any(hasattr(a, "shape") for a in data)
            )
        ):
            raise argument_error(
                name, _FORMS, None if data is None else type(data).__name__
            )
        else:
            self.dataset = data

    def _check_arrays(self, input_shape, num_classes) -> None:
        x, y, name = self.x, self.y, self.name
        assert x is not None and y is not None  # set by `__init__` first
        if input_shape is not None and x.shape[1:] != tuple(input_shape):
            raise argument_error(
                name,
                f"Expected inputs of shape {tuple(input_shape)} (the model's "
                "input_shape), one per row.",
                f"x of shape {x.shape}",
            )
        if not np.issubdtype(x.dtype, np.number):
            raise argument_error(name, "Expected numeric inputs.", x.dtype)
        if np.issubdtype(x.dtype, np.inexact):
            bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
            if bad:
                raise argument_error(
                    name,
                    "Expected finite inputs: x holds non-finite values "
                    "(NaN or inf); clean or drop those examples.",
                    f"{bad} non-finite values in x",
                )
        if y.ndim == 2 and y.shape[1] > 1:
            raise argument_error(
                name,
                "Expected integer class ids, not one-hot rows: pass "
                "y.argmax(-1).",
                f"y of shape {y.shape}",
            )
        labels = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
        if y.ndim > 2 or not np.all(np.isfinite(labels)):
            raise argument_error(
                name, "Expected finite class ids, one per example.", y.shape
            )
        if np.any(labels != np.round(labels)):
            raise argument_error(
                name, "Expected integer class ids.", labels[:5].tolist()
            )
        low, high = int(labels.min()), int(labels.max())
        if num_classes is not None and (low < 0 or high >= num_classes):
            raise argument_error(
                name,
                f"Expected class ids in [0, {num_classes}) (num_classes="
                f"{num_classes}).",
                f"labels from {low} to {high}",
            )

    def fingerprint(self) -> str | None:
        """A SHA-256 of the arrays' shapes, dtypes and values (None for
        batches, which cannot be read without consuming them)."""
        if not self.arrays:
            return None
        assert self.x is not None and self.y is not None  # `arrays`
        digest = hashlib.sha256()
        for a in (self.x, self.y):
            digest.update(f"{a.shape}{a.dtype}".encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        return digest.hexdigest()

    @property
    def arrays(self) -> bool:
        """Whether the data is arrays (else an iterable of batches)."""
        return self.x is not None

    @property
    def num_examples(self) -> int | None:
        """The number of examples of arrays (None for batches)."""
        return len(cast(np.ndarray, self.x)) if self.arrays else None

    def permuted(self, seed: int, tag: str, *identity: int):
        """The arrays in a seeded order (a pure function of the ids)."""
        # Called for arrays only (`arrays`), so neither is None.
        x, y = cast(np.ndarray, self.x), cast(np.ndarray, self.y)
        perm = seeding.rng_for(seed, tag, *identity).permutation(len(x))
        return x[perm], y[perm]

    def fit_kwargs(self, batch_size: int) -> dict:
        """`fit` arguments: the arrays (shuffled by `fit`) or the batches."""
        if not self.arrays:
            return {"x": self.dataset}
        return {"x": self.x, "y": self.y, "batch_size": batch_size}

    def ordered_fit_kwargs(
        self, batch_size: int, seed: int, tag: str, *identity: int
    ) -> dict:
        """`fit` arguments for one epoch: arrays in the seeded order of
        `(tag, *identity)` (not shuffled again by `fit`), or the batches."""
        if not self.arrays:
            return {"x": self.dataset}
        x, y = self.permuted(seed, tag, *identity)
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": False}

    def validation_kwargs(self, batch_size: int) -> dict:
        """`fit` arguments that validate on this data after each epoch."""
        if not self.arrays:
            return {"validation_data": self.dataset}
        return {
            "validation_data": (self.x, self.y),
            "validation_batch_size": batch_size,
        }

    def collect_kwargs(
        self, batch_size: int, seed: int, tag: str, batches: int | None
    ) -> dict:
        """Arguments of `SWNModel.collect_*_gradients`: the first `batches`
        batches (all with None) of the seeded order of `tag`, or of the
        batches as given."""
        if not self.arrays:
            return {"x": self.dataset, "batches": batches}
        x, y = self.permuted(seed, tag)
        if batches is not None:
            x, y = x[: batches * batch_size], y[: batches * batch_size]
        return {"x": x, "y": y, "batches": batches, "batch_size": batch_size}

    def evaluate(self, model, batch_size: int) -> dict[str, float]:
        """`model.evaluate` on this data, as a dict of floats."""
        if self.arrays:
            logs = model.evaluate(
                self.x,
                self.y,
                batch_size=batch_size,
                verbose=0,
                return_dict=True,
            )
        else:
            logs = model.evaluate(self.dataset, verbose=0, return_dict=True)
        return floats(logs)
