"""`TrainingRecipe`: the optimizer and learning-rate schedule of a run.

One frozen, validated, JSON-round-trippable description of how an
`SWNModel` is trained (see the algorithm page, [Training recipe][recipe]):
`ReferenceSGD` (SGD with
Nesterov momentum 0.9 and coupled L2 decay) and a learning rate set at the
start of every epoch by a schedule over the run (`learning_rate_at`). Used
by `SearchAndRefine` (every training step of the search) and by
`keras_swn.search.train_and_save` (`keras-swn train`).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping

import keras

from keras_swn.models.swn_model import SWNModel
from keras_swn.models.weight_decay import decayed_variables
from keras_swn.training.optim import ReferenceSGD
from keras_swn.training.optim import check_schedule
from keras_swn.training.optim import learning_rate_at
from keras_swn.validation import check_real
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming

#: The momentum of the reference's SGD (Nesterov).
MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingRecipe:
    """How a model is trained: SGD, coupled L2 and the schedule.

    Args:
        learning_rate: float > 0, the initial learning rate (0.1).
        schedule: `"step"` (the default) or `"cosine"`; None: `"step"`.
        milestones: for `"step"`, the epochs (ints >= 0, 0-based) or
            fractions of the run (floats strictly between 0 and 1; a
            fraction `f` is the first epoch `e` with `e >= f * epochs`) at
            which the rate is multiplied by `gamma`. None: (0.3, 0.6,
            0.8). Must be None for `"cosine"`.
        gamma: float > 0, the factor of the step schedule; None: 0.2. Must
            be None for `"cosine"`.
        weight_decay: float >= 0, the coupled L2 decay (5e-4) on every
            trainable variable but the coefficients.

    Raises:
        ValueError: an `keras_swn.validation.ArgumentError` naming the
            argument and the value received.

    Examples:
        >>> recipe = TrainingRecipe(schedule="cosine", learning_rate=0.2)
        >>> round(recipe.learning_rate_at(2, epochs=4), 6)
        0.1
        >>> TrainingRecipe.from_dict(recipe.to_dict()) == recipe
        True
    """

    learning_rate: float = 0.1
    schedule: str | None = "step"
    milestones: tuple | None = None
    gamma: float | None = None
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        schedule, milestones, gamma = check_schedule(
            "step" if self.schedule is None else self.schedule,
            self.milestones,
            self.gamma,
        )
        with naming("learning_rate"):
            learning_rate = check_real(
                "learning_rate", self.learning_rate, positive=True
            )
        with naming("weight_decay"):
            weight_decay = check_real("weight_decay", self.weight_decay)
        if weight_decay < 0:
            raise invalid_argument(
                "weight_decay", "Expected a float >= 0.", self.weight_decay
            )
        for name, value in (
            ("learning_rate", learning_rate),
            ("schedule", schedule),
            ("milestones", milestones),
            ("gamma", gamma),
            ("weight_decay", weight_decay),
        ):
            object.__setattr__(self, name, value)

    def learning_rate_at(self, epoch: int, *, epochs: int) -> float:
        """The rate of the 0-based `epoch` of a run of `epochs` epochs.

        Args:
            epoch: int, the 0-based epoch.
            epochs: int, the length of the run (fractional milestones are
                fractions of it).

        Returns:
            float, the learning rate.
        """
        assert self.schedule is not None  # `__post_init__` filled it in
        return learning_rate_at(
            epoch,
            epochs,
            schedule=self.schedule,
            learning_rate=self.learning_rate,
            milestones=self.milestones,
            gamma=self.gamma,
        )

    def optimizer(self) -> ReferenceSGD:
        """A new `ReferenceSGD` at the initial rate."""
        return ReferenceSGD(
            self.learning_rate,
            momentum=MOMENTUM,
            nesterov=True,
            l2=self.weight_decay,
        )

    def compile(
        self,
        model: keras.Model,
        *,
        jit_compile: bool | str = "auto",
        run_eagerly: bool = False,
    ) -> None:
        """Compile `model` with `optimizer()` and build the optimizer.

        The optimizer's slots exist before the first step, so a checkpoint can
        fill them. An [`SWNModel`][keras_swn.SWNModel]'s variables decay as
        [`decayed_variables`][keras_swn.models.weight_decay.decayed_variables]
        says.

        Args:
            model: the model to compile (an `SWNModel` or any Keras model).
            jit_compile: passed to `keras.Model.compile`.
            run_eagerly: passed to `keras.Model.compile`.
        """
        optimizer = self.optimizer()
        if isinstance(model, SWNModel):
            optimizer.decay_only(decayed_variables(model))
        model.compile(
            optimizer=optimizer,
            jit_compile=jit_compile,
            run_eagerly=run_eagerly,
        )
        optimizer.build(model.trainable_variables)

    def scheduler(self, epochs: int) -> keras.callbacks.Callback:
        """A callback that sets the rate of every epoch of a `fit`.

        Args:
            epochs: int, the length of the run the schedule spans.

        Returns:
            A `keras.callbacks.LearningRateScheduler` (the rate is logged
            as `learning_rate`).
        """
        return keras.callbacks.LearningRateScheduler(
            lambda epoch, lr=None: self.learning_rate_at(epoch, epochs=epochs)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "schedule": self.schedule,
            "milestones": (
                None if self.milestones is None else list(self.milestones)
            ),
            "gamma": self.gamma,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingRecipe":
        """Read `to_dict` output; keys of other records are ignored.

        Args:
            data: a mapping holding the recipe's fields.

        Returns:
            The [`TrainingRecipe`][keras_swn.search.TrainingRecipe].

        Raises:
            ValueError: on an invalid value.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})
