"""The report of `benchmarks/quality.py`: rows, Markdown table and plots.

Reads the results JSON alone (no training, no Keras model): `summarise`
turns the runs into one row per network, method and budget (accuracy mean
and std over seeds, and the paired difference to the `bins` row of the
same network and budget, `report.paired_difference`), `markdown` writes
the table and `render` the table and three plots (`<stem>.png`: accuracy
against trainable parameters; `<stem>_paired.png`: the paired
differences; `<stem>_groups.png`: the grouping of every main SWN row).
`report_only` re-renders a results file (`quality.py --report_only`).
"""

from __future__ import annotations

import os
import types

import numpy as np
import report

#: The rows: method -> (label, kind, has a budget, allowed for the
#: ensemble). `plain`: the plain WRN (stock He-normal `Conv2D`s,
#: `paired.plain_wrn`); for the ensemble its members in one model trained
#: on the summed loss. `plain_narrow`: WRN-d-1. `plain_matched`: a plain
#: WRN of channels `16, round(16k), round(32k), round(64k)`, `k` bringing
#: its count closest to the `bins` SWN's. `bins`: `SWNModel` with its
#: initial bins, every layer its own coefficients, no search;
#: `bins_matched`: the same for final + search epochs; `reference_init` /
#: `layer_init`: with `template_fan_in=9` / `"layer"`; `random`: a random
#: grouping with as many groups per bin as the `search` row of its seed and
#: budget (`paired.random_policy`). The `search` kind runs
#: `SearchAndRefine`: `search` (its defaults), `search_no_refine`
#: (`sharing="learned_no_refine"`), `search_reference`
#: (`reference_compatible=True`), `parameter` and `gradient_weight` (other
#: similarity signals) and `bins_hard` (`sharing="bins_hard"`).
METHODS = {
    "plain": ("plain (full)", "plain", False, True),
    "plain_narrow": ("plain WRN-d-1", "plain", False, False),
    "plain_matched": ("plain, width matched to SWN", "plain", True, False),
    "bins": ("SWN bins only", "swn", True, True),
    "bins_matched": ("SWN bins, final + search epochs", "swn", True, True),
    "search": ("SWN search + refine (gradient)", "search", True, True),
    "search_no_refine": ("SWN search, no refine", "search", True, True),
    "search_reference": ("SWN search, reference mode", "search", True, True),
    "parameter": ("SWN parameter similarity (SSN-style)", "search", True, True),
    "gradient_weight": (
        "SWN [gradient; weight] similarity",
        "search",
        True,
        True,
    ),
    "bins_hard": ("SWN bins, hard-shared + refine", "search", True, True),
    "random": ("SWN random grouping", "swn", True, True),
    "reference_init": ("SWN bins, reference init", "swn", True, True),
    "layer_init": ("SWN bins, level-scaled init, no gain", "swn", True, True),
}


def _label(network: str, method: str) -> str:
    if network == "ensemble" and method == "plain":
        return "unshared ensemble (plain members, summed loss)"
    return METHODS[method][0] + (", one bank" if network == "ensemble" else "")


def summarise(results, networks) -> list[dict]:
    """One row per (network, method, budget), in run order, each paired
    to the `bins` row of its network and budget (`report.paired_difference`;
    rows without a budget pair with the network's only `bins` row)."""
    rows = {}
    for key in results["order"]:
        run = results["runs"].get(key)
        name, method, budget, seed = key.split("/")
        fraction = None if budget == "full" else float(budget[1:])
        row = rows.setdefault(
            (name, method, budget),
            {
                "network": name,
                "network_label": networks[name].label,
                "method": method,
                "budget_fraction": fraction,
                "label": _label(name, method),
                "plain_params": networks[name].plain_params,
                **{k: [] for k in _ROW_LISTS},
            },
        )
        if run is None:
            row["missing"].append(int(seed[4:]))
            continue
        members, groups = run["member_accuracy"], run.get("groups")
        if groups is not None and run.get("same_as_search"):
            groups = f"{groups} (= search)"
        elif groups is not None and run.get("same_as_bins"):
            groups = f"{groups} (= bins)"
        values = (
            int(seed[4:]),
            run["ensemble_accuracy"] if len(members) > 1 else members[0],
            members,
            run["trainable_params"],
            run["wall_seconds"],
            run.get("epochs_total"),
            groups,
        )
        for k, v in zip(_ROW_LISTS, values):
            row[k].append(v)
        row["members"] = run["members"]
        for extra in ("width", "matched_to", "template_fan_in", "budget"):
            if extra in run:
                row[extra] = run[extra]
    for row in rows.values():
        if row["accuracy"]:
            mean, std = report.mean_std(row["accuracy"])
            row.update(
                accuracy_mean=mean,
                accuracy_std=std,
                params_mean=float(np.mean(row["trainable_params"])),
                wall_seconds_mean=float(np.mean(row["wall_seconds"])),
            )
    bins = {(k[0], k[2]): r for k, r in rows.items() if k[1] == "bins"}
    bins = {k: r for k, r in bins.items() if r["accuracy"]}
    for (name, method, budget), row in rows.items():
        ref = bins.get((name, budget))
        mine = [k for k in bins if k[0] == name]
        if ref is None and budget == "full" and len(mine) == 1:
            ref = bins[mine[0]]
        if ref is not None and method != "bins":
            pairs = report.paired_difference(
                row["seeds"], row["accuracy"], ref["seeds"], ref["accuracy"]
            )
            row.update(pairs or {})
    return list(rows.values())


