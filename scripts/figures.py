"""Draw every figure of the documentation site into docs/img/.

One script, so the figures can be redrawn whenever the code or the
benchmark data change:

    python scripts/figures.py            # every figure
    python scripts/figures.py --only home benchmarks   # some of them
    python scripts/figures.py --fresh    # rerun the digits search too

Sources, none of them hand-typed numbers:

- the diagrams (bank -> kernel, the stacking chain, the search and
  refine pipelines) take their shapes and sizes from keras_swn's own
  planning (`BankPlan` of a WRN-16-2, `BudgetReport`);
- the search plots (similarity per bin, group map, refine cosines, the
  anytime curve) come from a small real `SearchAndRefine` run on the 8x8
  digits that ship with the package (about two minutes on a CPU; cached
  under build/figures-run/, `--fresh` reruns it), drawn with the
  library's own plotting functions;
- the results figures (home page, benchmarks page, budget guide) are read
  from the JSON files in benchmarks/results/.

Diagrams are SVG; plots are PNG at 2x (200 dpi). Output is deterministic:
fixed seeds, no dates in the files, a fixed SVG hash salt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "keras_swn"
matplotlib.rcParams["svg.fonttype"] = "path"
matplotlib.rcParams["font.size"] = 10

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
IMG = os.path.join(ROOT, "docs", "img")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
RUN_DIR = os.path.join(ROOT, "build", "figures-run")
DPI = 200  # PNG at 2x of matplotlib's 100 dpi
PALETTE = ["#3f51b5", "#ff9800", "#4caf50", "#e91e63", "#00acc1", "#8d6e63"]
LIGHT = ["#9fa8da", "#ffcc80", "#a5d6a7", "#f48fb1", "#80deea", "#bcaaa4"]
GREY = "#9e9e9e"


# -- writing ---------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, name: str) -> str:
    """Write `fig` under docs/img/ (SVG or PNG by the extension)."""
    path = os.path.join(IMG, name)
    tmp = path + ".tmp"
    if name.endswith(".svg"):
        fig.savefig(tmp, format="svg", metadata={"Date": None})
    else:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    os.replace(tmp, path)
    print("wrote", os.path.relpath(path, ROOT))
    return path


def box(ax, x, y, w, h, text, *, color="#e8eaf6", edge="#3f51b5", size=9):
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor=edge,
            linewidth=1.2,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, *, text=None, color="#424242", offset=(0, 0.12)):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            color=color,
            linewidth=1.2,
            shrinkA=2,
            shrinkB=2,
        )
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2 + offset[0],
            (start[1] + end[1]) / 2 + offset[1],
            text,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#424242",
        )


def canvas(width, height, xmax, ymax):
    fig = new_figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.axis("off")
    return fig, ax


def read_json(name: str):
    with open(os.path.join(RESULTS, name), encoding="utf-8") as f:
        return json.load(f)


# -- keras_swn's own planning of a WRN-16-2 --------------------------------


def wrn16_2_plan(budget: int = 350_000):
    """The search-phase plan of one WRN-16-2 on CIFAR (4 bins)."""
    from keras_swn.bank.plan import BankPlan
    from keras_swn.models import WideResNet
    from keras_swn.policy import SharingPolicy

    specs = WideResNet(16, 2).layer_specs((32, 32, 3))
    policy = SharingPolicy.from_bins(specs, 4, coefficients="per_bank")
    return BankPlan.create(specs, policy, budget)


KX, KY = 14.0, 1.4


def fig_templates() -> None:
    """Bank -> coefficients -> SuperWeight -> kernel, for one real layer."""
    plan = wrn16_2_plan()
    recipe = plan.layer(0, 1)  # a (32, 16, 3, 3) conv: two width levels
    out, cin, kh, kw = recipe.shape
    chain = plan.chains[recipe.group]
    kscale = 4.6 / max(out, cin)
    fig, ax = canvas(9.0, 4.4, 18, 8.8)
    ax.text(
        0.2,
        8.4,
        f"WRN-16-2, layer {recipe.layer_id}: a {kh}x{kw} convolution, "
        f"{cin} -> {out} channels, group {recipe.group}, "
        f"{recipe.num_levels} width levels",
        fontsize=10,
        weight="bold",
    )
    y = 6.2
    for w in range(recipe.num_levels):
        bank = plan.banks[(recipe.group, w)]
        k = min(bank.templates, plan.bank_size)
        row_y = y - 2.9 * w
        color = PALETTE[w]
        ax.text(
            0.2,
            row_y + 1.15,
            f"bank ({recipe.group}, {w}): {bank.templates} templates "
            f"x {bank.seg:,} parameters",
            fontsize=8.5,
        )
        for t in range(k):
            ax.add_patch(
                Rectangle(
                    (0.2 + t * 0.75, row_y),
                    0.62,
                    0.9,
                    facecolor=color,
                    alpha=0.35 + 0.55 * (t + 1) / k,
                    edgecolor="white",
                )
            )
            ax.text(
                0.51 + t * 0.75,
                row_y + 0.45,
                f"T{t + 1}",
                ha="center",
                va="center",
                fontsize=7,
                color="white",
            )
        # coefficients
        cx = 6.3
        ax.text(cx, row_y + 1.15, f"{k} coefficients", fontsize=8.5)
        for t in range(k):
            ax.add_patch(
                Rectangle(
                    (cx + t * 0.32, row_y + 0.2),
                    0.28,
                    0.5,
                    facecolor="#fff3e0",
                    edgecolor="#ff9800",
                )
            )
        ax.text(
            cx + k * 0.32 + 0.1,
            row_y + 0.45,
            "a",
            fontsize=9,
            va="center",
            style="italic",
        )
        arrow(ax, (0.2 + k * 0.75, row_y + 0.45), (cx - 0.05, row_y + 0.45))
        sx = 10.2
        arrow(
            ax,
            (cx + k * 0.32 + 0.5, row_y + 0.45),
            (sx, row_y + 0.45),
            text=r"$\sum_k a_k T_k$",
        )
        box(
            ax,
            sx,
            row_y,
            2.6,
            0.9,
            f"SuperWeight\n{bank.seg:,} values",
            color=color + "33",
            edge=color,
            size=8,
        )
        lo, li = chain.levels[w].shape
        prev = chain.levels[w - 1].out if w else 0
        target_y = KY + (out - (min(lo, out) + prev) / 2) * kscale
        arrow(ax, (sx + 2.6, row_y + 0.45), (KX - 0.05, target_y))
    # the kernel, to scale in (out, in)
    kx, ky, scale = KX, KY, kscale
    for w in reversed(range(recipe.num_levels)):
        o, i = chain.levels[w].shape
        o, i = min(o, out), min(i, cin)
        ax.add_patch(
            Rectangle(
                (kx, ky + (out - o) * scale),
                i * scale,
                o * scale,
                facecolor=LIGHT[w],
                edgecolor="white",
            )
        )
    ax.add_patch(
        Rectangle(
            (kx, ky),
            cin * scale,
            out * scale,
            fill=False,
            edgecolor="#212121",
        )
    )
    ax.text(
        kx + cin * scale / 2,
        ky - 0.45,
        f"kernel ({kh}, {kw}, {cin}, {out})\nin channels ->",
        ha="center",
        va="top",
        fontsize=8,
    )
    ax.text(
        kx + cin * scale + 0.15,
        ky + out * scale / 2,
        "out channels",
        ha="left",
        va="center",
        fontsize=8,
        rotation=90,
    )
    save(fig, "templates.svg")


def fig_stacking_chain() -> None:
    """Every group's chain of WRN-16-2, each panel to scale."""
    plan = wrn16_2_plan()
    groups = sorted(plan.chains)
    fig = new_figure(2.6 * len(groups), 3.4)
    for n, g in enumerate(groups):
        chain = plan.chains[g]
        ax = fig.add_subplot(1, len(groups), n + 1)
        big_o = max(lv.out for lv in chain.levels)
        big_i = max(lv.in_ for lv in chain.levels)
        for w in reversed(range(len(chain.levels))):
            lv = chain.levels[w]
            ax.add_patch(
                Rectangle(
                    (0, 0),
                    lv.in_,
                    lv.out,
                    facecolor=LIGHT[w],
                    edgecolor="white",
                    linewidth=1.5,
                    label=f"level {w}: {lv.out}x{lv.in_}, "
                    f"+{lv.seg:,} per template",
                )
            )
        ax.set_xlim(0, big_i)
        ax.set_ylim(big_o, 0)
        ax.set_aspect("equal")
        ax.xaxis.tick_top()
        ax.set_xlabel("in channels", fontsize=8)
        ax.xaxis.set_label_position("top")
        if n == 0:
            ax.set_ylabel("out channels", fontsize=8)
        ax.tick_params(labelsize=7)
        kh, kw = chain.kernel
        users = sum(1 for r in plan.layers.values() if r.group == g)
        ax.set_title(
            f"group {g}: {kh}x{kw}, {users} layers",
            fontsize=9,
            y=-0.16 if big_o / big_i < 1.5 else -0.12,
        )
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(
            handles[::-1],
            labels[::-1],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            fontsize=7,
            frameon=False,
        )
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.3, wspace=0.3)
    save(fig, "stacking_chain.svg")


