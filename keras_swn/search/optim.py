"""The reference's training recipe: SGD, Nesterov, coupled L2, step LR.

swn-algorithm.md §5 and §9 (items 4, 5): SGD with Nesterov momentum 0.9,
PyTorch-style **coupled** weight decay 5e-4 (added to the gradient before
momentum, i.e. the gradient of `wd/2 * ||w||^2`) on every trainable
variable except the coefficients, and a learning rate of 0.1 multiplied by
0.2 at epochs 60, 120 and 160, set at the start of each epoch.

Weight decay lives in the optimizer, not in the model's loss: each shared
variable (a template bank, a hard-shared coefficient vector) is one Keras
variable that the optimizer sees once, so it is decayed once however many
members use it (§9.4), and the `SWNModel` needs no change. The logged loss
is the summed cross-entropy without the decay term, as in the reference.
"""

from __future__ import annotations

import bisect
from typing import Any
from typing import Iterable
from typing import Sequence

import keras
from keras import ops

_DEFAULT_EXCLUDE = ("coefficients",)


def step_learning_rate(
    epoch: int,
    *,
    learning_rate: float = 0.1,
    milestones: Sequence[int] = (60, 120, 160),
    gamma: float = 0.2,
) -> float:
    """The reference's step schedule (`adjust_learning_rate`, §5).

    `learning_rate * gamma ** k`, where `k` is the number of milestones
    `<= epoch` (0-based epochs).

    Examples:
        >>> [round(step_learning_rate(e), 6) for e in (0, 59, 60, 120, 199)]
        [0.1, 0.1, 0.02, 0.004, 0.0008]
    """
    k = bisect.bisect_right(sorted(int(m) for m in milestones), int(epoch))
    return float(learning_rate) * float(gamma) ** k


@keras.saving.register_keras_serializable(package="keras_swn")
class ReferenceSGD(keras.optimizers.SGD):
    """SGD as the reference trains SWNs: PyTorch's Nesterov form and
    coupled L2 weight decay that skips the coefficients.

    Update, for a variable `w` with gradient `g` (PyTorch `torch.optim.SGD`
    with `nesterov=True`, `dampening=0`):

    ```
    g = g + l2 * w              # coupled decay, unless w is excluded
    b = momentum * b + g        # LR-free momentum buffer
    w = w - lr * (g + momentum * b)       # (w - lr * b without Nesterov)
    ```

    Keras' own `SGD` keeps a velocity that includes the learning rate; the
    two forms agree while the LR is constant and differ briefly after each
    LR drop (§9.5). This one matches the reference exactly.

    A variable is not decayed when its path contains one of
    `exclude_patterns` (default: `"coefficients"`, the reference's rule),
    or when it was passed to `exclude_from_l2` before the optimizer was
    built (`SearchAndRefine` uses that for the members that do not train
    during the search, whose parameters get no gradient in the reference,
    §2.2).

    Args:
        learning_rate: float, the initial learning rate.
        momentum: float in [0, 1].
        nesterov: bool.
        l2: float >= 0, the coupled weight decay (reference 5e-4).
        exclude_patterns: strings; variables whose path contains one are
            not decayed.
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
        exclude_patterns: Sequence[str] = _DEFAULT_EXCLUDE,
        name: str = "reference_sgd",
        **kwargs: Any,
    ):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "Invalid argument `weight_decay`: ReferenceSGD applies "
                "coupled L2 decay through `l2`. Received: weight_decay="
                f"{kwargs['weight_decay']!r}"
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
            raise ValueError(
                "Invalid value for argument `l2`. Expected a float >= 0. "
                f"Received: l2={l2!r}"
            )
        self.l2 = float(l2)
        self.exclude_patterns = tuple(str(p) for p in exclude_patterns)
        self._l2_excluded_ids: set[int] = set()
        self._l2_mask: list[bool] = []

    def exclude_from_l2(self, variables: Iterable) -> None:
        """Exempt these variables from decay (before `build`)."""
        if self.built:
            raise ValueError(
                "`exclude_from_l2()` must be called before the optimizer is "
                "built."
            )
        self._l2_excluded_ids |= {id(v) for v in variables}

    def decays(self, variable) -> bool:
        """Whether `variable` gets the L2 term."""
        if id(variable) in self._l2_excluded_ids:
            return False
        path = getattr(variable, "path", None) or variable.name
        return not any(p in path for p in self.exclude_patterns)

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
        config.update(
            {"l2": self.l2, "exclude_patterns": list(self.exclude_patterns)}
        )
        return config


def make_optimizer(
    *,
    learning_rate: float = 0.1,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = True,
) -> ReferenceSGD:
    """The reference optimizer (§5): `ReferenceSGD` with these settings."""
    return ReferenceSGD(
        learning_rate, momentum=momentum, nesterov=nesterov, l2=weight_decay
    )
