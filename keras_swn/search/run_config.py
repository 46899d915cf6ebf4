"""`RunConfig`: how long and how a search trains, validated once.

The arguments of `SearchAndRefine.search` (the epochs of each phase, the
batch size and the `TrainingRecipe`) in one frozen dataclass, its
defaults filled in from the `SearchConfig` (`RunConfig.create`), that
round-trips through JSON: `state.json` records it, and a resumed search
compares it with the one it is given.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from typing import Mapping
from typing import cast

from keras_swn.search.config import SearchConfig
from keras_swn.search.phases import schedule as phase_schedule
from keras_swn.training.optim import REFERENCE_MILESTONES
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming

#: `search()` defaults: search training for 5% of `epochs`, rounded up
#: (1 of 15, 10 of 200; the paper's 20 in reference mode): in the search
#: study (docs: Benchmarks, "When does the search pay?") 1 search epoch
#: gave the same accuracy as 3 for 2 fewer epochs of compute. The refine
#: step after 5% of `epochs` (10 of the reference's 200), or after 10
#: epochs in reference mode.
SEARCH_FRACTION = 0.05
REFERENCE_SEARCH_EPOCHS = 20
REFINE_FRACTION = 0.05
REFERENCE_REFINE_AFTER = 10


def _fraction_of(epochs: Any, fraction: float) -> Any:
    """`fraction` of `epochs` rounded up, at least 1; `epochs` itself when
    it is not an int (the phase check then names it)."""
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        return max(1, math.ceil(round(fraction * epochs, 9)))
    return epochs


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How a search trains: the arguments of `SearchAndRefine.search`.

    Make one with `RunConfig.create(config, ...)`, which fills in the defaults
    that depend on the [`SearchConfig`][keras_swn.search.SearchConfig] and
    checks the phases of its regime
    ([`keras_swn.search.phases.schedule`][]).

    Args:
        search_epochs: int >= 0, search-training epochs (0 for
            `"bins_hard"`).
        epochs: int >= 1, final-training epochs.
        refine_after: int, final-training epochs before the refine step
            (`1 <= refine_after < epochs`); None for the regimes that do
            not refine.
        batch_size: int >= 1.
        recipe: the [`TrainingRecipe`][keras_swn.search.TrainingRecipe]
            (optimizer and schedule).

    Examples:
        >>> config = keras_swn.search.SearchConfig(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000)
        >>> run = keras_swn.search.RunConfig.create(
        ...     config, search_epochs=None, epochs=10, refine_after=None)
        >>> run.search_epochs, run.epochs, run.refine_after, run.batch_size
        (1, 10, 1, 128)
    """

    search_epochs: int
    epochs: int
    refine_after: int | None
    batch_size: int
    recipe: TrainingRecipe

    def __post_init__(self) -> None:
        with naming("batch_size"):
            check_int("batch_size", self.batch_size, minimum=1)

    @classmethod
    def create(
        cls,
        config: SearchConfig,
        *,
        search_epochs: int | None,
        epochs: int,
        refine_after: int | None,
        batch_size: int | None = None,
        **recipe: Any,
    ) -> "RunConfig":
        """The run of `config`'s search, with its defaults filled in.

        The defaults that depend on `config`
        ([`SearchAndRefine.search`][keras_swn.search.SearchAndRefine.search]
        documents them).

        Args:
            config: the [`SearchConfig`][keras_swn.search.SearchConfig].
            search_epochs: int, or None for the regime's default.
            epochs: int >= 1.
            refine_after: int, or None for the default.
            batch_size: int, or None for `config.batch_size`.
            **recipe: the [`TrainingRecipe`][keras_swn.search.TrainingRecipe]
                arguments (`learning_rate`, `schedule`, `milestones`, `gamma`,
                `weight_decay`).
        """
        sharing = config.regime
        if search_epochs is None:
            if not sharing.searches:
                search_epochs = 0
            elif config.reference_compatible:
                search_epochs = REFERENCE_SEARCH_EPOCHS
            else:
                search_epochs = _fraction_of(epochs, SEARCH_FRACTION)
        if refine_after is None and sharing.refines:
            if config.reference_compatible:
                refine_after = REFERENCE_REFINE_AFTER
            else:
                refine_after = _fraction_of(epochs, REFINE_FRACTION)
        batch_size = config.batch_size if batch_size is None else batch_size
        with naming("batch_size"):
            check_int("batch_size", batch_size, minimum=1)
        if config.reference_compatible:
            schedule = recipe.get("schedule")
            if schedule is not None and schedule != "step":
                raise invalid_argument(
                    "schedule",
                    "reference_compatible=True selects schedule='step'; "
                    "pass one or the other.",
                    schedule,
                )
            if recipe.get("milestones") is None:
                recipe["milestones"] = REFERENCE_MILESTONES
        training = TrainingRecipe(**recipe)
        # The phases of the regime check the epochs and `refine_after`.
        phase_schedule(sharing, search_epochs, epochs, refine_after)
        return cls(
            search_epochs=int(search_epochs),
            epochs=int(epochs),
            # `phase_schedule` has checked it is an int when it refines.
            refine_after=(
                int(cast(int, refine_after)) if sharing.refines else None
            ),
            batch_size=int(batch_size),
            recipe=training,
        )

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON values: the epochs, the batch size and the recipe."""
        return {
            "search_epochs": self.search_epochs,
            "epochs": self.epochs,
            "refine_after": self.refine_after,
            "batch_size": self.batch_size,
            **self.recipe.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        """Read `to_dict` output.

        Args:
            data: a mapping as written by `to_dict`.

        Returns:
            The [`RunConfig`][keras_swn.search.RunConfig].

        Raises:
            ValueError: on an invalid value.
        """
        return cls(
            search_epochs=data["search_epochs"],
            epochs=data["epochs"],
            refine_after=data["refine_after"],
            batch_size=data["batch_size"],
            recipe=TrainingRecipe.from_dict(data),
        )
