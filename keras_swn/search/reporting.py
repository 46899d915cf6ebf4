"""What a search reports: its results, their summary and its plots.

`search_results` assembles the `results.json` that `SearchAndRefine` writes
at the end of a search (the fields it shares with a training run's come from
`keras_swn.training.results`), `print_search_summary` prints it, and
`trial_metrics` turns it into the numbers a `SWNTuner` trial reports.

The PNG plots (similarity per bin, groups per member, refine) are drawn
with Matplotlib's object API on the Agg canvas (no
`pyplot`, no global backend switch, no display needed) and written
atomically: to a temporary file in the target folder, then renamed.
Matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import os
from typing import Any
from typing import Mapping
from typing import Sequence

import keras
import numpy as np

from keras_swn.analysis.search_result import SearchResult
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.io.atomic import atomic_write
from keras_swn.io.store import MODEL
from keras_swn.io.store import ProjectStore
from keras_swn.models.swn_model import SWNModel
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search.builders import SearchModels
from keras_swn.search.builders import distribution_scope
from keras_swn.search.oracle import PhaseOracle
from keras_swn.training.results import evaluation_fields
from keras_swn.training.results import member_names
from keras_swn.training.results import parameter_fields
from keras_swn.training.results import print_accuracy
from keras_swn.validation import check_int
from keras_swn.validation import naming


def search_results(
    *,
    config: Any,
    run: Mapping[str, Any],
    model: Any,
    report: BudgetReport,
    evaluation: Mapping[str, float] | None,
    phase_log: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The contents of a search's `results.json`.

    Args:
        config: the `SearchConfig`.
        run: the `RunConfig` as a dict.
        model: the final `SWNModel`.
        report: its `BudgetReport`.
        evaluation: the final validation logs (floats), or None.
        phase_log: the oracle's phase log.
    """
    names = member_names(config.members)
    log = {e["phase"]: e for e in phase_log}
    evaluated = evaluation_fields(evaluation, len(names))
    return {
        "members": names,
        "sharing": config.sharing.value,
        "budget": config.budget,
        "seed": config.seed,
        "backend": keras.backend.backend(),
        **evaluated,
        "groups": model.policy.num_groups,
        "groups_per_member": [list(r) for r in model.policy.groups],
        "threshold": log.get("clustering", {}).get("threshold"),
        "coefficient_vectors": report.coefficient_vectors,
        "parameters": parameter_fields(report),
        "phases": list(phase_log),
        "options": config.to_dict(),
        "run": dict(run),
    }


def print_search_summary(results: Mapping[str, Any], project_dir: str) -> None:
    """Validation accuracy per member and of the ensemble, the parameters
    and the groups (like KerasTuner's `results_summary`)."""
    r = results
    print("Results summary")
    print(f"Results in {os.path.abspath(project_dir)}")
    print(f"Sharing: {r['sharing']}; budget {r['budget']:,}")
    if r["val_ensemble_accuracy"] is not None:
        print_accuracy(
            r["members"], r["val_member_accuracy"], r["val_ensemble_accuracy"]
        )
    else:
        print("Validation accuracy: no validation data")
    p = r["parameters"]
    print(
        f"Parameters: templates {p['bank_total']:,} (budget "
        f"{p['budget']:,}), coefficients {p['coefficient_scalars']:,}, "
        f"BatchNorm and heads {p['unshared_trainable']:,}; trainable "
        f"total {p['trainable_total']:,} (without sharing "
        f"{p['params_unshared']:,})"
    )
    thr = r["threshold"]
    print(
        f"Groups: {r['groups']}"
        + ("" if thr is None else f" (threshold {thr:.3g})")
        + f"; coefficient vectors {r['coefficient_vectors']}"
    )
    for name, row in zip(r["members"], r["groups_per_member"]):
        print(f"  {name:<12} {row}")