_ROW_LISTS = (
    "seeds accuracy member_accuracy trainable_params wall_seconds "
    "epochs_total groups missing"
).split()


def _points(v):
    return None if v is None else 100 * v


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _row_name(row) -> str:
    name = row["label"]
    narrowed = row["method"] in ("plain_narrow", "plain_matched")
    return name + (
        f": {row['members'][0]}" if narrowed and row.get("members") else ""
    )


def _paired_text(row) -> str:
    if "paired_mean" not in row:
        return "–"
    text = f"{100 * row['paired_mean']:+.2f}"
    if row["paired_low"] is not None:
        low, high = 100 * row["paired_low"], 100 * row["paired_high"]
        text += f" [{low:+.2f}, {high:+.2f}]"
    return text


def _epochs(row) -> list:
    return sorted({e for e in row["epochs_total"] if e is not None})


def _budget(row, fmt="{:.0%}", none="–") -> str:
    at = row["budget_fraction"]
    return none if at is None else fmt.format(at)


def _table_row(row) -> list[str] | str:
    fan_in = row.get("template_fan_in")
    name = _row_name(row) + (
        f" (seeds {row['missing']} not run yet)" if row["missing"] else ""
    )
    init = "He-normal" if fan_in is None else f"`{fan_in!r}`"
    head = [row["network_label"], name, _budget(row), init]
    if not row["accuracy"]:
        return f"| {' | '.join(head)} | | | not run yet | | | | | | |"
    params = sorted(set(row["trainable_params"]))
    acc = _pct(row["accuracy_mean"])
    if row["accuracy_std"] is not None:
        acc += f" ± {_pct(row['accuracy_std'])}"
    per_seed = [
        _pct(a) + (" [" + " / ".join(map(_pct, m)) + "]" if len(m) > 1 else "")
        for a, m in zip(row["accuracy"], row["member_accuracy"])
    ]
    groups = list(dict.fromkeys(g for g in row["groups"] if g))
    return head + [
        f"{params[0]:,}" + (f"–{params[-1]:,}" if len(params) > 1 else ""),
        f"{100 * row['params_mean'] / row['plain_params']:.0f}%",
        acc,
        ", ".join(per_seed),
        _paired_text(row),
        ", ".join(f"{100 * d:+.2f}" for d in row.get("paired_diff", [])),
        "/".join(map(str, _epochs(row))) or "–",
        ", ".join(map(str, groups)) or "–",
        f"{row['wall_seconds_mean']:.0f} s",
    ]


