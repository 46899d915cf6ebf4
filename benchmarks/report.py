"""What the benchmarks share: results files, paired statistics, tables, plots.

- Results files: a JSON file rewritten atomically after every run
  (`write_json`), read back by a rerun that resumes it (`read_results`
  refuses a file of another format, version or settings).
- Paired statistics: `mean_std`, `t_interval` (a two-sided 95%
  t-interval of a mean) and `paired_difference` (seed by seed against a
  reference row).
- Markdown: `markdown_table`; `write_text` writes a page atomically.
- Running: `run_pending` runs what a results file does not hold yet,
  recording each run (or its error) and rewriting the file after each.
- Plots (matplotlib, written atomically as PNG): `plot_points` (a value
  with error bars against a log-scale x), `plot_intervals` (per row,
  values and their mean with an interval) and `plot_labels` (a table of
  integer labels as coloured cells).

Built on `keras_swn.io_utils` (atomic writes); matplotlib is imported
only by the plots.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
import traceback
from typing import Any
from typing import Callable
from typing import Iterable
from typing import Sequence

import numpy as np

# ----------------------------------------------------------------------
# Results files


def output_paths(output: str, *suffixes: str) -> list[str]:
    """`<stem><suffix>` for every suffix, `stem` being `output` less a
    trailing `.json`."""
    stem = output[:-5] if output.endswith(".json") else output
    return [stem + suffix for suffix in suffixes]


def read_results(
    path: str,
    *,
    fmt: str,
    version: int,
    settings: dict | None = None,
    compared: Iterable[str] = (),
    what: str = "benchmark",
) -> dict | None:
    """The results JSON at `path` for a run to resume (None if absent).

    Raises `SystemExit` when the file is of another `fmt` or `version`,
    or when one of the `compared` settings differs from `settings` (the
    runs it holds were made otherwise).
    """
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if results.get("format") != fmt or results.get("version") != version:
        raise SystemExit(f"{path} is not a {what} result file.")
    old, now = results.get("settings", {}), settings or {}
    diff = [
        f"{k}: file {old.get(k)!r}, now {now.get(k)!r}"
        for k in compared
        if old.get(k) != now.get(k)
    ]
    if diff:
        raise SystemExit(
            f"{path} holds runs with other settings ({'; '.join(diff)}). "
            "Use another --output, or --overwrite to discard them."
        )
    return results


def read_json(path: str) -> Any:
    """The JSON at `path` (only read: a running benchmark may rewrite it)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path: str, data: Any) -> None:
    """Write `data` as JSON, atomically (a reader sees the old file or the
    new one, never a part)."""
    from keras_swn.io_utils import atomic_write_json

    atomic_write_json(path, data)


def write_text(path: str, text: str) -> None:
    """Write a text file atomically."""
    from keras_swn.io_utils import atomic_write_text

    atomic_write_text(path, text)


def machine() -> str:
    """The machine in a few words (architecture, CPUs, Python)."""
    return (
        f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


# ----------------------------------------------------------------------
# Statistics


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (None for one value)."""
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


#: Two-sided 95% t quantiles, df 1..30 (larger df: 1.96 + 2.4 / df).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_interval(values: Sequence[float]):
    """`(mean, low, high)`: the mean and its two-sided 95% t-interval
    (low and high None for fewer than two values)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, None, None
    df = len(array) - 1
    t = _T975[df - 1] if df <= 30 else 1.96 + 2.4 / df
    half = t * float(array.std(ddof=1)) / math.sqrt(len(array))
    return mean, mean - half, mean + half


def paired_difference(
    seeds: Sequence[int],
    values: Sequence[float],
    ref_seeds: Sequence[int],
    ref_values: Sequence[float],
) -> dict | None:
    """`values` minus the reference's, seed by seed (the seeds both have).

    Returns None when no seed is shared, else `paired_seeds`,
    `paired_diff`, and `paired_mean`, `paired_low`, `paired_high` (the
    mean and its 95% t-interval, `t_interval`).
    """
    theirs = dict(zip(ref_seeds, ref_values))
    pairs = [(s, v - theirs[s]) for s, v in zip(seeds, values) if s in theirs]
    if not pairs:
        return None
    mean, low, high = t_interval([d for _, d in pairs])
    return {
        "paired_seeds": [s for s, _ in pairs],
        "paired_diff": [d for _, d in pairs],
        "paired_mean": mean,
        "paired_low": low,
        "paired_high": high,
    }


# ----------------------------------------------------------------------
# Markdown


def markdown_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str] | str],
    align: Sequence[str] | None = None,
) -> list[str]:
    """The lines of a Markdown table.

    Args:
        header: the column names.
        rows: per row its cells (strings), or a whole line as written.
        align: per column `"---"`, `"---:"`, ... (default `"---"`).
    """
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        lines.append(row if isinstance(row, str) else f"| {' | '.join(row)} |")
    return lines


