"""The training recipe of `SearchAndRefine`: SGD, Nesterov, coupled L2, and
a learning-rate schedule set at the start of every epoch.

The optimizer is the reference's (see the algorithm page, [Training
recipe][recipe]): SGD with Nesterov momentum 0.9, PyTorch-style **coupled**
weight decay 5e-4 (added to the gradient before momentum, i.e. the gradient of
`wd/2 * ||w||^2`) on every trainable variable except the coefficients.

Weight decay lives in the optimizer, not in the model's loss: each shared
variable (a template bank, a hard-shared coefficient vector) is one Keras
variable that the optimizer sees once, so it is decayed once however many
members use it. Which variables decay is the library's one rule,
`keras_swn.models.decayed_variables`, which `SWNModel.compile` hands to the
optimizer. The logged loss is the summed cross-entropy without the decay
term, as in the reference.

The learning rate is a function of the epoch and of the length of the
training run (`learning_rate_at`): a step schedule whose milestones are
epochs or fractions of the run (default 0.3, 0.6 and 0.8 of it: the
reference's 60, 120 and 160 of 200 epochs, scaled to the run), or a cosine
from the initial rate down to 0 over the run.
"""

from __future__ import annotations

import bisect
import math
from typing import Any
from typing import Iterable
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_swn.bank.template_bank import is_coefficient
from keras_swn.validation import invalid_argument

#: The learning-rate schedules of `learning_rate_at`.
SCHEDULES = ("step", "cosine")
#: Default step milestones, as fractions of the training run.
MILESTONE_FRACTIONS = (0.3, 0.6, 0.8)
#: The reference's milestones in epochs (of its 200-epoch run).
REFERENCE_MILESTONES = (60, 120, 160)
#: Default factor of the step schedule.
DEFAULT_GAMMA = 0.2


def step_learning_rate(
    epoch: int,
    *,
    learning_rate: float = 0.1,
    milestones: Sequence[int] = (60, 120, 160),
    gamma: float = 0.2,
) -> float:
    """The reference's step schedule (`adjust_learning_rate`).

    See the algorithm page, [Training recipe][recipe].

    `learning_rate * gamma ** k`, where `k` is the number of milestones `<=
    epoch` (0-based epochs).
    [`learning_rate_at`][keras_swn.search.learning_rate_at] scales the
    milestones to the length of a run.

    Args:
        epoch: int, the 0-based epoch.
        learning_rate: float, the initial rate.
        milestones: epochs at which the rate is multiplied by `gamma`.
        gamma: float, the factor at each milestone.

    Returns:
        float, the rate of `epoch`.

    Examples:
        >>> [round(step_learning_rate(e), 6) for e in (0, 59, 60, 120, 199)]
        [0.1, 0.1, 0.02, 0.004, 0.0008]
    """
    k = bisect.bisect_right(sorted(int(m) for m in milestones), int(epoch))
    return float(learning_rate) * float(gamma) ** k


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, (float, np.floating))


def check_milestones(milestones: Any) -> tuple:
    """Validated step milestones, sorted: epochs or fractions.

    Args:
        milestones: a sequence of epochs (ints >= 0, 0-based) or of
            fractions of the training run (floats strictly between 0
            and 1), not a mix. Empty: a constant learning rate.

    Returns:
        A sorted tuple of ints (epochs) or of floats (fractions).

    Raises:
        ValueError: naming `milestones` and the value received.

    Examples:
        >>> check_milestones([160, 60, 120])
        (60, 120, 160)
        >>> check_milestones((0.5, 0.75))
        (0.5, 0.75)
    """
    expected = (
        "Expected a list of epochs (ints >= 0) or of fractions of the "
        "training run (floats strictly between 0 and 1), not a mix."
    )
    if isinstance(milestones, (str, bytes)):
        values = None
    else:
        try:
            values = list(milestones)
        except TypeError:
            values = None
    if values is not None:
        if all(_is_int(v) and v >= 0 for v in values):
            return tuple(sorted(int(v) for v in values))
        if all(_is_float(v) and 0.0 < float(v) < 1.0 for v in values):
            return tuple(sorted(float(v) for v in values))
    raise invalid_argument("milestones", expected, milestones)


def milestone_epochs(milestones: Sequence, epochs: int) -> tuple[int, ...]:
    """Step milestones as 0-based epochs of a run of `epochs` epochs.

    Ints are epochs already. A fraction `f` becomes the first epoch `e`
    with `e >= f * epochs`, so the reference's 60, 120 and 160 of 200
    epochs are the fractions 0.3, 0.6 and 0.8, and a milestone never falls
    on epoch 0.

    Args:
        milestones: epochs or fractions (see `check_milestones`).
        epochs: int >= 1, the length of the training run.

    Returns:
        A sorted tuple of epochs.

    Examples:
        >>> milestone_epochs((0.3, 0.6, 0.8), 200)
        (60, 120, 160)
        >>> milestone_epochs((0.3, 0.6, 0.8), 15)
        (5, 9, 12)
        >>> milestone_epochs((60, 120, 160), 15)
        (60, 120, 160)
    """
    values = check_milestones(milestones)
    if values and isinstance(values[0], float):
        # Rounded first, so that 0.3 * 10 (3.0000000000000004) is epoch 3.
        return tuple(max(1, math.ceil(round(f * epochs, 9))) for f in values)
    return values


