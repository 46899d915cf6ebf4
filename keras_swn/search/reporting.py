"""PNG plots of a search: similarity per bin, groups per member, refine.

Figures are drawn with Matplotlib's object API on the Agg canvas (no
`pyplot`, no global backend switch, no display needed) and written
atomically: to a temporary file in the target folder, then renamed.
Matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import os
from typing import Any
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.io.atomic import atomic_write


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike) -> str:
    """Write `fig` as a PNG at `path` atomically; returns the path."""
    return atomic_write(
        path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png"
    )


def plot_similarity(
    layer_ids: Sequence[int],
    matrix: Any,
    groups: Mapping[int, int],
    *,
    title: str = "",
    threshold: float | None = None,
):
    """Heatmap of one bin's member-0 similarity matrix, clusters boxed.

    Rows and columns are ordered by group, then layer id, so each cluster
    is a block on the diagonal, outlined in black.

    Args:
        layer_ids: the member-0 layer ids of the bin (matrix order).
        matrix: `(n, n)` similarities in [-1, 1].
        groups: `{layer_id: group}` for these layers.
        title: figure title.
        threshold: the clustering threshold, shown in the title.

    Returns:
        A Matplotlib `Figure`.
    """
    from matplotlib.patches import Rectangle

    ids = [int(i) for i in layer_ids]
    mat = np.asarray(matrix, dtype=np.float64).reshape(len(ids), len(ids))
    order = sorted(range(len(ids)), key=lambda k: (groups[ids[k]], ids[k]))
    mat = mat[np.ix_(order, order)]
    labels = [f"{ids[k]} (g{groups[ids[k]]})" for k in order]
    size = 2.5 + 0.35 * len(ids)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(mat, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine")
    ax.set_xticks(range(len(ids)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(ids)), labels, fontsize=7)
    start = 0
    while start < len(order):
        g = groups[ids[order[start]]]
        end = start
        while end + 1 < len(order) and groups[ids[order[end + 1]]] == g:
            end += 1
        ax.add_patch(
            Rectangle(
                (start - 0.5, start - 0.5),
                end - start + 1,
                end - start + 1,
                fill=False,
                edgecolor="black",
                linewidth=2,
            )
        )
        start = end + 1
    suffix = "" if threshold is None else f" (threshold {threshold:.3g})"
    ax.set_title(f"{title}{suffix}", fontsize=9)
    ax.set_xlabel("member-0 layer id (group)")
    fig.tight_layout()
    return fig


def plot_group_map(
    groups: Sequence[Sequence[int]],
    *,
    member_names: Sequence[str] | None = None,
    hard_shared: Mapping[tuple[int, int], Any] | None = None,
    title: str = "Layer -> group",
):
    """The group of every layer of every member, as a coloured grid.

    Args:
        groups: `groups[member][layer_id]`.
        member_names: row labels.
        hard_shared: optional `{(member, layer_id): ...}`; those cells are
            marked with `*` (the layer reads another layer's coefficients).
        title: figure title.

    Returns:
        A Matplotlib `Figure`.
    """
    rows = len(groups)
    cols = max(len(r) for r in groups)
    grid = np.full((rows, cols), np.nan)
    for m, row in enumerate(groups):
        grid[m, : len(row)] = row
    num = int(np.nanmax(grid)) + 1
    fig = _figure(1.5 + 0.32 * cols, 1.2 + 0.45 * rows)
    ax = fig.add_subplot(1, 1, 1)
    cmap = "tab20" if num <= 20 else "viridis"
    ax.imshow(
        grid, cmap=cmap, vmin=-0.5, vmax=max(num, 20) - 0.5, aspect="auto"
    )
    hard = set(tuple(k) for k in (hard_shared or {}))
    for m, row in enumerate(groups):
        for lid, g in enumerate(row):
            mark = "*" if (m, lid) in hard else ""
            ax.text(lid, m, f"{g}{mark}", ha="center", va="center", fontsize=7)
    names = list(member_names or [f"member {m}" for m in range(rows)])
    ax.set_yticks(range(rows), names, fontsize=8)
    ax.set_xticks(range(cols), [str(c) for c in range(cols)], fontsize=7)
    ax.set_xlabel("layer id")
    note = " (* = reads a partner's coefficients)" if hard else ""
    ax.set_title(f"{title}{note}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_refine_cosines(
    pair_cosines: Mapping[Any, Sequence[tuple[Any, Any, float]]],
    threshold: float,
    *,
    title: str = "Refine: coefficient-gradient cosine of shared pairs",
):
    """Histogram of the refine step's pair cosines, threshold marked.

    Pairs above the threshold keep sharing one vector; the others are
    split (see the algorithm page, *Refine*).

    Args:
        pair_cosines: `RefineResult.pair_cosines`.
        threshold: the refine threshold.
        title: figure title.

    Returns:
        A Matplotlib `Figure`.
    """
    values = [float(c) for ps in pair_cosines.values() for _, _, c in ps]
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    if values:
        ax.hist(values, bins=np.linspace(-1.0, 1.0, 41), color="tab:blue")
    else:
        ax.text(0.0, 0.5, "no shared pairs", ha="center", va="center")
    ax.axvline(threshold, color="tab:red", linestyle="--", label="threshold")
    kept = sum(v > threshold for v in values)
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel("cosine of accumulated coefficient gradients")
    ax.set_ylabel("pairs")
    ax.set_title(
        f"{title}\n{kept} of {len(values)} pairs above {threshold:.3g}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_search_plots(result, directory: str | os.PathLike) -> list[str]:
    """One similarity heatmap per bin from a `SearchResult`; file paths."""
    paths = []
    member0 = {lid: g for lid, g in enumerate(result.groups[0])}
    for b, (ids, mat) in result.similarity.items():
        fig = plot_similarity(
            ids,
            mat,
            {i: member0[i] for i in ids},
            title=f"Bin {b}: member-0 {result.signal} similarity",
            threshold=result.threshold,
        )
        paths.append(
            save_figure(fig, os.path.join(directory, f"similarity_bin{b}.png"))
        )
    return paths


def write_group_map(
    policy, member_names: Sequence[str], path: str | os.PathLike
) -> str:
    """The layer -> group map of a `SharingPolicy` as a PNG at `path`, the
    layers that read another layer's coefficients marked."""
    hard = {
        slot[:2]: owner for slot, owner in policy.coefficient_owners.items()
    }
    return save_figure(
        plot_group_map(
            policy.groups, member_names=member_names, hard_shared=hard
        ),
        path,
    )
