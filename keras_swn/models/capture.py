"""Gradient capture through zero probes.

See the algorithm page, *Gradient capture and similarity* and *Refine*.

A probe is a zero tensor added to a composed kernel (or to a coefficient
row) inside `keras_swn.probe.probe_scope`; the gradient of the loss with
respect to it is the gradient with respect to what it was added to. Two
paths read probe gradients, both through the one per-backend primitive of
`keras_swn.models.trainers` (`probe_gradients` and the capturing
`train_step`):

- `collect_kernel_gradients` / `collect_coefficient_gradients`: a pass
  over data with no optimizer step (the search's capture and refine).
- `KernelAccumulators`: during `fit`, every step adds each shared layer's
  dL/dkernel into a non-trainable variable (compiled, distributed).

`SWNModel` exposes both as methods; this module holds the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_swn.bank.template_bank import coefficient_probe_key
from keras_swn.models.data_batches import iterate_batches
from keras_swn.models.trainers import probe_gradients
from keras_swn.types import Slot
from keras_swn.validation import invalid_argument

#: `(probe-scope key, shape)` of one probe.
Probe = tuple[Any, tuple[int, ...]]


def kernel_probes(layers: list) -> list[Probe]:
    """One probe per shared layer, of its kernel's Keras-layout shape."""
    return [(id(l), l.bank.kernel_shape(l.layer_key)) for l in layers]


def by_member(model: Any, layers: list, values: list) -> list[dict]:
    """`values` (one per layer) as one `{layer name: value}` per member."""
    result: list[dict] = [{} for _ in model.members]
    for layer, value in zip(layers, values):
        result[layer.layer_key[0]][layer.name] = value
    return result


def check_finite(name: str, value: Any, where: str = "") -> None:
    """Refuse inputs with NaN or inf: every gradient would be NaN.

    Args:
        name: str, the argument (`"x"` or `"y"`).
        value: an array or tensor; integer ones pass.
        where: str, where in the argument (`" in batch 3"`).

    Raises:
        ValueError: an `ArgumentError` naming `name`, with the count of
            non-finite values.
    """
    array = np.asarray(
        value if isinstance(value, np.ndarray) else ops.convert_to_numpy(value)
    )
    if not np.issubdtype(array.dtype, np.inexact):
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise invalid_argument(
            name,
            f"Expected finite values: {name}{where} holds {bad} non-finite "
            "values (NaN or inf), which would make every gradient NaN. "
            "Clean or drop those examples.",
            f"{bad} non-finite values of {array.size}",
        )


def summed_probe_gradients(
    model: Any,
    x: Any,
    y: Any,
    probes: Sequence[Probe],
    *,
    batch_size: int,
    batches: int | None,
    training: bool,
    batch_statistics: bool = True,
) -> list:
    """Probe gradients of `model.probe_loss`, summed over the batches, in
    float64 NumPy.

    Raises:
        ValueError: naming `x` (or `y`) when the inputs hold non-finite
            values, with their count (the gradients would be NaN).
    """
    sums = None
    for i, (bx, by, bw) in enumerate(
        iterate_batches(x, y, batch_size=batch_size, batches=batches)
    ):
        # Each batch read (not the whole data: `batches` may stop early).
        check_finite("x", bx, f" (batch {i} of size {len(bx)})")
        check_finite("y", by, f" (batch {i} of size {len(by)})")
        grads = probe_gradients(
            model, bx, by, bw, probes, training, batch_statistics
        )
        grads = [ops.convert_to_numpy(g).astype("float64") for g in grads]
        sums = grads if sums is None else [a + g for a, g in zip(sums, grads)]
    if sums is None:
        raise ValueError("Received no data: `x` yielded no batch.")
    return sums