def fig_search_pipeline() -> None:
    """The search as a flowchart."""
    fig, ax = canvas(9.0, 4.2, 18, 8.4)
    steps = [
        ("1. initial bins", "layers dealt into\nnum_bins by depth"),
        ("2. search training", "one vector per bank,\nsearch_epochs"),
        ("3. gradient capture", "dL/dkernel, one batch,\nBatchNorm frozen"),
        ("4. similarity", "cosine per pair\nof a bin's layers"),
    ]
    w, h = 3.8, 1.9
    for n, (title, text) in enumerate(steps):
        x = 0.3 + n * 4.45
        box(ax, x, 5.6, w, h, f"{title}\n\n{text}", size=8.5)
        if n:
            arrow(ax, (x - 0.65, 6.55), (x, 6.55))
    lower = [
        ("7. final training", "SWNModel(policy=...);\nthen refine"),
        (
            "6. attach members",
            "same depth: by position;\nnew depth: most similar",
        ),
        ("5. clustering", "split groups while one\ntemplate per bank fits"),
    ]
    for n, (title, text) in enumerate(lower):
        x = 0.3 + (n + 1) * 4.45
        color = "#e8f5e9" if n == 0 else "#e8eaf6"
        edge = "#4caf50" if n == 0 else "#3f51b5"
        box(
            ax,
            x,
            1.3,
            w,
            h,
            f"{title}\n\n{text}",
            color=color,
            edge=edge,
            size=8.5,
        )
        if n < 2:
            arrow(ax, (x + 4.45, 2.25), (x + w, 2.25))
    arrow(ax, (0.3 + 3 * 4.45 + w / 2, 5.6), (0.3 + 3 * 4.45 + w / 2, 3.2))
    ax.text(
        2.25,
        2.25,
        "the final model\n(get_best_models)",
        ha="center",
        va="center",
        fontsize=8.5,
        style="italic",
    )
    arrow(ax, (0.3 + 4.45, 2.25), (3.9, 2.25))
    ax.text(
        9.0,
        0.45,
        "budget: the grouping's one template per bank must fit "
        "group_share of the budget; the rest buys more templates",
        ha="center",
        fontsize=8,
        color="#616161",
    )
    save(fig, "search_pipeline.svg")


