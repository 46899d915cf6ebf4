"""Initial bins: the coarse starting partition of the shared layers.

Reproduces the reference's `all_nets_groupslim_depth` bins with separate
kernel types (see the algorithm page, [Initial bins][bins]). Pure Python: no
Keras import.
"""

from __future__ import annotations

from typing import Sequence

from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import Groups
from keras_swn.types import LayerKey
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


def index_specs(
    specs: Sequence[LayerSpec],
) -> tuple[tuple[LayerSpec, ...], ...]:
    """Check a list of layer specs and index it by member and layer id.

    The specs must describe members `0 .. M-1`, each with layer ids
    `0 .. n_m - 1`, every `(member, layer_id)` exactly once. Input order
    does not matter.

    Args:
        specs: every shared layer of every member, in any order.

    Returns:
        `by_member[member][layer_id]`, the spec of that layer.

    Raises:
        ValueError: if `specs` is empty, has a duplicate layer, or leaves a
            gap in the member indices or in a member's layer ids.
    """
    specs = list(specs)
    if not specs:
        raise invalid_argument(
            "specs", "Expected at least one LayerSpec.", specs, shown="specs=[]"
        )
    seen: dict[LayerKey, LayerSpec] = {}
    for spec in specs:
        if not isinstance(spec, LayerSpec):
            raise invalid_argument(
                "specs", "Expected LayerSpec objects.", specs, shown=repr(spec)
            )
        if spec.key in seen:
            raise invalid_argument(
                "specs",
                f"Layer (member={spec.member}, layer_id={spec.layer_id}) is "
                "listed twice.",
                specs,
                shown=f"{seen[spec.key]!r} and {spec!r}",
            )
        seen[spec.key] = spec
    members = sorted({m for m, _ in seen})
    if members != list(range(len(members))):
        raise invalid_argument(
            "specs",
            "Expected members numbered 0 .. M-1 without gaps.",
            specs,
            shown=f"members={members}",
        )
    by_member = []
    for m in members:
        ids = sorted(lid for mm, lid in seen if mm == m)
        if ids != list(range(len(ids))):
            missing = sorted(set(range(max(ids) + 1)) - set(ids))
            raise invalid_argument(
                "specs",
                "Expected layer ids 0 .. n-1 without gaps for every member; "
                f"member {m} lacks layer ids {missing}.",
                specs,
                shown=f"layer_ids={ids}",
            )
        by_member.append(tuple(seen[(m, lid)] for lid in ids))
    return tuple(by_member)


def _deal(n_layers: int, n_bins: int) -> list[int]:
    """Bin sizes: near-equal, the first bins take the extra layers."""
    q, r = divmod(n_layers, n_bins)
    return [q + 1 if i < r else q for i in range(n_bins)]


def bins_per_kernel(
    specs: Sequence[LayerSpec], num_bins: int
) -> dict[str, int]:
    """How many bins each kernel type gets, in bin-id order.

    See the algorithm page, [Initial bins][bins].

    Set by member 0 only: `max(1, round(B * n_kernel / n_layers_member0))`
    with Python's `round` (half to even). Kernel keys are sorted as strings
    (`"1 1"` before `"3 3"`; dense kernels have the key `"dense"`).

    Args:
        specs: every shared layer of every member.
        num_bins: int, the reference's `param_group_bins` (B).

    Returns:
        An ordered dict `kernel_key -> number of bins`.

    Raises:
        ValueError: on bad `specs`, on `num_bins < 1`, when a member has a
            kernel type that member 0 lacks, or when more than
            `num_bins + 1` bins would be needed (the reference visits
            no more; see the algorithm page, [Initial bins][bins]).
    """
    num_bins = check_int("num_bins", num_bins, minimum=1)
    by_member = index_specs(specs)
    teacher = by_member[0]
    depth = len(teacher)
    keys = sorted({s.kernel_key for s in teacher})
    for m, layers in enumerate(by_member):
        extra = sorted({s.kernel_key for s in layers} - set(keys))
        if extra:
            raise invalid_argument(
                "specs",
                f"Member {m} has kernel types {extra} that member 0 lacks; "
                "bins per kernel type are set by member 0.",
                specs,
                shown=f"member 0 kernel types {keys}",
            )
    counts: dict[str, int] = {}
    for key in keys:
        n = sum(1 for s in teacher if s.kernel_key == key)
        counts[key] = max(1, round(num_bins * n / depth))
    total = sum(counts.values())
    if total > num_bins + 1:
        raise invalid_argument(
            "num_bins",
            f"The initial bins need {total} bins ({counts} per kernel type) "
            f"but `num_bins` + 1 = {num_bins + 1} is the most the reference "
            "visits; layers would be left ungrouped. Use fewer kernel types "
            "or a larger `num_bins`.",
            num_bins,
        )
    return counts


def initial_bins(specs: Sequence[LayerSpec], num_bins: int) -> Groups:
    """The initial bins of every layer of every member.

    See the algorithm page, [Initial bins][bins].

    For every kernel type (keys sorted as strings), the number of bins is
    set by member 0 (`bins_per_kernel`). Each member then deals its own
    layers of that type, in ascending layer id, into that many consecutive
    bins of near-equal size: the first bins take the extra layers, trailing
    bins stay empty when there are fewer layers than bins. Bin ids run
    consecutively over the kernel types.

    Args:
        specs: every shared layer of every member, in any order.
        num_bins: int, the reference's `param_group_bins` (B), >= 1.

    Returns:
        `groups[member][layer_id]`, the bin id of every layer.

    Raises:
        ValueError: see `bins_per_kernel`.

    Examples:
        >>> from keras_swn.models.wide_resnet_shapes import (
        ...     wide_resnet_layer_specs)
        >>> bins = initial_bins(wide_resnet_layer_specs(16, 4), 4)
        >>> bins[0][:6]
        (1, 1, 1, 0, 1, 1)
    """
    counts = bins_per_kernel(specs, num_bins)
    by_member = index_specs(specs)
    groups = []
    for layers in by_member:
        row = [-1] * len(layers)
        offset = 0
        for key, n_bins in counts.items():
            ids = [s.layer_id for s in layers if s.kernel_key == key]
            pos = 0
            for b, size in enumerate(_deal(len(ids), n_bins)):
                for layer_id in ids[pos : pos + size]:
                    row[layer_id] = offset + b
                pos += size
            offset += n_bins
        groups.append(tuple(row))
    return tuple(groups)