def collect_kernel_gradients(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batches: int | None = 1,
    batch_size: int = 128,
    training: bool = False,
    batch_statistics: bool = True,
) -> list[dict]:
    """dL/dkernel of every shared layer, as the reference's search does.

    BatchNorm runs in inference mode (`training=False`), no optimizer
    step is taken, and each member's gradient is the gradient of its own
    loss (members share no kernel, so one backward pass of the summed
    loss gives every member's gradient). Gradients are summed over
    `batches` batches (None: the whole data).

    With `batch_statistics=True` (the default) every BatchNorm reads the
    mean and variance of the batch itself instead of its moving
    statistics: the forward pass is the one a training step computes,
    and the gradient treats the statistics as constants, as an
    inference-mode gradient does. Moving statistics lag the weights
    (momentum 0.99 averages over about 100 steps), and after a short
    search they can be far from the batch's: in a deep network
    (ResNet50V2, EfficientNetB0) every inference-mode BatchNorm then
    scales its input up, and the activations overflow to inf. The
    model's variables are not changed. `batch_statistics=False` reads
    the moving statistics, as the reference does.

    Args:
        model: an `SWNModel`.
        x: inputs (array) or a dataset of `(x, y)` batches.
        y: labels when `x` is an array.
        batches: int or None, how many batches to use (the
            reference: one).
        batch_size: int, the batch size for arrays.
        training: bool, run BatchNorm in training mode (the gradient of
            a training step, through the batch statistics; on
            TensorFlow and PyTorch the moving statistics are updated,
            as in a training step).
        batch_statistics: bool, in inference mode, normalise each batch
            with its own statistics (see above).

    Returns:
        Per member, a dict from shared-layer name to dL/dkernel as a
        NumPy array in the kernel's Keras layout.

    Raises:
        ValueError: naming `x` or `y` when they hold NaN or inf, with
            the count.
    """
    layers = model.shared_layers()
    sums = summed_probe_gradients(
        model,
        x,
        y,
        kernel_probes(layers),
        batch_size=batch_size,
        batches=batches,
        training=training,
        batch_statistics=batch_statistics,
    )
    return by_member(model, layers, sums)


def collect_coefficient_gradients(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batches: int | None = None,
    batch_size: int = 128,
    training: bool = False,
    batch_statistics: bool = True,
) -> dict[Slot, Any]:
    """Per-slot coefficient gradients for refine.

    For every slot `(member, layer_id, width)`, the gradient of that
    member's loss on the coefficient vector the slot reads, summed over
    the data (default: one full pass) with BatchNorm in inference mode
    (on each batch's own statistics unless `batch_statistics=False`).
    As in the reference, gradients on a shared vector are kept per
    member: a member's entry is the sum over all of its layers that
    read the same vector (a zero probe at each use site gives each use
    separately; they are summed per member and owner).

    Args:
        model: an `SWNModel`.
        x, y, batches, batch_size, training, batch_statistics: as
            `collect_kernel_gradients`.

    Returns:
        dict from slot `(member, layer_id, width)` to a float64 NumPy
        vector of length `K` of its bank.

    Raises:
        ValueError: naming `x` or `y` when they hold NaN or inf, with
            the count.
    """
    plan, policy = model.plan, model.policy
    slots = [
        (m, l, w)
        for (m, l), recipe in sorted(plan.layers.items())
        for w in range(recipe.num_levels)
    ]
    probes = [
        (
            coefficient_probe_key(model.bank, (m, l), w),
            (plan.banks[(plan.layers[(m, l)].group, w)].templates,),
        )
        for m, l, w in slots
    ]
    sums = summed_probe_gradients(
        model,
        x,
        y,
        probes,
        batch_size=batch_size,
        batches=batches,
        training=training,
        batch_statistics=batch_statistics,
    )
    per_member: dict = {}
    for (m, l, w), g in zip(slots, sums):
        key = (m, policy.owner((m, l, w)), w)
        per_member[key] = per_member.get(key, 0) + g
    return {
        (m, l, w): per_member[(m, policy.owner((m, l, w)), w)]
        for (m, l, w) in slots
    }