def fig_refine_pipeline() -> None:
    """The refine step as a flowchart."""
    fig, ax = canvas(9.0, 2.9, 18, 5.8)
    w, h = 3.9, 2.0
    items = [
        "one pass over the\ntraining data,\nBatchNorm frozen, no step",
        "per coefficient slot:\nthat member's summed\ngradient on its vector",
        "per shared vector:\ncosine of its slots'\ngradients",
    ]
    for n, text in enumerate(items):
        x = 0.2 + n * 4.4
        box(ax, x, 3.2, w, h, text, size=8.5)
        if n:
            arrow(ax, (x - 0.5, 4.2), (x, 4.2))
    x_end = 0.2 + 2 * 4.4 + w
    box(
        ax,
        13.7,
        3.9,
        4.1,
        1.3,
        "cosine > threshold (0.9):\nkeep one vector",
        color="#e8f5e9",
        edge="#4caf50",
        size=8.5,
    )
    box(
        ax,
        13.7,
        0.6,
        4.1,
        2.0,
        "otherwise: split; the new\nowner starts from the\ncurrent value, "
        "fresh\noptimizer state",
        color="#fce4ec",
        edge="#e91e63",
        size=8.5,
    )
    arrow(ax, (x_end, 4.5), (13.7, 4.5))
    arrow(ax, (x_end - 1.0, 3.2), (13.7, 1.6))
    ax.text(
        6.5,
        1.5,
        "SWNModel.refined(policy) rebuilds the model with\n"
        "its trained values; training goes on",
        ha="center",
        fontsize=8.5,
        style="italic",
    )
    save(fig, "refine_pipeline.svg")


