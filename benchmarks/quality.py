"""Accuracy per parameter on real images: SWN against plain Keras WRNs.

Trains every row (`quality_report.METHODS`) with one recipe on the images
of an `.npz` (`x`, `y`; e.g. the CIFAR-10 subset of `../shared/data`) and
writes a JSON file (rewritten after every run), a Markdown table and plots
(`quality_report`): per row the trainable parameters, the accuracy over
seeds, its paired difference to the `bins` row of the same network and
budget, the total training epochs and the wall time. Data, pairing and
baselines: `paired` (with `--eval_data` every run trains on all of
`--data` and is evaluated on that file; else `--data` is split 80/20 with
`--split_seed`). Recipe of every row: `keras_swn.search.TrainingRecipe`'s
`ReferenceSGD`, a cosine rate from `--learning_rate` to 0 over the row's
epochs, set per epoch; searched rows add `--search_epochs` at the constant
initial rate. Budgets are fractions of the plain network's convolution
parameters. Resumable: rerunning with the same `--output` skips the runs
it holds (a killed search resumes in `<stem>_runs/`); the settings that
change results must match the file's. `--report_only` rewrites the
Markdown and plots from the JSON (only read); `--smoke` is a one-minute
check. The method is on the benchmarks page of the documentation.

Usage (`--help` lists every flag):
    python benchmarks/quality.py --data ../shared/data/cifar10_train_10k.npz
        [--output quality.json] [--depth 16] [--width 1] [--epochs 10]
        [--budget_fractions 0.3 ...] [--methods plain bins ...] [--smoke]
    python benchmarks/quality.py --report_only --output quality.json
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import paired  # noqa: E402
import report  # noqa: E402
from quality_report import METHODS  # noqa: E402
from quality_report import describe  # noqa: E402
from quality_report import render  # noqa: E402
from quality_report import report_only  # noqa: E402
from quality_report import summarise  # noqa: E402

_FORMAT, _VERSION = "keras_swn.benchmarks.quality", 2
MAIN_METHODS = tuple(
    "plain plain_narrow plain_matched bins bins_matched search parameter "
    "random reference_init layer_init".split()
)
ENSEMBLE_METHODS = ("plain", "search")
_ANY = sorted(METHODS)
_ENSEMBLE_ANY = sorted(m for m, v in METHODS.items() if v[3])
#: SearchAndRefine arguments of the searched methods.
_SEARCH_KWARGS = {
    "search": {},
    "search_no_refine": {"sharing": "learned_no_refine"},
    "search_reference": {"reference_compatible": True},
    "parameter": {"signal": "parameter"},
    "gradient_weight": {"signal": "gradient+weight"},
    "bins_hard": {"sharing": "bins_hard"},
}
#: Settings that change results: a resumed output file must match them.
_RESULT_SETTINGS = (
    "data eval_data pairing split_seed n_train n_val depth width "
    "ensemble_members num_bins epochs search_epochs refine_after batch_size "
    "learning_rate weight_decay augmentation backend threshold_schedule"
).split()
_SMOKE = dict(
    depth=10, width=1, ensemble_members="10-1,10-1", budget_fractions=[0.8],
    ensemble_budget_fraction=0.8, epochs=2, search_epochs=1, refine_after=1,
    seeds=[0],
)  # fmt: skip
_DEFAULTS = dict(
    depth=16, width=1, ensemble_members="16-1,16-1", budget_fractions=[0.3],
    ensemble_budget_fraction=0.3, epochs=10, search_epochs=2,
    refine_after=None, seeds=[0, 1],
)  # fmt: skip
_SMOKE_SUBSET = (256, 64)  # training, evaluation images
_FILE = dict(
    fmt=_FORMAT, version=_VERSION, compared=_RESULT_SETTINGS,
    what="quality benchmark",
)  # fmt: skip


def log(text: str) -> None:
    print(f"[quality] {text}", flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--data", help="the training .npz with `x` and `y` (required)")
    add("--eval_data", help="an evaluation .npz (default: 20%% of --data)")
    add("--report_only", action="store_true", help="rewrite .md/.png only")
    add("--output", default="quality.json", help="the JSON (.md, .png too)")
    add("--depth", type=int, help="main WRN depth (6n + 4)")
    add("--width", type=int, help="main WRN widening factor")
    add("--budget_fractions", type=float, nargs="+", help="of the convs")
    add("--methods", nargs="*", default=list(MAIN_METHODS), choices=_ANY)
    add("--ensemble_members", help="e.g. 16-1,16-1; '' for no ensemble")
    add("--ensemble_budget_fraction", type=float)
    add("--ensemble_methods", nargs="*", choices=_ENSEMBLE_ANY)
    add("--num_bins", type=int, default=4)
    add("--threshold_schedule", choices=("fill", "split", "step"))
    add("--epochs", type=int, help="training epochs of every row")
    add("--search_epochs", type=int, help="extra epochs of searched rows")
    add("--refine_after", type=int, help="default: max(1, epochs // 10)")
    add("--batch_size", type=int, default=128)
    add("--learning_rate", type=float, default=0.1)
    add("--weight_decay", type=float, default=5e-4)
    add("--seeds", type=int, nargs="+")
    add("--split_seed", type=int, default=0)
    add("--smoke", action="store_true", help="WRN-10-1 on 256 images")
    add("--overwrite", action="store_true", help="discard --output's runs")
    add("--verbose", action="store_true", help="show Keras progress")
    args = parser.parse_args(argv)
    if not args.data and not args.report_only:
        parser.error("--data is required (unless --report_only)")
    if args.ensemble_methods is None:
        args.ensemble_methods = list(ENSEMBLE_METHODS)
    for name, value in (_SMOKE if args.smoke else _DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.refine_after is None:
        args.refine_after = max(1, args.epochs // 10)
    if args.epochs < 1 or args.search_epochs < 0:
        parser.error("--epochs must be >= 1 and --search_epochs >= 0")
    chosen = args.methods + args.ensemble_methods
    refining = [m for m in chosen if METHODS[m][1] == "search"]
    if [m for m in refining if m != "search_no_refine"] and not (
        1 <= args.refine_after < args.epochs
    ):
        parser.error(
            "the refining methods need 1 <= --refine_after < --epochs; "
            f"got refine_after={args.refine_after}, epochs={args.epochs}"
        )
    for m in refining:
        if m != "bins_hard" and args.search_epochs < 1:
            parser.error(f"method {m!r} needs --search_epochs >= 1")
    args.methods = list(dict.fromkeys(args.methods))
    args.ensemble_methods = list(dict.fromkeys(args.ensemble_methods))
    args.members, text = [], args.ensemble_members
    for item in text.split(",") if text else []:
        try:
            args.members.append(tuple(int(v) for v in item.split("-")))
        except ValueError:
            parser.error(f"--ensemble_members: bad member {item!r}")
    return args


class Network:
    """The main network or the ensemble: builders, budgets, plain sizes."""

    def __init__(self, name, members, data, num_bins):
        from keras_swn.models import WideResNet

        self.name, self.members = name, list(members)  # "main"/"ensemble"
        self.wrns = [WideResNet(d, w) for d, w in self.members]
        self.label = " + ".join(b.name for b in self.wrns)
        shape, classes = data.input_shape, data.num_classes
        self.unshared = [w.unshared_params(shape, classes) for w in self.wrns]
        self.conv_params = sum(u.conv_params_unshared for u in self.unshared)
        self.plain_params = sum(u.params_unshared for u in self.unshared)
        self.specs = [
            s
            for i, b in enumerate(self.wrns)
            for s in b.layer_specs(shape, member=i)
        ]
        self.num_bins = num_bins

    def budget(self, fraction: float) -> int:
        return int(round(fraction * self.conv_params))

    def bins(self):
        import keras_swn

        return keras_swn.SharingPolicy.from_bins(
            self.specs, self.num_bins, coefficients="per_layer"
        )

    def check(self, fraction: float) -> None:
        """Exit unless the budget pays for one template per bank."""
        try:
            self.bins_report(fraction)
        except ValueError as e:
            raise SystemExit(
                f"Budget fraction {fraction} is too small for {self.label} "
                f"with {self.num_bins} initial bins: {e}"
            ) from None

    def bins_report(self, fraction: float):
        """The `BudgetReport` of the `bins` SWN (raises if over budget)."""
        import keras_swn

        budget = self.budget(fraction)
        plan = keras_swn.BankPlan.create(self.specs, self.bins(), budget)
        return keras_swn.BudgetReport.create(plan, self.unshared)


def _run_key(network, method, fraction, seed):
    budget = f"b{fraction:.2f}" if METHODS[method][2] else "full"
    return f"{network}/{method}/{budget}/seed{seed}"


def _recipe(args):
    """The `TrainingRecipe` of every row (the rate is set per epoch)."""
    from keras_swn.search import TrainingRecipe

    lr, decay = args.learning_rate, args.weight_decay
    return TrainingRecipe(
        learning_rate=lr, schedule="cosine", weight_decay=decay
    )


def total_epochs(args, method: str) -> int:
    """Training epochs a row pays for: final + search epochs."""
    searches = METHODS[method][1] == "search" and method != "bins_hard"
    extra = searches or method == "bins_matched"
    return args.epochs + (args.search_epochs if extra else 0)


def _fit(args, model, data, seed, epochs=None, outputs=0):
    """Train `model` on the paired batches of `seed`, and evaluate it."""
    ds, order = data.train(seed, args.batch_size, outputs=outputs)
    epochs = epochs or args.epochs
    model.fit(
        ds,
        epochs=epochs,
        callbacks=[paired.epoch_schedule(args.learning_rate, epochs, order)],
        shuffle=False,  # the dataset shuffles, seeded
        verbose=2 if args.verbose else 0,
    )
    return paired.evaluate(model, data, args.batch_size)


def run_plain(args, data, net, method, fraction, seed, results):
    import keras

    shape, classes = data.input_shape, data.num_classes
    depths, widths = [d for d, _ in net.members], [w for _, w in net.members]
    extra = {}
    if method == "plain_narrow":
        widths = [1]
    elif method == "plain_matched":
        target = net.bins_report(fraction).trainable_total
        k = paired.matched_width(depths[0], target, shape[-1], classes)[0]
        widths, extra = [k], {"matched_to": int(target), "width": k}
    channels = [paired.wrn_channels(w) for w in widths]
    keras.utils.set_random_seed(seed)
    members = [
        paired.plain_wrn(
            d, ch, shape, classes, seed=seed * 10 + i, name=f"member_{i}"
        )
        for i, (d, ch) in enumerate(zip(depths, channels))
    ]
    model = members[0]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if len(members) > 1:
        inputs = keras.Input(shape)
        model = keras.Model(inputs, [m(inputs) for m in members])
        loss = [loss] * len(members)
    model.compile(_recipe(args).optimizer(), loss)
    many = len(members) if len(members) > 1 else 0
    accuracy, ensemble = _fit(args, model, data, seed, outputs=many)
    names = [
        f"WRN-{d}-{w:g}"
        + ("" if float(w).is_integer() else f" ({'-'.join(map(str, ch))})")
        for d, w, ch in zip(depths, widths, channels)
    ]
    return {
        "members": names,
        "channels": channels,
        "trainable_params": paired.trainable_params(model),
        "member_accuracy": accuracy,
        "ensemble_accuracy": ensemble,
        **extra,
    }


def _random_run(net, fraction, seed, results):
    """`(policy, record fields)` of a `random` row."""
    search_key = _run_key(net.name, "search", fraction, seed)
    found = results["runs"].get(search_key)
    if found is None:
        raise ValueError(
            f"method 'random' needs the result of {search_key} (its "
            "group count): run 'search' for this network, budget and "
            "seed first (list it before 'random')."
        )
    bins, counts = net.bins().groups, {}
    for g, b in zip(found["policy"]["groups"][0], bins[0]):
        counts.setdefault(b, set()).add(g)  # distinct groups in every bin
    counts = {b: len(v) for b, v in counts.items()}
    seeds = [seed, int(round(fraction * 1000)), 17]
    budget = net.budget(fraction)
    policy, draws = paired.random_policy(net.specs, bins, budget, counts, seeds)
    return policy, {
        "groups_per_bin": {str(b): c for b, c in sorted(counts.items())},
        "draws": draws,
        "same_as_bins": paired.same_partition(policy.groups, bins),
        "same_as_search": paired.same_partition(
            policy.groups, found["policy"]["groups"]
        ),
    }


def run_swn(args, data, net, method, fraction, seed, results):
    import keras

    import keras_swn

    kwargs, extra = {}, {}
    if method in ("reference_init", "layer_init"):
        kwargs["template_fan_in"] = 9 if method == "reference_init" else "layer"
    if method == "random":
        kwargs["policy"], extra = _random_run(net, fraction, seed, results)
    keras.utils.set_random_seed(seed)
    model = keras_swn.SWNModel(
        members=net.wrns,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        budget=net.budget(fraction),
        num_bins=args.num_bins,
        seed=seed,
        **kwargs,
    )
    _recipe(args).compile(model)
    epochs = total_epochs(args, method)
    members, ensemble = _fit(args, model, data, seed, epochs=epochs)
    return {**_swn_record(model, net, fraction, members, ensemble), **extra}


def _swn_record(model, net, fraction, members, ensemble):
    report_ = model.budget_report()
    return {
        "members": [b.name for b in net.wrns],
        "budget": net.budget(fraction),
        "trainable_params": paired.trainable_params(model),
        "report_trainable_total": int(report_.trainable_total),
        "template_fan_in": model.template_fan_in,
        "groups": model.policy.num_groups,
        "coefficient_vectors": int(report_.coefficient_vectors),
        "policy": model.policy.to_dict(),
        "member_accuracy": members,
        "ensemble_accuracy": ensemble,
    }


def run_search(args, data, net, method, fraction, seed, results, runs_dir):
    import keras

    from keras_swn.search import SearchAndRefine

    keras.utils.set_random_seed(seed)
    project = _run_key(net.name, method, fraction, seed).replace("/", "_")
    resumed = os.path.exists(os.path.join(runs_dir, project, "state.json"))
    kwargs = dict(_SEARCH_KWARGS[method])
    if args.threshold_schedule and method != "search_reference":
        kwargs["threshold_schedule"] = args.threshold_schedule
    search = SearchAndRefine(
        members=net.wrns,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        budget=net.budget(fraction),
        directory=runs_dir,
        project_name=project,
        overwrite=False,
        seed=seed,
        num_bins=args.num_bins,
        batch_size=args.batch_size,
        plots=False,
        **kwargs,
    )
    ds, order = data.train(seed, args.batch_size)
    search.search(
        ds,
        None,
        search_epochs=0 if method == "bins_hard" else args.search_epochs,
        epochs=args.epochs,
        refine_after=args.refine_after,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        schedule="cosine",  # recorded; the callback sets the rate
        weight_decay=args.weight_decay,
        callbacks=[
            paired.epoch_schedule(
                args.learning_rate, args.epochs, order, search
            )
        ],
        verbose=2 if args.verbose else 0,
    )
    model = search.get_best_models()[0]
    members, ensemble = paired.evaluate(model, data, args.batch_size)
    record = _swn_record(model, net, fraction, members, ensemble)
    seconds: dict = {}  # per phase (training around refine is summed)
    for p in search.results().get("phases", []):
        if p.get("seconds") is not None and "phase" in p:
            name = p["phase"]
            seconds[name] = round(seconds.get(name, 0.0) + p["seconds"], 1)
    record.update(
        template_fan_in=search.template_fan_in,
        sharing=search.sharing.value,
        signal=search.signal,
        resumed=resumed,
        phases=seconds,
    )
    result = search.search_result()
    if result is not None:
        record["search"] = {
            "threshold": result.threshold,
            "thresholds_tried": result.iterations,
            "need": result.need,
            "groups": result.num_groups,
        }
    refine = os.path.join(runs_dir, project, "refine.json")
    if os.path.exists(refine):
        r = report.read_json(refine)
        keys = ("vectors_before", "vectors_after")
        record["refine"] = {k: r.get(k) for k in keys}
    return record


_RECIPE = (
    "num_bins epochs search_epochs refine_after batch_size learning_rate "
    "weight_decay"
).split()


def _settings(args, data) -> dict:
    import keras

    return {
        "data": os.path.abspath(args.data),
        "eval_data": args.eval_data and os.path.abspath(args.eval_data),
        "split_seed": None if args.eval_data else args.split_seed,
        "n_train": int(len(data.y)),
        "n_val": int(len(data.y_val)),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "depth": args.depth,
        "width": args.width,
        "ensemble_members": [f"{d}-{w}" for d, w in args.members],
        **{k: getattr(args, k) for k in _RECIPE},
        "optimizer": "keras_swn.search.ReferenceSGD via TrainingRecipe "
        "(SGD, Nesterov 0.9, coupled L2 on decayed_variables: not the "
        "coefficients)",
        "schedule": "cosine from learning_rate to 0 over epochs, set per "
        "epoch; search-training epochs at the constant learning_rate",
        "augmentation": paired.AUGMENTATION,
        "pairing": paired.PAIRING,
        "backend": keras.backend.backend(),
        "smoke": bool(args.smoke),
        "threshold_schedule": args.threshold_schedule,
    }


def plan_runs(args, networks) -> tuple[list, list[str]]:
    """`(runs, notes)`: runs are `(network, method, fraction, seed)`, each
    `random` run after the `search` run of its seed and budget."""
    runs, notes = [], []
    rows = {
        "main": (args.methods, args.budget_fractions),
        "ensemble": (args.ensemble_methods, [args.ensemble_budget_fraction]),
    }
    for seed in args.seeds:
        for name in networks:
            for method in rows[name][0]:
                if method == "plain_narrow" and args.width == 1:
                    note = (
                        f"plain_narrow skipped: WRN-{args.depth}-1 is the "
                        "full plain network (width 1)."
                    )
                    notes += [] if note in notes else [note]
                    continue
                at = rows[name][1] if METHODS[method][2] else [None]
                runs += [(name, method, f, seed) for f in at]
    ordered = [r for r in runs if r[1] != "random"]
    for r in [r for r in runs if r[1] == "random"]:
        after = [
            i
            for i, o in enumerate(ordered)
            if o[0] == r[0] and o[1] == "search" and o[2:] == r[2:]
        ]
        ordered.insert(after[0] + 1 if after else len(ordered), r)
    return ordered, notes


def main(argv=None) -> dict:
    """Run (or resume) the table; returns the results dict."""
    args = parse_args(argv)
    if not args.verbose:  # tf.function retracing notices and the like
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # SearchAndRefine fits with shuffle=True; the dataset shuffles itself.
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    if args.report_only:
        results = report_only(args.output)
        log(f"wrote the .md and the plots from {args.output}")
        return results
    import keras

    subset = _SMOKE_SUBSET if args.smoke else None
    data = paired.Data(args.data, args.split_seed, subset, args.eval_data)
    networks = {
        "main": Network("main", [(args.depth, args.width)], data, args.num_bins)
    }
    if args.members and args.ensemble_methods:
        networks["ensemble"] = Network(
            "ensemble", args.members, data, args.num_bins
        )
    for name, fractions in (
        ("main", args.budget_fractions),
        ("ensemble", [args.ensemble_budget_fraction]),
    ):
        for fraction in fractions if name in networks else []:
            networks[name].check(fraction)
    path, runs_dir = report.output_paths(args.output, ".json", "_runs")
    settings = _settings(args, data)
    results = None
    if not args.overwrite:
        results = report.read_results(path, settings=settings, **_FILE)
    if results is None:
        if os.path.isdir(runs_dir):
            shutil.rmtree(runs_dir)
        results = {"format": _FORMAT, "version": _VERSION, "runs": {}}
    command = sys.argv if argv is None else ["quality.py", *argv]
    results.update(
        settings=settings,
        machine=report.machine(),
        command=" ".join([os.path.basename(command[0]), *command[1:]]),
        errors={},
    )
    runs, results["notes"] = plan_runs(args, networks)
    keys = [_run_key(n, m, f or 0.0, s) for n, m, f, s in runs]
    done = [k for k in results.get("order", []) if k in results["runs"]]
    results["order"] = list(dict.fromkeys(done + keys))
    todo = [(k, r) for r, k in zip(runs, keys) if k not in results["runs"]]
    log(
        f"{len(keys)} runs, {len(keys) - len(todo)} already in "
        f"{path}; {len(todo)} to run ({settings['backend']})"
    )

    def write():
        results["updated"] = report.now()
        results["rows"] = summarise(results, networks)
        report.write_json(path, results)
        render(results, args.output)

    def run(key, job):
        name, method, fraction, seed = job
        kind, row = METHODS[method][1], (networks[name], method, fraction)
        if kind == "plain":
            record = run_plain(args, data, *row, seed, results)
        elif kind == "swn":
            record = run_swn(args, data, *row, seed, results)
        else:
            record = run_search(args, data, *row, seed, results, runs_dir)
        record.update(
            key=key,
            network=name,
            method=method,
            budget_fraction=fraction if METHODS[method][2] else None,
            seed=seed,
            epochs_total=total_epochs(args, method),
        )
        return record

    def free():  # the previous run's graphs
        keras.utils.clear_session()
        gc.collect()

    write()
    report.run_pending(
        results, todo, run, write=write, log=log, describe=describe,
        before=free, verbose=args.verbose,
    )  # fmt: skip
    log(f"wrote {path} and its .md and .png")
    if results["errors"]:
        log(f"{len(results['errors'])} runs failed; rerun to retry them.")
    return results


if __name__ == "__main__":
    outcome = main()
    sys.exit(1 if outcome.get("errors") else 0)
