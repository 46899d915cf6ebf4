"""Accuracy per parameter on real images: SWN against plain Keras WRNs.

Trains every row of the table below with one recipe on one stratified
split of an image `.npz` (e.g. the 10,000-image CIFAR-10 subset of
`../shared/data`), and reports, per row, the trainable parameters, the
validation accuracy (mean and sample standard deviation over seeds, and
every seed's value) and the wall time. Writes a JSON file (every finished
run, written as soon as it finishes), a Markdown table and a PNG plot of
accuracy against trainable parameters.

Data: `x` and `y` of the `.npz`. With `--eval_data` (e.g. the 40,000
other CIFAR-10 training images) every run trains on all of `--data` and
is evaluated on that file; without it, `--data` is split stratified
80/20 with `--split_seed` (`keras_swn.data.load_npz`). Images are scaled
to [0, 1] and standardised per channel with the training images' mean
and std. Training augmentation, the same for every row: zero-pad 4 +
random crop back to the image size and a random horizontal flip, no
Cutout (`keras_swn.data.augment_image`). Accuracy is measured on the
evaluation images; for ensembles it is the accuracy of the mean of the
member softmaxes.

Paired seeds: epoch `e` of every row of a seed sees the same batches in
the same order with the same augmentation draws, a pure function of
`(seed, e)` (`Data.train`; search-training epochs have their own), and
every model starts from the same initial values wherever a variable's
identity and shape match (the members' own BatchNorm and heads; the
templates of a group id and shape; all of them for `bins` and
`bins_matched`). The report gives, per row, the difference to the
`bins` row of the same network and budget, seed by seed, its mean and
a 95% t-interval, and plots them (`<stem>_paired.png`).

Recipe, identical for every row: `keras_swn.search.TrainingRecipe`'s
`ReferenceSGD` (SGD, Nesterov momentum 0.9, coupled L2 `--weight_decay`
on `keras_swn.models.decayed_variables`, i.e. not the coefficients; the
SWN rows compile with `TrainingRecipe.compile` as `SearchAndRefine`
does, no loss-term decay; the plain models use the same class), batch
`--batch_size`, cosine learning rate from `--learning_rate` to 0 over
`--epochs`, set at the start of every epoch (`lr * (1 + cos(pi * epoch
/ epochs)) / 2`). The
search-training epochs of the searched rows (`--search_epochs`, extra,
their model is thrown away) run at the constant initial learning rate, as
the reference's search does before its first milestone.

Rows (`--methods` for the main network WRN-`depth`-`width`, per budget
fraction where the row has a budget; `--ensemble_methods` for the
ensemble `--ensemble_members`):

- `plain`: the plain Keras WRN (stock `Conv2D` kernels, He-normal fan-in
  initialisation, the layer graph of `keras_swn.models.WideResNet` and of
  `keras_swn.export.to_keras`). For the ensemble: the unshared ensemble,
  its members in one Keras model trained on the summed loss, which is the
  same as training each member on its own with the same batches (they
  share no variable).
- `plain_narrow`: the plain WRN-`depth`-1 (dropped when `width` is 1).
- `plain_matched`: a plain WRN whose channels are `16, round(16 k),
  round(32 k), round(64 k)` for the float width `k` that brings its
  trainable count closest to the `bins` SWN of the same budget.
- `bins`: `SWNModel` with its default initial bins (`--num_bins`), every
  layer its own coefficients; no search, no refine.
- `bins_matched`: `bins` trained for `--epochs` + `--search_epochs`
  epochs (cosine over all of them): the compute of a searched row.
- `search`: `SearchAndRefine` with its defaults (`sharing="learned"`,
  gradient similarity): search, final training, refine.
- `search_no_refine`: the same with `sharing="learned_no_refine"`.
- `search_reference`: `SearchAndRefine(reference_compatible=True)`.
- `parameter`: `SearchAndRefine(signal="parameter")`, the SSN-style
  baseline, refine as `search`.
- `gradient_weight`: `SearchAndRefine(signal="gradient+weight")`: the
  cosine of each layer's gradient and kernel concatenated, refine as
  `search`.
- `bins_hard`: `SearchAndRefine(sharing="bins_hard")`: the bins, one
  hard-shared coefficient vector per bank, refine.
- `random`: a random grouping with, in every initial bin, as many groups
  as the `search` run of the same seed and budget found (it must run
  first); drawn with a seeded generator until the plan fits the budget;
  other members attached as the search attaches them; trained as `bins`
  (`SWNModel.fit`, no refine).
- `reference_init`: `bins` with the reference's template initialisation
  (`template_fan_in=9`). Every other SWN row uses the library's default.
- `layer_init`: `bins` with `template_fan_in="layer"` (templates at the
  He scale of the level's own shape, orthogonal coefficient rows, no
  per-use gain): shows what the default's fixed gain buys.

The budget is `--budget_fractions` times the plain network's convolution
parameters (`--ensemble_budget_fraction` times the ensemble's); the
reported count is every trainable variable (templates, coefficients,
BatchNorm, heads), deduplicated.

Resumable: the JSON is rewritten atomically after every run; rerunning
with the same `--output` skips the runs it already holds (a killed
`SearchAndRefine` run also resumes from its last epoch, in
`<output stem>_runs/`). The settings that change results (data, split,
networks, recipe) must match the file's; methods, budgets and seeds may
be added. `--report_only` rewrites the Markdown and plots from the JSON
(read only: a running study may keep writing it). Every run records its
total training epochs (final + search).

Defaults (the CPU-sized setting): WRN-16-1 at a 30% budget, the
ensemble WRN-16-1 + WRN-16-1 (same depth) at 30% of its convolution
parameters (about 31% of its trainable count), 10 epochs, 2 search
epochs, seeds 0 and 1. With 4 initial bins a budget needs at least one
template of the largest kernel of every bin: 67% of a WRN-10's
convolution parameters (WRN-10-2: 201,728 of 301,488; the stage-3 bin
alone needs 147,456), 53% of WRN-10-2 + WRN-10-1, but only ~29% of a
WRN-16-k, hence WRN-16-1 for a ~30% budget on a CPU. On a 2-core CPU
(TensorFlow) one WRN-16-1 epoch on 8,000 images takes ~15-20 s when the
machine is idle (~45-55 s while other jobs load it); the whole default
table about 60-80 minutes idle. The GPU-sized setting of the issue is e.g.
`--width 2 --ensemble_members 16-4,16-2 --epochs 15 --budget_fractions
0.3 0.5` (plain_narrow is then WRN-16-1).

Usage:
    python benchmarks/quality.py --data ../shared/data/cifar10_train_10k.npz
        [--output quality.json] [--depth 16] [--width 1]
        [--budget_fractions 0.3 [0.5 ...]] [--methods plain bins ...]
        [--ensemble_members 16-1,16-1] [--ensemble_budget_fraction 0.3]
        [--ensemble_methods plain search] [--num_bins 4] [--epochs 10]
        [--search_epochs 2] [--refine_after N] [--seeds 0 1]
        [--eval_data extra.npz] [--split_seed 0] [--overwrite] [--smoke]
        [--verbose]
    python benchmarks/quality.py --report_only --output quality.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
import traceback
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

_FORMAT = "keras_swn.benchmarks.quality"
_VERSION = 2

#: method -> (label, kind, has a budget, allowed for the ensemble)
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
MAIN_METHODS = (
    "plain",
    "plain_narrow",
    "plain_matched",
    "bins",
    "bins_matched",
    "search",
    "parameter",
    "random",
    "reference_init",
    "layer_init",
)
ENSEMBLE_METHODS = ("plain", "search")
#: SearchAndRefine arguments of the searched methods.
_SEARCH_KWARGS = {
    "search": {},
    "search_no_refine": {"sharing": "learned_no_refine"},
    "search_reference": {"reference_compatible": True},
    "parameter": {"signal": "parameter"},
    "gradient_weight": {"signal": "gradient+weight"},
    "bins_hard": {"sharing": "bins_hard"},
}


def _search_kwargs(args, method: str) -> dict:
    """`SearchAndRefine` arguments of a searched row."""
    kwargs = dict(_SEARCH_KWARGS[method])
    if args.threshold_schedule and method != "search_reference":
        kwargs["threshold_schedule"] = args.threshold_schedule
    return kwargs


#: Settings that change results: a resumed output file must match them.
_RESULT_SETTINGS = (
    "data",
    "eval_data",
    "pairing",
    "split_seed",
    "n_train",
    "n_val",
    "depth",
    "width",
    "ensemble_members",
    "num_bins",
    "epochs",
    "search_epochs",
    "refine_after",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "augmentation",
    "backend",
    "threshold_schedule",
)
_SMOKE = {
    "depth": 10,
    "width": 1,
    "ensemble_members": "10-1,10-1",
    "budget_fractions": [0.8],
    "ensemble_budget_fraction": 0.8,
    "epochs": 2,
    "search_epochs": 1,
    "refine_after": 1,
    "seeds": [0],
}
_DEFAULTS = {
    "depth": 16,
    "width": 1,
    "ensemble_members": "16-1,16-1",
    "budget_fractions": [0.3],
    "ensemble_budget_fraction": 0.3,
    "epochs": 10,
    "search_epochs": 2,
    "refine_after": None,
    "seeds": [0, 1],
}
_SMOKE_TRAIN, _SMOKE_VAL = 256, 64
#: Data-order ids of search-training epochs (`Data.train`).
_SEARCH_ORDER = 10_000


def log(text: str) -> None:
    print(f"[quality] {text}", flush=True)


# ----------------------------------------------------------------------
# Arguments


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--data", help="the training .npz with `x` and `y` (required)")
    add(
        "--eval_data",
        help="a separate evaluation .npz: every run trains on all of "
        "--data and is evaluated on this (default: an 80/20 split of --data)",
    )
    add(
        "--report_only",
        action="store_true",
        help="rewrite the .md and .png from --output's JSON; train nothing",
    )
    add(
        "--output",
        default="quality.json",
        help="JSON path; the .md and "
        ".png are written next to it, under the same stem",
    )
    add("--depth", type=int, help="main WRN depth (6n + 4)")
    add("--width", type=int, help="main WRN widening factor")
    add(
        "--budget_fractions",
        type=float,
        nargs="+",
        help="template budgets, as fractions of the plain conv parameters",
    )
    add(
        "--methods",
        nargs="*",
        default=list(MAIN_METHODS),
        choices=sorted(METHODS),
        help="rows of the main network",
    )
    add(
        "--ensemble_members",
        help="e.g. 16-1,16-1 (deepest first); '' for no ensemble rows",
    )
    add("--ensemble_budget_fraction", type=float)
    add(
        "--ensemble_methods",
        nargs="*",
        default=list(ENSEMBLE_METHODS),
        choices=sorted(m for m, v in METHODS.items() if v[3]),
    )
    add("--num_bins", type=int, default=4)
    add(
        "--threshold_schedule",
        choices=("fill", "split", "step"),
        help="the searched rows' schedule (default: the library's); "
        "search_reference keeps the reference's",
    )
    add("--epochs", type=int, help="training epochs of every row")
    add(
        "--search_epochs",
        type=int,
        help="extra search-training epochs of the searched rows",
    )
    add(
        "--refine_after",
        type=int,
        help="final-training epochs before "
        "refine (default: max(1, epochs // 10))",
    )
    add("--batch_size", type=int, default=128)
    add("--learning_rate", type=float, default=0.1)
    add("--weight_decay", type=float, default=5e-4)
    add("--seeds", type=int, nargs="+")
    add("--split_seed", type=int, default=0)
    add(
        "--smoke",
        action="store_true",
        help=f"{_SMOKE_TRAIN} training and "
        f"{_SMOKE_VAL} validation images, WRN-10-1, 2 epochs, one seed: "
        "checks the pipeline in about a minute",
    )
    add(
        "--overwrite",
        action="store_true",
        help="discard the results already in --output",
    )
    add("--verbose", action="store_true", help="show Keras progress")
    args = parser.parse_args(argv)
    if not args.data and not args.report_only:
        parser.error("--data is required (unless --report_only)")
    defaults = _SMOKE if args.smoke else _DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.refine_after is None:
        args.refine_after = max(1, args.epochs // 10)
    if args.epochs < 1 or args.search_epochs < 0:
        parser.error("--epochs must be >= 1 and --search_epochs >= 0")
    needs_refine = {
        m
        for m, v in METHODS.items()
        if v[1] == "search" and m != "search_no_refine"
    }
    if needs_refine & set(args.methods + args.ensemble_methods) and not (
        1 <= args.refine_after < args.epochs
    ):
        parser.error(
            "the refining methods need 1 <= --refine_after < --epochs; "
            f"got refine_after={args.refine_after}, epochs={args.epochs}"
        )
    for m in args.methods + args.ensemble_methods:
        if METHODS[m][1] == "search" and m != "bins_hard":
            if args.search_epochs < 1:
                parser.error(f"method {m!r} needs --search_epochs >= 1")
    for name in ("methods", "ensemble_methods"):
        setattr(args, name, list(dict.fromkeys(getattr(args, name))))
    args.members = _parse_members(args.ensemble_members, parser)
    return args


def _parse_members(text: str, parser) -> list[tuple[int, int]]:
    if not text:
        return []
    members = []
    for item in text.split(","):
        try:
            depth, width = (int(v) for v in item.split("-"))
        except ValueError:
            parser.error(f"--ensemble_members: bad member {item!r}")
        members.append((depth, width))
    return members


# ----------------------------------------------------------------------
# Data


class Data:
    """The training and evaluation images, statistics and pipelines.

    Without `eval_path`: a stratified 80/20 split of `path` (`split_seed`).
    With it: all of `path` trains and `eval_path` is the evaluation set.
    """

    def __init__(self, path, split_seed, smoke, eval_path=None):
        from keras_swn.data import load_npz

        if eval_path:
            (x, y), (xv, yv) = _load_xy(path), _load_xy(eval_path)
        else:
            (x, y), (xv, yv) = load_npz(
                path, validation_split=0.2, seed=split_seed
            )
        self.num_classes = int(max(y.max(), yv.max())) + 1
        if smoke:
            # A seeded random subset: the split may be ordered by class.
            rng = np.random.default_rng(split_seed)
            keep = rng.permutation(len(x))[:_SMOKE_TRAIN]
            keep_val = rng.permutation(len(xv))[:_SMOKE_VAL]
            x, y, xv, yv = x[keep], y[keep], xv[keep_val], yv[keep_val]
        self.x, self.y, self.x_val, self.y_val = x, y, xv, yv
        self.input_shape = tuple(int(d) for d in x.shape[1:])
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        pixels = x.reshape(-1, x.shape[-1]).astype(np.float64) / scale
        self.mean = [float(v) for v in pixels.mean(axis=0)]
        self.std = [float(v) for v in pixels.std(axis=0)]

    def train(self, seed: int, batch_size: int, outputs: int = 0):
        """`(dataset, epoch)`: augmented batches whose order and
        augmentation draws are a pure function of `(seed, epoch.value)`;
        the schedule callback sets `epoch` (a `tf.Variable`) at the start
        of every epoch, so epoch `e` of every row of a seed sees the same
        batches. `outputs` > 0 repeats the labels for a plain
        multi-output model."""
        import tensorflow as tf

        from keras_swn.data import augment_image

        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        x, y = tf.constant(self.x), tf.constant(self.y.astype(np.int32))
        n, root = len(self.y), tf.constant(seed, tf.int64)

        def one_epoch(_):
            e = epoch.read_value()
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([root, e])
            )
            draws = tf.random.stateless_uniform(
                [n], tf.stack([root + 7_919, e]), None, None, tf.int64
            )
            return tf.data.Dataset.from_tensor_slices((order, draws))

        def example(i, r):
            image = augment_image(
                tf.gather(x, i),
                tf.stack([r, root]),
                mean=self.mean,
                std=self.std,
                padding=4,
                cutout=0,
            )
            return image, tf.gather(y, i)

        ds = tf.data.Dataset.range(1).flat_map(one_epoch)
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
        if outputs:
            ds = ds.map(lambda x, y: (x, (y,) * outputs))
        return ds.prefetch(tf.data.AUTOTUNE), epoch

    def validation(self, batch_size: int):
        from keras_swn.data import make_dataset

        return make_dataset(
            self.x_val,
            self.y_val,
            batch_size=batch_size,
            training=False,
            normalization=(self.mean, self.std),
        )


def _load_xy(path):
    """`x` (as stored, e.g. uint8) and `y` (int) of an `.npz`, unsplit."""
    with np.load(path, allow_pickle=False) as f:
        return f["x"], f["y"].astype(np.int64).reshape(-1)


# ----------------------------------------------------------------------
# Plain networks


def wrn_channels(width: float) -> list[int]:
    """`[16, 16 k, 32 k, 64 k]`, rounded, for a float widening factor."""
    return [16] + [max(1, int(round(c * width))) for c in (16, 32, 64)]


def plain_wrn_params(
    depth: int, channels, in_channels: int, num_classes: int
) -> int:
    """Trainable parameters of `plain_wrn` (closed form)."""
    n = (depth - 4) // 6
    total = 9 * in_channels * channels[0]
    c_in = channels[0]
    for stage in range(1, 4):
        for block in range(1, n + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            c_out = channels[stage]
            total += 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out**2
            if c_in != c_out or stride != 1:
                total += c_in * c_out
            c_in = c_out
    return total + 2 * c_in + c_in * num_classes + num_classes


def plain_wrn(
    inputs,
    depth: int,
    channels,
    num_classes: int,
    *,
    seed: int,
    prefix: str = "",
):
    """The WRN graph of `keras_swn.models.WideResNet` with stock layers.

    Same layers, order, names (plus `prefix`), PyTorch-style explicit
    padding (`ZeroPadding2D` + `"valid"` convolution, as
    `keras_swn.export.to_keras` writes it) and BatchNorm settings; the
    channels are free (`channels = [16, c1, c2, c3]`) so that widths
    need not be integers. Convolutions start He-normal for their fan-in
    (seeded), the head as the builder's.
    """
    import keras

    counter = iter(range(10_000))

    def init():
        return keras.initializers.VarianceScaling(
            2.0,
            "fan_in",
            "untruncated_normal",
            seed=seed * 10_000 + next(counter),
        )

    def conv(x, filters, size, stride, name):
        if size == 3:
            x = keras.layers.ZeroPadding2D(1, name=f"{prefix}{name}_pad")(x)
        return keras.layers.Conv2D(
            filters,
            size,
            strides=stride,
            padding="valid",
            use_bias=False,
            kernel_initializer=init(),
            name=f"{prefix}{name}",
        )(x)

    def bn(x, name):
        return keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, name=f"{prefix}{name}"
        )(x)

    def relu(x, name):
        return keras.layers.ReLU(name=f"{prefix}{name}")(x)

    n = (depth - 4) // 6
    x = conv(inputs, channels[0], 3, 1, "stem")
    c_in = channels[0]
    for s in range(1, 4):
        for b in range(1, n + 1):
            p = f"stage{s}_block{b}"
            stride = 2 if s > 1 and b == 1 else 1
            c_out = channels[s]
            h = relu(bn(x, f"{p}_bn1"), f"{p}_relu1")
            out = conv(h, c_out, 3, stride, f"{p}_conv1")
            out = relu(bn(out, f"{p}_bn2"), f"{p}_relu2")
            out = conv(out, c_out, 3, 1, f"{p}_conv2")
            if c_in != c_out or stride != 1:
                shortcut = conv(h, c_out, 1, stride, f"{p}_shortcut")
            else:
                shortcut = x
            x = keras.layers.Add(name=f"{prefix}{p}_add")([out, shortcut])
            c_in = c_out
    x = relu(bn(x, "bn"), "relu")
    x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}pool")(x)
    return keras.layers.Dense(
        num_classes, kernel_initializer=init(), name=f"{prefix}head"
    )(x)


def matched_width(depth, target, in_channels, num_classes):
    """The width `k` (step 0.01) whose plain WRN count is closest to
    `target`; returns `(k, channels, params)`."""
    best = None
    for i in range(1, 1601):
        k = i / 100
        channels = wrn_channels(k)
        params = plain_wrn_params(depth, channels, in_channels, num_classes)
        if best is None or abs(params - target) < abs(best[2] - target):
            best = (k, channels, params)
        if params > 2 * target:
            break
    return best


# ----------------------------------------------------------------------
# Runs


class Network:
    """The main network or the ensemble: builders, budgets, plain sizes."""

    def __init__(self, name, members, data, num_bins):
        from keras_swn.models import WideResNet

        self.name = name  # "main" or "ensemble"
        self.members = list(members)
        self.builders = [WideResNet(d, w) for d, w in self.members]
        self.label = " + ".join(b.name for b in self.builders)
        shape, classes = data.input_shape, data.num_classes
        self.unshared = [
            b.unshared_params(shape, classes) for b in self.builders
        ]
        self.conv_params = sum(u.conv_params_unshared for u in self.unshared)
        self.plain_params = sum(
            plain_wrn_params(d, wrn_channels(w), shape[-1], classes)
            for d, w in self.members
        )
        self.specs = [
            s
            for i, b in enumerate(self.builders)
            for s in b.layer_specs(shape, member=i)
        ]
        self.num_bins = num_bins
        self.input_shape, self.num_classes = shape, classes

    def budget(self, fraction: float) -> int:
        return int(round(fraction * self.conv_params))

    def bins(self):
        import keras_swn

        return keras_swn.SharingPolicy.from_bins(
            self.specs, self.num_bins, coefficients="per_layer"
        )

    def bins_report(self, fraction: float):
        """The `BudgetReport` of the `bins` SWN (raises if over budget)."""
        import keras_swn

        plan = keras_swn.BankPlan.create(
            self.specs, self.bins(), self.budget(fraction)
        )
        return keras_swn.BudgetReport.create(plan, self.unshared)


def _run_key(network, method, fraction, seed):
    budget = f"b{fraction:.2f}" if METHODS[method][2] else "full"
    return f"{network}/{method}/{budget}/seed{seed}"


def _trainable(model) -> int:
    seen, total = set(), 0
    for v in model.trainable_variables:
        if id(v) not in seen:
            seen.add(id(v))
            total += int(np.prod(v.shape))
    return total


def _softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _evaluate(model, data, batch_size):
    outputs = model.predict(data.validation(batch_size), verbose=0)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    probs = [_softmax(o) for o in outputs]
    members = [float(np.mean(p.argmax(1) == data.y_val)) for p in probs]
    ensemble = float(np.mean(np.mean(probs, axis=0).argmax(1) == data.y_val))
    return members, ensemble


def _schedule_callback(args, epoch_var, search=None, epochs=None):
    """At the start of every epoch: the cosine LR over `epochs` (default
    `args.epochs`), constant in the search-training phase, and the data
    order of the epoch (`Data.train`; search epochs use their own)."""
    import keras

    base, epochs = args.learning_rate, epochs or args.epochs

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            phase = None if search is None else search.phase
            if phase is not None and str(phase) == "search_training":
                lr, order = base, _SEARCH_ORDER + epoch
            else:
                lr = base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
                order = epoch
            self.model.optimizer.learning_rate = lr
            epoch_var.assign(order)

    return Schedule()


def _recipe(args):
    """The `TrainingRecipe` every row compiles with (its `ReferenceSGD`;
    the LR is set by `_schedule_callback`)."""
    from keras_swn.search import TrainingRecipe

    return TrainingRecipe(
        learning_rate=args.learning_rate,
        schedule="cosine",
        weight_decay=args.weight_decay,
    )


def total_epochs(args, method: str) -> int:
    """Training epochs a row pays for: final + search epochs."""
    searches = METHODS[method][1] == "search" and method != "bins_hard"
    extra = searches or method == "bins_matched"
    return args.epochs + (args.search_epochs if extra else 0)


def _fit_verbose(args):
    return 2 if args.verbose else 0


def run_plain(args, data, net, method, fraction, seed, results):
    import keras

    shape, classes = data.input_shape, data.num_classes
    if method == "plain":
        widths = [w for _, w in net.members]
        channels = [wrn_channels(w) for w in widths]
        extra = {}
    elif method == "plain_narrow":
        widths, channels = [1], [wrn_channels(1)]
        extra = {}
    else:  # plain_matched
        target = net.bins_report(fraction).trainable_total
        k, ch, params = matched_width(
            net.members[0][0], target, shape[-1], classes
        )
        widths, channels = [k], [ch]
        extra = {"matched_to": int(target), "width": k}
    depths = [d for d, _ in net.members]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    many = len(channels) > 1
    outputs = [
        plain_wrn(
            inputs,
            d,
            ch,
            classes,
            seed=seed * 10 + i,
            prefix=f"member_{i}_" if many else "",
        )
        for i, (d, ch) in enumerate(zip(depths, channels))
    ]
    model = keras.Model(inputs, outputs if many else outputs[0])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        _recipe(args).optimizer(), [loss] * len(outputs) if many else loss
    )
    ds, order = data.train(
        seed, args.batch_size, outputs=len(outputs) if many else 0
    )
    model.fit(
        ds,
        epochs=args.epochs,
        callbacks=[_schedule_callback(args, order)],
        shuffle=False,  # the dataset shuffles, seeded
        verbose=_fit_verbose(args),
    )
    members, ensemble = _evaluate(model, data, args.batch_size)
    names = [
        f"WRN-{d}-{w:g}"
        + ("" if float(w).is_integer() else f" ({'-'.join(map(str, ch))})")
        for d, w, ch in zip(depths, widths, channels)
    ]
    return {
        "members": names,
        "channels": channels,
        "trainable_params": _trainable(model),
        "member_accuracy": members,
        "ensemble_accuracy": ensemble,
        **extra,
    }


def _bin_counts(policy_groups, bins_groups):
    """Distinct member-0 groups inside every initial bin."""
    counts = {}
    for g, b in zip(policy_groups[0], bins_groups[0]):
        counts.setdefault(b, set()).add(g)
    return {b: len(v) for b, v in counts.items()}


def random_policy(net, fraction, counts, seed):
    """A random grouping, `counts[bin]` groups in every bin of member 0,
    other members attached as the search attaches them; redrawn until the
    plan fits the budget. Returns `(policy, draws)`."""
    import keras_swn
    from keras_swn.analysis import attach_members

    bins = net.bins().groups
    budget = net.budget(fraction)
    rng = np.random.default_rng([seed, int(round(fraction * 1000)), 17])
    by_bin = {}
    for lid, b in enumerate(bins[0]):
        by_bin.setdefault(b, []).append(lid)
    last = None
    for draw in range(1, 1001):
        member0 = [0] * len(bins[0])
        next_id = 0
        for b in sorted(by_bin):
            layers = list(rng.permutation(by_bin[b]))
            k = min(counts.get(b, 1), len(layers))
            labels = list(range(k)) + list(
                rng.integers(0, k, size=len(layers) - k)
            )
            for lid, label in zip(layers, labels):
                member0[int(lid)] = next_id + int(label)
            next_id += k
        attached = attach_members(
            net.specs, bins, member0, lambda a, b: float(rng.random())
        )
        policy = keras_swn.SharingPolicy.from_partners(
            net.specs, attached.groups, attached.partners
        )
        try:
            keras_swn.BankPlan.create(net.specs, policy, budget)
        except ValueError as e:
            last = e
            continue
        return policy, draw
    raise ValueError(
        f"No random grouping with {counts} groups per bin fits the budget "
        f"{budget:,} in 1000 draws; last: {last}"
    )


def _same_partition(a, b) -> bool:
    """Whether two `groups` tables group the layers the same way."""
    mapping, back = {}, {}
    for ra, rb in zip(a, b):
        for ga, gb in zip(ra, rb):
            if (
                mapping.setdefault(ga, gb) != gb
                or back.setdefault(gb, ga) != ga
            ):
                return False
    return True


def run_swn(args, data, net, method, fraction, seed, results):
    import keras

    import keras_swn

    kwargs, extra = {}, {}
    if method == "reference_init":
        kwargs["template_fan_in"] = 9
    if method == "layer_init":
        kwargs["template_fan_in"] = "layer"
    if method == "random":
        search_key = _run_key(net.name, "search", fraction, seed)
        found = results["runs"].get(search_key)
        if found is None:
            raise ValueError(
                f"method 'random' needs the result of {search_key} (its "
                "group count): run 'search' for this network, budget and "
                "seed first (list it before 'random')."
            )
        bins = net.bins().groups
        counts = _bin_counts(found["policy"]["groups"], bins)
        policy, draws = random_policy(net, fraction, counts, seed)
        kwargs["policy"] = policy
        extra = {
            "groups_per_bin": {str(b): c for b, c in sorted(counts.items())},
            "draws": draws,
            "same_as_bins": _same_partition(policy.groups, bins),
            "same_as_search": _same_partition(
                policy.groups, found["policy"]["groups"]
            ),
        }
    keras.utils.set_random_seed(seed)
    model = keras_swn.SWNModel(
        members=net.builders,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        budget=net.budget(fraction),
        num_bins=args.num_bins,
        seed=seed,
        **kwargs,
    )
    _recipe(args).compile(model)
    epochs = total_epochs(args, method)
    ds, order = data.train(seed, args.batch_size)
    model.fit(
        ds,
        epochs=epochs,
        callbacks=[_schedule_callback(args, order, epochs=epochs)],
        shuffle=False,  # the dataset shuffles, seeded
        verbose=_fit_verbose(args),
    )
    members, ensemble = _evaluate(model, data, args.batch_size)
    return {
        **_swn_record(model, net, fraction, members, ensemble),
        **extra,
    }


def _phase_seconds(phases) -> dict:
    """Seconds per phase (a phase that ran twice, e.g. training around
    refine, is summed)."""
    seconds: dict = {}
    for p in phases:
        if p.get("seconds") is not None and "phase" in p:
            name = p["phase"]
            seconds[name] = round(seconds.get(name, 0.0) + p["seconds"], 1)
    return seconds


def _swn_record(model, net, fraction, members, ensemble):
    report = model.budget_report()
    return {
        "members": [b.name for b in net.builders],
        "budget": net.budget(fraction),
        "trainable_params": _trainable(model),
        "report_trainable_total": int(report.trainable_total),
        "template_fan_in": model.template_fan_in,
        "groups": model.policy.num_groups,
        "coefficient_vectors": int(report.coefficient_vectors),
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
    search = SearchAndRefine(
        members=net.builders,
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
        **_search_kwargs(args, method),
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
        schedule="cosine",  # recorded; `_schedule_callback` sets the LR
        weight_decay=args.weight_decay,
        callbacks=[_schedule_callback(args, order, search)],
        verbose=_fit_verbose(args),
    )
    model = search.get_best_models()[0]
    members, ensemble = _evaluate(model, data, args.batch_size)
    record = _swn_record(model, net, fraction, members, ensemble)
    record["template_fan_in"] = search.template_fan_in
    result = search.search_result()
    phases = search.results().get("phases", [])
    record.update(
        {
            "sharing": search.sharing.value,
            "signal": search.signal,
            "resumed": resumed,
            "phases": _phase_seconds(phases),
        }
    )
    if result is not None:
        record["search"] = {
            "threshold": result.threshold,
            "thresholds_tried": result.iterations,
            "need": result.need,
            "groups": result.num_groups,
        }
    refine = os.path.join(runs_dir, project, "refine.json")
    if os.path.exists(refine):
        with open(refine, encoding="utf-8") as f:
            r = json.load(f)
        record["refine"] = {
            k: r.get(k) for k in ("vectors_before", "vectors_after")
        }
    return record


# ----------------------------------------------------------------------
# Results: JSON, Markdown, plot


def _settings(args, data) -> dict:
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
        "num_bins": args.num_bins,
        "epochs": args.epochs,
        "search_epochs": args.search_epochs,
        "refine_after": args.refine_after,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "optimizer": "keras_swn.search.ReferenceSGD via TrainingRecipe "
        "(SGD, Nesterov 0.9, coupled L2 on decayed_variables: not the "
        "coefficients)",
        "schedule": "cosine from learning_rate to 0 over epochs, set per "
        "epoch; search-training epochs at the constant learning_rate",
        "augmentation": "pad 4 + random crop, random horizontal flip, "
        "per-channel train mean/std",
        "pairing": "epoch e of every row of a seed: the same order and "
        "augmentation draws (search epochs their own); same initial values "
        "for the members' own variables and for every template whose group "
        "id and shape match",
        "backend": _backend(),
        "smoke": bool(args.smoke),
        "threshold_schedule": args.threshold_schedule,
    }


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _machine() -> str:
    return (
        f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def _mean_std(values):
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


def _label(network: str, method: str) -> str:
    if network == "ensemble" and method == "plain":
        return "unshared ensemble (plain members, summed loss)"
    if network == "ensemble":
        return f"{METHODS[method][0]}, one bank"
    return METHODS[method][0]


def summarise(results, networks) -> list[dict]:
    """One row per (network, method, budget), in run order."""
    rows = {}
    for key in results["order"]:
        run = results["runs"].get(key)
        name, method, budget, seed = key.split("/")
        row = rows.setdefault(
            (name, method, budget),
            {
                "network": name,
                "network_label": networks[name].label,
                "method": method,
                "budget_fraction": (
                    None if budget == "full" else float(budget[1:])
                ),
                "label": _label(name, method),
                "plain_params": networks[name].plain_params,
                "seeds": [],
                "accuracy": [],
                "member_accuracy": [],
                "trainable_params": [],
                "wall_seconds": [],
                "epochs_total": [],
                "groups": [],
                "missing": [],
            },
        )
        seed = int(seed[len("seed") :])
        if run is None:
            row["missing"].append(seed)
            continue
        row["seeds"].append(seed)
        members = run["member_accuracy"]
        row["accuracy"].append(
            run["ensemble_accuracy"] if len(members) > 1 else members[0]
        )
        row["member_accuracy"].append(members)
        row["trainable_params"].append(run["trainable_params"])
        row["wall_seconds"].append(run["wall_seconds"])
        row["epochs_total"].append(run.get("epochs_total"))
        groups = run.get("groups")
        if groups is not None:
            if run.get("same_as_search"):
                groups = f"{groups} (= search)"
            elif run.get("same_as_bins"):
                groups = f"{groups} (= bins)"
        row["groups"].append(groups)
        row["members"] = run["members"]
        for extra in ("width", "matched_to", "template_fan_in", "budget"):
            if extra in run:
                row[extra] = run[extra]
    for row in rows.values():
        if row["accuracy"]:
            mean, std = _mean_std(row["accuracy"])
            row.update(
                accuracy_mean=mean,
                accuracy_std=std,
                params_mean=float(np.mean(row["trainable_params"])),
                wall_seconds_mean=float(np.mean(row["wall_seconds"])),
            )
    _paired_to_bins(rows)
    return list(rows.values())


#: Two-sided 95% t quantiles, df 1..30 (larger df: 1.96 + 2.4 / df).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_interval(values):
    """`(mean, low, high)`: the mean and its two-sided 95% t-interval
    (low and high None for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    df = len(values) - 1
    t = _T975[df - 1] if df <= 30 else 1.96 + 2.4 / df
    half = t * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _paired_to_bins(rows) -> None:
    """Per row: `paired_seeds`, `paired_diff` (accuracy minus the `bins`
    row's of the same network and budget, seed by seed; rows without a
    budget pair with the network's only `bins` row) and `paired_mean`,
    `paired_low`, `paired_high` (95% t-interval)."""
    bins = {
        (k[0], k[2]): r
        for k, r in rows.items()
        if k[1] == "bins" and r["accuracy"]
    }
    for (name, method, budget), row in rows.items():
        ref = bins.get((name, budget))
        mine = [k for k in bins if k[0] == name]
        if ref is None and budget == "full" and len(mine) == 1:
            ref = bins[mine[0]]
        if ref is None or method == "bins":
            continue
        theirs = dict(zip(ref["seeds"], ref["accuracy"]))
        pairs = [
            (seed, acc - theirs[seed])
            for seed, acc in zip(row["seeds"], row["accuracy"])
            if seed in theirs
        ]
        if not pairs:
            continue
        mean, low, high = t_interval([d for _, d in pairs])
        row.update(
            paired_seeds=[s for s, _ in pairs],
            paired_diff=[d for _, d in pairs],
            paired_mean=mean,
            paired_low=low,
            paired_high=high,
        )


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _row_name(row) -> str:
    name = row["label"]
    if row["method"] in ("plain_narrow", "plain_matched") and row.get(
        "members"
    ):
        name += f": {row['members'][0]}"
    return name


def _paired_text(row) -> str:
    if "paired_mean" not in row:
        return "–"
    text = f"{100 * row['paired_mean']:+.2f}"
    if row["paired_low"] is not None:
        text += (
            f" [{100 * row['paired_low']:+.2f}, "
            f"{100 * row['paired_high']:+.2f}]"
        )
    return text


def markdown(results) -> str:
    s = results["settings"]
    ensemble = " + ".join(f"WRN-{m}" for m in s["ensemble_members"])
    lines = [
        "# Accuracy per parameter: SWN vs plain Keras WRNs",
        "",
        f"Written by `benchmarks/quality.py` on {results['updated']} "
        f"({s['backend']}; {results['machine']}).",
        "",
        f"- Command: `{results['command']}`",
        (
            f"- Data: all {s['n_train']:,} images of "
            f"`{os.path.basename(s['data'])}` train; accuracy on the "
            f"{s['n_val']:,} images of `{os.path.basename(s['eval_data'])}`."
            if s.get("eval_data")
            else f"- Data: `{os.path.basename(s['data'])}`, stratified split "
            f"(seed {s['split_seed']}): {s['n_train']:,} training / "
            f"{s['n_val']:,} held-out images; accuracy on the held-out ones."
        ),
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
        "| network | row | budget | init | trainable params | % of plain "
        "| accuracy % | per seed % | Δ bins, points [95% CI] | Δ per seed "
        "| epochs | groups | wall time / run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- | --- |",
    ]
    for row in results["rows"]:
        budget = (
            "–"
            if row["budget_fraction"] is None
            else f"{row['budget_fraction']:.0%}"
        )
        fan_in = row.get("template_fan_in")
        init = "He-normal" if fan_in is None else f"`{fan_in!r}`"
        name = _row_name(row)
        if row["missing"]:
            name += f" (seeds {row['missing']} not run yet)"
        head = f"| {row['network_label']} | {name} | {budget} | {init} |"
        if not row["accuracy"]:
            lines.append(f"{head} | | not run yet | | | | | | |")
            continue
        params = sorted(set(row["trainable_params"]))
        params_text = f"{params[0]:,}" + (
            f"–{params[-1]:,}" if len(params) > 1 else ""
        )
        ratio = row["params_mean"] / row["plain_params"]
        acc = _pct(row["accuracy_mean"])
        if row["accuracy_std"] is not None:
            acc += f" ± {_pct(row['accuracy_std'])}"
        per_seed = []
        for a, m in zip(row["accuracy"], row["member_accuracy"]):
            per_seed.append(
                _pct(a)
                + (" [" + " / ".join(map(_pct, m)) + "]" if len(m) > 1 else "")
            )
        groups = list(dict.fromkeys(g for g in row["groups"] if g))
        epochs = sorted({e for e in row["epochs_total"] if e is not None})
        lines.append(
            f"{head} {params_text} | {100 * ratio:.0f}% | {acc} | "
            f"{', '.join(per_seed)} | {_paired_text(row)} | "
            + ", ".join(f"{100 * d:+.2f}" for d in row.get("paired_diff", []))
            + f" | {'/'.join(map(str, epochs)) or '–'} | "
            f"{', '.join(map(str, groups)) or '–'} "
            f"| {row['wall_seconds_mean']:.0f} s |"
        )
    if results.get("errors"):
        lines += ["", "Failed runs (rerun the command to retry them):", ""]
        lines += [f"- `{k}`: {v}" for k, v in results["errors"].items()]
    if results.get("notes"):
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def plot(results, path) -> None:
    """Accuracy (mean ± std over seeds) against trainable parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_swn.io_utils import atomic_write

    markers = {"plain": "o", "swn": "s", "search": "D"}
    colors = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, row in enumerate(r for r in results["rows"] if r["accuracy"]):
        budget = (
            ""
            if row["budget_fraction"] is None
            else f" @ {row['budget_fraction']:.0%}"
        )
        ax.errorbar(
            row["params_mean"],
            100 * row["accuracy_mean"],
            yerr=100 * (row["accuracy_std"] or 0.0),
            fmt=markers[METHODS[row["method"]][1]],
            markerfacecolor=(
                "none" if row["network"] == "ensemble" else colors[i % 20]
            ),
            color=colors[i % 20],
            markersize=8,
            capsize=3,
            label=f"{row['network_label']}: {_row_name(row)}{budget}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("held-out accuracy (%), mean ± std over seeds")
    s = results["settings"]
    ax.set_title(
        f"{s['epochs']} epochs on {s['n_train']:,} images "
        f"({os.path.basename(s['data'])})"
        + (", smoke mode" if s["smoke"] else ""),
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=120),
        suffix=".png",
    )
    plt.close(fig)


def plot_paired(results, path) -> None:
    """Per row, the paired difference to `bins` (points): every seed
    (dots) and the mean with its 95% t-interval (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_swn.io_utils import atomic_write

    rows = [r for r in results["rows"] if r.get("paired_diff")]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    for i, row in enumerate(rows):
        diffs = 100 * np.asarray(row["paired_diff"])
        ax.plot(diffs, [i] * len(diffs), "o", color="0.6", markersize=4)
        mean = 100 * row["paired_mean"]
        if row["paired_low"] is None:
            ax.plot([mean], [i], "D", color="C0")
        else:
            err = [
                [mean - 100 * row["paired_low"]],
                [100 * row["paired_high"] - mean],
            ]
            ax.errorbar([mean], [i], xerr=err, fmt="D", color="C0", capsize=4)
    labels = []
    for r in rows:
        at = r["budget_fraction"]
        epochs = sorted({e for e in r["epochs_total"] if e is not None})
        labels.append(
            f"{r['network_label']}: {_row_name(r)}"
            + ("" if at is None else f" @ {at:.0%}")
            + f" ({'/'.join(map(str, epochs))} epochs)"
        )
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.axvline(0.0, color="k", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy − bins (points), per seed; mean, 95% CI")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=120),
        suffix=".png",
    )
    plt.close(fig)


def plot_groups(results, path) -> None:
    """The grouping each SWN run chose: one row per run (first seed of
    each network, method and budget), one cell per member-0 layer,
    coloured and labelled by group id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_swn.io_utils import atomic_write

    rows = {}
    for key, run in sorted(results["runs"].items()):
        groups = (run.get("policy") or {}).get("groups")
        if not groups or run["network"] != "main":
            continue
        name = f"{run['method']} @ {run['budget_fraction']:.0%}"
        rows.setdefault(name, groups[0])
    if not rows:
        return
    width = max(len(g) for g in rows.values())
    fig, ax = plt.subplots(figsize=(0.45 * width + 3, 0.45 * len(rows) + 1.2))
    table = np.full((len(rows), width), np.nan)
    for i, groups in enumerate(rows.values()):
        table[i, : len(groups)] = groups
    ax.imshow(table, cmap="tab20", aspect="auto", interpolation="nearest")
    for i, groups in enumerate(rows.values()):
        for j, g in enumerate(groups):
            ax.text(j, i, str(g), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set_xticks(range(width), [str(j) for j in range(width)], fontsize=7)
    ax.set_xlabel("member-0 layer id (stem first)")
    ax.set_title("Group of every layer, per method (first seed)", fontsize=10)
    fig.tight_layout()
    atomic_write(
        path,
        lambda tmp: fig.savefig(tmp, format="png", dpi=120),
        suffix=".png",
    )
    plt.close(fig)


def _paths(output):
    stem = output[:-5] if output.endswith(".json") else output
    return stem + ".json", stem + ".md", stem + ".png", stem + "_runs"


def _load(path, settings, overwrite):
    if overwrite or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if results.get("format") != _FORMAT or results.get("version") != _VERSION:
        raise SystemExit(f"{path} is not a quality benchmark result file.")
    old = results["settings"]
    diff = [
        f"{k}: file {old.get(k)!r}, now {settings.get(k)!r}"
        for k in _RESULT_SETTINGS
        if old.get(k) != settings.get(k)
    ]
    if diff:
        raise SystemExit(
            f"{path} holds runs with other settings ({'; '.join(diff)}). "
            "Use another --output, or --overwrite to discard them."
        )
    return results


def _write(results, networks, paths) -> None:
    from keras_swn.io_utils import atomic_write_json

    results["updated"] = datetime.datetime.now().isoformat(timespec="seconds")
    results["rows"] = summarise(results, networks)
    atomic_write_json(paths[0], results)
    _render(results, paths)


def _render(results, paths) -> None:
    from keras_swn.io_utils import atomic_write_text

    atomic_write_text(paths[1], markdown(results))
    stem = paths[2][: -len(".png")]
    plot(results, paths[2])
    plot_groups(results, stem + "_groups.png")
    plot_paired(results, stem + "_paired.png")


def report_only(output) -> dict:
    """Re-render the .md and .png of a results JSON (the JSON is only
    read: a run may be writing it)."""
    import types

    paths = _paths(output)
    with open(paths[0], encoding="utf-8") as f:
        results = json.load(f)
    s = results["settings"]
    shape = types.SimpleNamespace(
        input_shape=tuple(s["input_shape"]), num_classes=s["num_classes"]
    )
    nets = {"main": [(s["depth"], s["width"])]}
    members = [m.split("-") for m in s["ensemble_members"]]
    if members:
        nets["ensemble"] = [(int(d), int(w)) for d, w in members]
    networks = {n: Network(n, m, shape, s["num_bins"]) for n, m in nets.items()}
    results["rows"] = summarise(results, networks)
    _render(results, paths)
    log(f"wrote {paths[1]} and the plots from {paths[0]}")
    return results


def plan_runs(args, networks) -> tuple[list, list[str]]:
    """`(runs, notes)`: runs are `(network, method, fraction, seed)`."""
    runs, notes = [], []
    for seed in args.seeds:
        for name, methods, fractions in (
            ("main", args.methods, args.budget_fractions),
            (
                "ensemble",
                args.ensemble_methods,
                [args.ensemble_budget_fraction],
            ),
        ):
            if name not in networks:
                continue
            for method in methods:
                if (
                    name == "main"
                    and method == "plain_narrow"
                    and args.width == 1
                ):
                    note = (
                        f"plain_narrow skipped: WRN-{args.depth}-1 is the "
                        "full plain network (width 1)."
                    )
                    if note not in notes:
                        notes.append(note)
                    continue
                if METHODS[method][2]:
                    for fraction in fractions:
                        runs.append((name, method, fraction, seed))
                else:
                    runs.append((name, method, None, seed))
    # `random` needs the `search` run of its seed and budget: move it after.
    ordered = [r for r in runs if r[1] != "random"]
    for r in [r for r in runs if r[1] == "random"]:
        after = [
            i
            for i, o in enumerate(ordered)
            if o[0] == r[0] and o[1] == "search" and o[2:] == r[2:]
        ]
        ordered.insert(after[0] + 1 if after else len(ordered), r)
    return ordered, notes


def check_budgets(args, networks) -> None:
    """Every budget must pay for one template per bank of the bins."""
    checks = [("main", f) for f in args.budget_fractions]
    if "ensemble" in networks:
        checks.append(("ensemble", args.ensemble_budget_fraction))
    for name, fraction in checks:
        net = networks[name]
        try:
            net.bins_report(fraction)
        except ValueError as e:
            raise SystemExit(
                f"Budget fraction {fraction} is too small for {net.label} "
                f"with {args.num_bins} initial bins: {e}"
            ) from None


def main(argv=None) -> dict:
    """Run (or resume) the table; returns the results dict."""
    args = parse_args(argv)
    if not args.verbose:  # tf.function retracing notices and the like
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        # `SearchAndRefine` fits a dataset with fit's default shuffle=True;
        # the pipeline shuffles itself (seeded).
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    if args.report_only:
        return report_only(args.output)
    import keras

    data = Data(args.data, args.split_seed, args.smoke, args.eval_data)
    networks = {
        "main": Network("main", [(args.depth, args.width)], data, args.num_bins)
    }
    if args.members and args.ensemble_methods:
        networks["ensemble"] = Network(
            "ensemble", args.members, data, args.num_bins
        )
    check_budgets(args, networks)
    paths = _paths(args.output)
    settings = _settings(args, data)
    results = _load(paths[0], settings, args.overwrite)
    if results is None:
        if os.path.isdir(paths[3]):
            shutil.rmtree(paths[3])
        results = {"format": _FORMAT, "version": _VERSION, "runs": {}}
    results.update(
        settings=settings,
        machine=_machine(),
        command=" ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
        if argv is None
        else " ".join(["quality.py", *argv]),
        errors={},
    )
    runs, notes = plan_runs(args, networks)
    results["notes"] = notes
    keys = [_run_key(n, m, f or 0.0, s) for n, m, f, s in runs]
    results["order"] = list(
        dict.fromkeys(
            [k for k in results.get("order", []) if k in results["runs"]] + keys
        )
    )
    todo = [(r, k) for r, k in zip(runs, keys) if k not in results["runs"]]
    log(
        f"{len(keys)} runs, {len(keys) - len(todo)} already in "
        f"{paths[0]}; {len(todo)} to run ({settings['backend']})"
    )
    _write(results, networks, paths)
    for i, ((name, method, fraction, seed), key) in enumerate(todo, 1):
        net = networks[name]
        kind = METHODS[method][1]
        keras.utils.clear_session()  # free the previous run's graphs
        gc.collect()
        start = time.perf_counter()
        try:
            if kind == "plain":
                record = run_plain(
                    args, data, net, method, fraction, seed, results
                )
            elif kind == "swn":
                record = run_swn(
                    args, data, net, method, fraction, seed, results
                )
            else:
                record = run_search(
                    args, data, net, method, fraction, seed, results, paths[3]
                )
        except Exception as e:  # noqa: BLE001 - recorded, retried on rerun
            message = f"{type(e).__name__}: {e}"
            results["errors"][key] = message[:2000]
            log(f"{i}/{len(todo)} {key} FAILED: {message[:500]}")
            if args.verbose:
                traceback.print_exc()
            _write(results, networks, paths)
            continue
        record.update(
            key=key,
            network=name,
            method=method,
            budget_fraction=fraction if METHODS[method][2] else None,
            seed=seed,
            epochs_total=total_epochs(args, method),
            wall_seconds=round(time.perf_counter() - start, 1),
            finished=datetime.datetime.now().isoformat(timespec="seconds"),
        )
        results["runs"][key] = record
        _write(results, networks, paths)
        acc = record["member_accuracy"]
        text = f"accuracy {100 * acc[0]:.1f}%"
        if len(acc) > 1:
            text = (
                f"ensemble accuracy {100 * record['ensemble_accuracy']:.1f}% "
                f"(members {' / '.join(f'{100 * a:.1f}' for a in acc)})"
            )
        log(
            f"{i}/{len(todo)} {key}: {text}, "
            f"{record['trainable_params']:,} trainable parameters, "
            f"{record['wall_seconds']:.0f} s"
        )
    log(f"wrote {paths[0]}, {paths[1]}, {paths[2]}")
    if results["errors"]:
        log(f"{len(results['errors'])} runs failed; rerun to retry them.")
    return results


if __name__ == "__main__":
    outcome = main()
    sys.exit(1 if outcome.get("errors") else 0)