# -- a small real run on the digits ----------------------------------------

RUN = dict(
    members=((16, 2), (10, 2), (10, 1)),
    budget=300_000,
    train_examples=360,  # a quarter of the digits: members that err
    search_epochs=2,
    epochs=8,
    refine_after=3,
    batch_size=64,
    learning_rate=0.05,
)


def digits_search(fresh: bool = False):
    """The `SearchAndRefine` behind the search plots (resumed if done)."""
    from keras_swn.data import load_digits_dataset
    from keras_swn.models import WideResNet
    from keras_swn.search import SearchAndRefine

    (x, y), (xv, yv) = load_digits_dataset(seed=0)
    search = SearchAndRefine(
        members=[WideResNet(d, k) for d, k in RUN["members"]],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=RUN["budget"],
        directory=os.path.dirname(RUN_DIR),
        project_name=os.path.basename(RUN_DIR),
        batch_size=RUN["batch_size"],
        overwrite=fresh,
        plots=False,
        seed=0,
    )
    n = RUN["train_examples"]
    search.search(
        (x[:n], y[:n]),
        (xv, yv),
        search_epochs=RUN["search_epochs"],
        epochs=RUN["epochs"],
        refine_after=RUN["refine_after"],
        learning_rate=RUN["learning_rate"],
        schedule="cosine",
        verbose=0,
    )
    return search, (xv, yv)


def anytime_of(search, xv, yv):
    """The anytime curve of the run's final model (cached as JSON)."""
    from keras_swn import ensembles

    path = os.path.join(RUN_DIR, "anytime.json")
    model = search.get_best_models(1)[0]
    curve = ensembles.anytime_curve(model, xv, yv)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(curve.to_dict(), f, indent=1)
    return model, curve


def figs_digits(fresh: bool) -> None:
    from keras_swn.search import reporting as plots

    search, (xv, yv) = digits_search(fresh)
    result = search.search_result()
    names = [f"WRN-{d}-{k}" for d, k in RUN["members"]]
    # the similarity of the bin with the most layers
    member0 = dict(enumerate(result.groups[0]))
    b, (ids, mat) = max(result.similarity.items(), key=lambda kv: len(kv[1][0]))
    fig = plots.plot_similarity(
        ids,
        mat,
        {i: member0[i] for i in ids},
        title=f"Bin {b} of WRN-16-2 on the digits: gradient similarity",
        threshold=result.threshold,
    )
    save(fig, "search_similarity.png")
    policy = search.policy
    hard = {slot[:2]: o for slot, o in policy.coefficient_owners.items()}
    fig = plots.plot_group_map(
        policy.groups,
        member_names=names,
        hard_shared=hard,
        title="Learned groups",
    )
    save(fig, "search_groups.png")
    with open(os.path.join(search.project_dir, "refine.json")) as f:
        refine = json.load(f)
    fig = plots.plot_refine_cosines(
        _pair_cosines(refine), refine.get("threshold", 0.9)
    )
    save(fig, "refine_cosines.png")
    model, curve = anytime_of(search, xv, yv)
    curve.plot(
        os.path.join(IMG, "anytime_curve.png"),
        dpi=DPI,
        title="Anytime prediction on the digits: 3 members",
    )
    print("wrote docs/img/anytime_curve.png")
    fig_budget_bar(
        search.budget_report(),
        "budget_digits.png",
        "This run: three WRNs on the digits",
    )


def _pair_cosines(refine: dict) -> dict:
    """`refine.json`'s pairs as `RefineResult.pair_cosines`."""
    return {
        tuple(entry["bank"]): [(None, None, p[-1]) for p in entry["pairs"]]
        for entry in refine["pair_cosines"]
    }


# -- where the parameters go -----------------------------------------------


