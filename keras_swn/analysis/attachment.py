"""Attachment: every other member joins member 0's clusters.

Members are visited by depth, deepest first; a student layer joins the
group of its partner in member 0 (or in the first member of its depth) and
reads that partner's coefficient vectors. Pure NumPy; no Keras import.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable
from typing import Hashable
from typing import Mapping
from typing import NamedTuple
from typing import Sequence

from keras_swn.analysis.similarity import PairSimilarity
from keras_swn.policy.bins import index_specs
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.types import Groups
from keras_swn.types import LayerKey
from keras_swn.validation import check_real
from keras_swn.validation import invalid_argument

#: A pair similarity: `(student key, candidate key) -> float`.
PairScore = Callable[[LayerKey, LayerKey], float]
#: `by_member[member][layer_id]`, the spec of every layer.
SpecTable = Sequence[Sequence[LayerSpec]]


class Attachment(NamedTuple):
    """Result of `attach_members`.

    Attributes:
        groups: `groups[member][layer_id]`, the group of every layer.
        partners: `{(member, layer_id): (partner member, partner layer
            id)}`, the layer whose coefficient vectors each listed layer
            reads (hard sharing). Member 0 has no entry; a student layer
            gated off by `coefficient_threshold` has none either.
    """

    groups: Groups
    partners: dict[LayerKey, LayerKey]


def check_bins(by_member: SpecTable, bins: Any) -> Groups:
    """Check initial bins against the layers of every member.

    Args:
        by_member: `by_member[member][layer_id]`, as `index_specs` returns.
        bins: `bins[member][layer_id]` ints, or a `SharingPolicy` whose
            groups are the bins.

    Returns:
        The bins as tuples of ints.

    Raises:
        ValueError: if `bins` is not one non-negative int per layer.
    """
    if isinstance(bins, SharingPolicy):
        bins = bins.groups
    try:
        rows = tuple(tuple(int(b) for b in row) for row in bins)
    except (TypeError, ValueError):
        raise invalid_argument(
            "bins",
            "Expected `bins[member][layer_id]` ints.",
            bins,
            shown=f"bins={str(bins)[:200]}",
        ) from None
    expected = [len(r) for r in by_member]
    if [len(r) for r in rows] != expected:
        raise invalid_argument(
            "bins",
            "Expected one bin per layer of every member of `specs`; layers "
            f"per member: {expected}.",
            bins,
            shown=f"layers per member in bins={[len(r) for r in rows]}",
        )
    if any(b < 0 for row in rows for b in row):
        raise invalid_argument(
            "bins", "Bin ids must be non-negative.", bins, shown=f"bins={rows}"
        )
    return rows


def bin_layers(row: Sequence[int]) -> dict[int, list[int]]:
    """`{bin: layer ids ascending}` of one member, ascending bin id."""
    out: dict[int, list[int]] = {}
    for layer_id, b in enumerate(row):
        out.setdefault(b, []).append(layer_id)
    return dict(sorted(out.items()))


def _visit_order(by_member: SpecTable) -> list[int]:
    """Members by depth (number of shared layers), deepest first."""
    depths = [len(r) for r in by_member]
    deeper = [m for m in range(1, len(depths)) if depths[m] > depths[0]]
    if deeper:
        raise invalid_argument(
            "specs",
            f"Member 0 must be the deepest member. Member(s) {deeper} have "
            "more shared layers than member 0.",
            by_member,
            shown=f"layers per member={depths}",
        )
    return sorted(range(len(depths)), key=lambda m: (-depths[m], m))


class AttachmentPlan(NamedTuple):
    """The threshold-independent structure of the attachment.

    Built once per search by `AttachmentPlan.create`, then applied to the
    member-0 grouping of every threshold by `attach`.

    Attributes:
        by_member: `by_member[member][layer_id]`, the spec of every layer.
        large: `{member: None}` for the first member of a depth, `{member:
            that first member}` for a later member of the same depth.
        candidates: `{(member, layer_id): candidate partner keys}`: the
            positional partner (same depth) or the member-0 layers of the
            bin, ascending (a new depth).
        order: the members in visiting order.
    """

    by_member: tuple[tuple[LayerSpec, ...], ...]
    large: dict[int, int | None]
    candidates: dict[LayerKey, list[LayerKey]]
    order: list[int]

    @classmethod
    def create(
        cls, by_member: Sequence[Sequence[LayerSpec]], bins: Groups
    ) -> "AttachmentPlan":
        """The plan for checked specs and bins (see `check_bins`).

        Raises:
            ValueError: if member 0 is not the deepest, a student layer
                sits in a bin without member-0 layers, or same-depth
                members differ in their bin contents.
        """
        order = _visit_order(by_member)
        depths = [len(r) for r in by_member]
        per_bin = [bin_layers(row) for row in bins]
        first_of_depth: dict[int, int] = {}
        large: dict[int, int | None] = {}
        candidates: dict[LayerKey, list[LayerKey]] = {}
        for m in order:
            d = depths[m]
            if d in first_of_depth:
                big = first_of_depth[d]
                large[m] = big
                if m == 0:
                    continue
                for b, ids in per_bin[m].items():
                    big_ids = per_bin[big].get(b, [])
                    if len(big_ids) != len(ids):
                        raise invalid_argument(
                            "bins",
                            f"Member {m} has the same depth as member {big} "
                            "but a different number of layers in bin "
                            f"{b} ({len(ids)} vs {len(big_ids)}): same-depth "
                            "members are matched by position inside each "
                            "bin.",
                            bins,
                            shown=f"bins[{m}]={bins[m]}, "
                            f"bins[{big}]={bins[big]}",
                        )
                    for lid, lb in zip(ids, big_ids):
                        candidates[(m, lid)] = [(big, lb)]
                continue
            first_of_depth[d] = m
            large[m] = None
            if m == 0:
                continue
            for b, ids in per_bin[m].items():
                teacher = per_bin[0].get(b, [])
                if not teacher:
                    raise invalid_argument(
                        "bins",
                        f"Layers {[(m, lid) for lid in ids]} are in bin {b}, "
                        "which holds no layer of member 0. Every group is "
                        "seeded by member 0; use initial bins from "
                        "`keras_swn.policy.bins.initial_bins`.",
                        bins,
                        shown=f"bins[{m}]={bins[m]}",
                    )
                for lid in ids:
                    candidates[(m, lid)] = [(0, t) for t in teacher]
        return cls(tuple(tuple(r) for r in by_member), large, candidates, order)

    def needed_keys(self, gated: bool) -> list[LayerKey]:
        """Student keys whose similarity the attachment reads.

        Args:
            gated: bool, whether `coefficient_threshold` is set (then every
                student's similarity to its partner is read).

        Returns:
            The student keys and their candidates, sorted.
        """
        keys: list[LayerKey] = []
        for key, cands in sorted(self.candidates.items()):
            if self.large[key[0]] is None or gated:
                keys.append(key)
                keys.extend(cands)
        return sorted(set(keys))

    def attach(
        self,
        member0_groups: Sequence[int],
        similarity: PairScore,
        coefficient_threshold: float | None,
    ) -> Attachment:
        """Attach every student layer, given member 0's groups.

        Args:
            member0_groups: the group of every member-0 layer.
            similarity: `(student key, candidate key) -> float`.
            coefficient_threshold: float or `None`: share coefficients only
                above it.

        Returns:
            An `Attachment`.
        """
        groups: list[list[int]] = [[-1] * len(r) for r in self.by_member]
        groups[0] = list(member0_groups)
        partners: dict[LayerKey, LayerKey] = {}
        for m in self.order:
            if m == 0:
                continue
            for lid in range(len(self.by_member[m])):
                key = (m, lid)
                cands = self.candidates[key]
                if self.large[m] is not None:
                    partner = cands[0]
                    best = None
                    if coefficient_threshold is not None:
                        best = float(similarity(key, partner))
                else:
                    partner, best = cands[0], -math.inf
                    for cand in cands:  # ascending: the first maximum wins
                        value = float(similarity(key, cand))
                        if value > best:
                            partner, best = cand, value
                groups[m][lid] = groups[partner[0]][partner[1]]
                if coefficient_threshold is None or (
                    best is not None and best > coefficient_threshold
                ):
                    partners[key] = partner
        return Attachment(
            tuple(tuple(r) for r in groups), dict(sorted(partners.items()))
        )


def attach_members(
    specs: Sequence[LayerSpec],
    bins: Any,
    member0_groups: Sequence[int] | Mapping[int, int],
    similarity: Mapping[Hashable, Any] | Callable[[LayerKey, LayerKey], float],
    *,
    signal: str = "gradient",
    weights: Mapping[Hashable, Any] | None = None,
    coefficient_threshold: float | None = None,
) -> Attachment:
    """Attach every other member to member 0's clusters (fix F2).

    Members are visited by depth, deepest first (ties by member index).
    The depth of a member is its number of shared layers in `specs`;
    member 0 must be the deepest.

    - The first member of a depth that member 0 does not have (README:
      member 2): each of its layers, in ascending id order, is compared
      with every member-0 layer of its initial bin (ascending id); it joins
      the group of the most similar one (strict `>`, so the first maximum
      wins) and shares coefficients with **that** layer.
    - A later member of an already-seen depth (README: member 1 with member
      0, member 3 with member 2): the k-th layer (ascending id) of each of
      its bins joins the group of the k-th layer of the same bin of the
      first member of that depth, and shares coefficients with that exact
      layer. No similarity is read unless `coefficient_threshold` is set.
    - With `coefficient_threshold` set, a layer shares coefficients only
      when the similarity to its chosen partner is strictly above it;
      otherwise it keeps its own (it still joins the group).

    Partners are layer identities `(member, layer_id)`, never list
    positions, so a student shares with the layer it was matched to (fix
    F2; the reference used the mirror position).

    Args:
        specs: every shared layer of every member.
        bins: `bins[member][layer_id]`, the initial bin of every layer (a
            [`SharingPolicy`][keras_swn.SharingPolicy] from bins is accepted
            too).
        member0_groups: the group of every member-0 layer, as a sequence
            indexed by layer id or a mapping `layer_id -> group`.
        similarity: either a mapping `(member, layer_id) -> OIHW gradient`
            or a callable `(key, member-0 or partner key) -> float`.
        signal: used when `similarity` is a mapping (see
            [`keras_swn.analysis.similarity.similarity_matrix`][keras_swn.analysis.similarity_matrix]).
        weights: used when `similarity` is a mapping and the signal needs
            them.
        coefficient_threshold: float or `None` (default: always share).

    Returns:
        An `Attachment` (`groups`, `partners`).

    Raises:
        ValueError: if member 0 is not the deepest, a student layer sits in
            a bin without member-0 layers, same-depth members differ in
            their bin contents, or a needed gradient is missing.

    Examples:
        Member 1 (one layer) joins the member-0 layer most like it:

        >>> specs = [keras_swn.LayerSpec(m, i, "conv2d", (4, 4, 3, 3))
        ...          for m, n in ((0, 2), (1, 1)) for i in range(n)]
        >>> g = np.ones((4, 4, 3, 3))
        >>> grads = {(0, 0): g, (0, 1): -g, (1, 0): -g}
        >>> attached = keras_swn.analysis.attach_members(
        ...     specs, [[0, 0], [0]], [0, 1], grads)
        >>> attached.groups, attached.partners
        (((0, 1), (1,)), {(1, 0): (0, 1)})
    """
    by_member = index_specs(specs)
    rows = check_bins(by_member, bins)
    if isinstance(member0_groups, Mapping):
        m0 = [int(member0_groups[lid]) for lid in range(len(by_member[0]))]
    else:
        m0 = [int(g) for g in member0_groups]
    if len(m0) != len(by_member[0]):
        raise invalid_argument(
            "member0_groups",
            f"Expected one group per member-0 layer ({len(by_member[0])}).",
            member0_groups,
            shown=f"member0_groups={m0}",
        )
    gate = None
    if coefficient_threshold is not None:
        gate = check_real("coefficient_threshold", coefficient_threshold)
    plan = AttachmentPlan.create(by_member, rows)
    if isinstance(similarity, Mapping):
        pair = PairSimilarity(similarity, signal=signal, weights=weights)
        needed = plan.needed_keys(gate is not None)
        shapes = {s.key: s.shape for r in by_member for s in r}
        pair.check_keys(needed, shapes)
        similarity = pair
    return plan.attach(m0, similarity, gate)