def cosine_learning_rate(
    epoch: int, *, epochs: int, learning_rate: float = 0.1
) -> float:
    """A cosine from `learning_rate` down to 0 over `epochs` epochs.

    `learning_rate * (1 + cos(pi * epoch / epochs)) / 2` for the 0-based
    `epoch`, set once per epoch: the first epoch trains at `learning_rate`,
    and the rate would reach 0 at epoch `epochs`, just after the last.

    Examples:
        >>> [round(cosine_learning_rate(e, epochs=4), 6) for e in range(4)]
        [0.1, 0.085355, 0.05, 0.014645]
    """
    t = min(max(int(epoch), 0), int(epochs)) / int(epochs)
    return float(learning_rate) * 0.5 * (1.0 + math.cos(math.pi * t))


def check_schedule(
    schedule: Any = "step",
    milestones: Any = None,
    gamma: Any = None,
) -> tuple[str, tuple | None, float | None]:
    """Validated learning-rate schedule arguments, defaults filled in.

    Args:
        schedule: `"step"` or `"cosine"`.
        milestones: for `"step"`, epochs or fractions of the run (see
            `check_milestones`); `None`: `MILESTONE_FRACTIONS`
            (0.3, 0.6, 0.8). Must be `None` for `"cosine"`.
        gamma: for `"step"`, the factor at each milestone (> 0); `None`:
            0.2. Must be `None` for `"cosine"`.

    Returns:
        `(schedule, milestones, gamma)`; the last two are `None` for
        `"cosine"`.

    Raises:
        ValueError: naming the argument and the value received.
    """
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        hint = (
            " Pass step milestones as `milestones=`."
            if not isinstance(schedule, str) and schedule is not None
            else ""
        )
        raise invalid_argument(
            "schedule", f"Expected one of {SCHEDULES}.{hint}", schedule
        )
    if schedule == "cosine":
        for name, value in (("milestones", milestones), ("gamma", gamma)):
            if value is not None:
                raise invalid_argument(
                    name,
                    "It applies to schedule='step' only; the cosine schedule "
                    f"has no {name}.",
                    value,
                )
        return schedule, None, None
    milestones = check_milestones(
        MILESTONE_FRACTIONS if milestones is None else milestones
    )
    if gamma is None:
        gamma = DEFAULT_GAMMA
    if (
        not (_is_int(gamma) or _is_float(gamma))
        or not math.isfinite(float(gamma))
        or not float(gamma) > 0
    ):
        raise invalid_argument("gamma", "Expected a finite number > 0.", gamma)
    return schedule, milestones, float(gamma)


def learning_rate_at(
    epoch: int,
    epochs: int,
    *,
    schedule: str = "step",
    learning_rate: float = 0.1,
    milestones: Sequence | None = None,
    gamma: float | None = None,
) -> float:
    """The learning rate of the 0-based `epoch` of a run of `epochs`.

    `"step"`: `learning_rate * gamma ** k`, `k` the number of milestones
    (`milestone_epochs`) at or before `epoch`; milestones default to 0.3,
    0.6 and 0.8 of `epochs` and `gamma` to 0.2. `"cosine"`:
    `cosine_learning_rate`.

    Args:
        epoch: int, the 0-based epoch.
        epochs: int >= 1, the length of the run.
        schedule: `"step"` (default) or `"cosine"`.
        learning_rate: float, the initial learning rate.
        milestones: see `check_schedule`.
        gamma: see `check_schedule`.

    Returns:
        A float.

    Examples:
        >>> [round(learning_rate_at(e, 10), 6) for e in (0, 2, 3, 6, 8, 9)]
        [0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008]
        >>> round(learning_rate_at(5, 10, schedule="cosine"), 6)
        0.05
    """
    if not _is_int(epochs) or epochs < 1:
        raise invalid_argument("epochs", "Expected an int >= 1.", epochs)
    schedule, milestones, gamma = check_schedule(schedule, milestones, gamma)
    if schedule == "cosine":
        return cosine_learning_rate(
            epoch, epochs=epochs, learning_rate=learning_rate
        )
    # `check_schedule` fills both in for "step".
    assert milestones is not None and gamma is not None
    return step_learning_rate(
        epoch,
        learning_rate=learning_rate,
        milestones=milestone_epochs(milestones, epochs),
        gamma=gamma,
    )