def trial_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """The numbers a trial reports to the oracle, from `results()`.

    Every validation metric of the final evaluation with a `val_` prefix
    (`val_loss`, `val_ensemble_accuracy`, `val_member_<i>_accuracy`,
    ...), and `groups`, `coefficient_vectors`, `bank_total` (template
    parameters), `trainable_total` and, when the search clustered,
    `clustering_threshold`.

    Args:
        results: the dict `SearchAndRefine.results()` returns.

    Returns:
        dict, metric name -> float (metrics without a value are left out).

    Examples:
        >>> metrics = trial_metrics({
        ...     "evaluation": {"loss": 0.5, "ensemble_accuracy": 0.75},
        ...     "val_ensemble_accuracy": 0.75, "groups": 4,
        ...     "coefficient_vectors": 6, "threshold": None,
        ...     "parameters": {"bank_total": 9, "trainable_total": 20}})
        >>> sorted(metrics)[:3]
        ['bank_total', 'coefficient_vectors', 'groups']
        >>> "clustering_threshold" in metrics  # the threshold was None
        False
        >>> metrics["val_ensemble_accuracy"]
        0.75
    """
    found: dict[str, Any] = {
        f"val_{key}": value
        for key, value in (results.get("evaluation") or {}).items()
    }
    found["val_ensemble_accuracy"] = results.get("val_ensemble_accuracy")
    found["groups"] = results.get("groups")
    found["coefficient_vectors"] = results.get("coefficient_vectors")
    found["clustering_threshold"] = results.get("threshold")
    parameters = results.get("parameters") or {}
    for key in ("bank_total", "trainable_total"):
        found[key] = parameters.get(key)
    return {
        name: float(value)
        for name, value in found.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class SearchReports:
    """The KerasTuner-shaped surface of `SearchAndRefine`: what a search
    reports (its policy, results and best models), read from its oracle
    and project folder."""

    oracle: PhaseOracle | None
    store: ProjectStore
    models: SearchModels
    project_dir: str
    distribution: Any

    def _require_done(self, what: str) -> None:
        if self.oracle is None or not self.oracle.done:
            raise ValueError(
                f"`{what}` needs a finished search: call `search()` first "
                f"(project folder {self.project_dir})."
            )

    @property
    def policy(self) -> SharingPolicy | None:
        """The final `SharingPolicy` (learned, then refined).

        None before the clustering phase has run."""
        if self.oracle is None or self.oracle.artifacts.policy is None:
            return None
        return SharingPolicy.from_dict(self.oracle.artifacts.policy)

    def search_result(self) -> SearchResult | None:
        """The `SearchResult` of the clustering phase, if it ran."""
        if not self.store.exists("search_result.json"):
            return None
        return SearchResult.from_dict(
            self.store.read_json("search_result.json")
        )

    def budget_report(self) -> BudgetReport:
        """The `BudgetReport` of the current policy.

        The search-phase bins before clustering."""
        policy = self.policy
        if policy is None:
            policy = self.models.initial_policy()
        return self.models.budget_report(policy)

    def results(self) -> dict:
        """The contents of `results.json` (after `search`)."""
        self._require_done("results")
        return self.store.read_json("results.json")

    def results_summary(self) -> None:
        """Print the validation accuracy, the parameters and the groups.

        Per member and of the ensemble, like KerasTuner's `results_summary`."""
        self._require_done("results_summary")
        print_search_summary(self.results(), self.project_dir)

    def get_best_models(self, num_models: int = 1) -> list[SWNModel]:
        """The best `num_models` models, reloaded and compiled.

        A search has one result, the final model (`model.keras`), so the
        list (a list, as KerasTuner returns) holds at most one model.

        Args:
            num_models: int >= 1, how many models to return.

        Returns:
            A list of [`SWNModel`][keras_swn.SWNModel].

        Raises:
            ValueError: before the search has finished.
        """
        with naming("num_models"):
            num_models = check_int("num_models", num_models, minimum=1)
        self._require_done("get_best_models")
        with distribution_scope(self.distribution):
            return [self.store.load_model(MODEL)][:num_models]


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
    split (see the algorithm page, [Refine][refine]).

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