def markdown(results) -> str:
    s = results["settings"]
    ensemble = " + ".join(f"WRN-{m}" for m in s["ensemble_members"])
    data, held = (os.path.basename(s[k] or "") for k in ("data", "eval_data"))
    lines = [
        "# Accuracy per parameter: SWN vs plain Keras WRNs",
        "",
        f"Written by `benchmarks/quality.py` on {results['updated']} "
        f"({s['backend']}; {results['machine']}).",
        "",
        f"- Command: `{results['command']}`",
        f"- Data: all {s['n_train']:,} images of `{data}` train; accuracy on "
        f"the {s['n_val']:,} images of `{held}`."
        if s.get("eval_data")
        else f"- Data: `{data}`, stratified split (seed {s['split_seed']}): "
        f"{s['n_train']:,} training / {s['n_val']:,} held-out images; "
        "accuracy on the held-out ones.",
        f"- Paired seeds: {s['pairing']}. `Δ bins`: the row's accuracy "
        "minus the `bins` row's (same network and budget), seed by seed; "
        "mean and 95% t-interval over the seeds.",
        f"- Networks: WRN-{s['depth']}-{s['width']}"
        + (f"; ensemble {ensemble}" if ensemble else "")
        + f". Initial bins: {s['num_bins']}.",
        f"- Augmentation: {s['augmentation']}.",
        f"- Recipe (every row): {s['optimizer']}, L2 {s['weight_decay']:g}"
        f", batch {s['batch_size']}, {s['schedule']} (learning_rate "
        f"{s['learning_rate']:g}); {s['epochs']} epochs. Searched rows add "
        f"{s['search_epochs']} search epochs; refine after "
        f"{s['refine_after']}.",
        "- Budget: a fraction of the plain network's convolution parameters "
        "(templates only); `trainable params` counts every trainable "
        "variable; `% of plain` is relative to the plain network (the "
        "unshared ensemble for ensemble rows).",
        "- Accuracy: mean ± sample standard deviation over seeds; per seed "
        "in seed order. Ensembles: accuracy of the mean of the member "
        "softmaxes, members in brackets. Wall time: mean per run, search "
        "epochs included.",
    ]
    if s.get("smoke"):
        lines.append("- **Smoke mode**: a pipeline check, not a result.")
    lines += [
        "",
        *report.markdown_table(_COLUMNS, map(_table_row, results["rows"])),
    ]
    for title, items in (
        (
            "Failed runs (rerun the command to retry them):",
            [f"`{k}`: {v}" for k, v in results.get("errors", {}).items()],
        ),
        ("Notes:", results.get("notes", [])),
    ):
        if items:
            lines += ["", title, "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


_COLUMNS = (
    "network",
    "row",
    "budget",
    "init",
    "trainable params",
    "% of plain",
    "accuracy %",
    "per seed %",
    "Δ bins, points [95% CI]",
    "Δ per seed",
    "epochs",
    "groups",
    "wall time / run",
)


def render(results, output) -> None:
    """The Markdown table and the three plots of `results`."""
    md, png, paired, groups = report.output_paths(
        output, ".md", ".png", "_paired.png", "_groups.png"
    )
    report.write_text(md, markdown(results))
    s, rows = results["settings"], results["rows"]
    markers = {"plain": "o", "swn": "s", "search": "D"}
    done = [r for r in rows if r["accuracy"]]
    report.plot_points(
        [
            {
                "x": r["params_mean"],
                "y": 100 * r["accuracy_mean"],
                "yerr": 100 * (r["accuracy_std"] or 0.0),
                "marker": markers[METHODS[r["method"]][1]],
                "filled": r["network"] != "ensemble",
                "label": f"{r['network_label']}: {_row_name(r)}"
                + _budget(r, " @ {:.0%}", ""),
            }
            for r in done
        ],
        png,
        xlabel="trainable parameters",
        ylabel="held-out accuracy (%), mean ± std over seeds",
        title=f"{s['epochs']} epochs on {s['n_train']:,} images "
        f"({os.path.basename(s['data'])})"
        + (", smoke mode" if s["smoke"] else ""),
    )
    report.plot_intervals(
        [
            {
                "values": 100 * np.asarray(r["paired_diff"]),
                "mean": 100 * r["paired_mean"],
                "low": _points(r["paired_low"]),
                "high": _points(r["paired_high"]),
                "label": f"{r['network_label']}: {_row_name(r)}"
                + _budget(r, " @ {:.0%}", "")
                + f" ({'/'.join(map(str, _epochs(r)))} epochs)",
            }
            for r in rows
            if r.get("paired_diff")
        ],
        paired,
        xlabel="accuracy − bins (points), per seed; mean, 95% CI",
    )
    first = {}  # the grouping of the first seed of every main SWN row
    for key, run in sorted(results["runs"].items()):
        if (run.get("policy") or {}).get("groups") and run["network"] == "main":
            at = f"{run['method']} @ {run['budget_fraction']:.0%}"
            first.setdefault(at, run["policy"]["groups"][0])
    report.plot_labels(
        first,
        groups,
        xlabel="member-0 layer id (stem first)",
        title="Group of every layer, per method (first seed)",
    )


def networks_of(settings: dict) -> dict:
    """`{"main": ..., "ensemble": ...}` of a results file's settings: each
    with the `label` and `plain_params` (unshared trainable count) the
    rows show."""
    from keras_swn.models import WideResNet

    shape = tuple(settings["input_shape"])
    nets = {"main": [(settings["depth"], settings["width"])]}
    if settings["ensemble_members"]:
        members = [m.split("-") for m in settings["ensemble_members"]]
        nets["ensemble"] = [(int(d), int(w)) for d, w in members]
    out = {}
    for name, members in nets.items():
        wrns = [WideResNet(d, w) for d, w in members]
        out[name] = types.SimpleNamespace(
            label=" + ".join(w.name for w in wrns),
            plain_params=sum(
                w.unshared_params(
                    shape, settings["num_classes"]
                ).params_unshared
                for w in wrns
            ),
        )
    return out


def report_only(output: str) -> dict:
    """Re-render the .md and .png of the results JSON `output` (only read:
    a run may be writing it); returns the results with their rows."""
    results = report.read_json(report.output_paths(output, ".json")[0])
    results["rows"] = summarise(results, networks_of(results["settings"]))
    render(results, output)
    return results


def describe(record) -> str:
    """One run in a log line: accuracy, parameters, wall time."""
    acc = record["member_accuracy"]
    text = f"accuracy {100 * acc[0]:.1f}%"
    if len(acc) > 1:
        text = (
            f"ensemble accuracy {100 * record['ensemble_accuracy']:.1f}% "
            f"(members {' / '.join(f'{100 * a:.1f}' for a in acc)})"
        )
    return (
        f"{text}, {record['trainable_params']:,} trainable parameters, "
        f"{record['wall_seconds']:.0f} s"
    )
