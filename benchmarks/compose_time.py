"""Composition alone: forward + backward of every kernel, per variant.

Builds an `SWNModel` (default: one WRN-16-4 member, budget 1,000,000, as
`benchmarks/step_time.py` does) and times `loss = sum(k**2)` over all of
its composed kernels with the gradients with respect to the bank's
variables, for each way of composing them:

- `plain`: no composition: the same kernels held as plain variables, the
  floor (the loss and its gradient alone).
- `per_layer`: `TemplateBank` per-layer path (`kernel` outside a
  `composed` scope): per layer and level a matmul, splits, reshapes and
  the HWIO assembly.
- `oihw_direct`: the batched composition as first written, templates
  stored in the spec's OIHW order (before keras_swn 0.2): per bank one
  matmul of all coefficient rows with the templates permuted to HWIO by
  one 5-D transpose per piece, every kernel cut out by static splits,
  reshapes and concatenations. Its own copy of the templates, in OIHW
  order.
- `oihw`: the same with the pieces permuted by two transposes of
  contiguous runs (the default of 0.1 at its last release).
- `slices`: the library's batched composition (`BatchedComposer`), the
  templates stored with their pieces in HWIO order: per bank one matmul,
  then splits, reshapes and concatenations, no transpose.
- `gather`: the per-bank matmul results concatenated flat and every kernel
  gathered from them by one `take` with a static index array (rows of
  `chunk` entries: the runs along the output channels), then `split`; the
  index made by running the per-layer assembly on arrays of positions.
  The gather's gradient is the backend's (a scatter-add).
- `gather_cg`: `gather` whose gradient is the inverse gather where the
  index is injective (`keras.ops.custom_gradient`).
- `row_matmul`: `slices` with every window's rows computed by one matmul
  each (`BatchedComposer(row_matmul_min_seg=0)`).
- `one_matmul`: `slices` with one matmul per window always, its result
  split into rows (`row_matmul_min_seg=None`, the default before).
- `compose_all`: whatever `TemplateBank.compose_all` uses (what
  `SWNModel.call` runs).

Before timing, every variant's kernels are checked against the per-layer
path's (float tolerance).

Compiled as the backend allows: `tf.function` (`--jit_compile false`,
`true` or `both`) on TensorFlow, `jax.jit` on JAX, eager on PyTorch. The
variants run in interleaved blocks (the order rotated each block), so a
shared machine slows them alike; per variant it reports the median and
min time of one call, the min/max of its per-block medians, and the op
count of the compiled function (TensorFlow: operations of the concrete
function's graph; JAX: instructions of the optimised HLO).

Usage:
    python benchmarks/compose_time.py [--backend tensorflow|jax|torch]
        [--depth 16] [--width 4] [--budget 1000000] [--blocks 6]
        [--steps 10] [--warmup 3] [--variants plain,slices,gather_cg]
        [--jit_compile false|true|both] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

VARIANTS = (
    "plain",
    "per_layer",
    "oihw_direct",
    "oihw",
    "slices",
    "gather",
    "gather_cg",
    "compose_all",
    "row_matmul",
    "one_matmul",
)


def _build(args):
    from keras_swn import SWNModel
    from keras_swn.models import WideResNet

    return SWNModel(
        members=[WideResNet(args.depth, args.width)],
        input_shape=(32, 32, 3),
        num_classes=10,
        budget=args.budget,
        seed=0,
    )


def _composer(bank, variant: str):
    """`(function of no arguments: {key: kernel} by variant, the variables
    it reads)`."""
    import keras
    from keras import ops

    from keras_swn.bank.template_bank import coefficient_probe_key
    from keras_swn.probe import active_probe

    keys = sorted(bank.plan.layers)
    composer = bank._batched

    def probe(key, width):
        return active_probe(coefficient_probe_key(bank, key, width))

    variables = bank.trainable_variables
    if variant == "plain":
        # The floor: the same kernels as plain variables (no composition).
        kernels = bank.compose_all(keys)
        plain = {
            k: keras.Variable(kernels[k], name=f"kernel_{k[0]}_{k[1]}")
            for k in keys
        }
        return (lambda: {k: v.value for k, v in plain.items()}), list(
            plain.values()
        )
    if variant == "per_layer":
        return (lambda: {k: bank._kernel_per_layer(k) for k in keys}), variables
    if variant == "slices":
        return (lambda: composer.compose(ops, bank, keys, probe)), variables
    if variant in ("oihw", "oihw_direct"):
        before = _OihwStorage(bank, twostep=variant == "oihw")
        return (lambda: before.compose(ops, keys, probe)), before.variables
    if variant == "compose_all":
        return (lambda: bank.compose_all(keys)), variables
    if variant in ("row_matmul", "one_matmul"):
        other = copy.copy(composer)
        other.row_matmul_min_seg = 0 if variant == "row_matmul" else None
        return (lambda: other.compose(ops, bank, keys, probe)), variables
    gather = _Gather(composer, keys)
    custom = variant == "gather_cg"
    return (lambda: gather(ops, bank, custom)), variables


class _OihwStorage:
    """Before keras_swn 0.2: the templates stored in the spec's OIHW order
    (a copy of the bank's, permuted back once here), every piece permuted
    to HWIO at every step, by one 5-D transpose (`twostep=False`) or two
    transposes of contiguous runs (`twostep=True`), on whichever of the
    templates `(K, seg)` and the matmul result `(rows, seg)` is smaller.
    Its own template variables, the bank's coefficients; exact kernels."""

    def __init__(self, bank, twostep: bool):
        import keras

        from keras_swn.bank import layout

        self.bank = bank
        self.composer = bank._batched
        self.twostep = twostep
        self.coefficients = bank.coefficients
        self.templates = {
            key: keras.Variable(
                layout.to_oihw(
                    keras.ops.convert_to_numpy(var), bank.storage_order(*key)
                ),
                name=f"oihw_{key[0]}_{key[1]}",
            )
            for key, var in bank.templates.items()
        }
        self.variables = list(self.templates.values()) + list(
            self.coefficients.values()
        )

    def to_hwio(self, ops, x, bank_key):
        """The pieces of `x (n, seg)` (OIHW order), each `(n, length)` in
        HWIO order."""
        n = int(x.shape[0])
        out = []
        for piece, (_, length, shape) in zip(
            self.composer._split_columns(ops, x, bank_key),
            self.composer.pieces[bank_key],
        ):
            o, i, h, w = shape
            if self.twostep:
                piece = ops.reshape(piece, (n, o, i * h * w))
                if o > 1 and i * h * w > 1:
                    piece = ops.transpose(piece, (0, 2, 1))
                if i > 1 and h * w > 1:
                    piece = ops.reshape(piece, (n, i, h * w, o))
                    piece = ops.transpose(piece, (0, 2, 1, 3))
            else:
                piece = ops.reshape(piece, (n, *shape))
                piece = ops.transpose(piece, (0, 3, 4, 2, 1))
            out.append(ops.reshape(piece, (n, length)))
        return out

    def superweights(self, ops, windows, probe):
        composer = self.composer
        out = {}
        for i in sorted(windows):
            win = composer.windows[i]
            k = composer.plan.banks[win.bank].templates
            templates = composer.window_templates(
                ops, self.templates[win.bank], win
            )
            matrix, index = composer._window_rows(ops, self, win, probe)
            n = int(matrix.shape[0])
            if n < k:
                pieces = self.to_hwio(
                    ops, ops.matmul(matrix, templates), win.bank
                )
            else:
                parts = self.to_hwio(ops, templates, win.bank)
                joined = (
                    parts[0] if len(parts) == 1 else ops.concatenate(parts, 1)
                )
                pieces = composer._split_columns(
                    ops, ops.matmul(matrix, joined), win.bank
                )
            rows = [[p] if n == 1 else ops.split(p, n, axis=0) for p in pieces]
            out[i] = (rows, index)
        return out

    def compose(self, ops, keys, probe):
        # The library's composition with this class's superweights.
        composer = copy.copy(self.composer)
        composer.superweights = lambda ops_, bank_layer, windows, probe_: (
            self.superweights(ops_, windows, probe_)
        )
        return composer.compose(ops, self, keys, probe)


class _Gather:
    """The `gather` variants: the per-window matmul results (HWIO piece
    order, as in `BatchedComposer.superweights`) concatenated flat, every
    kernel gathered from them in rows of `chunk` entries by one `take`
    with a static index array, then split per kernel.

    The index is made by running `keras_swn.bank.assembly.assemble` (the
    per-layer path's assembly) on arrays of flat positions, so it is exact
    by construction (`check` compares with the per-layer path).
    """

    def __init__(self, composer, keys):
        import numpy as np

        from keras_swn.bank.assembly import assemble

        plan = composer.plan
        self.composer, self.keys = composer, list(keys)
        self.windows = sorted(
            {
                composer.slot_of[(key, w)][0]
                for key in keys
                for w in range(plan.layers[key].num_levels)
            }
        )
        base, width, total = {}, {}, 0
        for i in self.windows:
            win = composer.windows[i]
            width[i] = sum(p[1] for p in composer.pieces[win.bank])
            base[i] = total
            total += len(win.unique) * width[i]
        index, self.sizes = [], []
        for key in keys:
            recipe = plan.layers[key]
            levels = plan.levels_of(*key)
            vectors = []
            for w, level in enumerate(levels):
                i, slot = composer.slot_of[(key, w)]
                row = composer.windows[i].unique_of[slot]
                at = base[i] + row * width[i]
                vector = np.full(level.seg, -1, np.int64)
                for start, length, (o, n_in, h, w_) in composer.pieces[
                    (recipe.group, w)
                ]:
                    hwio = np.arange(at, at + length).reshape(h, w_, n_in, o)
                    vector[start : start + length] = hwio.transpose(
                        3, 2, 0, 1
                    ).reshape(-1)
                    at += length
                vectors.append(vector)
            oihw = assemble(
                levels,
                vectors,
                concatenate=np.concatenate,
                reshape=np.reshape,
                shape=recipe.shape,
            )
            if recipe.kind == "dense":
                layout = oihw[:, :, 0, 0].transpose(1, 0)
            else:
                layout = oihw.transpose(2, 3, 1, 0)
            index.append(layout.reshape(-1))
            self.sizes.append(int(layout.size))
        flat_index = np.concatenate(index)
        assert flat_index.min() >= 0
        self.chunk = 1
        for c in (64, 32, 16, 8, 4, 2):
            blocks = (
                flat_index.reshape(-1, c) if flat_index.size % c == 0 else None
            )
            if (
                blocks is not None
                and total % c == 0
                and not any(n % c for n in self.sizes)
                and np.all(blocks[:, 0] % c == 0)
                and np.all(blocks == blocks[:, :1] + np.arange(c))
            ):
                self.chunk = c
                break
        self.index = (
            flat_index.reshape(-1, self.chunk)[:, 0] // self.chunk
        ).astype("int32")
        n_rows = total // self.chunk
        self.inverse = None
        if np.bincount(self.index, minlength=n_rows).max() <= 1:
            inverse = np.full(n_rows, len(self.index), np.int64)
            inverse[self.index] = np.arange(len(self.index))
            self.inverse = inverse.astype("int32")

    def __call__(self, ops, bank, custom_gradient):
        import numpy as np

        composer = self.composer
        flat = []
        for i in self.windows:
            win = composer.windows[i]
            templates = composer.window_templates(
                ops, bank.templates[win.bank], win
            )
            matrix, _ = composer._window_rows(ops, bank, win, lambda *a: None)
            parts = composer._split_columns(ops, templates, win.bank)
            joined = parts[0] if len(parts) == 1 else ops.concatenate(parts, 1)
            flat.append(ops.reshape(ops.matmul(matrix, joined), (-1,)))
        flat = ops.reshape(ops.concatenate(flat, 0), (-1, self.chunk))
        index = ops.convert_to_tensor(self.index)
        if custom_gradient and self.inverse is not None:
            inverse = ops.convert_to_tensor(self.inverse)

            @ops.custom_gradient
            def take(x):
                def grad(*args, upstream=None):
                    if upstream is None:
                        (upstream,) = args
                    zero = ops.zeros((1, self.chunk), upstream.dtype)
                    padded = ops.concatenate([upstream, zero], 0)
                    return ops.take(padded, inverse, axis=0)

                return ops.take(x, index, axis=0), grad

            taken = take(flat)
        else:
            taken = ops.take(flat, index, axis=0)
        points = [int(p) // self.chunk for p in np.cumsum(self.sizes)[:-1]]
        pieces = ops.split(taken, points, axis=0)
        kernels = {}
        for key, piece in zip(self.keys, pieces):
            kernels[key] = ops.reshape(piece, bank.kernel_shape(key))
        return kernels


def _loss(kernels):
    from keras import ops

    return sum(ops.sum(ops.square(k)) for k in kernels.values())


def _tensorflow(bank, variant, jit_compile):
    import tensorflow as tf

    compose, variables = _composer(bank, variant)

    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = _loss(compose())
        grads = tape.gradient(loss, [v.value for v in variables])
        return loss, grads

    graph = step.get_concrete_function().graph
    ops_count = len(graph.get_operations())

    def run():
        loss, grads = step()
        return float(loss.numpy()) + float(grads[0].numpy().ravel()[0])

    return run, ops_count


def _jax(bank, variant):
    import jax
    import keras

    compose, variables = _composer(bank, variant)

    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return _loss(compose())

    step = jax.jit(jax.value_and_grad(loss_of))
    values = [v.value for v in variables]
    compiled = step.lower(values).compile()
    text = compiled.as_text()
    ops_count = sum(
        1
        for line in text.splitlines()
        if " = " in line and not line.lstrip().startswith(("HloModule", "//"))
    )

    def run():
        loss, grads = compiled(values)
        jax.block_until_ready((loss, grads))
        return loss

    return run, ops_count


def _torch(bank, variant):
    import torch

    compose, variables = _composer(bank, variant)
    params = [v.value for v in variables]

    def run():
        loss = _loss(compose())
        grads = torch.autograd.grad(loss, params)
        return float(loss.detach()) + float(grads[0].reshape(-1)[0])

    return run, None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend",
        default="tensorflow",
        choices=["tensorflow", "jax", "torch"],
    )
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10, help="calls per block")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--variants",
        default="plain,per_layer,oihw,slices",
        help=f"comma-separated, of {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--jit_compile",
        default="false",
        choices=["false", "true", "both"],
        help="TensorFlow: tf.function(jit_compile=...)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if keras.backend.backend() != args.backend:
        raise SystemExit(
            f"Keras was imported with the {keras.backend.backend()} backend"
        )
    keras.utils.set_random_seed(0)
    model = _build(args)
    bank = model.bank
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")

    import numpy as np

    keys = sorted(bank.plan.layers)
    expected = {
        k: keras.ops.convert_to_numpy(bank._kernel_per_layer(k)) for k in keys
    }
    for variant in variants:
        got = _composer(bank, variant)[0]()
        for k in keys:
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(got[k]),
                expected[k],
                rtol=0,
                atol=1e-5,
                err_msg=f"{variant}: kernel {k}",
            )

    runners, counts = {}, {}
    for variant in variants:
        if args.backend == "tensorflow":
            jits = {"false": [False], "true": [True], "both": [False, True]}
            for jit in jits[args.jit_compile]:
                name = f"{variant}{'/xla' if jit else ''}"
                runners[name], counts[name] = _tensorflow(bank, variant, jit)
        elif args.backend == "jax":
            runners[variant], counts[variant] = _jax(bank, variant)
        else:
            runners[variant], counts[variant] = _torch(bank, variant)
    for run in runners.values():
        for _ in range(args.warmup):
            run()

    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    block_medians: dict[str, list[float]] = {n: [] for n in names}
    for block in range(args.blocks):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            block_times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                runners[name]()
                block_times.append(time.perf_counter() - start)
            times[name] += block_times
            block_medians[name].append(statistics.median(block_times))

    print(
        f"WRN-{args.depth}-{args.width} budget {args.budget:,}, "
        f"{args.backend}: composition of {len(bank.plan.layers)} kernels, "
        f"forward + backward, {args.blocks} blocks x {args.steps} calls"
    )
    head = (
        f"{'variant':<18} {'ops':>7} {'median ms':>10} {'min ms':>8} "
        f"{'block min-max ms':>18}"
    )
    print(head)
    print("-" * len(head))
    results = {}
    for name in names:
        med = statistics.median(times[name]) * 1e3
        low = min(times[name]) * 1e3
        bmin = min(block_medians[name]) * 1e3
        bmax = max(block_medians[name]) * 1e3
        ops_count = counts[name]
        print(
            f"{name:<18} {ops_count if ops_count is not None else '-':>7} "
            f"{med:>10.2f} {low:>8.2f} {bmin:>8.2f}-{bmax:<9.2f}"
        )
        results[name] = {
            "ops": ops_count,
            "median_ms": med,
            "min_ms": low,
            "block_median_ms": [t * 1e3 for t in block_medians[name]],
        }
    if args.json:
        print(json.dumps({"config": vars(args), "results": results}))


if __name__ == "__main__":
    sys.exit(main())
