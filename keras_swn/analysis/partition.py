"""Threshold partitions: the one rule the search and the refine step share.

Items are linked by the pairs whose score is strictly above a threshold,
under one of two clustering rules:

- `"connected_components"` (default): the blocks are the connected
  components of the linked pairs (single linkage). Independent of visiting
  order, and monotone: a lower threshold only merges.
- `"reference"`: the reference's greedy label propagation, reproduced
  exactly. Order-dependent by design.

Pure NumPy; no Keras import.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Sequence

import numpy as np

from keras_swn.validation import check_choice
from keras_swn.validation import invalid_argument

#: The clustering rules of `threshold_blocks`, `cluster_bin`, the search
#: and the refine step.
CLUSTERINGS = ("connected_components", "reference")

#: A scored pair of item indices, `(score, a, b)`.
ScoredPair = tuple[float, int, int]


class UnionFind:
    """Disjoint sets over `0 .. n-1`; the smaller index becomes the root.

    Args:
        n: int, the number of items.

    Examples:
        >>> uf = UnionFind(3)
        >>> uf.union(2, 1)
        >>> [uf.find(x) for x in range(3)]
        [0, 1, 1]
    """

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        """The root of `x`'s set (compressing the path)."""
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        """Merge the sets of `x` and `y`."""
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            # The smaller index becomes the root: deterministic.
            lo, hi = (rx, ry) if rx < ry else (ry, rx)
            self.parent[hi] = lo


def threshold_blocks(
    n: int,
    pairs: Sequence[ScoredPair],
    threshold: float,
    clustering: str,
) -> list[list[int]]:
    """Partition items `0 .. n-1` by the pairs scored above a threshold.

    Args:
        n: int, the number of items.
        pairs: `(score, a, b)` triples. Under `"connected_components"`, a
            pair with `score > threshold` joins `a` and `b`. Under
            `"reference"`, the pairs are stably sorted by score, ascending,
            and popped from the top: while the score is above the
            threshold, `b` takes the label of `a` (stop at the first one
            that is not).
        threshold: float; a pair counts when its score is strictly greater.
        clustering: `"connected_components"` or `"reference"`.

    Returns:
        The blocks, each a list of item indices in ascending order, in the
        order of their labels (the smallest index of the block under
        `"connected_components"`).

    Examples:
        >>> threshold_blocks(3, [(0.9, 0, 2), (0.1, 0, 1)], 0.5,
        ...                  "connected_components")
        [[0, 2], [1]]
    """
    if clustering == "connected_components":
        uf = UnionFind(n)
        for score, a, b in pairs:
            if score > threshold:
                uf.union(a, b)
        labels = [uf.find(x) for x in range(n)]
    else:
        labels = list(range(n))
        ordered = sorted(pairs, key=lambda p: p[0])  # stable
        while ordered:
            score, a, b = ordered.pop()
            if not score > threshold:
                break
            labels[b] = labels[a]
    blocks: dict[int, list[int]] = {}
    for x in range(n):
        blocks.setdefault(labels[x], []).append(x)
    return [blocks[k] for k in sorted(blocks)]


def cluster_bin(
    layer_ids: Sequence[int],
    sim: Any,
    threshold: float,
    *,
    clustering: str = "connected_components",
) -> list[tuple[int, ...]]:
    """Cluster the member-0 layers of one bin at a threshold.

    Args:
        layer_ids: the member-0 layer ids of the bin, in the row order of
            `sim` (any order; the result does not depend on it).
        sim: array-like `(n, n)`, the similarity of the layers (see
            [`keras_swn.analysis.similarity.similarity_matrix`][keras_swn.analysis.similarity_matrix]).
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
        connected components; by label (hook position of the label's
        first holder) for `"reference"`. Together the clusters cover
        `layer_ids` exactly once.

    Raises:
        ValueError: on an unknown `clustering`, duplicate ids, a matrix of
            the wrong shape, or non-finite values.

    Examples:
        >>> s = np.array([[1., .9, 0.], [.9, 1., 0.], [0., 0., 1.]])
        >>> cluster_bin([3, 12, 21], s, 0.1)
        [(21,), (3, 12)]
    """
    check_choice("clustering", clustering, CLUSTERINGS)
    t = float(threshold)
    if math.isnan(t):
        raise invalid_argument(
            "threshold", "Expected a real number.", threshold
        )
    ids = [int(i) for i in layer_ids]
    if len(set(ids)) != len(ids):
        raise invalid_argument(
            "layer_ids",
            "Expected unique ids.",
            layer_ids,
            shown=f"layer_ids={ids}",
        )
    s = np.asarray(sim, dtype=np.float64)
    n = len(ids)
    if s.shape != (n, n):
        raise invalid_argument(
            "sim",
            f"Expected a square matrix matching `layer_ids`, shape {(n, n)}.",
            sim,
            shown=f"sim.shape={s.shape}",
        )
    if not np.all(np.isfinite(s)):
        raise invalid_argument(
            "sim",
            "Expected finite values.",
            sim,
            shown="sim containing NaN or infinite values",
        )
    # Work in hook order: descending layer id, whatever the input order.
    hook = sorted(range(n), key=lambda x: -ids[x])
    if clustering == "connected_components":
        pairs = [
            (max(s[hook[x], hook[y]], s[hook[y], hook[x]]), x, y)
            for x in range(n)
            for y in range(x + 1, n)
        ]
    else:
        pairs = [
            (float(s[hook[a], hook[c]]), a, c)
            for a in range(n)
            for c in range(n)
            if c != a
        ]
    clusters = [
        tuple(sorted(ids[hook[x]] for x in block))
        for block in threshold_blocks(n, pairs, t, clustering)
    ]
    if clustering == "connected_components":
        clusters.sort(key=lambda c: -c[-1])
    return clusters
