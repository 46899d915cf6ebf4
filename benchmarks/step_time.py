"""Fit-step time and peak memory: SWN WRN vs the plain Keras WRN.

Builds, on the TensorFlow backend, (a) an `SWNModel` with one
`WideResNet(depth, width)` member whose kernels are composed from a bank
of `--budget` template parameters, and (b) the same architecture with
ordinary `Conv2D` kernels (the same `WideResNet` builder, handed a
`LayerFactory` without a bank, which returns stock layers). Both train with
SGD (Nesterov momentum 0.9) by `train_on_batch` on one fixed batch, after
warm-up steps, and the median step time over `--steps` timed steps is
reported with the ratio SWN / plain.

Memory: each model runs in its own fresh subprocess (same flags, one after
the other), which reports its peak resident set size (`ru_maxrss`) after
building the model and after training. The figure compared is the growth
of the peak during compile + training (`after - built`), which is what the
training step itself costs; the absolute peaks are printed too (they
include the ~0.5-1 GB of TensorFlow itself). `tracemalloc` is not used: it
sees only Python allocations, not TensorFlow's buffers.

Interleaved mode (`--interleaved`): both models are built in one process
and timed in alternating blocks of `--steps` steps (`--blocks` blocks per
model, the order swapped every block), so that a noisy machine slows both
alike. It reports the median step time of each model, the median of the
per-block ratios, and the spread of those ratios (min/max), which is the
honest noise figure on a shared machine. Memory is not measured there.
With `--predict`, the interleaved mode times `predict_on_batch` of the SWN
model against the same member exported to stock kernels
(`keras_swn.export.to_keras`, the serving path).

Table mode (`--table PREFIX`): the whole comparison for one backend, each
measurement in its own fresh process, written to `PREFIX.json` and
`PREFIX.md`: interleaved train steps at batch 2 and 128, interleaved
`predict` at batch 1 and 128 (SWN against its exported twin), the peak
memory of training at batch 128 (one process per model), and, unless
`--no_large`, WRN-28-10 at a budget of 9,000,000 trained at batch 2.

Usage:
    python benchmarks/step_time.py --table results/step_time_tf \
        [--backend tensorflow|jax|torch] [--no_large]
    python benchmarks/step_time.py [--depth 16] [--width 4]
        [--budget 1000000] [--steps 8] [--warmup 2] [--batch_size 128]
        [--data ../shared/data/cifar10_train_10k.npz] [--json]
        [--interleaved --blocks 5 [--predict]] [--jit_compile auto|true|false]
        [--backend tensorflow|jax|torch]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _maxrss_mib() -> float:
    # Linux reports KiB, macOS bytes.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _batch(args):
    import numpy as np

    n = args.batch_size
    if args.data:
        from keras_swn.data import load_npz

        (x, y), _ = load_npz(args.data, seed=0)
        if len(x) < n:
            raise SystemExit(f"--data has {len(x)} examples, fewer than {n}")
        return x[:n], y[:n], int(y.max()) + 1
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=(n,)).astype(np.int32)
    return x, y, 10


def _build(kind: str, args, input_shape, num_classes):
    import keras

    from keras_swn import SWNModel
    from keras_swn.models import LayerFactory
    from keras_swn.models import WideResNet

    wrn = WideResNet(args.depth, args.width)
    if kind == "swn":
        model = SWNModel(
            members=[wrn],
            input_shape=input_shape,
            num_classes=num_classes,
            budget=args.budget,
            seed=0,
        )
        loss = None  # SWNModel's own: sum of member cross-entropies
    else:
        inputs = keras.Input(input_shape)
        outputs = wrn(inputs, LayerFactory(None, 0, seed=0), num_classes)
        model = keras.Model(inputs, outputs, name="plain_wrn")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    return model, optimizer, loss


def _device_peak_mib() -> float | None:
    """Peak accelerator memory of this process, where the backend says."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "cpu":
                return None
            return device.memory_stats()["peak_bytes_in_use"] / 2**20
        if backend == "torch":
            import torch

            if not torch.cuda.is_available():
                return None
            return torch.cuda.max_memory_allocated() / 2**20
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    except Exception:  # noqa: BLE001 - a missing statistic is not an error
        return None


