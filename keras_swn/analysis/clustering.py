"""Search step: SuperWeight clusters from gradient similarity (§2.4-§2.7).

Pure functions over NumPy arrays (swn-algorithm.md §2, §0.5): member 0's
layers are clustered inside each initial bin at a threshold, the other
members are attached to member 0's clusters, and a budget-driven schedule
lowers the threshold until the clusters fit the parameter budget. Results
are immutable and JSON-serialisable. No Keras import.

Two clustering rules are available (fix F4 of §0.3):

- `"connected_components"` (default): the clusters of a bin are the
  connected components of the graph whose edges are the pairs with
  similarity strictly above the threshold (single linkage). Independent of
  visiting order, and monotone: a lower threshold only merges.
- `"reference"`: the reference's label propagation, reproduced exactly
  (§2.4). Order-dependent by design.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from typing import Callable
from typing import Hashable
from typing import Mapping
from typing import NamedTuple
from typing import Sequence

import numpy as np

from keras_swn.analysis.similarity import PairSimilarity
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

LayerKey = tuple[int, int]
CLUSTERINGS = ("connected_components", "reference")
BUDGET_CHECKS = ("proxy", "exact")
SCHEDULES = ("fill", "step")

_FORMAT = "keras_swn.SearchResult"
_VERSION = 1


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{tuple(choices)}. Received: {name}={value!r}"
        )


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite real "
            f"number. Received: {name}={value!r}"
        )
    if not math.isfinite(float(value)):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite real "
            f"number. Received: {name}={value!r}"
        )
    return float(value)


# ----------------------------------------------------------------------
# §2.4: clustering member 0's layers inside one bin


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            # The smaller index becomes the root: deterministic.
            lo, hi = (rx, ry) if rx < ry else (ry, rx)
            self.parent[hi] = lo


def cluster_bin(
    layer_ids: Sequence[int],
    sim: Any,
    threshold: float,
    *,
    clustering: str = "connected_components",
) -> list[tuple[int, ...]]:
    """Cluster the member-0 layers of one bin at a threshold (§2.4).

    Args:
        layer_ids: the member-0 layer ids of the bin, in the row order of
            `sim` (any order; the result does not depend on it).
        sim: array-like `(n, n)`, the similarity of the layers (see
            `keras_swn.analysis.similarity.similarity_matrix`).
        threshold: float; a pair is linked when its similarity is strictly
            greater.
        clustering: `"connected_components"` (default, fix F4) or
            `"reference"`:
            - `"connected_components"`: union-find over the edges
              `sim[a, c] > threshold` (either direction).
            - `"reference"`: exact label propagation. Every layer gets a
              label in hook order (descending layer id); every ordered
              pair `(a, c)`, `a != c`, in hook order for `a` then `c`, is
              listed with `sim[a, c]`; the list is stably sorted by
              similarity, ascending; pairs are popped from the top, and
              `label[c] = label[a]` while the similarity is above the
              threshold (stop at the first one that is not).

    Returns:
        A list of clusters, each a tuple of layer ids in ascending order,
        in group-numbering order: by largest layer id, descending, for
        connected components (§0.6); by label (hook position of the label's
        first holder) for `"reference"` (§2.6). Together the clusters
        cover `layer_ids` exactly once.

    Raises:
        ValueError: on an unknown `clustering`, duplicate ids, a matrix of
            the wrong shape, or non-finite values.

    Examples:
        >>> s = np.array([[1., .9, 0.], [.9, 1., 0.], [0., 0., 1.]])
        >>> cluster_bin([3, 12, 21], s, 0.1)
        [(21,), (3, 12)]
    """
    _check_choice("clustering", clustering, CLUSTERINGS)
    t = float(threshold)
    if math.isnan(t):
        raise ValueError(
            "Invalid value for argument `threshold`. Expected a real number."
            f" Received: threshold={threshold!r}"
        )
    ids = [int(i) for i in layer_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(
            "Invalid value for argument `layer_ids`: ids must be unique. "
            f"Received: layer_ids={ids}"
        )
    s = np.asarray(sim, dtype=np.float64)
    n = len(ids)
    if s.shape != (n, n):
        raise ValueError(
            "Invalid value for argument `sim`. Expected a square matrix "
            f"matching `layer_ids`, shape {(n, n)}. Received: "
            f"sim.shape={s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError(
            "Invalid value for argument `sim`: it contains NaN or infinite "
            "values."
        )
    if n == 0:
        return []
    # Work in hook order: descending layer id, whatever the input order.
    hook = sorted(range(n), key=lambda x: -ids[x])
    if clustering == "connected_components":
        uf = _UnionFind(n)
        for x in range(n):
            for y in range(x + 1, n):
                if s[hook[x], hook[y]] > t or s[hook[y], hook[x]] > t:
                    uf.union(x, y)
        members: dict[int, list[int]] = {}
        for x in range(n):  # hook order: the root is the largest id
            members.setdefault(uf.find(x), []).append(ids[hook[x]])
        clusters = [tuple(sorted(v)) for v in members.values()]
        clusters.sort(key=lambda c: -c[-1])
        return clusters
    label = list(range(n))  # label[x] for hook position x
    pairs = []
    for a in range(n):
        for c in range(n):
            if c != a:
                pairs.append((float(s[hook[a], hook[c]]), a, c))
    pairs.sort(key=lambda p: p[0])  # stable
    while pairs:
        value, a, c = pairs.pop()
        if value > t:
            label[c] = label[a]
        else:
            break
    by_label: dict[int, list[int]] = {}
    for x in range(n):
        by_label.setdefault(label[x], []).append(ids[hook[x]])
    return [tuple(sorted(by_label[k])) for k in sorted(by_label)]


# ----------------------------------------------------------------------
# §2.5: attaching the other members


class Attachment(NamedTuple):
    """Result of `attach_members`.

    Attributes:
        groups: `groups[member][layer_id]`, the group of every layer.
        partners: `{(member, layer_id): (partner member, partner layer
            id)}`, the layer whose coefficient vectors each listed layer
            reads (hard sharing, §3.1). Member 0 has no entry; a student
            layer gated off by `coefficient_threshold` has none either.
    """

    groups: tuple[tuple[int, ...], ...]
    partners: dict[LayerKey, LayerKey]


def _index_specs(
    specs: Sequence[LayerSpec],
) -> tuple[tuple[LayerSpec, ...], ...]:
    from keras_swn.policy.bins import index_specs

    return index_specs(specs)


def _check_bins(
    by_member: Sequence[Sequence[LayerSpec]], bins: Any
) -> tuple[tuple[int, ...], ...]:
    if isinstance(bins, SharingPolicy):
        bins = bins.groups
    try:
        rows = tuple(tuple(int(b) for b in row) for row in bins)
    except (TypeError, ValueError):
        raise ValueError(
            "Invalid value for argument `bins`. Expected `bins[member]"
            f"[layer_id]` ints. Received: bins={str(bins)[:200]}"
        ) from None
    expected = [len(r) for r in by_member]
    if [len(r) for r in rows] != expected:
        raise ValueError(
            "Invalid value for argument `bins`: it must list one bin per "
            f"layer of every member of `specs`; layers per member: "
            f"{expected}. Received: layers per member in bins="
            f"{[len(r) for r in rows]}"
        )
    if any(b < 0 for row in rows for b in row):
        raise ValueError(
            "Invalid value for argument `bins`. Bin ids must be "
            f"non-negative. Received: bins={rows}"
        )
    return rows


def _visit_order(by_member: Sequence[Sequence[LayerSpec]]) -> list[int]:
    """Members by depth (number of shared layers), deepest first."""
    depths = [len(r) for r in by_member]
    deeper = [m for m in range(1, len(depths)) if depths[m] > depths[0]]
    if deeper:
        raise ValueError(
            "Invalid value for argument `specs`: member 0 must be the "
            f"deepest member (§1.1). Member(s) {deeper} have more shared "
            f"layers than member 0. Received: layers per member={depths}"
        )
    return sorted(range(len(depths)), key=lambda m: (-depths[m], m))


def _bin_layers(row: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for layer_id, b in enumerate(row):
        out.setdefault(b, []).append(layer_id)
    return dict(sorted(out.items()))


class _Plan(NamedTuple):
    """Threshold-independent structure of the attachment (§2.5)."""

    # member -> None (cross-depth) or the large member of its depth
    large: dict[int, int | None]
    # (m, lid) -> list of candidate keys: positional partner (same depth) or
    # the member-0 layers of the bin, ascending (cross depth)
    candidates: dict[LayerKey, list[LayerKey]]
    order: list[int]


def _attachment_plan(
    by_member: Sequence[Sequence[LayerSpec]],
    bins: tuple[tuple[int, ...], ...],
) -> _Plan:
    order = _visit_order(by_member)
    depths = [len(r) for r in by_member]
    per_bin = [_bin_layers(row) for row in bins]
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
                    raise ValueError(
                        f"Member {m} has the same depth as member {big} but "
                        f"a different number of layers in bin {b} "
                        f"({len(ids)} vs {len(big_ids)}): same-depth members "
                        "are matched by position inside each bin (§2.5). "
                        f"Received: bins[{m}]={bins[m]}, bins[{big}]="
                        f"{bins[big]}"
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
                raise ValueError(
                    f"Layers {[(m, lid) for lid in ids]} are in bin {b}, which "
                    "holds no layer of member 0. Every group is seeded by "
                    "member 0 (§2.5); use initial bins from "
                    "`keras_swn.policy.bins.initial_bins`. Received: "
                    f"bins[{m}]={bins[m]}"
                )
            for lid in ids:
                candidates[(m, lid)] = [(0, t) for t in teacher]
    return _Plan(large, candidates, order)


def _needed_keys(plan: _Plan, gated: bool) -> list[LayerKey]:
    """Student keys whose similarity the attachment reads."""
    keys: list[LayerKey] = []
    for key, cands in sorted(plan.candidates.items()):
        if plan.large[key[0]] is None or gated:
            keys.append(key)
            keys.extend(cands)
    return sorted(set(keys))


def _attach(
    by_member: Sequence[Sequence[LayerSpec]],
    bins: tuple[tuple[int, ...], ...],
    plan: _Plan,
    member0_groups: Sequence[int],
    similarity: Callable[[LayerKey, LayerKey], float],
    coefficient_threshold: float | None,
) -> Attachment:
    groups: list[list[int]] = [[-1] * len(r) for r in by_member]
    groups[0] = list(member0_groups)
    partners: dict[LayerKey, LayerKey] = {}
    for m in plan.order:
        if m == 0:
            continue
        for lid in range(len(by_member[m])):
            key = (m, lid)
            cands = plan.candidates[key]
            if plan.large[m] is not None:
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
    """Attach every other member to member 0's clusters (§2.5, fix F2).

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
            `SharingPolicy` from bins is accepted too).
        member0_groups: the group of every member-0 layer, as a sequence
            indexed by layer id or a mapping `layer_id -> group`.
        similarity: either a mapping `(member, layer_id) -> OIHW gradient`
            or a callable `(key, member-0 or partner key) -> float`.
        signal: used when `similarity` is a mapping (see
            `keras_swn.analysis.similarity.similarity_matrix`).
        weights: used when `similarity` is a mapping and the signal needs
            them.
        coefficient_threshold: float or `None` (default: always share).

    Returns:
        An `Attachment` (`groups`, `partners`).

    Raises:
        ValueError: if member 0 is not the deepest, a student layer sits in
            a bin without member-0 layers, same-depth members differ in
            their bin contents, or a needed gradient is missing.
    """
    by_member = _index_specs(specs)
    rows = _check_bins(by_member, bins)
    if isinstance(member0_groups, Mapping):
        m0 = [int(member0_groups[lid]) for lid in range(len(by_member[0]))]
    else:
        m0 = [int(g) for g in member0_groups]
    if len(m0) != len(by_member[0]):
        raise ValueError(
            "Invalid value for argument `member0_groups`. Expected one group "
            f"per member-0 layer ({len(by_member[0])}). Received: "
            f"member0_groups={m0}"
        )
    gate = None
    if coefficient_threshold is not None:
        gate = _check_real("coefficient_threshold", coefficient_threshold)
    plan = _attachment_plan(by_member, rows)
    if isinstance(similarity, Mapping):
        pair = PairSimilarity(similarity, signal=signal, weights=weights)
        needed = _needed_keys(plan, gate is not None)
        shapes = {s.key: s.shape for r in by_member for s in r}
        pair.check_keys(needed, shapes)
        similarity = pair
    return _attach(by_member, rows, plan, m0, similarity, gate)


# ----------------------------------------------------------------------
# §2.6: the threshold schedule


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """What the search returns (§2.7): a grouping and a coefficient-share map.

    Attributes:
        threshold: float, the threshold at which the budget was met.
        iterations: int, thresholds tried (1 when the first one fits).
        need: int, the budget measure at `threshold` (the proxy `need`,
            or the exact one-template total with `budget_check="exact"`).
        budget: int, the budget the search ran under.
        groups: `groups[member][layer_id]`, the learned group of every
            layer; ids are consecutive from 0.
        partners: `{(member, layer_id): (partner member, partner layer
            id)}`, hard coefficient sharing for the students (F2).
        similarity: `{bin: (member-0 layer ids ascending, matrix)}`, the
            member-0 similarity matrix of every bin, for plots.
        history: `((threshold, need), ...)`, one entry per iteration.
        clustering: str, the clustering rule used.
        budget_check: str, `"proxy"` or `"exact"`.
        signal: str, the similarity signal used.
    """

    threshold: float
    iterations: int
    need: int
    budget: int
    groups: tuple[tuple[int, ...], ...]
    partners: Mapping[LayerKey, LayerKey]
    similarity: Mapping[int, tuple[tuple[int, ...], np.ndarray]]
    history: tuple[tuple[float, int], ...] = ()
    clustering: str = "connected_components"
    budget_check: str = "proxy"
    signal: str = "gradient"

    @property
    def num_groups(self) -> int:
        return len({g for row in self.groups for g in row})

    def to_policy(
        self, specs: Sequence[LayerSpec], *, chain_sort: str = "stable"
    ) -> SharingPolicy:
        """The `SharingPolicy` of the final model (§3.1).

        Member 0 owns its coefficient vectors; every student layer in
        `partners` reads its partner's vector at every width level the
        partner reaches (followed to the final owner).
        """
        return SharingPolicy.from_partners(
            specs, self.groups, self.partners, chain_sort=chain_sort
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (`from_dict` reads it back exactly)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "threshold": self.threshold,
            "iterations": self.iterations,
            "need": self.need,
            "budget": self.budget,
            "groups": [list(r) for r in self.groups],
            "partners": [[*k, *v] for k, v in self.partners.items()],
            "similarity": [
                {
                    "bin": b,
                    "layer_ids": list(ids),
                    "matrix": np.asarray(mat).tolist(),
                }
                for b, (ids, mat) in self.similarity.items()
            ],
            "history": [[t, n] for t, n in self.history],
            "clustering": self.clustering,
            "budget_check": self.budget_check,
            "signal": self.signal,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "SearchResult":
        """Rebuild a `SearchResult` from `to_dict` output."""
        if not isinstance(d, Mapping) or d.get("format") != _FORMAT:
            raise ValueError(
                "Invalid search result: expected a JSON object with "
                f'"format": "{_FORMAT}". Received: {str(d)[:200]}'
            )
        if d.get("version") != _VERSION:
            raise ValueError(
                "Unsupported search result version. Expected "
                f"{_VERSION}. Received: version={d.get('version')!r}"
            )
        similarity = {}
        for entry in d.get("similarity", []):
            ids = tuple(int(i) for i in entry["layer_ids"])
            mat = np.asarray(entry["matrix"], dtype=np.float64)
            similarity[int(entry["bin"])] = (
                ids,
                mat.reshape(len(ids), len(ids)),
            )
        return _make_result(
            threshold=float(d["threshold"]),
            iterations=int(d["iterations"]),
            need=int(d["need"]),
            budget=int(d["budget"]),
            groups=d["groups"],
            partners={
                (int(a), int(b)): (int(c), int(e))
                for a, b, c, e in d.get("partners", [])
            },
            similarity=similarity,
            history=[(float(t), int(n)) for t, n in d.get("history", [])],
            clustering=str(d.get("clustering", "connected_components")),
            budget_check=str(d.get("budget_check", "proxy")),
            signal=str(d.get("signal", "gradient")),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchResult):
            return NotImplemented
        if (
            self.threshold,
            self.iterations,
            self.need,
            self.budget,
            self.groups,
            dict(self.partners),
            self.history,
            self.clustering,
            self.budget_check,
            self.signal,
        ) != (
            other.threshold,
            other.iterations,
            other.need,
            other.budget,
            other.groups,
            dict(other.partners),
            other.history,
            other.clustering,
            other.budget_check,
            other.signal,
        ):
            return False
        if list(self.similarity) != list(other.similarity):
            return False
        return all(
            self.similarity[b][0] == other.similarity[b][0]
            and np.array_equal(self.similarity[b][1], other.similarity[b][1])
            for b in self.similarity
        )

    __hash__ = None  # type: ignore[assignment]


def _make_result(**kw: Any) -> SearchResult:
    sims = {}
    for b in sorted(kw["similarity"]):
        ids, mat = kw["similarity"][b]
        mat = np.array(mat, dtype=np.float64)
        mat.setflags(write=False)
        sims[int(b)] = (tuple(int(i) for i in ids), mat)
    kw["similarity"] = sims
    kw["groups"] = tuple(tuple(int(g) for g in r) for r in kw["groups"])
    kw["partners"] = dict(sorted(kw["partners"].items()))
    kw["history"] = tuple(kw["history"])
    return SearchResult(**kw)


def _fill_thresholds(similarity: Mapping) -> list[float]:
    """Every threshold at which a bin's grouping can change, highest
    first: the largest similarity (no pair links), then just below each
    distinct similarity (the pairs at that value link too), ending below
    -1 (every pair links)."""
    values = set()
    for ids, mat in similarity.values():
        n = len(ids)
        if n > 1:
            values.update(float(v) for v in mat[~np.eye(n, dtype=bool)])
    values = sorted((v for v in values if math.isfinite(v)), reverse=True)
    top = values[0] if values else 1.0
    below = [float(np.nextafter(v, -np.inf)) for v in values]
    return [max(top, 1.0)] + below + [-1.0 - 1e-9]


class _Memo:
    """Memoised pair similarity: each pair is computed once per search."""

    def __init__(self, fn: Callable[[LayerKey, LayerKey], float]) -> None:
        self.fn = fn
        self.cache: dict[tuple[LayerKey, LayerKey], float] = {}

    def __call__(self, a: LayerKey, b: LayerKey) -> float:
        value = self.cache.get((a, b))
        if value is None:
            value = self.cache[(a, b)] = float(self.fn(a, b))
        return value


def search_groups(
    specs: Sequence[LayerSpec],
    bins: Any,
    gradients: Mapping[Hashable, Any] | None,
    budget: int,
    *,
    threshold_start: float = 0.1,
    threshold_decrement: float = 0.05,
    clustering: str = "connected_components",
    budget_check: str = "proxy",
    signal: str = "gradient",
    weights: Mapping[Hashable, Any] | None = None,
    coefficient_threshold: float | None = None,
    chain_sort: str = "stable",
    schedule: str = "step",
    group_share: float = 1.0,
) -> SearchResult:
    """Learn SuperWeight clusters under a parameter budget (§2.4-§2.6).

    At each threshold tried: cluster member 0's layers inside every bin
    (`cluster_bin`), number the groups, attach the other members
    (`attach_members`), and compute `need`, the parameters one template
    per bank of that grouping takes. Which thresholds are tried is the
    `schedule`:

    - `"step"` (the reference's): start at `threshold_start` and lower the
      threshold by `threshold_decrement` until `need <= budget`. A start
      where almost every pair already links returns the first grouping
      that fits, however much budget it leaves unused for groups.
    - `"fill"`: try every threshold at which the grouping can change (just
      below each distinct pairwise similarity of member-0 layers in a bin,
      highest first, starting with no link at all) and return the
      **least-merged** grouping with `need <= group_share * budget`. The
      rest of the budget pays for more templates per bank. `threshold_start`
      and `threshold_decrement` are not used.

    `group_share` trades groups for templates: at 1.0 the groups may take
    the whole budget (one template per bank, `K = 1`: the layers of a
    group then start as scaled copies of one another); at 0.5 every bank
    can get about two templates on average.

    Group numbering: bins in ascending order; inside a bin, connected
    components by their largest member-0 layer id, descending (§0.6), or,
    with `clustering="reference"`, in the order of the reference's labels
    (§2.6). Both give the reference's group ids whenever the clusters are
    the same.

    Similarities are computed once per search (each bin's member-0 matrix,
    and each student-to-member-0 pair) and reused at every threshold.

    Args:
        specs: every shared layer of every member.
        bins: `bins[member][layer_id]`, the initial bins (§1.3), e.g.
            `keras_swn.policy.bins.initial_bins(specs, 4)`, or a
            `SharingPolicy` whose groups are the bins.
        gradients: mapping `(member, layer_id) -> OIHW kernel gradient`
            with each layer's exact kernel shape. Needed for every member-0
            layer and every layer of the first member of each new depth
            (all members when `coefficient_threshold` is set); may be
            `None` with `signal="parameter"`.
        budget: int > 0, the template budget (`max_params`).
        threshold_start: float, the first threshold (0.1).
        threshold_decrement: float > 0, the step (0.05).
        clustering: `"connected_components"` (default) or `"reference"`.
        budget_check: `"proxy"` (default: `need` = sum over groups of the
            largest kernel, §2.6) or `"exact"` (the one-template total of
            the restacked groups).
        signal: `"gradient"` (default), `"gradient+weight"` or
            `"parameter"` (see `similarity_matrix`).
        weights: mapping `(member, layer_id) -> OIHW kernel`, for the
            signals that read weights.
        coefficient_threshold: float or `None`: gate student coefficient
            sharing (§2.5).
        chain_sort: `"stable"` or `"reference"`, used by
            `budget_check="exact"` and `SearchResult.to_policy`.
        schedule: `"step"` (default, the reference's) or `"fill"` (see
            above).
        group_share: float in (0, 1], the share of the budget that one
            template per bank may take (`"fill"` only; `"step"` uses 1).

    Returns:
        A `SearchResult`.

    Raises:
        ValueError: on `budget <= 0` or other invalid arguments, missing or
            mis-shaped gradients, and (fix F5) when the budget cannot be
            met: as soon as no lower threshold can change the grouping
            (every bin fully merged under connected components, or the
            threshold below -1, where every pair passes), with a message
            naming the budget and the smallest `need` reached.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ValueError(
            "Invalid value for argument `budget`. Expected a strictly "
            f"positive integer. Received: budget={budget!r}"
        )
    budget = int(budget)
    if budget <= 0:
        raise ValueError(
            "Invalid value for argument `budget`. Expected a strictly "
            f"positive integer. Received: budget={budget}"
        )
    t = _check_real("threshold_start", threshold_start)
    step = _check_real("threshold_decrement", threshold_decrement)
    if not step > 0:
        raise ValueError(
            "Invalid value for argument `threshold_decrement`. Expected a "
            "strictly positive number (thresholds only go down). Received: "
            f"threshold_decrement={threshold_decrement!r}"
        )
    _check_choice("clustering", clustering, CLUSTERINGS)
    _check_choice("budget_check", budget_check, BUDGET_CHECKS)
    _check_choice("chain_sort", chain_sort, ("stable", "reference"))
    _check_choice("schedule", schedule, SCHEDULES)
    share = _check_real("group_share", group_share)
    if not 0 < share <= 1:
        raise ValueError(
            "Invalid value for argument `group_share`. Expected a number in "
            f"(0, 1]. Received: group_share={group_share!r}"
        )
    gate = None
    if coefficient_threshold is not None:
        gate = _check_real("coefficient_threshold", coefficient_threshold)

    from keras_swn.bank import plan as bank_plan

    by_member = _index_specs(specs)
    specs = [s for row in by_member for s in row]
    rows = _check_bins(by_member, bins)
    plan = _attachment_plan(by_member, rows)
    pair = PairSimilarity(gradients, signal=signal, weights=weights)
    shapes = {s.key: s.shape for s in specs}
    needed = sorted(
        set([(0, lid) for lid in range(len(by_member[0]))])
        | set(_needed_keys(plan, gate is not None))
    )
    pair.check_keys(needed, shapes)
    memo = _Memo(pair)

    teacher_bins = _bin_layers(rows[0])
    similarity = {
        b: (tuple(ids), pair.matrix([(0, lid) for lid in ids]))
        for b, ids in teacher_bins.items()
    }

    def measure(groups: tuple[tuple[int, ...], ...]) -> int:
        if budget_check == "proxy":
            return int(bank_plan.need_proxy(specs, groups))
        return int(
            bank_plan.one_template_total(specs, groups, chain_sort=chain_sort)
        )

    cache: dict[tuple[int, ...], tuple[Attachment, int]] = {}
    history: list[tuple[float, int]] = []
    smallest: int | None = None
    limit = budget if schedule == "step" else int(share * budget)
    candidates = iter(
        _fill_thresholds(similarity) if schedule == "fill" else ()
    )
    if schedule == "fill":
        t = next(candidates)
    while True:
        member0 = [-1] * len(by_member[0])
        next_id = 0
        merged = True
        for b, (ids, mat) in similarity.items():
            clusters = cluster_bin(ids, mat, t, clustering=clustering)
            merged = merged and len(clusters) == 1
            for cluster in clusters:
                for lid in cluster:
                    member0[lid] = next_id
                next_id += 1
        signature = tuple(member0)
        if signature not in cache:
            att = _attach(by_member, rows, plan, member0, memo, gate)
            cache[signature] = (att, measure(att.groups))
        att, need = cache[signature]
        history.append((t, need))
        smallest = need if smallest is None else min(smallest, need)
        if need <= limit:
            return _make_result(
                threshold=t,
                iterations=len(history),
                need=need,
                budget=budget,
                groups=att.groups,
                partners=att.partners,
                similarity=similarity,
                history=history,
                clustering=clustering,
                budget_check=budget_check,
                signal=signal,
            )
        t_next = next(candidates, None) if schedule == "fill" else t - step
        exhausted = t_next is None or t < -1.0
        if (clustering == "connected_components" and merged) or exhausted:
            reason = (
                "every bin is fully merged"
                if clustering == "connected_components" and merged
                else "the threshold is below -1, where every pair passes"
            )
            share_text = (
                "" if limit == budget else f" x group_share={share:g}"
            )
            raise ValueError(
                "The parameter budget cannot be met: the smallest `need` "
                f"reached is {smallest:,} parameters, above budget="
                f"{budget:,}{share_text}, and no lower threshold can change "
                f"the grouping ({reason}; {len(history)} thresholds tried, "
                f"last t={t:.6g}). Raise `budget` or use more initial bins. "
                f"Received: budget={budget}"
            )
        t = t_next
