"""Cost of gradient capture, and of the analysis, for the SWN search.

Two measurements (issue: gradient capture and analysis):

1. **Step time with kernel-gradient accumulation on vs off.** One
   `SWNModel` (default: WRN-16-4 at a 1,000,000 budget, batch 128, random
   32x32x3 data, TensorFlow), `train_on_batch` on one fixed batch after
   warm-up, alternating blocks of steps with capture off and on so that
   machine noise hits both; prints the medians and the ratio on/off.
2. **Similarity + clustering + allocation** for the README configuration
   (WRN-28-7, 28-4, 16-7, 16-4; budget 18,000,000; 4 bins) with random
   gradients of the right shapes: `search_groups` (similarity matrices,
   clustering under the budget, attachment of the other members) followed
   by `BankPlan.create` of the learned policy. Prints the median time.

Usage:
    python benchmarks/capture_overhead.py [--depth 16] [--width 4]
        [--budget 1000000] [--steps 6] [--blocks 3] [--analysis_repeats 3]
        [--skip_step]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def step_times(args) -> tuple[list[float], list[float]]:
    import keras
    import numpy as np

    import keras_swn

    model = keras_swn.SWNModel(
        members=[keras_swn.models.WideResNet(args.depth, args.width)],
        input_shape=(32, 32, 3),
        num_classes=10,
        budget=args.budget,
        seed=0,
        capture_kernel_gradients=True,
    )
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)

    def timed(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            model.train_on_batch(x, y)
            out.append(time.perf_counter() - t)
        return out

    off, on = [], []
    for block in range(args.blocks):
        model.stop_kernel_gradient_capture()
        timed(args.warmup)
        off += timed(args.steps)
        model.start_kernel_gradient_capture()
        timed(args.warmup)
        on += timed(args.steps)
        print(
            f"block {block + 1}/{args.blocks}: off {statistics.median(off):.3f}"
            f" s, on {statistics.median(on):.3f} s",
            flush=True,
        )
    return off, on


def analysis_times(repeats: int) -> list[float]:
    import numpy as np

    from keras_swn import BankPlan
    from keras_swn import SharingPolicy
    from keras_swn.analysis import search_groups
    from keras_swn.models import WideResNet

    members = [(28, 7), (28, 4), (16, 7), (16, 4)]
    specs = []
    for i, (d, w) in enumerate(members):
        specs += WideResNet(d, w).layer_specs((32, 32, 3), member=i)
    bins = SharingPolicy.from_bins(specs, 4, coefficients="per_layer").groups
    rng = np.random.default_rng(0)
    grads = {
        s.key: rng.standard_normal(s.shape).astype("float32") for s in specs
    }
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = search_groups(specs, bins, grads, 18_000_000)
        plan = BankPlan.create(specs, result.to_policy(specs), 18_000_000)
        times.append(time.perf_counter() - t)
    print(
        f"analysis: threshold {result.threshold:.2f} after "
        f"{result.iterations} iteration(s), {result.num_groups} groups, "
        f"bank total {plan.bank_total:,}"
    )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--analysis_repeats", type=int, default=3)
    parser.add_argument("--skip_step", action="store_true")
    args = parser.parse_args()

    a = analysis_times(args.analysis_repeats)
    print(
        f"similarity + clustering + allocation (README config): median "
        f"{statistics.median(a):.2f} s over {len(a)} runs (goal <= 2 s)"
    )
    if not args.skip_step:
        off, on = step_times(args)
        m_off, m_on = statistics.median(off), statistics.median(on)
        print(
            f"WRN-{args.depth}-{args.width} SWN at budget {args.budget:,}, "
            f"batch {args.batch_size}: step off {m_off:.3f} s, on "
            f"{m_on:.3f} s, ratio on/off {m_on / m_off:.3f} (goal <= 1.05)"
        )


if __name__ == "__main__":
    main()
