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
from keras_swn.data_checks import check_arrays
from keras_swn.data_checks import check_data
from keras_swn.data_checks import is_one_shot
from keras_swn.validation import invalid_argument

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

    Checked where it enters, by `keras_swn.data_checks.check_data` (the
    check of `SWNModel.fit` and the command line): inputs of
    `input_shape`, finite, integer class ids in `[0, num_classes)` (not
    one-hot), at least one example; arrays whole, batches on the first
    ones. The search reads the data several times (every epoch, the
    gradient capture, the refine), one whole pass at a time, so a one-shot
    generator and an infinite `tf.data.Dataset` are refused.

    Args:
        data: `(x, y)` arrays of the same non-zero length, or a re-iterable
            of `(x, y)` batches (a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a list of batches).
        name: str, the argument name for error messages.
        input_shape: the shape of one input, or None not to check it.
        num_classes: the number of classes, or None not to check labels'
            range.

    Raises:
        ValueError: an `ArgumentError` naming `name`.

    Examples:
        >>> from keras_swn.training import DataSource
        >>> x, y = np.zeros((4, 8, 8, 3)), np.array([0, 1, 2, 1])
        >>> data = DataSource((x, y), "train_data", input_shape=(8, 8, 3),
        ...                   num_classes=3)
        >>> data.arrays, data.num_examples
        (True, 4)
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
            check_arrays(
                self.x,
                self.y,
                name,
                input_shape=input_shape,
                num_classes=num_classes,
            )
        elif (
            data is None
            or hasattr(data, "shape")  # x without y
            or isinstance(data, (str, bytes, Mapping))
            or not hasattr(data, "__iter__")
            or (
                isinstance(data, (tuple, list))
                and any(hasattr(a, "shape") for a in data)
            )
        ):
            raise invalid_argument(
                name, _FORMS, None if data is None else type(data).__name__
            )
        elif is_one_shot(data):
            raise invalid_argument(
                name,
                "Expected data that can be read more than once: the search "
                "reads it every epoch, for the gradient capture and for the "
                "refine. Pass arrays, a tf.data.Dataset, a "
                "keras.utils.PyDataset or a list of batches, not a "
                "generator or iterator.",
                type(data).__name__,
            )
        else:
            self.dataset = check_data(
                data,
                name,
                input_shape=input_shape,
                num_classes=num_classes,
                infinite_hint=(
                    "the search trains one whole pass per epoch and takes "
                    "no steps_per_epoch: drop .repeat() or add .take(steps)"
                ),
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
