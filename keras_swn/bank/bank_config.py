"""`BankConfig`: the options of a template bank, validated once.

The budget and the options that decide how a `SharingPolicy` becomes
variables (`bank_size`, `template_fan_in`, `chain_sort`,
`on_over_budget`, `seed`) in one frozen dataclass, validated when it is
made and round-tripped through JSON. `TemplateBank` and `SWNModel` take
it whole (`bank_config=`), or build it from their keyword arguments.
Pure Python: no Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping
from typing import Sequence

from keras_swn import seeding
from keras_swn.bank.allocation import ALLOCATION_CAP
from keras_swn.bank.plan import ON_OVER_BUDGET
from keras_swn.bank.plan import BankPlan
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.validation import FieldCheck
from keras_swn.validation import check_choice
from keras_swn.validation import check_fields
from keras_swn.validation import check_instance
from keras_swn.validation import choice_check
from keras_swn.validation import int_check
from keras_swn.validation import invalid_argument
from keras_swn.validation import optional

#: The template initialisations (see `keras_swn.TemplateBank`).
TEMPLATE_FAN_IN = ("kernel", "layer", 9)


def _fan_in(name: str, value: Any) -> Any:
    try:
        return check_choice(name, value, TEMPLATE_FAN_IN)
    except ValueError:
        raise invalid_argument(
            name,
            "Expected one of 'kernel' (He-normal scale for every composed "
            "kernel), 'layer' or 9 (the reference).",
            value,
        ) from None


_CHECKS: dict[str, FieldCheck] = {
    "budget": int_check(1),
    "bank_size": int_check(1, ALLOCATION_CAP),
    "template_fan_in": _fan_in,
    "chain_sort": optional(choice_check(CHAIN_SORTS)),
    "on_over_budget": choice_check(ON_OVER_BUDGET),
    "seed": optional(int_check()),
}


@dataclasses.dataclass(frozen=True)
class BankConfig:
    """The budget and initialisation options of a template bank.

    Args:
        budget: int > 0, the template budget: bank parameters only.
        bank_size: int in 1..8, the most templates one layer mixes.
        template_fan_in: the initialisation: `"kernel"` (default: every
            composed kernel starts He-normal for its own fan-in),
            `"layer"` or `9` (the reference's); see
            [`keras_swn.TemplateBank`][].
        chain_sort: `None` (default: the policy's chain order),
            `"stable"` or `"reference"` (see the algorithm page,
            [Stacking chains][stacking-chains]).
        on_over_budget: `"raise"` (default) or `"report"` (F6).
        seed: int or None, the root seed of every initial value (None:
            drawn once by `resolved()`).

    Raises:
        ValueError: an `keras_swn.validation.ArgumentError` naming the
            first bad field.

    Examples:
        >>> import json
        >>> config = BankConfig(budget=10_000, template_fan_in=9, seed=0)
        >>> text = json.dumps(config.to_dict())
        >>> BankConfig.from_dict(json.loads(text)) == config
        True
        >>> BankConfig(budget=10_000, bank_size=9)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... argument `bank_size`...
    """

    budget: int
    bank_size: int = 8
    template_fan_in: int | str = "kernel"
    chain_sort: str | None = None
    on_over_budget: str = "raise"
    seed: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, _CHECKS)

    def resolved(self, chain_sort: str | None = None) -> "BankConfig":
        """This configuration with a seed drawn if it has none.

        Args:
            chain_sort: `None` (keep this configuration's `chain_sort`), or
                the chain order a plan resolved `chain_sort=None` to.

        Returns:
            A new [`BankConfig`][keras_swn.BankConfig] with an int `seed`.
        """
        return dataclasses.replace(
            self,
            seed=seeding.resolve_seed(self.seed),
            chain_sort=self.chain_sort if chain_sort is None else chain_sort,
        )

    def plan(self, specs: Sequence[LayerSpec], policy: SharingPolicy):
        """`BankPlan.create` of `specs` and `policy` with these options.

        Args:
            specs: every shared layer of every member
                ([`LayerSpec`][keras_swn.LayerSpec]s).
            policy: the [`SharingPolicy`][keras_swn.SharingPolicy] to plan.

        Returns:
            plan (BankPlan): the plan of `specs` under `policy`.

        Raises:
            ValueError: when the plan does not fit the budget and
                `on_over_budget="raise"`.
        """
        return BankPlan.create(
            specs,
            policy,
            self.budget,
            bank_size=self.bank_size,
            chain_sort=self.chain_sort,
            on_over_budget=self.on_over_budget,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON values (`from_dict` reads them back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BankConfig":
        """Read `to_dict` output.

        Args:
            data: a mapping of [`BankConfig`][keras_swn.BankConfig] field names
                to values.

        Returns:
            The `BankConfig`.

        Raises:
            ValueError: on an unknown key or an invalid value.
        """
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise invalid_argument(
                "bank_config",
                f"Unknown keys {unknown}; expected the fields of BankConfig.",
                dict(data),
            )
        return cls(**data)

    @classmethod
    def merge(
        cls, bank_config: "BankConfig | Mapping | None", **options: Any
    ) -> "BankConfig":
        """Merge `bank_config` and keyword options into one configuration.

        For a constructor that takes `bank_config` or the same options as
        keyword arguments.

        Without `bank_config`, `options` make the configuration. With it,
        every option must be left at its default or equal the
        configuration's value: the two ways do not mix.

        Args:
            bank_config: a [`BankConfig`][keras_swn.BankConfig], its dict form,
                or None.
            **options: the keyword arguments named like its fields.

        Returns:
            A `BankConfig`.

        Raises:
            ValueError: on a bad configuration, or an option that differs
                from both its default and `bank_config`.
        """
        if bank_config is None:
            return cls(**options)
        if isinstance(bank_config, Mapping):
            bank_config = cls.from_dict(bank_config)
        check_instance("bank_config", bank_config, cls)
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING
        }
        clash = sorted(
            name
            for name, value in options.items()
            if value is not None
            and value != defaults.get(name)
            and value != getattr(bank_config, name)
        )
        if clash:
            raise invalid_argument(
                "bank_config",
                f"Pass {clash} in `bank_config` or as arguments, not both.",
                bank_config,
            )
        return bank_config

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> "BankConfig":
        """`merge` for a constructor, from its `locals()`.

        Reads its `bank_config` and the arguments named like the fields from
        `arguments`.

        Args:
            arguments: a mapping holding `bank_config` and any of the
                fields' names; other keys are ignored.

        Returns:
            A [`BankConfig`][keras_swn.BankConfig].

        Raises:
            ValueError: as `merge`.
        """
        options = {
            f.name: arguments[f.name]
            for f in dataclasses.fields(cls)
            if f.name in arguments
        }
        return cls.merge(arguments.get("bank_config"), **options)
