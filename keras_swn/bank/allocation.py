"""Template allocation: how many parameters and templates every bank gets.

The reference's allocator in its default mode, and the template windows of
the layers that read one flat bank. Pure Python; no Keras import.
"""

from __future__ import annotations

from typing import Mapping
from typing import NamedTuple

from keras_swn.types import BankKey

#: The reference allocator's hard-coded cap, in templates per bank.
ALLOCATION_CAP = 8


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
    """Template allocation of the reference, default mode.

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


def window_offsets(
    size: int, seg: int, templates: int, n_layers: int
) -> list[int]:
    """Start of every layer's template window in a flat bank.

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