def fig_budget_bar(report, name: str, title: str) -> None:
    """Two stacked bars: the members without sharing, and the SWN."""
    d = report.to_dict()
    members = d["members"]
    fig = new_figure(7.0, 2.9)
    ax = fig.add_subplot(1, 1, 1)
    left = 0
    shades = ["#bdbdbd", "#9e9e9e", "#d6d6d6", "#8a8a8a", "#c7c7c7"]
    total_unshared = sum(m["params_unshared"] for m in members)
    for n, m in enumerate(members):
        value = m["params_unshared"]
        ax.barh(
            [1],
            [value],
            left=left,
            color=shades[n % len(shades)],
            edgecolor="white",
        )
        if value > 0.05 * total_unshared:
            ax.text(
                left + value / 2,
                1,
                m["name"],
                ha="center",
                va="center",
                fontsize=8,
            )
        left += value
    parts = [
        ("templates (the budget)", d["bank_total"], PALETTE[0]),
        ("coefficients", d["coefficient_scalars"], PALETTE[1]),
        ("BatchNorm + heads", d["unshared_trainable"], PALETTE[2]),
    ]
    left = 0
    for label, value, color in parts:
        ax.barh(
            [0], [value], left=left, color=color, label=label, edgecolor="white"
        )
        left += value
    ax.set_yticks([1, 0], ["members,\nwithout sharing", "SWN"])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("parameters")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_millions))
    ax.set_title(
        f"{title}\n{total_unshared:,} parameters without sharing, "
        f"{d['trainable_total']:,} trained",
        fontsize=9,
    )
    ax.legend(
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.3),
        ncol=3,
        frameon=False,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save(fig, name)


def _millions(v, _pos=None):
    if v == 0:
        return "0"
    return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k"


def fig_budget_paper() -> None:
    """The paper's CIFAR-100 ensemble at 18M (no model built)."""
    from keras_swn.bank.budget_report import BudgetReport
    from keras_swn.bank.plan import BankPlan
    from keras_swn.models import WideResNet
    from keras_swn.policy import SharingPolicy

    builders = [
        WideResNet(d, k) for d, k in ((28, 7), (28, 4), (16, 7), (16, 4))
    ]
    specs = [
        s
        for m, b in enumerate(builders)
        for s in b.layer_specs((32, 32, 3), member=m)
    ]
    policy = SharingPolicy.from_bins(specs, 4, coefficients="per_bank")
    plan = BankPlan.create(specs, policy, 18_000_000)
    report = BudgetReport.create(
        plan, [b.unshared_params((32, 32, 3), 100) for b in builders]
    )
    fig_budget_bar(
        report, "budget_paper.png", "Four WRNs for CIFAR-100 at an 18M budget"
    )


# -- results: from benchmarks/results/*.json --------------------------------


def _setting(data, key):
    return next(st for st in data["settings"] if st["key"] == key)


def _row(setting, method):
    return next(r for r in setting["rows"] if r["method"] == method)