# ----------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> None:
    """Write `fig` as a PNG (120 dpi), atomically, and close it."""
    from keras_swn.io_utils import atomic_write

    atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=120),
        suffix=".png",
    )
    _pyplot().close(fig)


def plot_points(
    points: Sequence[dict],
    path: str,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """Points with vertical error bars against a log-scale x.

    Every point is a dict with `x`, `y`, `yerr`, `marker`, `label` and
    `filled` (False: a hollow marker); point `i` takes colour `i` of
    `tab20`. The legend sits right of the axes.
    """
    plt = _pyplot()
    colors = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, p in enumerate(points):
        ax.errorbar(
            p["x"],
            p["y"],
            yerr=p["yerr"],
            fmt=p["marker"],
            markerfacecolor=colors[i % 20] if p["filled"] else "none",
            color=colors[i % 20],
            markersize=8,
            capsize=3,
            label=p["label"],
        )
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def plot_intervals(rows: Sequence[dict], path: str, *, xlabel: str) -> None:
    """Per row (top to bottom): its `values` (grey dots) and their `mean`
    with the interval `[low, high]` (a bar; none when `low` is None),
    labelled `label`; a vertical line at 0. Nothing without rows."""
    if not rows:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    for i, row in enumerate(rows):
        values, mean = np.asarray(row["values"]), row["mean"]
        ax.plot(values, [i] * len(values), "o", color="0.6", markersize=4)
        if row["low"] is None:
            ax.plot([mean], [i], "D", color="C0")
        else:
            err = [[mean - row["low"]], [row["high"] - mean]]
            ax.errorbar([mean], [i], xerr=err, fmt="D", color="C0", capsize=4)
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=8)
    ax.axvline(0.0, color="k", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_labels(
    rows: dict[str, Sequence[int]], path: str, *, xlabel: str, title: str
) -> None:
    """One row of cells per entry of `rows` (name -> integer labels),
    coloured (`tab20`) and written with their label. Nothing without
    rows."""
    if not rows:
        return
    plt = _pyplot()
    width = max(len(g) for g in rows.values())
    fig, ax = plt.subplots(figsize=(0.45 * width + 3, 0.45 * len(rows) + 1.2))
    table = np.full((len(rows), width), np.nan)
    for i, labels in enumerate(rows.values()):
        table[i, : len(labels)] = labels
    ax.imshow(table, cmap="tab20", aspect="auto", interpolation="nearest")
    for i, labels in enumerate(rows.values()):
        for j, g in enumerate(labels):
            ax.text(j, i, str(g), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set_xticks(range(width), [str(j) for j in range(width)], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------
# Running


def run_pending(
    results: dict,
    todo: Sequence[tuple[str, Any]],
    run: Callable[[str, Any], dict],
    *,
    write: Callable[[], None],
    log: Callable[[str], None],
    describe: Callable[[dict], str] = lambda record: "done",
    before: Callable[[], None] | None = None,
    verbose: bool = False,
) -> None:
    """Run every `(key, job)` of `todo` in order, resumably.

    `run(key, job)` returns the run's record; it is stored as
    `results["runs"][key]` with `wall_seconds` (from `run`'s start; `before`
    runs first, untimed) and `finished` added. A run that raises is
    recorded in `results["errors"][key]` instead (a rerun retries it) and
    the next one starts. `write()` after every run (e.g. the JSON and the
    report); `log` gets one line per run (`describe(record)`).
    """
    for i, (key, job) in enumerate(todo, 1):
        if before is not None:
            before()
        start = time.perf_counter()
        try:
            record = run(key, job)
        except Exception as e:  # noqa: BLE001 - recorded, retried on rerun
            message = f"{type(e).__name__}: {e}"
            results["errors"][key] = message[:2000]
            log(f"{i}/{len(todo)} {key} FAILED: {message[:500]}")
            if verbose:
                traceback.print_exc()
            write()
            continue
        record.update(
            wall_seconds=round(time.perf_counter() - start, 1),
            finished=now(),
        )
        results["runs"][key] = record
        write()
        log(f"{i}/{len(todo)} {key}: {describe(record)}")


def now() -> str:
    """The local time to the second, ISO 8601."""
    return datetime.datetime.now().isoformat(timespec="seconds")
