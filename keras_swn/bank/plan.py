"""`BankPlan`: stacking chains, banks, template allocation, assembly recipes.

The deterministic sizing machinery of swn-algorithm.md §1.4-§1.7, as pure
functions over `LayerSpec`s and group ids that return frozen dataclasses.
No Keras import: `assemble` is generic over the array library and is called
with `numpy` in tests and with `keras.ops` by the template bank.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any
from typing import Callable
from typing import Mapping
from typing import NamedTuple
from typing import Sequence

import numpy as np

from keras_swn.policy.bins import index_specs
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

Piece = tuple[int, int, int, int]
BankKey = tuple[int, int]  # (group, width level)
LayerKey = tuple[int, int]  # (member, layer_id)
Slot = tuple[int, int, int]  # (member, layer_id, width level)

CHAIN_SORTS = ("stable", "reference")
ON_OVER_BUDGET = ("raise", "report")
#: The reference allocator's hard-coded cap, in templates per bank (§1.7).
ALLOCATION_CAP = 8


class OverBudgetWarning(UserWarning):
    """Emitted by `BankPlan.create(..., on_over_budget="report")` (F6)."""


# ----------------------------------------------------------------------
# Stacking chains (§1.4)


@dataclasses.dataclass(frozen=True)
class Level:
    """One width level of a group's stacking chain (§1.4).

    Args:
        out: int, output channels of the chain shape that introduced the
            level (the shape every user of the level has after it).
        in_: int, input channels of that chain shape.
        pieces: the increment. One piece `(d_out, in, kh, kw)`: crop the
            input columns to `in`, then append `d_out` output rows (level 0
            is the whole base kernel). Two pieces: the rows piece
            `(d_out, S.in, kh, kw)` (`d_out` may be negative or zero) and
            the columns piece `(rows_kept, S.in - cum_in, kh, kw)`.
        seg: int, the number of parameters of the increment (the length of
            one template of the bank).
    """

    out: int
    in_: int
    pieces: tuple[Piece, ...]
    seg: int

    @property
    def shape(self) -> tuple[int, int]:
        """`(out, in)` of the chain shape that introduced the level."""
        return (self.out, self.in_)


@dataclasses.dataclass(frozen=True)
class Chain:
    """The stacking chain of one group: its width levels, smallest first.

    Args:
        group: int, the group id.
        kernel: `(kh, kw)` of every kernel of the group.
        levels: the width levels, level 0 first.
    """

    group: int
    kernel: tuple[int, int]
    levels: tuple[Level, ...]

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple(level.shape for level in self.levels)

    @property
    def segs(self) -> tuple[int, ...]:
        return tuple(level.seg for level in self.levels)


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{tuple(choices)}. Received: {name}={value!r}"
        )


def _group_members(
    specs: Sequence[LayerSpec], groups: Sequence[Sequence[int]]
) -> dict[int, list[LayerSpec]]:
    """Specs of every group, in the reference's input order.

    That order is ascending layer id (the union over members) and, for each
    id, ascending member (§1.4, tie handling).
    """
    by_member = index_specs(specs)
    groups = [list(row) for row in groups]
    if [len(r) for r in groups] != [len(r) for r in by_member]:
        raise ValueError(
            "Invalid value for argument `groups`: it must list one group id "
            "per layer of every member described by `specs`. Layers per "
            f"member in specs: {[len(r) for r in by_member]}. Received: "
            f"layers per member in groups={[len(r) for r in groups]}"
        )
    out: dict[int, list[LayerSpec]] = {}
    ordered = sorted(
        (s for row in by_member for s in row),
        key=lambda s: (s.layer_id, s.member),
    )
    for spec in ordered:
        g = int(groups[spec.member][spec.layer_id])
        if g < 0:
            raise ValueError(
                "Invalid value for argument `groups`. Group ids must be "
                f"non-negative. Received: group {g} for layer "
                f"(member={spec.member}, layer_id={spec.layer_id})"
            )
        out.setdefault(g, []).append(spec)
    for g, members in out.items():
        first = members[0]
        for spec in members[1:]:
            if spec.kind != first.kind or spec.shape[2:] != first.shape[2:]:
                raise ValueError(
                    f"Group {g} mixes kernel kinds or sizes: layer "
                    f"{first.key} is {first.kind} {first.shape} but layer "
                    f"{spec.key} is {spec.kind} {spec.shape}. A group must "
                    "hold one kernel kind and size."
                )
    return dict(sorted(out.items()))


def _sort_members(members: list[LayerSpec], chain_sort: str) -> list[LayerSpec]:
    if chain_sort == "stable":
        return sorted(members, key=lambda s: (s.numel, s.shape[0], s.shape[1]))
    order = np.argsort(np.array([s.numel for s in members], dtype=np.int64))
    return [members[int(i)] for i in order]


def _chain_and_ranks(
    group: int, members: list[LayerSpec], chain_sort: str
) -> tuple[Chain, dict[LayerKey, int]]:
    ranked = _sort_members(members, chain_sort)
    base = ranked[0]
    out0, in0, kh, kw = base.shape
    levels = [Level(out0, in0, ((out0, in0, kh, kw),), base.numel)]
    num_levels = {base.key: 1}
    cum_out, cum_in = out0, in0
    for prev, spec in zip(ranked, ranked[1:]):
        s_out, s_in = spec.shape[0], spec.shape[1]
        if spec.shape != prev.shape:
            d_out = s_out - cum_out
            if s_in > cum_in:
                rows_kept = min(cum_out, s_out)
                pieces: tuple[Piece, ...] = (
                    (d_out, s_in, kh, kw),
                    (rows_kept, s_in - cum_in, kh, kw),
                )
                seg = max(0, d_out * s_in * kh * kw) + (
                    rows_kept * (s_in - cum_in) * kh * kw
                )
            else:
                pieces = ((d_out, s_in, kh, kw),)
                seg = d_out * s_in * kh * kw
            levels.append(Level(s_out, s_in, pieces, seg))
            cum_out += d_out
            cum_in = s_in
        num_levels[spec.key] = len(levels)
    return Chain(group, (kh, kw), tuple(levels)), num_levels


def _chains_and_levels(
    specs: Sequence[LayerSpec],
    groups: Sequence[Sequence[int]],
    chain_sort: str,
) -> tuple[dict[int, Chain], dict[LayerKey, int]]:
    _check_choice("chain_sort", chain_sort, CHAIN_SORTS)
    chains: dict[int, Chain] = {}
    levels: dict[LayerKey, int] = {}
    for g, members in _group_members(specs, groups).items():
        chains[g], lv = _chain_and_ranks(g, members, chain_sort)
        levels.update(lv)
    return chains, dict(sorted(levels.items()))


def stacking_chains(
    specs: Sequence[LayerSpec],
    groups: Sequence[Sequence[int]],
    *,
    chain_sort: str = "stable",
) -> dict[int, Chain]:
    """The stacking chain of every group, over all members jointly (§1.4).

    The layers of a group are sorted by parameter count, ascending; the
    smallest shape is level 0, and every later distinct shape adds one
    increment (consecutive duplicates add nothing). Increments may remove
    rows (negative `d_out`) or crop input columns.

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.
        chain_sort: `"stable"` (default): a stable sort with the key
            `(numel, out, in)`. `"reference"`: numpy's default `argsort`
            on the parameter counts, over the reference's input order
            (ascending layer id, then ascending member).

    Returns:
        `{group: Chain}`, ascending group id.

    Raises:
        ValueError: on bad `specs`/`groups`, an unknown `chain_sort`, or a
            group that mixes kernel kinds or sizes.
    """
    return _chains_and_levels(specs, groups, chain_sort)[0]


def layer_levels(
    specs: Sequence[LayerSpec],
    groups: Sequence[Sequence[int]],
    *,
    chain_sort: str = "stable",
) -> dict[LayerKey, int]:
    """Number of width levels every layer uses (§1.4).

    A layer at sorted rank `r` in its group uses level 0 plus every chain
    step up to its own rank.

    Returns:
        `{(member, layer_id): number of levels}`, ascending keys.
    """
    return _chains_and_levels(specs, groups, chain_sort)[1]


def need_proxy(
    specs: Sequence[LayerSpec], groups: Sequence[Sequence[int]]
) -> int:
    """The threshold loop's budget proxy `need` (§2.6).

    The sum over groups of the largest kernel of the group. It ignores the
    cropping waste of the stacking chain (see `one_template_total`).
    """
    return sum(
        max(s.numel for s in members)
        for members in _group_members(specs, groups).values()
    )


def one_template_total(
    specs: Sequence[LayerSpec],
    groups: Sequence[Sequence[int]],
    *,
    chain_sort: str = "stable",
) -> int:
    """The exact bank total with one template per bank (`budget_check="exact"`).

    The sum of `seg` over every width level of every group's chain.
    """
    chains = stacking_chains(specs, groups, chain_sort=chain_sort)
    return sum(sum(chain.segs) for chain in chains.values())


# ----------------------------------------------------------------------
# Allocation (§1.6-§1.7)


class Allocation(NamedTuple):
    """Result of `allocate`.

    Attributes:
        sizes: `{(g, w): P(g, w)}`, parameters of every bank.
        templates: `{(g, w): K(g, w)}`, templates every layer mixes.
        excess: budget left over (negative when one template per bank
            already exceeds the budget).
    """

    sizes: dict[BankKey, int]
    templates: dict[BankKey, int]
    excess: int


def allocate(
    units: Mapping[BankKey, int],
    users: Mapping[BankKey, int],
    budget: int,
    *,
    bank_size: int = 8,
    segs: Mapping[BankKey, int] | None = None,
) -> Allocation:
    """Template allocation of the reference, default mode (§1.7).

    Every bank starts with one template (`unit`). Pass 1, for `c` in 1..7:
    every bank, group-major ascending, with more than `c` users gets one
    more template if `excess - unit > 0`. Pass 2, for `c` in 1..7: a
    round-robin top-up of every bank below 8 templates, same test. The cap
    of 8 is hard-coded (it is not `bank_size`); `K = min(P // seg,
    bank_size)`.

    Args:
        units: `{(g, w): unit}`, one template's parameters per bank.
        users: `{(g, w): number of (member, layer) pairs using the bank}`.
        budget: int, the template budget (`max_params`).
        bank_size: int, the most templates one layer mixes.
        segs: `{(g, w): seg}` for the `K` rule; defaults to `units`.

    Returns:
        An `Allocation`.
    """
    keys = sorted(units)
    unit = {k: int(units[k]) for k in keys}
    segs = unit if segs is None else {k: int(segs[k]) for k in keys}
    sizes = dict(unit)
    excess = int(budget) - sum(sizes.values())
    for c in range(1, ALLOCATION_CAP):
        if excess <= 0:
            break
        for k in keys:
            if users[k] > c and excess - unit[k] > 0:
                sizes[k] += unit[k]
                excess -= unit[k]
    for _ in range(1, ALLOCATION_CAP):
        if excess <= 0:
            break
        for k in keys:
            u = unit[k]
            if u > 0 and excess - u > 0 and sizes[k] / u < ALLOCATION_CAP:
                sizes[k] += u
                excess -= u
    templates = {
        k: min(max(1, sizes[k] // segs[k]), bank_size) if segs[k] > 0 else 1
        for k in keys
    }
    return Allocation(sizes, templates, excess)


def window_offsets(size: int, seg: int, templates: int, n_layers: int) -> list:
    """Start of every layer's template window in a flat bank (§1.6).

    Layers take windows of `templates * seg` parameters in turn: the first
    reads `[0, K*seg)`, the next `[K*seg, 2*K*seg)` if that still fits in
    the bank, and so on; the counter wraps to 0 when a window would overrun
    the bank, or after `K` layers. With `K = P // seg` (never capped by
    `bank_size`) every window starts at 0.

    Args:
        size: int, `P`, the bank's parameters.
        seg: int, one template's parameters.
        templates: int, `K`.
        n_layers: int, the layers of the bank, in ascending
            `(member, layer_id)` order.

    Returns:
        A list of `n_layers` offsets, in elements.
    """
    window = templates * seg
    offsets = []
    start = 0
    taken = 0
    for _ in range(n_layers):
        if taken == templates or start + window > size:
            start, taken = 0, 0
        offsets.append(start)
        start += window
        taken += 1
    return offsets


# ----------------------------------------------------------------------
# Assembly (§1.5)


def _numel(piece: Sequence[int]) -> int:
    return int(math.prod(piece))


def assemble(
    levels: Sequence[Level],
    vectors: Sequence[Any],
    *,
    concatenate: Callable[..., Any],
    reshape: Callable[[Any, tuple[int, ...]], Any],
    shape: Sequence[int] | None = None,
) -> Any:
    """Assemble one OIHW kernel from its per-level SuperWeights (§1.5).

    Generic over the array library: only Python slicing and the two given
    callables are used (`concatenate(list, axis=...)`, `reshape(x, shape)`),
    every shape is a Python int, so the recipe traces under XLA.

    Flat layout of a two-piece increment: the input-column block first,
    then the new output rows, each row-major OIHW.

    Args:
        levels: the layer's levels, level 0 first (a prefix of its group's
            chain; see `BankPlan.levels_of`).
        vectors: one flat vector of length `level.seg` per level.
        concatenate: e.g. `numpy.concatenate` or `keras.ops.concatenate`.
        reshape: e.g. `numpy.reshape` or `keras.ops.reshape`.
        shape: optional, the layer's OIHW shape; checked against the result.

    Returns:
        The kernel, OIHW.

    Raises:
        ValueError: if `levels` is empty, `vectors` has another length, or
            the assembled shape differs from `shape`.

    Examples:
        >>> import numpy as np
        >>> lv = [Level(2, 2, ((2, 2, 1, 1),), 4),
        ...       Level(3, 2, ((1, 2, 1, 1),), 2)]
        >>> w = assemble(lv, [np.arange(4.0), np.arange(4.0, 6.0)],
        ...              concatenate=np.concatenate, reshape=np.reshape)
        >>> w[:, :, 0, 0].tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    if not levels:
        raise ValueError(
            "Invalid value for argument `levels`. Expected at least one "
            "level. Received: levels=[]"
        )
    if len(vectors) != len(levels):
        raise ValueError(
            "Invalid value for argument `vectors`. Expected one vector per "
            f"level ({len(levels)}). Received: {len(vectors)} vectors"
        )
    W = None
    cur_out = cur_in = 0
    kh = kw = 1
    for level, v in zip(levels, vectors):
        if W is None or len(level.pieces) == 1:
            d_out, p_in, kh, kw = (int(p) for p in level.pieces[0])
            if W is None:
                W = reshape(v, (d_out, p_in, kh, kw))
                cur_out, cur_in = d_out, p_in
                continue
            if p_in < cur_in:
                W = W[:, :p_in]
            cur_in = p_in
            if d_out > 0:
                rows = reshape(v, (d_out, p_in, kh, kw))
                W = concatenate([W, rows], axis=0)
            elif d_out < 0:
                W = W[:d_out]
            cur_out += d_out
        else:
            rowshape = tuple(int(p) for p in level.pieces[0])
            colshape = tuple(int(p) for p in level.pieces[1])
            d_out, kh, kw = rowshape[0], rowshape[2], rowshape[3]
            n_cols = _numel(colshape)
            cols = reshape(v[:n_cols] if d_out > 0 else v, colshape)
            if d_out > 0:
                rows = reshape(v[n_cols:], rowshape)
                W = concatenate([concatenate([W, cols], axis=1), rows], axis=0)
            elif d_out < 0:
                W = concatenate([W[:d_out], cols], axis=1)
            else:
                W = concatenate([W, cols], axis=1)
            cur_out += d_out
            cur_in += colshape[1]
        if (cur_out, cur_in) != (level.out, level.in_):
            raise ValueError(
                f"Inconsistent level {level}: assembling it gives "
                f"(out, in)={(cur_out, cur_in)}, expected "
                f"{(level.out, level.in_)}."
            )
    final = (cur_out, cur_in, kh, kw)
    if shape is not None and tuple(int(s) for s in shape) != final:
        raise ValueError(
            f"The assembled kernel has shape {final}, but the layer's shape "
            f"is {tuple(shape)}. Received: shape={tuple(shape)}"
        )
    return W


