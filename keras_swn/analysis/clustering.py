"""Search step: SuperWeight clusters from gradient similarity.

Pure functions over NumPy arrays: member 0's layers are clustered inside
each initial bin at a threshold (`cluster_bin`), the other members are
attached to member 0's clusters (`attach_members`), and a budget-driven
schedule lowers the threshold until the clusters fit the parameter budget
(`search_groups`, which returns a `SearchResult`). No Keras import.

Two clustering rules are available (fix F4):

- `"connected_components"` (default): the clusters of a bin are the
  connected components of the graph whose edges are the pairs with
  similarity strictly above the threshold (single linkage). Independent of
  visiting order, and monotone: a lower threshold only merges.
- `"reference"`: the reference's label propagation, reproduced exactly.
  Order-dependent by design.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable
from typing import Hashable
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.analysis.attachment import Attachment
from keras_swn.analysis.attachment import AttachmentPlan
from keras_swn.analysis.attachment import attach_members
from keras_swn.analysis.attachment import bin_layers
from keras_swn.analysis.attachment import check_bins
from keras_swn.analysis.grouping_config import BUDGET_CHECKS
from keras_swn.analysis.grouping_config import SCHEDULES
from keras_swn.analysis.grouping_config import GroupingConfig
from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.partition import cluster_bin
from keras_swn.analysis.search_result import SearchResult
from keras_swn.analysis.similarity import PairSimilarity
from keras_swn.policy.bins import index_specs
from keras_swn.policy.chains import need_proxy
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import Groups
from keras_swn.types import LayerKey
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument

# Re-exported: the clustering API lived here as one module.
__all__ = [
    "BUDGET_CHECKS",
    "CLUSTERINGS",
    "SCHEDULES",
    "GroupingConfig",
    "Attachment",
    "SearchResult",
    "attach_members",
    "cluster_bin",
    "search_groups",
]

#: A threshold below every cosine: every pair links.
_ALL_LINKED = -1.0 - 1e-9


def _fill_thresholds(
    similarity: Mapping[int, tuple[tuple[int, ...], np.ndarray]],
) -> list[float]:
    """Every threshold at which a bin's grouping can change, highest
    first: the largest similarity (no pair links), then just below each
    distinct similarity (the pairs at that value link too), ending below
    -1 (every pair links)."""
    seen: set[float] = set()
    for ids, mat in similarity.values():
        n = len(ids)
        if n > 1:
            seen.update(float(v) for v in mat[~np.eye(n, dtype=bool)])
    values = sorted((v for v in seen if math.isfinite(v)), reverse=True)
    top = values[0] if values else 1.0
    below = [float(np.nextafter(v, -np.inf)) for v in values]
    return [max(top, 1.0)] + below + [_ALL_LINKED]


def _weakest_link(mat: np.ndarray, rows: Sequence[int]) -> float:
    """The similarity at which a connected cluster first splits: the
    smallest edge of its maximum spanning tree (single linkage; an edge
    weighs the larger of its two directions). `rows` are the cluster's row
    indices in `mat`."""
    sym = np.maximum(mat, mat.T)
    best = {r: sym[rows[0], r] for r in rows[1:]}
    weakest = math.inf
    while best:
        r = max(best, key=lambda k: (best[k], -k))
        weakest = min(weakest, float(best.pop(r)))
        for k in best:
            best[k] = max(best[k], sym[r, k])
    return weakest


def _split_order(
    similarity: Mapping[int, tuple[tuple[int, ...], np.ndarray]],
    clusters: Mapping[int, list[tuple[int, ...]]],
    frozen: set[tuple[int, ...]],
) -> list[tuple[float, int, tuple[int, ...]]]:
    """The clusters that can still split, least similar first: `(weakest
    link, bin, cluster)`; ties go to the lower bin, then the cluster with
    the larger layer ids."""
    order = []
    for b, (ids, mat) in similarity.items():
        index = {lid: i for i, lid in enumerate(ids)}
        for cluster in clusters[b]:
            if len(cluster) > 1 and cluster not in frozen:
                rows = [index[lid] for lid in cluster]
                order.append((_weakest_link(mat, rows), b, cluster))
    order.sort(key=lambda x: (x[0], x[1], [-i for i in x[2]]))
    return order


def _split(
    cluster: tuple[int, ...], ids: tuple[int, ...], mat: np.ndarray, link: float
) -> list[tuple[int, ...]]:
    """`cluster` split at its weakest link: the connected components of the
    edges strictly above `link`."""
    rows = [ids.index(lid) for lid in cluster]
    return cluster_bin(cluster, mat[np.ix_(rows, rows)], link)


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
    config: GroupingConfig | None = None,
    *,
    weights: Mapping[Hashable, Any] | None = None,
    **options: Any,
) -> SearchResult:
    """Learn SuperWeight clusters under a parameter budget.

    At each threshold tried: cluster member 0's layers inside every bin
    ([`cluster_bin`][keras_swn.analysis.cluster_bin]), number the groups, attach
    the other members ([`attach_members`][keras_swn.analysis.attach_members]),
    and compute `need`, the parameters one template per bank of that grouping
    takes. Which thresholds are tried is the `schedule`:

    - `"step"` (the reference's): start at `threshold_start` and lower the
      threshold by `threshold_decrement` until `need <= budget`. A start
      where almost every pair already links returns the first grouping
      that fits, however much budget it leaves unused for groups.
    - `"fill"`: try every threshold at which the grouping can change (just
      below each distinct pairwise similarity of member-0 layers in a bin,
      highest first, starting with no link at all) and return the
      **least-merged** grouping with `need <= group_share * budget`. The
      rest of the budget pays for more templates per bank. Where even the
      most-merged grouping needs more than that share, the least-merged
      grouping within the whole budget is returned. `threshold_start` and
      `threshold_decrement` are not used.

    `group_share` trades groups for templates: at 1.0 the groups may take
    the whole budget (one template per bank, `K = 1`: the layers of a
    group then start as scaled copies of one another); at 0.5 every bank
    can get about two templates on average.

    Group numbering: bins in ascending order; inside a bin, connected
    components by their largest member-0 layer id, descending, or,
    with `clustering="reference"`, in the order of the reference's labels.
    Both give the reference's group ids whenever the clusters are
    the same.

    Similarities are computed once per search (each bin's member-0 matrix,
    and each student-to-member-0 pair) and reused at every threshold.

    Args:
        specs: every shared layer of every member.
        bins: `bins[member][layer_id]`, the initial bins, e.g.
            `keras_swn.policy.bins.initial_bins(specs, 4)`, or a
            [`SharingPolicy`][keras_swn.SharingPolicy] whose groups are the
            bins.
        gradients: mapping `(member, layer_id) -> OIHW kernel gradient`
            with each layer's exact kernel shape. Needed for every member-0
            layer and every layer of the first member of each new depth
            (all members when `coefficient_threshold` is set); may be
            `None` with `signal="parameter"`.
        budget: int > 0, the template budget (`max_params`).
        config: a [`GroupingConfig`][keras_swn.analysis.GroupingConfig], the
            options of the search; None: its defaults, the same as
            [`keras_swn.search.SearchConfig`][]'s
            (`GroupingConfig.reference()` gives the reference's).
        weights: mapping `(member, layer_id) -> OIHW kernel`, for the
            signals that read weights.
        **options: fields of `GroupingConfig` to set on top of `config`
            (`schedule="step"`, `group_share=1.0`, ...).

    Returns:
        A [`SearchResult`][keras_swn.analysis.SearchResult].

    Raises:
        ValueError: on `budget <= 0` or other invalid arguments, missing or
            mis-shaped gradients, and (fix F5) when the budget cannot be
            met: as soon as no lower threshold can change the grouping
            (every bin fully merged under connected components, or the
            threshold below -1, where every pair passes), with a message
            naming the budget and the smallest `need` reached.

    Examples:
        Three layers of one member in one bin; layers 0 and 1 have the same
        gradient, layer 2 the opposite one:

        >>> specs = [keras_swn.LayerSpec(0, i, "conv2d", (4, 4, 3, 3))
        ...          for i in range(3)]
        >>> g = np.ones((4, 4, 3, 3))
        >>> grads = {(0, 0): g, (0, 1): g, (0, 2): -g}  # layer 2 disagrees
        >>> result = keras_swn.analysis.search_groups(
        ...     specs, [[0, 0, 0]], grads, budget=1000, schedule="step")
        >>> result.groups, result.threshold, result.need
        (((1, 1, 0),), 0.1, 288)
    """
    budget = check_int("budget", budget, minimum=1)
    c = (config or GroupingConfig()).replace(**options)
    clustering, budget_check, schedule = (
        c.clustering,
        c.budget_check,
        c.schedule,
    )
    t, step, share = c.threshold_start, c.threshold_decrement, c.group_share
    signal, chain_sort = c.signal, c.chain_sort
    gate = c.coefficient_threshold

    by_member = index_specs(specs)
    specs = [s for row in by_member for s in row]
    rows = check_bins(by_member, bins)
    plan = AttachmentPlan.create(by_member, rows)
    pair = PairSimilarity(gradients, signal=signal, weights=weights)
    shapes = {s.key: s.shape for s in specs}
    needed = sorted(
        set([(0, lid) for lid in range(len(by_member[0]))])
        | set(plan.needed_keys(gate is not None))
    )
    pair.check_keys(needed, shapes)
    memo = _Memo(pair)

    teacher_bins = bin_layers(rows[0])
    similarity = {
        b: (tuple(ids), pair.matrix([(0, lid) for lid in ids]))
        for b, ids in teacher_bins.items()
    }

    def measure(groups: Groups) -> int:
        if budget_check == "proxy":
            return int(need_proxy(specs, groups))
        return int(one_template_total(specs, groups, chain_sort=chain_sort))

    cache: dict[tuple[int, ...], tuple[Attachment, int]] = {}

    def evaluate(member0: list[int]) -> tuple[Attachment, int]:
        """The attachment of a member-0 grouping and its `need`."""
        key = tuple(member0)
        if key not in cache:
            att = plan.attach(member0, memo, gate)
            cache[key] = (att, measure(att.groups))
        return cache[key]

    def result(
        t: float, need: int, att: Attachment, tried: Sequence[tuple[float, int]]
    ) -> SearchResult:
        return SearchResult(
            threshold=t,
            iterations=len(tried),
            need=need,
            budget=budget,
            groups=att.groups,
            partners=att.partners,
            similarity=similarity,
            history=tuple(tried),
            clustering=clustering,
            budget_check=budget_check,
            signal=signal,
        )

    num_layers = len(by_member[0])
    if schedule == "split":
        return result(
            *_search_split(similarity, num_layers, evaluate, budget, share)
        )

    history: list[tuple[float, int]] = []
    smallest: int | None = None
    limit = budget if schedule == "step" else int(share * budget)
    candidates = iter(
        _fill_thresholds(similarity) if schedule == "fill" else ()
    )
    if schedule == "fill":
        t = next(candidates)
    # "fill": the least-merged grouping within the whole budget, returned
    # when no grouping meets `group_share * budget`.
    fallback: tuple[float, int, Attachment, list] | None = None

    while True:
        per_bin = [
            cluster_bin(ids, mat, t, clustering=clustering)
            for ids, mat in similarity.values()
        ]
        merged = all(len(clusters) == 1 for clusters in per_bin)
        att, need = evaluate(_number_layers(per_bin, num_layers))
        history.append((t, need))
        smallest = need if smallest is None else min(smallest, need)
        if fallback is None and need <= budget:
            fallback = (t, need, att, list(history))
        if need <= limit:
            return result(t, need, att, history)
        t_next = next(candidates, None) if schedule == "fill" else t - step
        if (
            (clustering == "connected_components" and merged)
            or t_next is None
            or t < -1.0
        ):
            if fallback is not None:
                return result(*fallback)
            reason = (
                "every bin is fully merged"
                if clustering == "connected_components" and merged
                else "the threshold is below -1, where every pair passes"
            )
            share_text = "" if limit == budget else f" x group_share={share:g}"
            raise invalid_argument(
                "budget",
                "The parameter budget cannot be met: the smallest `need` "
                f"reached is {smallest:,} parameters, above budget="
                f"{budget:,}{share_text}, and no lower threshold can change "
                f"the grouping ({reason}; {len(history)} thresholds tried, "
                f"last t={t:.6g}). Raise `budget` or use more initial bins.",
                budget,
            )
        t = t_next


def _number_layers(
    per_bin: Sequence[Sequence[tuple[int, ...]]], num_layers: int
) -> list[int]:
    """Member-0 group ids: consecutive over the bins in order, and inside
    a bin over its clusters in the order given."""
    member0 = [-1] * num_layers
    next_id = 0
    for clusters in per_bin:
        for cluster in clusters:
            for lid in cluster:
                member0[lid] = next_id
            next_id += 1
    return member0


def _search_split(
    similarity: Mapping[int, tuple[tuple[int, ...], np.ndarray]],
    num_layers: int,
    evaluate: Callable[[list[int]], tuple[Attachment, int]],
    budget: int,
    share: float,
) -> tuple[float, int, Attachment, list[tuple[float, int]]]:
    """The `"split"` schedule of `search_groups` (documented there):
    `(threshold, need, attachment, history)`."""
    clusters = {b: [tuple(sorted(ids))] for b, (ids, _) in similarity.items()}

    def grouping(state: Mapping[int, list[tuple[int, ...]]]) -> tuple:
        # Inside a bin, clusters by largest layer id, descending (as
        # `cluster_bin` orders them).
        per_bin = [sorted(state[b], key=lambda c: -max(c)) for b in similarity]
        return evaluate(_number_layers(per_bin, num_layers))

    att, need = grouping(clusters)
    if need > budget:
        raise invalid_argument(
            "budget",
            "The parameter budget cannot be met: the initial bins, each "
            f"one group, need {need:,} parameters for one template per "
            f"bank, above budget={budget:,}. Raise `budget` or use more "
            "initial bins.",
            budget,
        )
    limit = need + int(share * (budget - need))
    history: list[tuple[float, int]] = [(_ALL_LINKED, need)]
    threshold = _ALL_LINKED
    frozen: set[tuple[int, ...]] = set()
    while True:
        order = _split_order(similarity, clusters, frozen)
        if not order:
            break
        link, b, cluster = order[0]
        ids, mat = similarity[b]
        trial = dict(clusters)
        trial[b] = [c for c in clusters[b] if c != cluster] + _split(
            cluster, ids, mat, link
        )
        trial_att, trial_need = grouping(trial)
        history.append((link, trial_need))
        if trial_need <= limit:
            clusters, att, need, threshold = trial, trial_att, trial_need, link
        else:
            frozen.add(cluster)
    return threshold, need, att, history
