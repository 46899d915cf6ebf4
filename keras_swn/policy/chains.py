"""Stacking chains: the width levels of every group of shared layers.

The layers of a group are stacked into one chain of width levels, smallest
first; each later distinct shape adds an increment. Which layers reach
which width level, and therefore which coefficient slots a policy has,
depends on the chain order `chain_sort`. Pure functions over `LayerSpec`s
and group ids that return frozen dataclasses; no Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from keras_swn.policy.bins import index_specs
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import OIHW
from keras_swn.types import GroupsLike
from keras_swn.types import LayerKey
from keras_swn.validation import check_choice
from keras_swn.validation import invalid_argument

#: The chain orders: `"stable"` (sort key `(numel, out, in)`) and
#: `"reference"` (numpy's default `argsort` on the parameter counts).
CHAIN_SORTS = ("stable", "reference")

#: One piece of a width-level increment, `(d_out, in, kh, kw)`.
Piece = OIHW


@dataclasses.dataclass(frozen=True)
class Level:
    """One width level of a group's stacking chain.

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
        """`(out, in)` of every level, level 0 first."""
        return tuple(level.shape for level in self.levels)

    @property
    def segs(self) -> tuple[int, ...]:
        """The parameters of every level's increment, level 0 first."""
        return tuple(level.seg for level in self.levels)


def group_members(
    specs: Sequence[LayerSpec], groups: GroupsLike
) -> dict[int, list[LayerSpec]]:
    """The specs of every group, in the reference's input order.

    That order is ascending layer id (the union over members) and, for each
    id, ascending member.

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.

    Returns:
        `{group: specs}`, ascending group id.

    Raises:
        ValueError: on bad `specs`, `groups` that do not list one
            non-negative id per layer, or a group that mixes kernel kinds
            or sizes.
    """
    by_member = index_specs(specs)
    rows = [list(row) for row in groups]
    if [len(r) for r in rows] != [len(r) for r in by_member]:
        raise invalid_argument(
            "groups",
            "Expected one group id per layer of every member described by "
            "`specs`. Layers per member in specs: "
            f"{[len(r) for r in by_member]}.",
            groups,
            shown=f"layers per member in groups={[len(r) for r in rows]}",
        )
    out: dict[int, list[LayerSpec]] = {}
    ordered = sorted(
        (s for row in by_member for s in row),
        key=lambda s: (s.layer_id, s.member),
    )
    for spec in ordered:
        g = int(rows[spec.member][spec.layer_id])
        if g < 0:
            raise invalid_argument(
                "groups",
                "Group ids must be non-negative.",
                groups,
                shown=f"group {g} for layer (member={spec.member}, "
                f"layer_id={spec.layer_id})",
            )
        out.setdefault(g, []).append(spec)
    for g, members in out.items():
        first = members[0]
        for spec in members[1:]:
            if spec.kind != first.kind or spec.shape[2:] != first.shape[2:]:
                raise invalid_argument(
                    "groups",
                    f"Group {g} mixes kernel kinds or sizes: layer "
                    f"{first.key} is {first.kind} {first.shape} but layer "
                    f"{spec.key} is {spec.kind} {spec.shape}. A group must "
                    "hold one kernel kind and size.",
                    groups,
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


def chains_and_levels(
    specs: Sequence[LayerSpec],
    groups: GroupsLike,
    *,
    chain_sort: str = "stable",
) -> tuple[dict[int, Chain], dict[LayerKey, int]]:
    """`stacking_chains` and `layer_levels` in one pass.

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.
        chain_sort: `"stable"` or `"reference"` (see `stacking_chains`).

    Returns:
        `({group: Chain}, {(member, layer_id): number of levels})`, both
        with ascending keys.

    Raises:
        ValueError: see `stacking_chains`.
    """
    check_choice("chain_sort", chain_sort, CHAIN_SORTS)
    chains: dict[int, Chain] = {}
    levels: dict[LayerKey, int] = {}
    for g, members in group_members(specs, groups).items():
        chains[g], lv = _chain_and_ranks(g, members, chain_sort)
        levels.update(lv)
    return chains, dict(sorted(levels.items()))


def stacking_chains(
    specs: Sequence[LayerSpec],
    groups: GroupsLike,
    *,
    chain_sort: str = "stable",
) -> dict[int, Chain]:
    """The stacking chain of every group, over all members jointly.

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

    Examples:
        >>> specs = [LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
        ...          LayerSpec(0, 1, "conv2d", (8, 8, 3, 3))]
        >>> stacking_chains(specs, [[0, 0]])[0].shapes
        ((8, 3), (8, 8))
    """
    return chains_and_levels(specs, groups, chain_sort=chain_sort)[0]


def layer_levels(
    specs: Sequence[LayerSpec],
    groups: GroupsLike,
    *,
    chain_sort: str = "stable",
) -> dict[LayerKey, int]:
    """Number of width levels every layer uses.

    A layer at sorted rank `r` in its group uses level 0 plus every chain
    step up to its own rank.

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.
        chain_sort: `"stable"` or `"reference"` (see `stacking_chains`).

    Returns:
        `{(member, layer_id): number of levels}`, ascending keys.

    Raises:
        ValueError: see `stacking_chains`.
    """
    return chains_and_levels(specs, groups, chain_sort=chain_sort)[1]


def need_proxy(specs: Sequence[LayerSpec], groups: GroupsLike) -> int:
    """The threshold loop's budget proxy `need`.

    The sum over groups of the largest kernel of the group. It ignores the
    cropping waste of the stacking chain (see `one_template_total`).

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.

    Returns:
        int, the proxy.
    """
    return sum(
        max(s.numel for s in members)
        for members in group_members(specs, groups).values()
    )


def one_template_total(
    specs: Sequence[LayerSpec],
    groups: GroupsLike,
    *,
    chain_sort: str = "stable",
) -> int:
    """The exact bank total with one template per bank.

    The sum of `seg` over every width level of every group's chain (the
    measure of `budget_check="exact"`).

    Args:
        specs: every shared layer of every member, in any order.
        groups: `groups[member][layer_id]`, the group id of every layer.
        chain_sort: `"stable"` or `"reference"` (see `stacking_chains`).

    Returns:
        int, the total.
    """
    chains = stacking_chains(specs, groups, chain_sort=chain_sort)
    return sum(sum(chain.segs) for chain in chains.values())
