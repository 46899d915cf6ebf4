"""keras-swn: plan, train, search and evaluate SuperWeight Networks.

Usage:
  keras-swn plan  [--members 28-7,28-4,16-7,16-4] [--budget 18000000]
                  [--bins 4] [--num_classes 100] [--input_shape 32,32,3]
                  [--policy FILE.json] [--json]
  keras-swn train [--members 10-2,10-1] [--budget N] [--bins 4]
                  [--policy FILE.json] [--coefficient_sharing per_layer]
                  [--data FILE.npz] [--epochs 5] [--batch_size 64]
                  [--learning_rate 0.05] [--schedule step|cosine]
                  [--milestones 0.3,0.6,0.8] [--gamma 0.2]
                  [--weight_decay 5e-4] [--template_fan_in kernel|layer|9]
                  [--seed 0] [--output_dir DIR]

  keras-swn search [--members 10-2,10-1] [--budget N] [--bins 4]
                  [--dataset cifar10|cifar100 | --data FILE.npz]
                  [--search_epochs 2] [--epochs 5] [--refine_after 2]
                  [--sharing learned] [--budget_check exact|proxy]
                  [the training flags of train] [--output_dir DIR] [...]
  keras-swn evaluate --model_dir DIR [--data FILE.npz]

`search` runs the whole SuperWeight pipeline (`SearchAndRefine`): search
training, gradient-similarity clustering under the budget, final training
with a refine step; it writes the policy, budget report, results, plots and
`model.keras` into `--output_dir`, and rerunning it with the same
`--output_dir` resumes an interrupted run. `evaluate` reloads a saved model
and prints each member's and the ensemble's accuracy.

`plan` prints the budget report of the search-phase model (initial bins,
one coefficient vector per bank) without building a model. `train` builds
an `SWNModel`, trains it (on scikit-learn's bundled digits unless `--data`
names an `.npz` file), evaluates it and writes `model.keras`,
`policy.json`, `budget_report.json`, `history.json` and `results.json`
into `--output_dir`. The backend is chosen by the `KERAS_BACKEND`
environment variable. `keras-swn --helpfull` lists every flag.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import Any
from typing import Callable
from typing import NamedTuple
from typing import Sequence

from absl import app
from absl import flags

from keras_swn.io_utils import atomic_write
from keras_swn.io_utils import atomic_write_json

# Nothing from Keras (or from keras_swn, whose package import loads Keras)
# is imported at module level: `--help` and flag errors stay fast, and
# only the commands that need Keras pay for it.

_DEFAULT_MEMBERS = "10-2,10-1"


class _MembersParser(flags.ArgumentParser):
    """`"28-7,16-4"` -> `[(28, 7), (16, 4)]` (WRN depth-width pairs)."""

    syntactic_help = "comma-separated WRN depth-width pairs, e.g. 28-7,16-4"

    def parse(self, argument):
        if not isinstance(argument, str):
            return list(argument)
        members = []
        for item in argument.split(","):
            parts = item.strip().split("-")
            try:
                depth, width = (int(p) for p in parts)
            except ValueError:
                raise ValueError(
                    "Expected comma-separated WRN depth-width pairs such as "
                    f"28-7,16-4; {item.strip()!r} is not one"
                ) from None
            members.append((depth, width))
        return members

    def flag_type(self):
        return "members"


class _MilestonesParser(flags.ArgumentParser):
    """`"0.3,0.6,0.8"` -> `(0.3, 0.6, 0.8)`; `"60,120"` -> `(60, 120)`."""

    syntactic_help = (
        "comma-separated epochs (ints) or fractions of --epochs (floats in "
        "(0, 1)), e.g. 0.3,0.6,0.8 or 60,120,160"
    )

    def parse(self, argument):
        if not isinstance(argument, str):
            return tuple(argument)
        if not argument.strip():
            return ()  # no milestone: a constant learning rate
        values = []
        for item in argument.split(","):
            try:
                values.append(int(item))
            except ValueError:
                try:
                    values.append(float(item))
                except ValueError:
                    raise ValueError(
                        "Expected comma-separated epochs or fractions such "
                        f"as 0.3,0.6,0.8; {item.strip()!r} is not a number"
                    ) from None
        return tuple(values)

    def flag_type(self):
        return "milestones"


class _ShapeParser(flags.ArgumentParser):
    """`"32,32,3"` -> `(32, 32, 3)`."""

    syntactic_help = "comma-separated positive ints, e.g. 32,32,3"

    def parse(self, argument):
        if not isinstance(argument, str):
            return tuple(argument)
        try:
            shape = tuple(int(p) for p in argument.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                "Expected three comma-separated positive ints (height, "
                "width, channels), e.g. 32,32,3"
            )
        return shape

    def flag_type(self):
        return "shape"


flags.DEFINE(
    _MembersParser(),
    "members",
    None,
    "The ensemble: comma-separated WRN depth-width pairs, deepest first "
    f"(default {_DEFAULT_MEMBERS}).",
)
flags.DEFINE_integer(
    "budget",
    None,
    "Template budget (bank parameters only). Default: the unshared conv "
    "parameters of the largest member, or the one-template-per-bank minimum "
    "if that is larger.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "bins", 4, "Initial bins B (swn-algorithm.md §1.3).", lower_bound=1
)
flags.DEFINE_integer(
    "num_classes",
    None,
    "Classes of every head. plan: default 100. train: default from the data.",
    lower_bound=2,
)
flags.DEFINE(
    _ShapeParser(),
    "input_shape",
    None,
    "Input image shape H,W,C. plan: default 32,32,3. train: from the data.",
)
flags.DEFINE_string(
    "policy", None, "A SharingPolicy JSON file (fixed policy; no bins)."
)
flags.DEFINE_enum(
    "coefficient_sharing",
    None,
    ["per_layer", "per_bank"],
    "Coefficients when no --policy is given: per_bank (the search-phase "
    "model: one vector per bank) or per_layer (every layer its own). "
    "Default: per_bank for plan, per_layer for train.",
)
flags.DEFINE_bool("json", False, "plan: print one JSON object, not a table.")
flags.DEFINE_string(
    "data",
    None,
    "An .npz file with x/y or x_train/y_train/x_test/y_test arrays. "
    "Default: the 8x8 digits bundled with scikit-learn.",
)
flags.DEFINE_float(
    "validation_split",
    0.2,
    "Validation fraction when the data has no separate test arrays.",
)
flags.DEFINE_bool(
    "normalize", False, "Standardise each channel with training statistics."
)
flags.DEFINE_integer("epochs", 5, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_float(
    "learning_rate",
    0.05,
    "train/search: the initial learning rate of SGD (Nesterov momentum 0.9).",
)
flags.DEFINE_enum(
    "schedule",
    None,
    ["step", "cosine"],
    "train/search: the learning-rate schedule over --epochs, set at the "
    "start of every epoch (search training replays its first epochs): step "
    "(default; times --gamma at each of --milestones) or cosine (from "
    "--learning_rate down to 0).",
)
flags.DEFINE(
    _MilestonesParser(),
    "milestones",
    None,
    "train/search: the step schedule's milestones: epochs (ints) or "
    "fractions of --epochs (floats in (0, 1)). Default 0.3,0.6,0.8 (with "
    "--reference_compatible: epochs 60,120,160); empty: a constant rate.",
)
flags.DEFINE_float(
    "gamma",
    None,
    "train/search: the step schedule's factor at each milestone (default 0.2).",
)
flags.DEFINE_float(
    "weight_decay",
    5e-4,
    "train/search: coupled L2 weight decay on every trainable variable but "
    "the coefficients.",
)
flags.DEFINE_enum(
    "template_fan_in",
    None,
    ["kernel", "layer", "9"],
    "train/search: the template initialisation: kernel (default: every "
    "composed kernel starts He-normal for its own fan-in), layer, or 9 (the "
    "reference's N(0, 2/9); the default with --reference_compatible).",
)
flags.DEFINE_integer("seed", 0, "Root seed: initial values, split, shuffling.")
flags.DEFINE_string(
    "output_dir",
    None,
    "Where train writes its files. Default: swn_runs/train-<timestamp>.",
)
flags.DEFINE_enum(
    "progress",
    "bar",
    ["bar", "epoch", "none"],
    "Training output: a progress bar, one line per epoch, or nothing.",
)

flags.DEFINE_enum(
    "dataset",
    None,
    ["digits", "cifar10", "cifar100"],
    "search/evaluate: the dataset (default: the digits bundled with "
    "scikit-learn; cifar10/cifar100 need the TFDS pipeline). Exclusive "
    "with --data.",
)
flags.DEFINE_integer(
    "search_epochs", 2, "search: search-training epochs (§2.2).", lower_bound=0
)
flags.DEFINE_integer(
    "refine_after",
    2,
    "search: final-training epochs before the refine step (§3.2).",
    lower_bound=1,
)
flags.DEFINE_enum(
    "sharing",
    "learned",
    ["learned", "learned_no_refine", "bins_hard", "soft"],
    "search: the sharing regime (swn-algorithm.md §3.3).",
)
flags.DEFINE_enum(
    "threshold_schedule",
    None,
    ["fill", "step"],
    "search: which clustering thresholds are tried: fill (default: the "
    "least-merged grouping within --group_share of the budget) or step "
    "(the reference's: from --threshold_start down by --threshold_decrement; "
    "the default with --reference_compatible).",
)
flags.DEFINE_float(
    "group_share",
    0.5,
    "search: the share of the budget one template per bank may take under "
    "--threshold_schedule=fill.",
)
flags.DEFINE_float(
    "threshold_start", 0.1, "search: the first clustering threshold (step)."
)
flags.DEFINE_float(
    "threshold_decrement", 0.05, "search: the threshold step (> 0)."
)
flags.DEFINE_enum(
    "clustering",
    None,
    ["connected_components", "reference"],
    "search: clustering rule (default connected_components).",
)
flags.DEFINE_enum(
    "signal",
    "gradient",
    ["gradient", "gradient+weight", "parameter"],
    "search: similarity signal.",
)
flags.DEFINE_integer(
    "capture_batches", 1, "search: batches of gradient capture.", lower_bound=1
)
flags.DEFINE_float("refine_threshold", 0.9, "search: refine cosine threshold.")
flags.DEFINE_float(
    "coefficient_threshold",
    None,
    "search: gate student coefficient sharing (§2.5); default off.",
)
flags.DEFINE_enum(
    "budget_check",
    None,
    ["proxy", "exact"],
    "search: the budget measure of the clustering threshold loop: exact "
    "(default: the exact one-template total, so a search that starts never "
    "fails on the budget after its training) or proxy (the reference's; "
    "the default with --reference_compatible).",
)
flags.DEFINE_enum(
    "chain_sort",
    None,
    ["stable", "reference"],
    "search: stacking chain sort (default stable).",
)
flags.DEFINE_bool(
    "reference_compatible",
    False,
    "search: the reference's clustering, chain sort, initialisation (9), "
    "budget check (proxy) and step schedule (epochs 60,120,160).",
)
flags.DEFINE_bool("plots", True, "search: write PNG plots.")
flags.DEFINE_bool(
    "run_eagerly",
    False,
    "search: train without compiling (faster for tiny runs on a CPU).",
)
flags.DEFINE_string(
    "model_dir",
    None,
    "evaluate: a search/train output folder holding model.keras, or a "
    ".keras file.",
)

FLAGS = flags.FLAGS


class CommandError(Exception):
    """A bad flag or input: printed as one line, exit status 2."""


class Command(NamedTuple):
    """A subcommand: its function (returns an exit status) and summary."""

    run: Callable[[], int]
    help: str


def _flag_error(
    flag: str, value: Any, expected: str = "", *, cause: Exception | None = None
) -> CommandError:
    """An error naming the flag and its value (and the library's error)."""
    if cause is not None:
        return CommandError(f"Invalid value for flag --{flag}={value}: {cause}")
    return CommandError(
        f"Invalid value for flag `--{flag}`. {expected} "
        f"Received: --{flag}={value}"
    )


def _members_text(members: Sequence[tuple[int, int]]) -> str:
    return ",".join(f"{d}-{w}" for d, w in members)


def _members() -> list[tuple[int, int]]:
    members = FLAGS.members
    if members is None:
        members = _MembersParser().parse(_DEFAULT_MEMBERS)
    from keras_swn.policy.wide_resnet_shapes import wide_resnet_param_counts

    for depth, width in members:
        try:
            wide_resnet_param_counts(depth, width, num_classes=2)
        except ValueError as e:
            raise _flag_error(
                "members", _members_text(members), cause=e
            ) from None
    return members


def _member_budgets(members, in_channels: int, num_classes: int) -> list:
    from keras_swn.bank.budget_report import MemberBudget
    from keras_swn.policy.wide_resnet_shapes import wide_resnet_param_counts

    return [
        MemberBudget.from_counts(
            f"WRN-{d}-{w}",
            wide_resnet_param_counts(
                d, w, in_channels=in_channels, num_classes=num_classes
            ),
        )
        for d, w in members
    ]


def _specs(members, in_channels: int) -> list:
    from keras_swn.policy.wide_resnet_shapes import wide_resnet_layer_specs

    specs = []
    for m, (depth, width) in enumerate(members):
        specs += wide_resnet_layer_specs(
            depth, width, member=m, in_channels=in_channels
        )
    return specs


def _policy(specs, coefficient_sharing: str):
    from keras_swn.policy.sharing_policy import SharingPolicy

    if FLAGS.policy is None:
        return SharingPolicy.from_bins(
            specs, FLAGS.bins, coefficients=coefficient_sharing
        )
    if not os.path.isfile(FLAGS.policy):
        raise _flag_error(
            "policy", FLAGS.policy, "Expected an existing JSON file."
        )
    try:
        return SharingPolicy.load(FLAGS.policy)
    except (ValueError, OSError) as e:
        raise _flag_error("policy", FLAGS.policy, cause=e) from None


def default_budget(specs, policy) -> int:
    """The unshared conv parameters of the largest member (the whole
    ensemble in the budget of one network), at least one template per bank.
    """
    from keras_swn.bank.plan import one_template_total

    sizes: dict[int, int] = {}
    for s in specs:
        sizes[s.member] = sizes.get(s.member, 0) + s.numel
    return max(max(sizes.values()), one_template_total(specs, policy.groups))


def _plan_and_report(members, input_shape, num_classes, coefficient_sharing):
    """The budget of the configuration the flags describe (pure, no Keras).

    Returns `(specs, policy, budget, report)`.
    """
    from keras_swn.bank.budget_report import BudgetReport
    from keras_swn.bank.plan import BankPlan

    in_channels = int(input_shape[-1])
    specs = _specs(members, in_channels)
    policy = _policy(specs, coefficient_sharing)
    budget = FLAGS.budget
    if budget is None:
        budget = default_budget(specs, policy)
    try:
        plan = BankPlan.create(specs, policy, budget)
    except ValueError as e:
        culprit = "policy" if FLAGS.policy is not None else "budget"
        value = FLAGS.policy if culprit == "policy" else budget
        raise _flag_error(culprit, value, cause=e) from None
    report = BudgetReport.create(
        plan, _member_budgets(members, in_channels, num_classes)
    )
    return specs, policy, budget, report


# ----------------------------------------------------------------------
# plan


def _cmd_plan() -> int:
    members = _members()
    input_shape = FLAGS.input_shape or (32, 32, 3)
    num_classes = FLAGS.num_classes or 100
    sharing = FLAGS.coefficient_sharing or "per_bank"
    _, _, budget, report = _plan_and_report(
        members, input_shape, num_classes, sharing
    )
    if FLAGS.json:
        out = report.to_dict()
        out["config"] = {
            "members": [f"WRN-{d}-{w}" for d, w in members],
            "budget": budget,
            "bins": FLAGS.bins,
            "num_classes": num_classes,
            "input_shape": list(input_shape),
            "policy": FLAGS.policy,
            "coefficient_sharing": None if FLAGS.policy else sharing,
        }
        print(json.dumps(out))
    else:
        print(
            f"Members {', '.join(f'WRN-{d}-{w}' for d, w in members)}; "
            f"input {input_shape}; {num_classes} classes; "
            + (
                f"policy {FLAGS.policy}"
                if FLAGS.policy
                else f"{FLAGS.bins} bins, {sharing} coefficients"
            )
        )
        print()
        print(report)
    return 0


# ----------------------------------------------------------------------
# train


def _load_data():
    from keras_swn.data import embedded

    split, seed, normalize = FLAGS.validation_split, FLAGS.seed, FLAGS.normalize
    try:
        if FLAGS.data is None:
            arrays = embedded.load_digits_dataset(
                validation_split=split, seed=seed, normalize=normalize
            )
            name = "digits (scikit-learn)"
        else:
            arrays = embedded.load_npz(
                FLAGS.data,
                validation_split=split,
                seed=seed,
                normalize=normalize,
            )
            name = FLAGS.data
    except ValueError as e:
        flag = "validation_split" if "validation_split" in str(e) else "data"
        raise _flag_error(flag, getattr(FLAGS, flag), cause=e) from None
    return name, arrays, embedded.describe(arrays)


def _output_dir(kind: str = "train") -> str:
    """`--output_dir`, or a new `swn_runs/<kind>-<timestamp>` folder."""
    if FLAGS.output_dir is not None:
        return FLAGS.output_dir
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join("swn_runs", f"{kind}-{stamp}")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join("swn_runs", f"{kind}-{stamp}-{n}")
    return path


def _flag_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _template_fan_in() -> int | str | None:
    """`--template_fan_in` as `SWNModel` takes it (`"9"` -> 9)."""
    value = FLAGS.template_fan_in
    return 9 if value == "9" else value


def _check_recipe_flags(kind: str) -> None:
    """Validate the training-recipe flags (schedule, decay, fan-in)."""
    if not FLAGS.learning_rate > 0:
        raise _flag_error(
            "learning_rate", FLAGS.learning_rate, "Expected a number > 0."
        )
    if not FLAGS.weight_decay >= 0:
        raise _flag_error(
            "weight_decay", FLAGS.weight_decay, "Expected a number >= 0."
        )
    if FLAGS.schedule == "cosine":
        for name in ("milestones", "gamma"):
            value = getattr(FLAGS, name)
            if value is not None:
                raise _flag_error(
                    name,
                    _flag_text(value),
                    "It applies to --schedule=step only.",
                )
    if FLAGS.milestones is not None:
        from keras_swn.search import optim

        try:
            optim.check_milestones(FLAGS.milestones)
        except ValueError as e:
            raise _flag_error(
                "milestones", _flag_text(FLAGS.milestones), cause=e
            ) from None
    if FLAGS.gamma is not None and not FLAGS.gamma > 0:
        raise _flag_error("gamma", FLAGS.gamma, "Expected a number > 0.")
    if kind == "search" and FLAGS.reference_compatible:
        for name, allowed in (
            ("schedule", "step"),
            ("template_fan_in", "9"),
            ("budget_check", "proxy"),
            ("threshold_schedule", "step"),
        ):
            value = getattr(FLAGS, name)
            if value is not None and value != allowed:
                raise _flag_error(
                    name,
                    value,
                    f"--reference_compatible selects --{name}={allowed}; "
                    "pass one or the other.",
                )


def _check_run_flags(kind: str) -> tuple[list, str]:
    """Validate the flags `train` and `search` share; the members and the
    output folder."""
    _check_recipe_flags(kind)
    members = _members()
    out_dir = _output_dir(kind)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise _flag_error("output_dir", out_dir, "Expected a folder.")
    return members, out_dir


def _cmd_train() -> int:
    members, out_dir = _check_run_flags("train")
    data_name, arrays, summary = _load_data()
    (x_train, y_train), (x_val, y_val) = arrays
    input_shape = tuple(int(d) for d in x_train.shape[1:])
    classes = int(max(y_train.max(), y_val.max())) + 1
    num_classes = (
        max(classes, 2) if FLAGS.num_classes is None else (FLAGS.num_classes)
    )
    if num_classes < classes:
        raise _flag_error(
            "num_classes",
            num_classes,
            f"The data has labels up to {classes - 1}.",
        )
    if FLAGS.input_shape is not None and tuple(FLAGS.input_shape) != (
        input_shape
    ):
        raise _flag_error(
            "input_shape",
            ",".join(map(str, FLAGS.input_shape)),
            f"The data has images of shape {input_shape}.",
        )
    sharing = FLAGS.coefficient_sharing or "per_layer"
    _, policy, budget, report = _plan_and_report(
        members, input_shape, num_classes, sharing
    )

    import keras

    import keras_swn
    from keras_swn.models.wide_resnet import WideResNet

    print(f"Data: {data_name}: {summary}")
    print(f"Backend: {keras.backend.backend()}")
    from keras_swn.search import optim

    schedule, milestones, gamma = optim.check_schedule(
        FLAGS.schedule or "step", FLAGS.milestones, FLAGS.gamma
    )

    def learning_rate(epoch, lr=None):
        return optim.learning_rate_at(
            epoch,
            FLAGS.epochs,
            schedule=schedule,
            learning_rate=FLAGS.learning_rate,
            milestones=milestones,
            gamma=gamma,
        )

    keras.utils.set_random_seed(FLAGS.seed)
    fan_in = _template_fan_in()
    model = keras_swn.SWNModel(
        members=[WideResNet(d, w) for d, w in members],
        input_shape=input_shape,
        num_classes=num_classes,
        budget=budget,
        num_bins=FLAGS.bins,
        policy=policy,
        coefficient_sharing=sharing,
        seed=FLAGS.seed,
        **({} if fan_in is None else {"template_fan_in": fan_in}),
    )
    print()
    print(model.budget_report())
    print()
    model.compile(
        optimizer=optim.ReferenceSGD(
            FLAGS.learning_rate,
            momentum=0.9,
            nesterov=True,
            l2=FLAGS.weight_decay,
        )
    )
    verbose = {"bar": 1, "epoch": 2, "none": 0}[FLAGS.progress]
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs,
        validation_data=(x_val, y_val),
        callbacks=[keras.callbacks.LearningRateScheduler(learning_rate)],
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    evaluation = model.evaluate(
        x_val,
        y_val,
        batch_size=FLAGS.batch_size,
        verbose=0,
        return_dict=True,
    )
    evaluation = {k: float(v) for k, v in evaluation.items()}

    names = [f"WRN-{d}-{w}" for d, w in members]
    print()
    print("Validation accuracy")
    for i, name in enumerate(names):
        acc = evaluation.get(f"member_{i}_accuracy", float("nan"))
        print(f"  member {i} {name:<10} {acc:.4f}")
    print(f"  ensemble          {evaluation['ensemble_accuracy']:.4f}")

    results = {
        "command": "train",
        "members": names,
        "budget": budget,
        "bins": FLAGS.bins,
        "policy": FLAGS.policy,
        "coefficient_sharing": None if FLAGS.policy else sharing,
        "data": data_name,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "train_examples": int(len(x_train)),
        "val_examples": int(len(x_val)),
        "epochs": FLAGS.epochs,
        "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate,
        "schedule": schedule,
        "milestones": None if milestones is None else list(milestones),
        "gamma": gamma,
        "weight_decay": FLAGS.weight_decay,
        "template_fan_in": model.template_fan_in,
        "seed": FLAGS.seed,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "keras_swn_version": keras_swn.__version__,
        "train_seconds": round(train_seconds, 3),
        "trainable_total": report.trainable_total,
        "val_loss": evaluation.get("loss"),
        "val_member_accuracy": [
            evaluation.get(f"member_{i}_accuracy") for i in range(len(names))
        ],
        "val_ensemble_accuracy": evaluation.get("ensemble_accuracy"),
        "evaluation": evaluation,
    }
    history_dict = {
        k: [float(v) for v in values] for k, values in history.history.items()
    }

    os.makedirs(out_dir, exist_ok=True)
    atomic_write(
        os.path.join(out_dir, "model.keras"), model.save, suffix=".keras"
    )
    atomic_write_json(
        os.path.join(out_dir, "policy.json"), model.policy.to_dict()
    )
    atomic_write_json(
        os.path.join(out_dir, "budget_report.json"),
        model.budget_report().to_dict(),
    )
    atomic_write_json(os.path.join(out_dir, "history.json"), history_dict)
    atomic_write_json(os.path.join(out_dir, "results.json"), results)
    print()
    print(
        "Wrote model.keras, policy.json, budget_report.json, history.json "
        "and results.json."
    )
    print(f"Output folder: {os.path.abspath(out_dir)}")
    return 0


# ----------------------------------------------------------------------
# search and evaluate


def _load_search_data():
    """`(name, train, validation, input_shape, num_classes)`.

    `--dataset cifar10|cifar100` goes through the TFDS pipeline
    (`keras_swn.data.cifar.load_cifar`: train split augmented, test split
    as validation; TFDS's default data folder, no download); the arrays go
    through `_load_data`.
    """
    if FLAGS.dataset in ("cifar10", "cifar100"):
        if FLAGS.data is not None:
            raise _flag_error(
                "dataset", FLAGS.dataset, "Pass --dataset or --data, not both."
            )
        try:
            from keras_swn.data import cifar
        except ImportError as e:
            raise _flag_error(
                "dataset",
                FLAGS.dataset,
                "The TFDS pipeline (keras_swn.data.cifar) is not "
                f"available in this install ({e}). Use --data FILE.npz.",
            ) from None
        try:
            train = cifar.load_cifar(
                FLAGS.dataset,
                split="train",
                batch_size=FLAGS.batch_size,
                seed=FLAGS.seed,
            )
            val = cifar.load_cifar(
                FLAGS.dataset,
                split="test",
                batch_size=FLAGS.batch_size,
                training=False,
            )
        except Exception as e:  # TFDS raises many kinds (no data, ...)
            raise _flag_error("dataset", FLAGS.dataset, cause=e) from None
        input_shape = (32, 32, 3)
        classes = 10 if FLAGS.dataset == "cifar10" else 100
        return FLAGS.dataset, train, val, tuple(input_shape), int(classes)
    name, arrays, summary = _load_data()
    (x_train, y_train), (x_val, y_val) = arrays
    classes = int(max(y_train.max(), y_val.max())) + 1
    return (
        f"{name}: {summary}",
        (x_train, y_train),
        (x_val, y_val),
        tuple(int(d) for d in x_train.shape[1:]),
        max(classes, 2),
    )


def default_search_budget(specs, bins: int) -> int:
    """25% above the smallest budget that holds the initial bins (one
    template per bank): tight enough that the search must merge layers."""
    from keras_swn.bank.plan import one_template_total
    from keras_swn.policy.bins import initial_bins

    return int(one_template_total(specs, initial_bins(specs, bins)) * 1.25)


def _cmd_search() -> int:
    members, out_dir = _check_run_flags("search")
    data_name, train, val, input_shape, num_classes = _load_search_data()
    if FLAGS.num_classes is not None:
        if FLAGS.num_classes < num_classes:
            raise _flag_error(
                "num_classes",
                FLAGS.num_classes,
                f"The data has labels up to {num_classes - 1}.",
            )
        num_classes = FLAGS.num_classes
    specs = _specs(members, int(input_shape[-1]))
    budget = FLAGS.budget or default_search_budget(specs, FLAGS.bins)
    refines = FLAGS.sharing in ("learned", "bins_hard")
    if refines and not FLAGS.refine_after < FLAGS.epochs:
        raise _flag_error(
            "refine_after",
            FLAGS.refine_after,
            f"Expected fewer than --epochs={FLAGS.epochs} (or "
            "--sharing=learned_no_refine).",
        )

    import keras

    from keras_swn.models.wide_resnet import WideResNet
    from keras_swn.search import SearchAndRefine

    print(f"Data: {data_name}")
    print(f"Backend: {keras.backend.backend()}")
    options = dict(
        budget=budget,
        directory=os.path.dirname(os.path.abspath(out_dir)),
        project_name=os.path.basename(os.path.abspath(out_dir)),
        seed=FLAGS.seed,
        num_bins=FLAGS.bins,
        threshold_schedule=FLAGS.threshold_schedule,
        group_share=FLAGS.group_share,
        threshold_start=FLAGS.threshold_start,
        threshold_decrement=FLAGS.threshold_decrement,
        clustering=FLAGS.clustering,
        signal=FLAGS.signal,
        capture_batches=FLAGS.capture_batches,
        batch_size=FLAGS.batch_size,
        refine_threshold=FLAGS.refine_threshold,
        coefficient_threshold=FLAGS.coefficient_threshold,
        budget_check=FLAGS.budget_check,
        chain_sort=FLAGS.chain_sort,
        template_fan_in=_template_fan_in(),
        sharing=FLAGS.sharing,
        reference_compatible=FLAGS.reference_compatible,
        plots=FLAGS.plots,
        run_eagerly=FLAGS.run_eagerly,
    )
    try:
        search = SearchAndRefine(
            [WideResNet(d, w) for d, w in members],
            input_shape,
            num_classes,
            **options,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None
    verbose = {"bar": 1, "epoch": 2, "none": 0}[FLAGS.progress]
    print(f"Output folder: {os.path.abspath(out_dir)}")
    print(
        "Interrupted? Rerun with "
        f"--output_dir={os.path.abspath(out_dir)} to resume."
    )
    try:
        search.search(
            train,
            val,
            search_epochs=(
                0 if FLAGS.sharing == "bins_hard" else FLAGS.search_epochs
            ),
            epochs=FLAGS.epochs,
            refine_after=FLAGS.refine_after if refines else None,
            learning_rate=FLAGS.learning_rate,
            schedule=FLAGS.schedule,
            milestones=FLAGS.milestones,
            gamma=FLAGS.gamma,
            weight_decay=FLAGS.weight_decay,
            verbose=verbose,
        )
    except ValueError as e:
        raise CommandError(str(e)) from None
    print()
    search.results_summary()
    print()
    print(
        "Wrote model.keras, policy.json, search_result.json, "
        "budget_report.json/.txt, results.json, history.json and plots/."
    )
    print(f"Output folder: {os.path.abspath(out_dir)}")
    return 0


def _cmd_evaluate() -> int:
    if FLAGS.model_dir is None:
        raise _flag_error(
            "model_dir", None, "Expected a folder holding model.keras."
        )
    path = FLAGS.model_dir
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise _flag_error(
            "model_dir",
            FLAGS.model_dir,
            "Expected a folder holding model.keras, or a .keras file.",
        )
    data_name, _, val, input_shape, _ = _load_search_data()

    import keras

    import keras_swn  # noqa: F401  (registers the SWN classes)

    model = keras.models.load_model(path)
    model.compile()
    if tuple(model.input_shape_) != tuple(input_shape):
        raise _flag_error(
            "model_dir",
            FLAGS.model_dir,
            f"The model takes inputs of shape {model.input_shape_}; the "
            f"data has {input_shape}.",
        )
    if isinstance(val, tuple):
        evaluation = model.evaluate(
            *val, batch_size=FLAGS.batch_size, verbose=0, return_dict=True
        )
    else:
        evaluation = model.evaluate(val, verbose=0, return_dict=True)
    print(f"Model: {os.path.abspath(path)}")
    print(f"Data: {data_name}")
    print("Validation accuracy")
    for i, builder in enumerate(model.member_builders):
        name = getattr(builder, "name", f"member {i}")
        acc = float(evaluation.get(f"member_{i}_accuracy", float("nan")))
        print(f"  member {i} {name:<10} {acc:.4f}")
    print(f"  ensemble          {float(evaluation['ensemble_accuracy']):.4f}")
    return 0


# ----------------------------------------------------------------------
# Dispatch

#: The subcommands, by name.
COMMANDS: dict[str, Command] = {
    "plan": Command(_cmd_plan, "print the budget report of a configuration"),
    "train": Command(_cmd_train, "train an SWN ensemble and save it"),
    "search": Command(
        _cmd_search, "search, train and refine an SWN (the main job)"
    ),
    "evaluate": Command(
        _cmd_evaluate, "print member and ensemble accuracy of a saved model"
    ),
}


def _usage() -> str:
    lines = ["usage: keras-swn <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<10} {c.help}" for name, c in COMMANDS.items()]
    lines.append("")
    lines.append("`keras-swn --helpfull` lists every flag.")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Run the subcommand named by `argv[1]` (flags already parsed)."""
    args = list(argv[1:])
    if not args or args[0] not in COMMANDS:
        got = f"unknown command {args[0]!r}" if args else "no command given"
        print(f"keras-swn: error: {got}.\n\n{_usage()}", file=sys.stderr)
        return 2
    name, extra = args[0], args[1:]
    if extra:
        print(
            f"keras-swn {name}: error: unexpected arguments {extra}. "
            "Flags are written --name=value.",
            file=sys.stderr,
        )
        return 2
    try:
        return COMMANDS[name].run()
    except CommandError as e:
        print(f"keras-swn {name}: error: {e}", file=sys.stderr)
        return 2


def execute(argv: Sequence[str]) -> int:
    """Parse `argv` (`argv[0]` is the program name) and run, in-process.

    The same as the console script, for tests and notebooks: flags are reset
    to their defaults first, and flag errors are printed, not raised.
    """
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(list(argv))
    except flags.Error as e:
        print(f"keras-swn: error: {e}", file=sys.stderr)
        return 1
    try:
        return main(rest)
    finally:
        FLAGS.unparse_flags()


def run() -> None:
    """Console-script entry point (`keras-swn`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main_module = sys.modules.get("__main__")
    if main_module is not None and not getattr(main_module, "__doc__", None):
        # absl prints the main module's docstring as the usage text; under
        # the console-script wrapper that module has none.
        main_module.__doc__ = __doc__
    app.run(main)


if __name__ == "__main__":
    run()