def _child(args) -> None:
    """Run one model; print one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    x, y, num_classes = _batch(args)
    model, optimizer, loss = _build(args.child, args, x.shape[1:], num_classes)
    trainable = sum(int(v.numpy().size) for v in model.trainable_variables)
    rss_built = _maxrss_mib()
    model.compile(optimizer=optimizer, loss=loss, jit_compile=args.jit_compile)
    first = time.perf_counter()
    model.train_on_batch(x, y)  # trace
    first = time.perf_counter() - first
    for _ in range(max(0, args.warmup - 1)):
        model.train_on_batch(x, y)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns NumPy logs: synchronous
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "model": args.child,
                "backend": keras.backend.backend(),
                "trainable": trainable,
                "first_step_s": first,
                "step_s": times,
                "rss_built_mib": rss_built,
                "rss_peak_mib": _maxrss_mib(),
                "device_peak_mib": _device_peak_mib(),
            }
        )
    )


def _interleaved(args) -> dict:
    """Both models in this process, timed in alternating blocks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    x, y, num_classes = _batch(args)
    models = {}
    if args.predict:
        # SWN's own predict against its serving path: the same member
        # exported to stock Conv2D kernels (`keras_swn.export.to_keras`).
        from keras_swn import export

        swn, _, _ = _build("swn", args, x.shape[1:], num_classes)
        models = {"plain": export.to_keras(swn), "swn": swn}
        for model in models.values():
            model.compile(jit_compile=args.jit_compile)
            for _ in range(args.warmup):
                model.predict_on_batch(x)
    for kind in () if args.predict else ("plain", "swn"):
        model, optimizer, loss = _build(kind, args, x.shape[1:], num_classes)
        model.compile(
            optimizer=optimizer, loss=loss, jit_compile=args.jit_compile
        )
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        models[kind] = model

    def step(model):
        if args.predict:
            return model.predict_on_batch(x)
        return model.train_on_batch(x, y)

    times: dict[str, list[float]] = {"plain": [], "swn": []}
    block_ratios = []
    for block in range(args.blocks):
        order = ("plain", "swn") if block % 2 == 0 else ("swn", "plain")
        medians = {}
        for kind in order:
            block_times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step(models[kind])  # returns NumPy: synchronous
                block_times.append(time.perf_counter() - start)
            times[kind] += block_times
            medians[kind] = statistics.median(block_times)
        block_ratios.append(medians["swn"] / medians["plain"])
    med = {k: statistics.median(t) for k, t in times.items()}
    return {
        "backend": keras.backend.backend(),
        "mode": "predict" if args.predict else "train",
        "jit_compile": args.jit_compile,
        "batch_size": args.batch_size,
        "median_step_s": med,
        "step_time_ratio": med["swn"] / med["plain"],
        "block_ratios": block_ratios,
        "median_block_ratio": statistics.median(block_ratios),
        "step_s": times,
    }


def _print_interleaved(args, r: dict) -> None:
    med, ratios = r["median_step_s"], r["block_ratios"]
    print(
        f"WRN-{args.depth}-{args.width} budget {args.budget:,}, "
        f"{r['backend']}, {r['mode']} (jit_compile={args.jit_compile}), "
        f"batch {args.batch_size}: {'exported' if args.predict else 'plain'} "
        f"{med['plain'] * 1e3:.1f} ms, SWN {med['swn'] * 1e3:.1f} ms, "
        f"ratio {r['step_time_ratio']:.3f} (per-block ratios median "
        f"{r['median_block_ratio']:.3f}, min {min(ratios):.3f}, max "
        f"{max(ratios):.3f}; {args.blocks} blocks x {args.steps} steps)"
    )
    if args.json:
        print(json.dumps({"config": vars(args), **r}))