class KernelAccumulators:
    """One non-trainable variable per shared layer that the capturing
    `train_step` adds dL/dkernel into while capture is on.

    Args:
        model: the `SWNModel` that owns the variables (`add_weight`).
    """

    def __init__(self, model: Any):
        self.layers = model.shared_layers()
        self.variables = [
            model.add_weight(
                name=f"kernel_gradient_m{m}_l{l}",
                shape=model.bank.kernel_shape((m, l)),
                initializer="zeros",
                trainable=False,
                aggregation="mean",
            )
            for m, l in (layer.layer_key for layer in self.layers)
        ]
        self.active = False

    def targets(self) -> list[tuple[Probe, keras.Variable]] | None:
        """`(probe, accumulator)` per shared layer while capture is on,
        else None (what the trainers' `train_step` reads)."""
        if not self.active:
            return None
        return list(zip(kernel_probes(self.layers), self.variables))

    def zero(self) -> None:
        for acc in self.variables:
            acc.assign(ops.zeros(acc.shape))

    def values(self, model: Any) -> list[dict]:
        """The accumulators as `{layer name: NumPy array}` per member."""
        return by_member(
            model,
            self.layers,
            [ops.convert_to_numpy(acc) for acc in self.variables],
        )


class GradientCaptureMethods:
    """The gradient-capture methods of `SWNModel` (a mixin).

    Expects `_accumulators` (a `KernelAccumulators` or None), `members`,
    and the Keras model API (`make_train_function`, `compiled`).
    """

    _accumulators: KernelAccumulators | None

    if TYPE_CHECKING:  # provided by `SWNModel` and `keras.Model`
        members: list[Any]
        compiled: bool

        def make_train_function(self, force: bool = False) -> Any: ...

    def capture_targets(self) -> list | None:
        """`(probe, accumulator)` per shared layer while capture is on
        (read by the trainers' `train_step`), else None."""
        if self._accumulators is None:
            return None
        return self._accumulators.targets()

    @property
    def _capture_on(self) -> bool:
        return self._accumulators is not None and self._accumulators.active

    def start_kernel_gradient_capture(self) -> None:
        """Zero the accumulators; from now on every `fit` step adds each
        shared layer's dL/dkernel into its accumulator."""
        if self._accumulators is None:
            raise ValueError(
                "This model has no gradient accumulators. Build it with "
                "`capture_kernel_gradients=True`."
            )
        self._accumulators.zero()
        self._accumulators.active = True
        self.make_train_function(force=True)

    def stop_kernel_gradient_capture(self) -> None:
        """Stop accumulating (the accumulators keep their values)."""
        if self._accumulators is not None:
            self._accumulators.active = False
        if self.compiled:
            self.make_train_function(force=True)

    def accumulated_kernel_gradients(self) -> list[dict]:
        """The accumulators, per member: layer name -> NumPy array (Keras
        layout). On JAX, call this after `fit` or after `jax_state_sync()`.
        """
        if hasattr(self, "jax_state_sync"):
            self.jax_state_sync()
        if self._accumulators is None:
            return [{} for _ in self.members]
        return self._accumulators.values(self)

    def collect_kernel_gradients(
        self, x: Any, y: Any = None, **kwargs: Any
    ) -> list[dict]:
        """dL/dkernel of every shared layer, per member, by layer name.

        No optimizer step runs. See
        `keras_swn.models.capture.collect_kernel_gradients` (defaults
        `batches=1`, `batch_size=128`, `training=False`,
        `batch_statistics=True`).

        Args:
            x: inputs (an array) or a dataset of `(x, y)` batches.
            y: labels when `x` is an array.
            **kwargs: the other arguments of
                `keras_swn.models.capture.collect_kernel_gradients`.

        Returns:
            A list with one dict per member: layer name to the gradient.
        """
        return collect_kernel_gradients(self, x, y, **kwargs)

    def collect_coefficient_gradients(
        self, x: Any, y: Any = None, **kwargs: Any
    ) -> dict:
        """Per-slot coefficient gradients for refine, per member.

        See `keras_swn.models.capture.collect_coefficient_gradients`
        (defaults `batches=None`, `batch_size=128`, `training=False`,
        `batch_statistics=True`).

        Args:
            x: inputs (an array) or a dataset of `(x, y)` batches.
            y: labels when `x` is an array.
            **kwargs: the other arguments of
                `keras_swn.models.capture.collect_coefficient_gradients`.

        Returns:
            A dict from coefficient slot to its summed gradient, per member.
        """
        return collect_coefficient_gradients(self, x, y, **kwargs)