# ----------------------------------------------------------------------
# The plan


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
            template window in the flat bank `(group, w)` (§1.6).
    """

    member: int
    layer_id: int
    kind: str
    shape: tuple[int, int, int, int]
    group: int
    num_levels: int
    offsets: tuple[int, ...]

    @property
    def key(self) -> LayerKey:
        return (self.member, self.layer_id)


@dataclasses.dataclass(frozen=True)
class BankPlan:
    """Everything that fixes the sizes of an SWN: chains, banks, recipes.

    Built by `BankPlan.create` from the layer specs, a `SharingPolicy` and
    a template budget (swn-algorithm.md §1.4-§1.7). The budget counts
    template-bank parameters only.

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
        chain_sort: str = "stable",
        on_over_budget: str = "raise",
    ) -> "BankPlan":
        """Stack every group, allocate the budget, and plan every layer.

        Args:
            specs: every shared layer of every member, in any order.
            policy: `SharingPolicy` over the same layers.
            budget: int > 0, the template budget (`max_params`).
            bank_size: int in 1..8, the most templates one layer mixes.
                Below 8, windows slide (§1.6).
            chain_sort: `"stable"` or `"reference"` (see
                `stacking_chains`).
            on_over_budget: `"raise"` (default): raise when the bank total
                exceeds the budget (fix F6). `"report"`: warn with an
                `OverBudgetWarning` and record `over_budget`.

        Returns:
            A `BankPlan`.

        Raises:
            ValueError: on invalid arguments, a policy that does not match
                `specs`, a coefficient owner that lacks the width level it
                is asked for, or (with `on_over_budget="raise"`) a bank
                total above the budget.

        Examples:
            >>> from keras_swn.policy.wide_resnet_shapes import (
            ...     wide_resnet_layer_specs)
            >>> specs = wide_resnet_layer_specs(16, 4)
            >>> policy = SharingPolicy.from_bins(specs, 4)
            >>> plan = BankPlan.create(specs, policy, 2_000_000)
            >>> plan.bank_total <= 2_000_000, len(plan.banks)
            (True, 10)
        """
        if not isinstance(policy, SharingPolicy):
            raise ValueError(
                "Invalid value for argument `policy`. Expected a "
                f"SharingPolicy. Received: policy={policy!r}"
            )
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise ValueError(
                "Invalid value for argument `budget`. Expected a strictly "
                f"positive integer. Received: budget={budget!r}"
            )
        if budget <= 0:
            raise ValueError(
                "Invalid value for argument `budget`. Expected a strictly "
                f"positive integer. Received: budget={budget}"
            )
        if (
            isinstance(bank_size, bool)
            or not isinstance(bank_size, int)
            or not 1 <= bank_size <= ALLOCATION_CAP
        ):
            raise ValueError(
                "Invalid value for argument `bank_size`. Expected an "
                f"integer in 1..{ALLOCATION_CAP}. Received: "
                f"bank_size={bank_size!r}"
            )
        _check_choice("chain_sort", chain_sort, CHAIN_SORTS)
        _check_choice("on_over_budget", on_over_budget, ON_OVER_BUDGET)
        by_member = index_specs(specs)
        spec_counts = [len(r) for r in by_member]
        policy_counts = [len(r) for r in policy.groups]
        if spec_counts != policy_counts:
            raise ValueError(
                "Invalid value for argument `policy`: its groups do not "
                "cover the layers of `specs`. Layers per member in specs: "
                f"{spec_counts}. Received: layers per member in "
                f"policy.groups={policy_counts}"
            )
        sorted_specs = tuple(s for row in by_member for s in row)
        chains, num_levels = _chains_and_levels(
            sorted_specs, policy.groups, chain_sort
        )

        # Coefficient slots and owners.
        for slot, owner in policy.coefficient_owners.items():
            m, lid, w = slot
            if w >= num_levels[(m, lid)]:
                raise ValueError(
                    "Invalid value for argument `policy`: coefficient slot "
                    f"(member={m}, layer_id={lid}, width={w}) does not exist; "
                    f"that layer uses {num_levels[(m, lid)]} width level(s)."
                )
            if w >= num_levels[owner]:
                raise ValueError(
                    "Invalid value for argument `policy`: slot "
                    f"(member={m}, layer_id={lid}, width={w}) reads the "
                    f"coefficients of layer (member={owner[0]}, "
                    f"layer_id={owner[1]}) at width {w}, but that layer "
                    f"uses only {num_levels[owner]} width level(s)."
                )
        owner_slots = tuple(
            (m, lid, w)
            for (m, lid), n in num_levels.items()
            for w in range(n)
            if policy.owner((m, lid, w)) == (m, lid)
        )

        # Banks.
        bank_users: dict[BankKey, list[LayerKey]] = {}
        for key, n in num_levels.items():
            g = policy.groups[key[0]][key[1]]
            for w in range(n):
                bank_users.setdefault((g, w), []).append(key)
        units = {
            (g, w): level.seg
            for g, chain in chains.items()
            for w, level in enumerate(chain.levels)
        }
        users = {k: len(bank_users.get(k, [])) for k in units}
        alloc = allocate(units, users, budget, bank_size=bank_size)
        banks = {
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

        # Layer recipes with their template windows.
        offsets: dict[LayerKey, dict[int, int]] = {}
        for k, bank in banks.items():
            keys = sorted(bank_users.get(k, []))
            starts = window_offsets(
                bank.size, bank.seg, bank.templates, len(keys)
            )
            for key, start in zip(keys, starts):
                offsets.setdefault(key, {})[k[1]] = start
        layers = {}
        for spec in sorted_specs:
            n = num_levels[spec.key]
            layers[spec.key] = LayerRecipe(
                member=spec.member,
                layer_id=spec.layer_id,
                kind=spec.kind,
                shape=spec.shape,
                group=policy.groups[spec.member][spec.layer_id],
                num_levels=n,
                offsets=tuple(offsets[spec.key][w] for w in range(n)),
            )

        bank_total = sum(b.size for b in banks.values())
        coefficient_scalars = sum(
            banks[(policy.groups[m][lid], w)].templates
            for m, lid, w in owner_slots
        )
        over = max(0, bank_total - budget)
        if over:
            one_template = sum(units.values())
            message = (
                f"The template banks need {bank_total:,} parameters, "
                f"{over:,} more than the budget of {budget:,} (one "
                f"template per bank alone needs {one_template:,}). "
                f"Received: budget={budget}"
            )
            if on_over_budget == "raise":
                raise ValueError(
                    message + ". Raise `budget`, merge more layers into "
                    "fewer groups, or pass on_over_budget='report'."
                )
            warnings.warn(message, OverBudgetWarning, stacklevel=2)
        return cls(
            specs=sorted_specs,
            policy=policy,
            budget=budget,
            bank_size=bank_size,
            chain_sort=chain_sort,
            chains=chains,
            banks=banks,
            layers=layers,
            owner_slots=owner_slots,
            bank_total=bank_total,
            coefficient_scalars=coefficient_scalars,
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
        """The recipe of one layer; raises `KeyError` if there is none."""
        try:
            return self.layers[(member, layer_id)]
        except KeyError:
            raise KeyError(
                f"No shared layer (member={member}, layer_id={layer_id}) "
                "in this plan."
            ) from None

    def levels_of(self, member: int, layer_id: int) -> tuple[Level, ...]:
        """The levels one layer assembles, level 0 first (for `assemble`)."""
        recipe = self.layer(member, layer_id)
        return self.chains[recipe.group].levels[: recipe.num_levels]

    def windows(
        self, member: int, layer_id: int
    ) -> tuple[tuple[BankKey, int, int, int], ...]:
        """The template window of a layer in each bank it reads.

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
