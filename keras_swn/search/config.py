"""`SearchConfig`: what a search searches, validated once.

Everything that defines *what* `SearchAndRefine` searches (the members,
the budget, the clustering and refine options) in one frozen dataclass,
validated once when it is made (every error an
`keras_swn.validation.ArgumentError` naming the argument), that
round-trips through JSON (`to_dict` / `from_dict`): `state.json` records
it, and a resumed search compares it with the one it is given. How long
and how the search trains is its `keras_swn.search.run_config.RunConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any
from typing import Mapping
from typing import Sequence
from typing import cast

import keras

from keras_swn.analysis.attachment import attach_members
from keras_swn.analysis.clustering import BUDGET_CHECKS
from keras_swn.analysis.clustering import SCHEDULES as THRESHOLD_SCHEDULES
from keras_swn.analysis.grouping_config import GroupingConfig
from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.similarity import SIGNALS
from keras_swn.bank.bank_config import BankConfig
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.chains import need_proxy
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.search.phases import Sharing
from keras_swn.search.phases import check_sharing
from keras_swn.validation import FieldCheck
from keras_swn.validation import check_fields
from keras_swn.validation import check_real
from keras_swn.validation import choice_check
from keras_swn.validation import int_check
from keras_swn.validation import invalid_argument
from keras_swn.validation import optional

#: The grouping options' defaults and the reference's choices, declared
#: once in `keras_swn.analysis` (what `search_groups` uses by default).
_GROUPING, _REFERENCE = GroupingConfig(), GroupingConfig.reference()

#: The options `reference_compatible=True` selects: (reference, default).
REFERENCE_OPTIONS = {
    "clustering": (_REFERENCE.clustering, _GROUPING.clustering),
    "chain_sort": (_REFERENCE.chain_sort, _GROUPING.chain_sort),
    "template_fan_in": (9, "kernel"),
    "budget_check": (_REFERENCE.budget_check, _GROUPING.budget_check),
    "threshold_schedule": (_REFERENCE.schedule, _GROUPING.schedule),
}


def _real(positive: bool = False) -> FieldCheck:
    return lambda n, v: check_real(n, v, positive=positive)


def _members(name: str, value: Any) -> tuple:
    members = tuple(value) if isinstance(value, (list, tuple)) else ()
    if not members or not all(isinstance(m, MemberBuilder) for m in members):
        raise invalid_argument(
            name,
            "Expected a non-empty list of member builders such as "
            "keras_swn.models.WideResNet(16, 4).",
            value,
        )
    return members


def _shape(name: str, value: Any) -> tuple:
    try:
        return tuple(int(d) for d in value)
    except (TypeError, ValueError):
        raise invalid_argument(
            name, "Expected a tuple of ints.", value
        ) from None


def _cosine(name: str, value: Any) -> float:
    if not -1 <= check_real(name, value) <= 1:
        raise invalid_argument(
            name, "Expected a cosine similarity, in [-1, 1].", value
        )
    return float(value)


def _share(name: str, value: Any) -> float:
    if not 0 < check_real(name, value) <= 1:
        raise invalid_argument(name, "Expected a number in (0, 1].", value)
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid_argument(name, "Expected a bool.", value)
    return value


#: One check per field, in the order they run; each takes the name and
#: the value and returns the value normalised. The reference-mode options
#: are resolved before their checks run. The bank's fields (`budget`,
#: `bank_size`, `template_fan_in`, `chain_sort`, `on_over_budget`, `seed`)
#: are checked by `BankConfig`, which `bank` holds.
_CHECKS: dict[str, FieldCheck] = {
    "members": _members,
    "input_shape": _shape,
    "num_classes": int_check(2),
    "seed": int_check(0),
    "num_bins": int_check(1),
    "threshold_start": _real(),
    "threshold_decrement": _real(positive=True),
    "signal": choice_check(SIGNALS),
    "capture_batches": int_check(1),
    "batch_size": int_check(1),
    "refine_threshold": _cosine,
    "coefficient_threshold": optional(_real()),
    "sharing": lambda n, v: check_sharing(v),
    "reference_compatible": _bool,
    "clustering": choice_check(CLUSTERINGS),
    "budget_check": choice_check(BUDGET_CHECKS),
    "threshold_schedule": choice_check(THRESHOLD_SCHEDULES),
    "group_share": _share,
}


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SearchConfig:
    """What `SearchAndRefine` searches: validated once, JSON round trip.

    The options marked *reference* default to None, which resolves to the
    library default, or to the reference's value with
    `reference_compatible=True` (see the algorithm page, [Reference-compatible
    mode][reference-compatible]); passing another value for one of them together
    with `reference_compatible=True` is an error.

    Args:
        members: list of member builders, deepest first (e.g.
            `[keras_swn.models.WideResNet(28, 7), WideResNet(16, 4)]`).
        input_shape: the shape of one input, e.g. `(32, 32, 3)`.
        num_classes: int >= 2.
        budget: int > 0, the template budget (bank parameters only).
        seed: int >= 0, the root seed of initial values, data order, the
            capture batch and the refine pass.
        num_bins: int, initial bins `B` (see the algorithm page, [Initial
            bins][bins]).
        threshold_schedule: *reference*; which clustering thresholds the search
            tries: `"split"` (the default: from the initial bins, split one
            group at a time at its weakest link, least similar first, while the
            grouping needs at most the bins' need plus `group_share` of the
            budget left after them; see the algorithm page, [Threshold
            schedule][threshold-schedule]), `"fill"` (the least-merged grouping
            under one threshold for every bin whose one template per bank takes
            at most `group_share` of the budget) or `"step"` (the reference's:
            from `threshold_start` down by `threshold_decrement` until the
            grouping fits).
        group_share: float in (0, 1]: under `"split"`, the share of the
            budget left after the initial bins that splits may take (the
            rest pays for more templates per bank); under `"fill"`, the
            share of the budget the groups may take.
        threshold_start: float, the first clustering threshold of `"step"`.
        threshold_decrement: float > 0, the threshold step of `"step"`.
        clustering: *reference*; `"connected_components"` (default) or
            `"reference"`.
        signal: `"gradient"` (default), `"gradient+weight"` or
            `"parameter"` (the SSN-style baseline, no gradient capture).
        capture_batches: int, batches of gradient capture (the
            reference: 1).
        batch_size: int, the batch size of training, capture and refine.
        refine_threshold: float in [-1, 1], the refine cosine threshold
            (README 0.9).
        coefficient_threshold: float or None: gate student coefficient
            sharing at search time (see the algorithm page, [Attaching
            the other members][attachment]); also trains every member
            during the search.
        budget_check: *reference*; the measure of the clustering threshold
            loop: `"exact"` (the default: the one-template total of the
            restacked groups, the measure the plan is built with) or
            `"proxy"` (the reference's `need`, the sum of each group's
            largest kernel, which ignores cropping waste).
        chain_sort: *reference*; `"stable"` (default) or `"reference"`
            (see the algorithm page, [Stacking chains][stacking-chains]).
        template_fan_in: *reference*; the template initialisation passed to
            [`SWNModel`][keras_swn.SWNModel]: `"kernel"` (the default: every
            composed kernel starts with the He-normal scale of its own fan-in),
            `"layer"` or `9` (the reference: every template entry N(0, 2/9)).
        bank_size: int in 1..8.
        on_over_budget: `"raise"` (default) or `"report"`.
        sharing: the regime
            ([`keras_swn.search.phases`][]), default
            `"learned"`.
        reference_compatible: bool; True selects the reference's value of
            every *reference* option (and makes the reference's schedule
            the default of [`RunConfig`][keras_swn.search.RunConfig]).

    Raises:
        ValueError: an `ArgumentError` naming the first bad argument; and,
            for the regimes that search, naming `budget` when even the
            least-demanding grouping the search can return (every initial
            bin merged into one group) needs more than `budget`.

    Examples:
        >>> config = keras_swn.search.SearchConfig(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000)
        >>> config.threshold_schedule, config.clustering, config.chain_sort
        ('split', 'connected_components', 'stable')
        >>> SearchConfig = keras_swn.search.SearchConfig
        >>> SearchConfig.from_dict(config.to_dict()) == config
        True
    """

    members: Sequence[MemberBuilder]
    input_shape: Sequence[int]
    num_classes: int
    budget: int
    seed: int = 0
    num_bins: int = 4
    threshold_schedule: str | None = None
    group_share: float = _GROUPING.group_share
    threshold_start: float = _GROUPING.threshold_start
    threshold_decrement: float = _GROUPING.threshold_decrement
    clustering: str | None = None
    signal: str = _GROUPING.signal
    capture_batches: int = 1
    batch_size: int = 128
    refine_threshold: float = 0.9
    coefficient_threshold: float | None = _GROUPING.coefficient_threshold
    budget_check: str | None = None
    chain_sort: str | None = None
    template_fan_in: int | str | None = None
    bank_size: int = 8
    on_over_budget: str = "raise"
    sharing: str = "learned"
    reference_compatible: bool = False
    bank: BankConfig = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        given_schedule = self.threshold_schedule
        for name in REFERENCE_OPTIONS:
            object.__setattr__(
                self, name, self._resolve(name, self.__dict__[name])
            )
        schedule, clustering = self.threshold_schedule, self.clustering
        if schedule == "split" and clustering == "reference":
            # "split" splits single-linkage clusters: the reference's label
            # propagation gets the one-threshold "fill" by default.
            if given_schedule is not None:
                raise invalid_argument(
                    "threshold_schedule",
                    "The 'split' schedule needs "
                    "clustering='connected_components'; use 'fill' or "
                    "'step' with clustering='reference'.",
                    given_schedule,
                )
            object.__setattr__(self, "threshold_schedule", "fill")
        check_fields(self, _CHECKS)
        bank = BankConfig(
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(BankConfig)
            }
        )
        for f in dataclasses.fields(BankConfig):
            object.__setattr__(self, f.name, getattr(bank, f.name))
        object.__setattr__(self, "bank", bank)
        if self.signal != "gradient" and not self.regime.searches:
            raise invalid_argument(
                "signal",
                f"sharing={self.regime.value!r} runs no search; leave "
                "`signal` at 'gradient'.",
                self.signal,
            )
        if self.regime.searches:
            self._check_search_budget()

    def _resolve(self, name: str, given: Any) -> Any:
        reference, default = REFERENCE_OPTIONS[name]
        if not self.reference_compatible:
            return default if given is None else given
        if given is not None and given != reference:
            raise invalid_argument(
                name,
                f"reference_compatible=True selects {name}={reference!r}; "
                "pass one or the other.",
                given,
            )
        return reference

    @property
    def regime(self) -> Sharing:
        """`sharing` as the `Sharing` enum member it is stored as.

        `__post_init__` turns the name into the enum member."""
        return cast(Sharing, self.sharing)

    @functools.cached_property
    def specs(self) -> tuple[LayerSpec, ...]:
        """The shared layers of every member, member by member."""
        return tuple(
            s
            for i, b in enumerate(self.members)
            for s in b.layer_specs(self.input_shape, member=i)
        )

    @functools.cached_property
    def search_members(self) -> list[int]:
        """The members that train during the search: member 0 and the
        first member of each new depth (every member with
        `coefficient_threshold`)."""
        depths = [0] * len(self.members)
        for s in self.specs:
            depths[s.member] += 1
        seen: set[int] = set()
        found = []
        for m, d in enumerate(depths):
            if d not in seen or self.coefficient_threshold is not None:
                found.append(m)
            seen.add(d)
        return found

    @property
    def member_names(self) -> list[str]:
        return [getattr(m, "name", type(m).__name__) for m in self.members]

    def _check_search_budget(self) -> None:
        """Raise before any training if the search can never meet `budget`.

        The least-demanding grouping the search can return has every
        initial bin fully merged into one group (the other members attached
        as the search attaches them). If even that needs more than `budget`
        (one template per bank), the threshold loop, or the exact plan
        after it, would fail after the search training was spent.

        With `clustering="reference"` (label propagation, not transitive)
        even a threshold every pair passes need not merge a bin into one
        group, so the loop can still fail after training: the reference's
        behaviour, kept in reference mode.
        """
        bins = initial_bins(self.specs, self.num_bins)
        merged = attach_members(
            self.specs, bins, bins[0], lambda a, b: 0.0
        ).groups
        # The threshold loop measures with `budget_check`; the plan after
        # it (exact) raises unless `on_over_budget="report"`. Both must
        # pass, so the larger measure decides.
        measures = []
        # `__post_init__` has resolved the reference options (not None).
        assert self.chain_sort is not None
        if self.budget_check == "proxy":
            measures.append(need_proxy(self.specs, merged))
        if self.budget_check == "exact" or self.on_over_budget == "raise":
            measures.append(
                one_template_total(
                    self.specs, merged, chain_sort=self.chain_sort
                )
            )
        minimum = max(measures)
        if self.budget < minimum:
            raise invalid_argument(
                "budget",
                f"Expected at least {minimum:,}: the least-demanding "
                f"grouping the search can return (each of the "
                f"{self.num_bins} initial bins merged into one group, one "
                f"template per bank) needs {minimum:,} template parameters "
                f"(budget_check={self.budget_check!r}), "
                f"so the search could never meet budget={self.budget:,}. "
                "Raise `budget` or use fewer initial bins (`num_bins`).",
                self.budget,
            )

    def clustering_kwargs(self) -> dict[str, Any]:
        """The options of `keras_swn.analysis.clustering.search_groups`."""
        return dict(
            threshold_start=self.threshold_start,
            threshold_decrement=self.threshold_decrement,
            clustering=self.clustering,
            budget_check=self.budget_check,
            signal=self.signal,
            coefficient_threshold=self.coefficient_threshold,
            chain_sort=self.chain_sort,
            schedule=self.threshold_schedule,
            group_share=self.group_share,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def model_kwargs(self) -> dict[str, Any]:
        """The `SWNModel` arguments this configuration fixes."""
        return dict(
            members=list(self.members),
            input_shape=tuple(self.input_shape),
            num_classes=self.num_classes,
            num_bins=self.num_bins,
            bank_config=self.bank,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON values (the members as Keras-serialised builders)."""
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init
        }
        data["members"] = [
            keras.saving.serialize_keras_object(m) for m in self.members
        ]
        data["input_shape"] = list(self.input_shape)
        data["sharing"] = self.regime.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SearchConfig":
        """Read `to_dict` output.

        Args:
            data: a mapping as written by `to_dict` (members serialised as
                Keras objects).

        Returns:
            The [`SearchConfig`][keras_swn.search.SearchConfig].

        Raises:
            ValueError: on an invalid value.
        """
        data = dict(data)
        data["members"] = [
            keras.saving.deserialize_keras_object(m) for m in data["members"]
        ]
        return cls(**data)
