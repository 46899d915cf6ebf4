"""`BankPlan`: the banks, their allocation and every layer's recipe.

The deterministic sizing of an SWN: the stacking chain of every group
(`keras_swn.policy.chains`), one bank per width level, the template budget
allocated over the banks (`keras_swn.bank.allocation`) and, per layer, the
template windows it reads and the levels it assembles
(`keras_swn.bank.assembly`). Pure functions over `LayerSpec`s and a
`SharingPolicy` that return frozen dataclasses; no Keras import.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Mapping
from typing import Sequence

from keras_swn.bank.allocation import ALLOCATION_CAP
from keras_swn.bank.allocation import Allocation
from keras_swn.bank.allocation import allocate
from keras_swn.bank.allocation import window_offsets
from keras_swn.bank.assembly import assemble
from keras_swn.policy.bins import index_specs
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.policy.chains import Chain
from keras_swn.policy.chains import Level
from keras_swn.policy.chains import Piece
from keras_swn.policy.chains import chains_and_levels
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.chains import need_proxy
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.chains import stacking_chains
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.types import OIHW
from keras_swn.types import BankKey
from keras_swn.types import LayerKey
from keras_swn.types import Slot
from keras_swn.validation import check_choice
from keras_swn.validation import check_instance
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument

# Re-exported: `keras_swn.bank.plan` was the home of the chains, the
# allocation and the assembly, and is still imported for them.
__all__ = [
    "ALLOCATION_CAP",
    "CHAIN_SORTS",
    "ON_OVER_BUDGET",
    "Allocation",
    "BankPlan",
    "BankSpec",
    "Chain",
    "LayerRecipe",
    "Level",
    "OverBudgetWarning",
    "Piece",
    "allocate",
    "assemble",
    "layer_levels",
    "need_proxy",
    "one_template_total",
    "stacking_chains",
    "window_offsets",
]

ON_OVER_BUDGET = ("raise", "report")


class OverBudgetWarning(UserWarning):
    """Emitted by `BankPlan.create(..., on_over_budget="report")`."""


@dataclasses.dataclass(frozen=True)
class BankSpec:
    """One bank `(group, width)`: the templates of one width level.

    Args:
        group: int, the group id.
        width: int, the width level.
        seg: int, the parameters of one template (the level's increment).
        unit: int, the allocation unit (one template; equals `seg`).
        users: int, the `(member, layer)` pairs that use the level.
        size: int, `P(g, w)`, the bank's parameters.
        templates: int, `K(g, w)`, the templates each layer mixes.
    """

    group: int
    width: int
    seg: int
    unit: int
    users: int
    size: int
    templates: int

    @property
    def key(self) -> BankKey:
        return (self.group, self.width)


@dataclasses.dataclass(frozen=True)
class LayerRecipe:
    """How one shared layer assembles its kernel.

    Args:
        member: int, the member index.
        layer_id: int, the layer id within the member.
        kind: str, `"conv2d"` or `"dense"`.
        shape: the kernel shape, OIHW.
        group: int, the layer's group.
        num_levels: int, the width levels it uses (banks `(group, 0 ..
            num_levels - 1)`).
        offsets: `offsets[w]`, the start (in elements) of the layer's
            template window in the flat bank `(group, w)`.
    """

    member: int
    layer_id: int
    kind: str
    shape: OIHW
    group: int
    num_levels: int
    offsets: tuple[int, ...]

    @property
    def key(self) -> LayerKey:
        return (self.member, self.layer_id)


def _check_owners(
    policy: SharingPolicy, num_levels: Mapping[LayerKey, int]
) -> None:
    """Every slot the policy names, and its owner, reach its width level."""
    for slot, owner in policy.coefficient_owners.items():
        m, lid, w = slot
        if w >= num_levels[(m, lid)]:
            raise invalid_argument(
                "policy",
                f"Coefficient slot (member={m}, layer_id={lid}, width={w}) "
                f"does not exist; that layer uses {num_levels[(m, lid)]} "
                "width level(s).",
                policy,
                shown=f"coefficient_owners[{slot}]={owner}",
            )
        if w >= num_levels[owner]:
            raise invalid_argument(
                "policy",
                f"Slot (member={m}, layer_id={lid}, width={w}) reads the "
                f"coefficients of layer (member={owner[0]}, "
                f"layer_id={owner[1]}) at width {w}, but that layer uses "
                f"only {num_levels[owner]} width level(s).",
                policy,
                shown=f"coefficient_owners[{slot}]={owner}",
            )


def _banks(
    chains: Mapping[int, Chain],
    bank_users: Mapping[BankKey, list[LayerKey]],
    budget: int,
    bank_size: int,
) -> dict[BankKey, BankSpec]:
    """One `BankSpec` per width level of every chain, the budget allocated."""
    units = {
        (g, w): level.seg
        for g, chain in chains.items()
        for w, level in enumerate(chain.levels)
    }
    users = {k: len(bank_users.get(k, [])) for k in units}
    alloc = allocate(units, users, budget, bank_size=bank_size)
    return {
        k: BankSpec(
            group=k[0],
            width=k[1],
            seg=units[k],
            unit=units[k],
            users=users[k],
            size=alloc.sizes[k],
            templates=alloc.templates[k],
        )
        for k in sorted(units)
    }


def _recipes(
    specs: Sequence[LayerSpec],
    policy: SharingPolicy,
    num_levels: Mapping[LayerKey, int],
    banks: Mapping[BankKey, BankSpec],
    bank_users: Mapping[BankKey, list[LayerKey]],
) -> dict[LayerKey, LayerRecipe]:
    """Every layer's recipe, with its template window in each bank."""
    offsets: dict[LayerKey, dict[int, int]] = {}
    for k, bank in banks.items():
        keys = sorted(bank_users.get(k, []))
        starts = window_offsets(bank.size, bank.seg, bank.templates, len(keys))
        for key, start in zip(keys, starts):
            offsets.setdefault(key, {})[k[1]] = start
    layers = {}
    for spec in specs:
        n = num_levels[spec.key]
        layers[spec.key] = LayerRecipe(
            member=spec.member,
            layer_id=spec.layer_id,
            kind=spec.kind,
            shape=spec.shape,
            group=policy.group_of(*spec.key),
            num_levels=n,
            offsets=tuple(offsets[spec.key][w] for w in range(n)),
        )
    return layers


def _over_budget(
    banks: Mapping[BankKey, BankSpec], budget: int, on_over_budget: str
) -> int:
    """`bank_total - budget` if positive; raises or warns when positive."""
    bank_total = sum(b.size for b in banks.values())
    over = max(0, bank_total - budget)
    if over:
        one_template = sum(b.unit for b in banks.values())
        message = (
            f"The template banks need {bank_total:,} parameters, "
            f"{over:,} more than the budget of {budget:,} (one "
            f"template per bank alone needs {one_template:,}). "
            f"Received: budget={budget}"
        )
        if on_over_budget == "raise":
            raise invalid_argument(
                "budget",
                f"The template banks need {bank_total:,} parameters, "
                f"{over:,} more than the budget of {budget:,} (one "
                f"template per bank alone needs {one_template:,}). Raise "
                "`budget`, merge more layers into fewer groups, or pass "
                "on_over_budget='report'.",
                budget,
            )
        warnings.warn(message, OverBudgetWarning, stacklevel=3)
    return over


@dataclasses.dataclass(frozen=True)
class BankPlan:
    """Everything that fixes the sizes of an SWN: chains, banks, recipes.

    Built by [`BankPlan.create`][keras_swn.bank.plan.BankPlan.create] from the
    layer specs, a [`SharingPolicy`][keras_swn.SharingPolicy] and a template
    budget. The budget counts template-bank parameters only.

    Attributes:
        specs: every shared layer, sorted by `(member, layer_id)`.
        policy: the `SharingPolicy`.
        budget: int, the template budget.
        bank_size: int, the most templates one layer mixes (1..8).
        chain_sort: str, `"stable"` or `"reference"`.
        chains: `{group: Chain}`.
        banks: `{(group, width): BankSpec}`, ascending.
        layers: `{(member, layer_id): LayerRecipe}`, ascending.
        owner_slots: every `(member, layer_id, width)` slot that owns a
            coefficient vector, sorted.
        bank_total: int, the sum of all bank sizes.
        coefficient_scalars: int, the sum of `K(g, w)` over owner slots.
        over_budget: int, `bank_total - budget` if positive, else 0.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> plan = model.plan
        >>> plan.budget, plan.bank_total, plan.over_budget, len(plan.specs)
        (60000, 59744, 0, 9)
        >>> list(plan.banks)[:3]  # (group, width level)
        [(0, 0), (0, 1), (1, 0)]
    """

    specs: tuple[LayerSpec, ...]
    policy: SharingPolicy
    budget: int
    bank_size: int
    chain_sort: str
    chains: dict[int, Chain]
    banks: dict[BankKey, BankSpec]
    layers: dict[LayerKey, LayerRecipe]
    owner_slots: tuple[Slot, ...]
    bank_total: int
    coefficient_scalars: int
    over_budget: int

    @classmethod
    def create(
        cls,
        specs: Sequence[LayerSpec],
        policy: SharingPolicy,
        budget: int,
        *,
        bank_size: int = 8,
        chain_sort: str | None = None,
        on_over_budget: str = "raise",
    ) -> "BankPlan":
        """Stack every group, allocate the budget, and plan every layer.

        Args:
            specs: every shared layer of every member, in any order.
            policy: [`SharingPolicy`][keras_swn.SharingPolicy] over the same
                layers.
            budget: int > 0, the template budget (`max_params`).
            bank_size: int in 1..8, the most templates one layer mixes.
                Below 8, the template windows of a bank's layers slide.
            chain_sort: `None` (default: the policy's `chain_sort`),
                `"stable"` or `"reference"` (see
                `keras_swn.policy.chains.stacking_chains`). A policy that
                names coefficient slots must have been built for the same
                chain order.
            on_over_budget: `"raise"` (default): raise when the bank total
                exceeds the budget. `"report"`: warn with an
                `OverBudgetWarning` and record `over_budget`.

        Returns:
            A [`BankPlan`][keras_swn.BankPlan].

        Raises:
            ValueError: on invalid arguments, a policy that does not match
                `specs` or was built for another `chain_sort`, a
                coefficient owner that lacks the width level it is asked
                for, or (with `on_over_budget="raise"`) a bank total above
                the budget.

        Examples:
            >>> from keras_swn.models.wide_resnet_shapes import (
            ...     wide_resnet_layer_specs)
            >>> specs = wide_resnet_layer_specs(16, 4)
            >>> policy = SharingPolicy.from_bins(specs, 4)
            >>> plan = BankPlan.create(specs, policy, 2_000_000)
            >>> plan.bank_total <= 2_000_000, len(plan.banks)
            (True, 10)
        """
        check_instance("policy", policy, SharingPolicy)
        budget = check_int("budget", budget, minimum=1)
        bank_size = check_int(
            "bank_size", bank_size, minimum=1, maximum=ALLOCATION_CAP
        )
        chain_sort = policy.check_chain_sort(chain_sort)
        check_choice("on_over_budget", on_over_budget, ON_OVER_BUDGET)
        by_member = index_specs(specs)
        spec_counts = [len(r) for r in by_member]
        policy_counts = [len(r) for r in policy.groups]
        if spec_counts != policy_counts:
            raise invalid_argument(
                "policy",
                "Its groups do not cover the layers of `specs`. Layers per "
                f"member in specs: {spec_counts}.",
                policy,
                shown=f"layers per member in policy.groups={policy_counts}",
            )
        sorted_specs = tuple(s for row in by_member for s in row)
        chains, num_levels = chains_and_levels(
            sorted_specs, policy.groups, chain_sort=chain_sort
        )
        _check_owners(policy, num_levels)
        owner_slots = tuple(
            (m, lid, w)
            for (m, lid), n in num_levels.items()
            for w in range(n)
            if policy.owner((m, lid, w)) == (m, lid)
        )
        bank_users: dict[BankKey, list[LayerKey]] = {}
        for key, n in num_levels.items():
            for w in range(n):
                bank_users.setdefault((policy.group_of(*key), w), []).append(
                    key
                )
        banks = _banks(chains, bank_users, budget, bank_size)
        over = _over_budget(banks, budget, on_over_budget)
        return cls(
            specs=sorted_specs,
            policy=policy,
            budget=budget,
            bank_size=bank_size,
            chain_sort=chain_sort,
            chains=chains,
            banks=banks,
            layers=_recipes(
                sorted_specs, policy, num_levels, banks, bank_users
            ),
            owner_slots=owner_slots,
            bank_total=sum(b.size for b in banks.values()),
            coefficient_scalars=sum(
                banks[(policy.group_of(m, lid), w)].templates
                for m, lid, w in owner_slots
            ),
            over_budget=over,
        )

    # ------------------------------------------------------------------
    @property
    def num_members(self) -> int:
        return self.policy.num_members

    @property
    def coefficient_vectors(self) -> int:
        """Number of distinct coefficient vectors (owner slots)."""
        return len(self.owner_slots)

    @property
    def num_slots(self) -> int:
        """Number of `(member, layer, width)` coefficient slots."""
        return sum(r.num_levels for r in self.layers.values())

    @property
    def max_width(self) -> int:
        """The most width levels of any group."""
        return max(len(c.levels) for c in self.chains.values())

    def layer(self, member: int, layer_id: int) -> LayerRecipe:
        """The recipe of one layer.

        Args:
            member: int, the member index.
            layer_id: int, the layer id within the member.

        Returns:
            Its `LayerRecipe`.

        Raises:
            KeyError: if the plan has no such shared layer.
        """
        try:
            return self.layers[(member, layer_id)]
        except KeyError:
            raise KeyError(
                f"No shared layer (member={member}, layer_id={layer_id}) "
                "in this plan."
            ) from None

    def levels_of(self, member: int, layer_id: int) -> tuple[Level, ...]:
        """The levels one layer assembles, level 0 first (for `assemble`).

        Args:
            member: int, the member index.
            layer_id: int, the layer id within the member.

        Returns:
            The first `num_levels` levels of the layer's stacking chain.
        """
        recipe = self.layer(member, layer_id)
        return self.chains[recipe.group].levels[: recipe.num_levels]

    def windows(
        self, member: int, layer_id: int
    ) -> tuple[tuple[BankKey, int, int, int], ...]:
        """The template window of a layer in each bank it reads.

        Args:
            member: int, the member index.
            layer_id: int, the layer id within the member.

        Returns:
            Per width level `w`, `((group, w), offset, K, seg)`: the layer
            reads `bank[offset : offset + K * seg]` viewed as `(K, seg)`.
        """
        recipe = self.layer(member, layer_id)
        out = []
        for w in range(recipe.num_levels):
            bank = self.banks[(recipe.group, w)]
            out.append((bank.key, recipe.offsets[w], bank.templates, bank.seg))
        return tuple(out)
