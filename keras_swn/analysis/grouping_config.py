"""`GroupingConfig`: the options of the clustering search, declared once.

`keras_swn.analysis.search_groups` takes one, and
`keras_swn.search.SearchConfig` takes its defaults from it, so the public
analysis API and the search pipeline group the same way by default.
Pure Python: no Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.similarity import SIGNALS
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.validation import check_choice
from keras_swn.validation import check_real
from keras_swn.validation import invalid_argument

__all__ = ["BUDGET_CHECKS", "SCHEDULES", "GroupingConfig"]

#: The measures of the threshold loop (see `GroupingConfig.budget_check`).
BUDGET_CHECKS = ("proxy", "exact")
#: The threshold schedules (see `GroupingConfig.schedule`).
SCHEDULES = ("fill", "split", "step")

#: The reference's value of each option where the library's default differs.
REFERENCE_CHOICES: dict[str, Any] = {
    "clustering": "reference",
    "budget_check": "proxy",
    "chain_sort": "reference",
    "schedule": "step",
}


@dataclasses.dataclass(frozen=True)
class GroupingConfig:
    """How `search_groups` learns SuperWeight groups under a budget.

    The defaults are the library's (those of
    [`keras_swn.search.SearchConfig`][]);
    `GroupingConfig.reference()` gives the reference's choices.

    Args:
        threshold_start: float, the first threshold of `"step"` (0.1).
        threshold_decrement: float > 0, the step of `"step"` (0.05).
        clustering: `"connected_components"` (default) or `"reference"`.
        budget_check: `"exact"` (default: the one-template total of the
            restacked groups) or `"proxy"` (the reference's `need`: the
            sum over groups of the largest kernel).
        signal: `"gradient"` (default), `"gradient+weight"` or `"parameter"`
            (see [`similarity_matrix`][keras_swn.analysis.similarity_matrix]).
        coefficient_threshold: float or `None`: gate student coefficient
            sharing.
        chain_sort: `"stable"` (default) or `"reference"`, used by
            `budget_check="exact"` and
            [`SearchResult.to_policy`][keras_swn.analysis.SearchResult.to_policy].
        schedule: `"split"` (default), `"fill"` or `"step"` (the reference's);
            see [`search_groups`][keras_swn.analysis.search_groups].
        group_share: float in (0, 1] (0.5): the share of the budget left
            after the bins that splits may take (`"split"`), or the share
            of the budget one template per bank may take (`"fill"`);
            `"step"` uses the whole budget.

    Raises:
        ValueError: naming the first invalid option and its value.

    Examples:
        >>> from keras_swn.analysis import GroupingConfig
        >>> GroupingConfig().schedule, GroupingConfig().group_share
        ('split', 0.5)
        >>> GroupingConfig.reference().budget_check
        'proxy'
    """

    threshold_start: float = 0.1
    threshold_decrement: float = 0.05
    clustering: str = "connected_components"
    budget_check: str = "exact"
    signal: str = "gradient"
    coefficient_threshold: float | None = None
    chain_sort: str = "stable"
    schedule: str = "split"
    group_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("threshold_start", "threshold_decrement", "group_share"):
            object.__setattr__(
                self, name, check_real(name, getattr(self, name))
            )
        if self.coefficient_threshold is not None:
            value = check_real(
                "coefficient_threshold", self.coefficient_threshold
            )
            object.__setattr__(self, "coefficient_threshold", value)
        if not self.threshold_decrement > 0:
            raise invalid_argument(
                "threshold_decrement",
                "Expected a strictly positive number (thresholds only go "
                "down).",
                self.threshold_decrement,
            )
        check_choice("clustering", self.clustering, CLUSTERINGS)
        check_choice("budget_check", self.budget_check, BUDGET_CHECKS)
        check_choice("signal", self.signal, SIGNALS)
        check_choice("chain_sort", self.chain_sort, CHAIN_SORTS)
        check_choice("schedule", self.schedule, SCHEDULES)
        if not 0 < self.group_share <= 1:
            raise invalid_argument(
                "group_share", "Expected a number in (0, 1].", self.group_share
            )
        if (
            self.schedule == "split"
            and self.clustering != "connected_components"
        ):
            raise invalid_argument(
                "schedule",
                "The 'split' schedule splits single-linkage clusters; it "
                "needs clustering='connected_components'.",
                self.schedule,
            )

    @classmethod
    def reference(cls, **options: Any) -> "GroupingConfig":
        """The reference's choices.

        `"reference"` clustering and chain order, the `"proxy"` measure, the
        `"step"` schedule.

        Args:
            **options: fields to set as well.

        Returns:
            A [`GroupingConfig`][keras_swn.analysis.GroupingConfig].
        """
        return cls(**{**REFERENCE_CHOICES, **options})

    def replace(self, **options: Any) -> "GroupingConfig":
        """This configuration with some options replaced (validated).

        Args:
            **options: field names and their new values.

        Returns:
            A new [`GroupingConfig`][keras_swn.analysis.GroupingConfig].

        Raises:
            TypeError: on a name that is not an option.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise TypeError(
                f"Unknown grouping options {unknown}; expected some of "
                f"{sorted(fields)}."
            )
        return dataclasses.replace(self, **options)

    def to_dict(self) -> dict[str, Any]:
        """The options as keyword arguments of `search_groups`."""
        return dataclasses.asdict(self)