def fig_home() -> None:
    """Accuracy against % of parameters, SWN and plain (the home page)."""
    data = read_json("quality_cpu.json")
    b30 = _setting(data, "e4_b30")
    points = {
        "plain WRN-16-1": [_row(b30, "plain (full)")],
        "plain, narrowed to SWN's count": [
            r for r in b30["rows"] if r["method"].startswith("plain, width")
        ],
        "SWN (search + refine)": [
            _row(b30, "SWN search + refine (gradient)"),
            _row(
                _setting(data, "e4_b50_split"), "SWN search + refine (gradient)"
            ),
            _row(
                _setting(data, "e4_b75_fill"), "SWN search + refine (gradient)"
            ),
        ],
    }
    styles = {
        "plain WRN-16-1": dict(color=GREY, marker="s", ms=9),
        "plain, narrowed to SWN's count": dict(
            color=GREY, marker="v", ms=9, mfc="white"
        ),
        "SWN (search + refine)": dict(color=PALETTE[0], marker="o", ms=8),
    }
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for label, rows in points.items():
        xs = [r["percent_of_plain"] for r in rows]
        ys = [r["accuracy_mean"] for r in rows]
        es = [r["accuracy_std"] or 0 for r in rows]
        st = styles[label]
        ax.errorbar(
            xs,
            ys,
            yerr=es,
            capsize=3,
            linestyle="-" if len(xs) > 1 else "none",
            color=st["color"],
            marker=st["marker"],
            markersize=st["ms"],
            mfc=st.get("mfc", st["color"]),
            label=label,
        )
    ax.axhline(
        points["plain WRN-16-1"][0]["accuracy_mean"],
        color=GREY,
        linestyle=":",
        linewidth=1,
    )
    ax.set_xlim(0, 108)
    ax.set_xlabel("trainable parameters, % of the plain WRN-16-1")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(
        "CIFAR-10 (10k-image subset), 4 epochs, mean ± std of seeds", fontsize=9
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save(fig, "home_accuracy_vs_params.png")


def fig_ablation() -> None:
    """The search ablation at 50% (split schedule) and the ensemble."""
    data = read_json("quality_cpu.json")
    panels = [
        ("WRN-16-1 at 50%", _setting(data, "e4_b50_split")),
        ("WRN-16-1 + WRN-16-1 at 50%", _setting(data, "e4_ens50_split")),
    ]
    fig = new_figure(8.0, 3.4)
    for n, (title, setting) in enumerate(panels):
        ax = fig.add_subplot(1, 2, n + 1)
        rows = setting["rows"]
        labels = [
            r["method"]
            .replace("SWN ", "")
            .replace(", one bank", "")
            .replace(" (gradient)", "")
            .replace(" (SSN-style)", "")
            for r in rows
        ]
        ys = [r["accuracy_mean"] for r in rows]
        es = [r["accuracy_std"] or 0 for r in rows]
        colors = [
            PALETTE[0] if "search + refine" in lb else GREY for lb in labels
        ]
        ax.barh(range(len(rows)), ys, xerr=es, color=colors, capsize=3)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(40, 56)
        ax.set_xlabel("held-out accuracy (%)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        for k, (y, e) in enumerate(zip(ys, es)):
            ax.text(40.3, k, f"{y:.1f}", va="center", fontsize=7, color="white")
    fig.tight_layout()
    save(fig, "benchmarks_ablation.png")


def _study_runs(name: str, fraction: float, network: str = "main") -> dict:
    """`{(method, seed): (accuracy %, total epochs)}` of one network and
    budget of a search-study results file (`benchmarks/quality.py
    --eval_data`); rows without a budget (the plain network) are kept."""
    path = os.path.join(RESULTS, name)
    runs = read_json(name)["runs"].values() if os.path.exists(path) else []
    return {
        (r["method"], r["seed"]): (
            100 * r["ensemble_accuracy"],
            r["epochs_total"],
        )
        for r in runs
        if r.get("network", "main") == network
        and r.get("budget_fraction") in (fraction, None)
        and "ensemble_accuracy" in r
    }


def _paired_rows(ax, rows, reference) -> list:
    """Plot each row's paired differences to the `bins` of `reference` (per
    seed, mean, 95% interval: `benchmarks/report.py`'s
    `paired_difference`) on `ax`; returns the `(y, label)` of the rows
    drawn."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from report import paired_difference

    def accuracies(runs, method):
        return {s: a for (m, s), (a, _) in sorted(runs.items()) if m == method}

    bins = accuracies(reference, "bins")
    labels = []
    for label, runs, method, color in rows:
        mine = accuracies(runs, method)
        paired = paired_difference(
            list(mine), list(mine.values()), list(bins), list(bins.values())
        )
        if paired is None:
            continue
        k = len(labels)
        diffs, mean = paired["paired_diff"], paired["paired_mean"]
        epochs = next(e for (m, _), (_, e) in runs.items() if m == method)
        labels.append((k, f"{label} ({epochs} epochs, n={len(diffs)})"))
        if paired["paired_low"] is not None:
            error = [
                [mean - paired["paired_low"]],
                [paired["paired_high"] - mean],
            ]
            ax.errorbar(mean, k, xerr=error, fmt="none", color=color, capsize=4)
        ax.plot(mean, k, "D", color=color, markersize=7)
        ax.plot(
            diffs, [k] * len(diffs), "o", color=color, alpha=0.45, markersize=4
        )
    return labels


def fig_search_study() -> None:
    """The search study: each row's paired difference to the 15-epoch bins
    of its network and budget, per seed and its mean with a 95% interval,
    by total epochs — WRN-16-1 at 40% and 60%, and a two-member ensemble
    of different depths at 40%."""
    three = _study_runs("quality_study_wrn16-1.json", 0.4)
    one = _study_runs("quality_study_wrn16-1_se1.json", 0.4)
    one60 = _study_runs("quality_study_wrn16-1_se1.json", 0.6)
    ens = _study_runs("quality_study_ens16-1_10-1.json", 0.4, "ensemble")
    search, bins = ("search + refine", PALETTE[0]), ("bins", GREY)
    plain = "plain, width-matched", PALETTE[2]
    panels = [
        ("WRN-16-1 at 40% of its parameters", three, [
            (f"{search[0]}, 3 search epochs", three, "search", search[1]),
            (f"{bins[0]}, 15 + 3 epochs", three, "bins_matched", bins[1]),
            (f"{search[0]}, 1 search epoch", one, "search", search[1]),
            (f"{bins[0]}, 15 + 1 epochs", one, "bins_matched", bins[1]),
            ("random grouping", three, "random", LIGHT[0]),
            (plain[0], one, "plain_matched", plain[1]),
        ]),
        ("WRN-16-1 at 60%", one60, [
            (f"{search[0]}, 1 search epoch", one60, "search", search[1]),
            (f"{bins[0]}, 15 + 1 epochs", one60, "bins_matched", bins[1]),
            ("random grouping", one60, "random", LIGHT[0]),
            (plain[0], one60, "plain_matched", plain[1]),
        ]),
        ("ensemble WRN-16-1 + WRN-10-1 at 40%", ens, [
            (f"{search[0]}, 1 search epoch", ens, "search", search[1]),
            (f"{bins[0]}, 15 + 1 epochs", ens, "bins_matched", bins[1]),
            ("random grouping", ens, "random", LIGHT[0]),
            ("unshared ensemble (all parameters)", ens, "plain", plain[1]),
        ]),
    ]  # fmt: skip
    panels = [p for p in panels if any(m == "bins" for m, _ in p[1])]
    heights = [len(p[2]) + 1 for p in panels]
    fig = new_figure(8.0, 0.9 + 0.34 * sum(heights))
    grid = fig.add_gridspec(len(panels), 1, height_ratios=heights)
    axes = []
    for i, (title, reference, rows) in enumerate(panels):
        ax = fig.add_subplot(grid[i], sharex=axes[0] if axes else None)
        axes.append(ax)
        labels = _paired_rows(ax, rows, reference)
        ax.axvline(0.0, color="#212121", linewidth=1)
        ticks, names = zip(*labels)
        ax.set_yticks(ticks, names, fontsize=8)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_title(f"{title}: against its 15-epoch bins", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    low, high = axes[0].get_xlim()
    axes[0].set_xlim(min(low, -3.0), max(high, 3.0))
    axes[-1].set_xlabel(
        "accuracy minus the 15-epoch bins, same seed (points; 40,000 unseen "
        "images)\nseeds (dots), their mean (diamond) and 95% interval",
        fontsize=8,
    )
    fig.tight_layout()
    save(fig, "benchmarks_search_study.png")


def fig_speed() -> None:
    """SWN / plain step-time ratios per backend (the --table runs)."""
    backends = [
        ("tensorflow", "TensorFlow"),
        ("jax", "JAX"),
        ("torch", "PyTorch"),
    ]
    cases = []
    values: dict[str, list[float]] = {}
    for key, label in backends:
        rows = read_json(f"step_time_cpu_{key}.json")["rows"]
        ratios = []
        for r in rows:
            cfg = r["config"]
            kind = "predict vs exported" if r["mode"] != "train" else "train"
            case = (
                f"{kind}, WRN-{cfg['depth']}-{cfg['width']}, "
                f"batch {r['batch_size']}"
            )
            if case not in cases:
                cases.append(case)
            ratios.append((case, r["step_time_ratio"]))
        values[label] = dict(ratios)  # type: ignore[assignment]
    fig = new_figure(8.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.26
    for n, (_, label) in enumerate(backends):
        ys = [values[label].get(c, np.nan) for c in cases]  # type: ignore
        ax.bar(
            np.arange(len(cases)) + (n - 1) * width,
            ys,
            width,
            color=PALETTE[n],
            label=label,
        )
    ax.axhline(1.0, color="#212121", linewidth=1)
    ax.set_xticks(
        range(len(cases)), [c.replace(", ", "\n") for c in cases], fontsize=7.5
    )
    ax.set_ylabel("SWN time / plain time")
    ax.set_ylim(0.8, 1.5)
    ax.set_title(
        "Step time relative to plain Keras (2-core CPU; 1.0 = as fast)",
        fontsize=9,
    )
    ax.legend(fontsize=8, ncol=3, loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, "benchmarks_speed.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    os.makedirs(IMG, exist_ok=True)
    jobs = {
        "templates": fig_templates,
        "stacking": fig_stacking_chain,
        "search": fig_search_pipeline,
        "refine": fig_refine_pipeline,
        "budget": fig_budget_paper,
        "digits": lambda: figs_digits(args.fresh),
        "home": fig_home,
        "ablation": fig_ablation,
        "study": fig_search_study,
        "speed": fig_speed,
    }
    for name in args.only or list(jobs):
        jobs[name]()