def _run_script(argv, backend: str) -> dict:
    """Run this script in a fresh process; its last stdout line, as JSON."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{argv} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _versions(backend: str) -> dict:
    import platform
    from importlib import metadata

    names = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}
    found = {}
    for name in ("keras", names[backend]):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    found["cpus"] = os.cpu_count()
    return found


def _table(args) -> None:
    """Every measurement of the comparison for one backend (`--table`)."""
    small = [f"--blocks={args.blocks}", f"--steps={args.steps}"]
    large = ["--blocks=4", "--steps=2"]
    cases = [
        ("train", 2, args.depth, args.width, args.budget, small),
        ("train", 128, args.depth, args.width, args.budget, large),
        ("predict", 1, args.depth, args.width, args.budget, small),
        ("predict", 128, args.depth, args.width, args.budget, large),
    ]
    if not args.no_large:
        timing = ["--blocks=4", "--steps=3"]
        cases.append(("train", 2, 28, 10, 9_000_000, timing))
    common = [f"--warmup={args.warmup}", f"--jit_compile={args.jit_compile}"]
    rows = []
    for mode, batch, depth, width, budget, timing in cases:
        argv = [
            "--interleaved",
            "--json",
            f"--batch_size={batch}",
            f"--depth={depth}",
            f"--width={width}",
            f"--budget={budget}",
            *timing,
            *common,
        ] + (["--predict"] if mode == "predict" else [])
        started = time.perf_counter()
        r = _run_script(argv, args.backend)
        r.update(
            model=f"WRN-{depth}-{width}",
            budget=budget,
            wall_s=time.perf_counter() - started,
        )
        rows.append(r)
        print(
            f"{args.backend} {mode} WRN-{depth}-{width} batch {batch}: "
            f"ratio {r['step_time_ratio']:.3f} (blocks "
            f"{min(r['block_ratios']):.2f}-{max(r['block_ratios']):.2f})",
            flush=True,
        )
    memory_argv = [
        f"--depth={args.depth}",
        f"--width={args.width}",
        f"--budget={args.budget}",
        "--steps=2",
        "--batch_size=128",
        *common,
    ]
    memory = {
        kind: _run_child(kind, memory_argv, args.backend)
        for kind in ("plain", "swn")
    }
    result = {
        "backend": args.backend,
        "versions": _versions(args.backend),
        "load_average": os.getloadavg(),
        "rows": rows,
        "memory": memory,
    }
    _write_atomic(args.table + ".json", json.dumps(result, indent=1))
    _write_atomic(args.table + ".md", _markdown(result))
    print(_markdown(result))


def _markdown(result: dict) -> str:
    backend = result["backend"]
    lines = [
        "| backend | step | model | budget | batch | plain (ms) | SWN (ms) "
        "| SWN / plain | per-block ratios |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        med = r["median_step_s"]
        other = "exported" if r["mode"] == "predict" else "plain"
        lines.append(
            f"| {backend} | {r['mode']} (vs {other}) | {r['model']} | "
            f"{r['budget']:,} | {r['batch_size']} | {med['plain'] * 1e3:,.1f} "
            f"| {med['swn'] * 1e3:,.1f} | {r['step_time_ratio']:.3f} | "
            f"{min(r['block_ratios']):.2f}-{max(r['block_ratios']):.2f} |"
        )
    mem = result["memory"]
    grow = {k: m["rss_peak_mib"] - m["rss_built_mib"] for k, m in mem.items()}
    line = (
        f"\nPeak memory, training at batch 128 (one process per model): "
        f"RSS growth plain {grow['plain']:,.0f} MiB, SWN {grow['swn']:,.0f} "
        f"MiB; peak RSS plain {mem['plain']['rss_peak_mib']:,.0f} MiB, SWN "
        f"{mem['swn']['rss_peak_mib']:,.0f} MiB"
    )
    device = [m.get("device_peak_mib") for m in mem.values()]
    if all(device):
        line += (
            f"; device peak plain {mem['plain']['device_peak_mib']:,.0f} MiB, "
            f"SWN {mem['swn']['device_peak_mib']:,.0f} MiB"
        )
    return "\n".join(lines) + line + ".\n"


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _run_child(kind: str, argv, backend: str = "tensorflow") -> dict:
    return _run_script([*argv, "--child", kind], backend)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="incl. trace")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument(
        "--data",
        default=None,
        help="an .npz file (x/y uint8) for a real batch; default random",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--backend",
        default="tensorflow",
        choices=["tensorflow", "jax", "torch"],
        help="Keras backend of both runs (the issue's figure: tensorflow)",
    )
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="both models in one process (the --backend one), timed in "
        "alternating blocks; no memory figures",
    )
    parser.add_argument(
        "--blocks", type=int, default=5, help="blocks per model (interleaved)"
    )
    parser.add_argument(
        "--predict",
        action="store_true",
        help="interleaved only: time predict_on_batch of the SWN model "
        "against its export.to_keras twin instead of training steps",
    )
    parser.add_argument(
        "--jit_compile",
        default="auto",
        type=lambda v: v if v == "auto" else v.lower() in ("1", "true", "yes"),
        help="compile(jit_compile=...) of both models: auto (Keras' "
        "default), true or false",
    )
    parser.add_argument(
        "--table",
        metavar="PREFIX",
        help="run the whole comparison for --backend (see the module "
        "docstring); write PREFIX.json and PREFIX.md",
    )
    parser.add_argument(
        "--no_large",
        action="store_true",
        help="--table without the WRN-28-10 (budget 9,000,000) row",
    )
    parser.add_argument("--child", choices=["plain", "swn"], help="internal")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.blocks < 1:
        parser.error("--steps, --warmup and --blocks must be >= 1")
    if args.predict and not args.interleaved:
        parser.error("--predict needs --interleaved")
    if args.child:
        _child(args)
        return
    if args.table:
        _table(args)
        return
    if args.interleaved:
        os.environ["KERAS_BACKEND"] = args.backend
        _print_interleaved(args, _interleaved(args))
        return

    passthrough = [
        f"--depth={args.depth}",
        f"--width={args.width}",
        f"--budget={args.budget}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch_size={args.batch_size}",
        f"--jit_compile={args.jit_compile}",
    ] + ([f"--data={args.data}"] if args.data else [])
    print(
        f"WRN-{args.depth}-{args.width}, batch {args.batch_size}, "
        f"{'data ' + args.data if args.data else 'random 32x32x3'}, "
        f"backend {args.backend}, {args.warmup} warm-up + {args.steps} timed "
        "train_on_batch steps per model, each model in its own process."
    )
    results = {
        kind: _run_child(kind, passthrough, args.backend)
        for kind in ("plain", "swn")
    }
    plain, swn = results["plain"], results["swn"]
    med = {k: statistics.median(r["step_s"]) for k, r in results.items()}
    grow = {
        k: r["rss_peak_mib"] - r["rss_built_mib"] for k, r in results.items()
    }

    def row(name, r):
        return (
            f"{name:<22} {r['trainable']:>11,} {r['first_step_s']:>9.2f} "
            f"{med[r['model']]:>9.3f} {min(r['step_s']):>8.3f} "
            f"{max(r['step_s']):>8.3f} {r['rss_peak_mib']:>9.0f} "
            f"{grow[r['model']]:>9.0f}"
        )

    head = (
        f"{'model':<22} {'trainable':>11} {'first s':>9} {'median s':>9} "
        f"{'min s':>8} {'max s':>8} {'peak MiB':>9} {'train MiB':>9}"
    )
    print(head)
    print("-" * len(head))
    print(row(f"plain WRN-{args.depth}-{args.width}", plain))
    print(row(f"SWN (budget {args.budget:,})", swn))
    ratio_t = med["swn"] / med["plain"]
    ratio_m = grow["swn"] / grow["plain"] if grow["plain"] > 0 else float("nan")
    print()
    print(f"step time  SWN / plain (median): {ratio_t:.3f}")
    print(
        f"peak RSS growth during compile+training, SWN / plain: {ratio_m:.3f}"
    )
    print(
        f"absolute peak RSS, SWN / plain: "
        f"{swn['rss_peak_mib'] / plain['rss_peak_mib']:.3f}"
    )
    if plain.get("device_peak_mib") and swn.get("device_peak_mib"):
        print(
            f"peak accelerator memory: plain {plain['device_peak_mib']:.0f} "
            f"MiB, SWN {swn['device_peak_mib']:.0f} MiB, SWN / plain "
            f"{swn['device_peak_mib'] / plain['device_peak_mib']:.3f}"
        )
    print(
        "(train MiB = peak RSS after training minus peak RSS once the model "
        "was built, per process; first s = the first step, incl. tracing.)"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "config": vars(args),
                    "results": results,
                    "median_step_s": med,
                    "step_time_ratio": ratio_t,
                    "rss_growth_mib": grow,
                    "rss_growth_ratio": ratio_m,
                }
            )
        )


if __name__ == "__main__":
    main()