@keras.saving.register_keras_serializable(package="keras_swn")
class ReferenceSGD(keras.optimizers.SGD):
    """SGD as the reference trains SWNs.

    PyTorch's Nesterov form and coupled L2 weight decay that skips the
    coefficients.

    Update, for a variable `w` with gradient `g` (PyTorch `torch.optim.SGD`
    with `nesterov=True`, `dampening=0`):

    ```
    g = g + l2 * w              # coupled decay, unless w is excluded
    b = momentum * b + g        # LR-free momentum buffer
    w = w - lr * (g + momentum * b)       # (w - lr * b without Nesterov)
    ```

    Keras' own `SGD` keeps a velocity that includes the learning rate; the
    two forms agree while the LR is constant and differ briefly after each
    LR drop. This one matches the reference exactly.

    Which variables decay is the library's one rule,
    `keras_swn.models.decayed_variables`:
    [`SWNModel.compile`][keras_swn.models.swn_model.SWNModel.compile] passes
    them to `decay_only` (coefficients and the own variables of members that do
    not train are left out). Without a model to ask (a plain Keras model), every
    variable decays but the bank coefficients
    (`keras_swn.bank.template_bank.is_coefficient`), the rule's part that needs
    no model.

    Args:
        learning_rate: float, the initial learning rate.
        momentum: float in [0, 1].
        nesterov: bool.
        l2: float >= 0, the coupled weight decay (reference 5e-4).
        **kwargs: the base optimizer's arguments (`name`, `clipnorm`, ...);
            `weight_decay` (Keras' decoupled decay) is rejected.

    Examples:
        >>> opt = keras_swn.search.ReferenceSGD(0.1, momentum=0.9, l2=5e-4)
        >>> opt.nesterov, opt.l2
        (True, 0.0005)
    """

    def __init__(
        self,
        learning_rate: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        *,
        l2: float = 5e-4,
        name: str = "reference_sgd",
        **kwargs: Any,
    ):
        if kwargs.get("weight_decay") is not None:
            raise invalid_argument(
                "weight_decay",
                "ReferenceSGD applies coupled L2 decay through `l2`.",
                kwargs["weight_decay"],
            )
        kwargs.pop("weight_decay", None)
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=bool(nesterov),
            name=name,
            **kwargs,
        )
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 < 0:
            raise invalid_argument("l2", "Expected a float >= 0.", l2)
        self.l2 = float(l2)
        self._decayed_ids: set[int] | None = None
        self._l2_mask: list[bool] = []

    def decay_only(self, variables: Iterable) -> None:
        """Decay exactly these variables (call before `build`).

        Args:
            variables: the variables under L2, e.g.
                `keras_swn.models.decayed_variables(model)`.

        Raises:
            ValueError: if the optimizer is already built.
        """
        if self.built:
            raise ValueError(
                "`decay_only()` must be called before the optimizer is built."
            )
        self._decayed_ids = {id(v) for v in variables}

    def decays(self, variable) -> bool:
        """Whether `variable` gets the L2 term.

        Args:
            variable (keras.Variable): a trainable variable.

        Returns:
            bool: the variables given to `decay_only`, if it was called;
            otherwise every variable but the bank coefficients.
        """
        if self._decayed_ids is not None:
            return id(variable) in self._decayed_ids
        return not is_coefficient(variable)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._l2_mask = [self.decays(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        if self.l2 and self._l2_mask[index]:
            g = ops.add(g, ops.multiply(ops.cast(self.l2, dtype), variable))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(g, lr))
            return
        b = self.momentums[index]
        mu = ops.cast(self.momentum, dtype)
        self.assign(b, ops.add(ops.multiply(b, mu), g))
        step = ops.add(g, ops.multiply(b, mu)) if self.nesterov else b
        self.assign_sub(variable, ops.multiply(step, lr))

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Files written before the one L2 rule hold the (default) patterns.
        config = dict(config)
        config.pop("exclude_patterns", None)
        return super().from_config(config, custom_objects=custom_objects)


def make_optimizer(
    *,
    learning_rate: float = 0.1,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = True,
) -> ReferenceSGD:
    """The reference optimizer: `ReferenceSGD` with these settings.

    See the algorithm page, [Training recipe][recipe].

    Args:
        learning_rate: float, the initial learning rate.
        weight_decay: float, the coupled L2 factor (not on coefficients).
        momentum: float, the momentum.
        nesterov: bool, Nesterov momentum.

    Returns:
        A [`ReferenceSGD`][keras_swn.search.ReferenceSGD].

    Examples:
        >>> opt = keras_swn.search.make_optimizer(learning_rate=0.05)
        >>> type(opt).__name__, opt.nesterov, opt.l2
        ('ReferenceSGD', True, 0.0005)
    """
    return ReferenceSGD(
        learning_rate, momentum=momentum, nesterov=nesterov, l2=weight_decay
    )
