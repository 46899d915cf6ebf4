"""How much signal the search's similarity carries: batches, epochs, signals.

The search clusters layers by the cosine similarity of their kernel
gradients. A similarity worth clustering on must be a property of the
layers, not of the batch it was measured on. This script measures, on real
images, how reproducible each similarity is:

- **batch noise**: for `n` captured batches (summed gradients), the Pearson
  correlation between the off-diagonal similarities measured on two
  *disjoint* sets of `n` batches (1.0: the batch does not matter);
- **drift over the search**: the correlation between the similarity after
  `e` search epochs and after the last one (both on the largest `n`);
- per signal: `gradient` (the reference), `gradient+weight`, `parameter`
  (weights only: no batch noise by construction, reported for its drift).

The search model is the one `SearchAndRefine` trains: the initial bins,
one coefficient vector per bank, the library's default initialisation, SGD
Nesterov 0.9 with coupled L2 5e-4 at learning rate 0.1.

Usage:

```
python benchmarks/search_signal.py --data /path/to/cifar10_train_10k.npz \\
    --output search_signal.json
```
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="the .npz with `x`, `y`")
    p.add_argument("--output", default="search_signal.json")
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--width", type=int, default=1)
    p.add_argument("--budget_fraction", type=float, default=0.3)
    p.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="examples used")
    return p.parse_args(argv)


def _offdiag(matrix: np.ndarray) -> np.ndarray:
    n = matrix.shape[0]
    return matrix[~np.eye(n, dtype=bool)]


def _correlation(a: dict, b: dict) -> float:
    """Pearson correlation of the pooled off-diagonal similarities."""
    x = np.concatenate([_offdiag(a[k]) for k in sorted(a)])
    y = np.concatenate([_offdiag(b[k]) for k in sorted(b)])
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def main(argv=None) -> dict:
    args = _parse(argv)
    import keras

    import keras_swn
    from keras_swn.analysis import similarity_matrix
    from keras_swn.analysis import to_oihw
    from keras_swn.data import load_npz
    from keras_swn.models import WideResNet
    from keras_swn.search import ReferenceSGD

    (x, y), _ = load_npz(args.data, validation_split=0.2, seed=0)
    x = x.astype("float32") / (255.0 if x.max() > 1.5 else 1.0)
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    x = (x - mean) / std
    num_classes = int(y.max()) + 1
    if args.limit:
        keep = np.random.default_rng(args.seed).permutation(len(x))
        x, y = x[keep[: args.limit]], y[keep[: args.limit]]
    member = WideResNet(args.depth, args.width)
    specs = member.layer_specs(x.shape[1:], member=0)
    conv = sum(int(np.prod(s.shape)) for s in specs)
    budget = int(args.budget_fraction * conv)
    keras.utils.set_random_seed(args.seed)
    model = keras_swn.SWNModel(
        [member],
        x.shape[1:],
        num_classes,
        budget=budget,
        coefficient_sharing="per_bank",
        seed=args.seed,
    )
    model.compile(
        optimizer=ReferenceSGD(0.1, momentum=0.9, nesterov=True, l2=5e-4)
    )
    kinds = {s.key: s.kind for s in specs}
    bins: dict[int, list] = {}
    for lid, g in enumerate(model.policy.groups[0]):
        bins.setdefault(g, []).append((0, lid))
    bins = {b: keys for b, keys in bins.items() if len(keys) > 1}

    rng = np.random.default_rng(args.seed)
    most = max(args.batches)
    order = rng.permutation(len(x))[: 2 * most * args.batch_size]
    capture = x[order], y[order]

    def per_batch_gradients():
        out = []
        for i in range(2 * most):
            sl = slice(i * args.batch_size, (i + 1) * args.batch_size)
            raw = model.collect_kernel_gradients(
                capture[0][sl], capture[1][sl], batch_size=args.batch_size
            )[0]
            names = {
                layer.name: tuple(layer.layer_key)
                for layer in model.shared_layers(0)
            }
            out.append(
                {
                    names[n]: to_oihw(g, kinds[names[n]])
                    for n, g in raw.items()
                }
            )
        return out

    def weights():
        return {
            tuple(layer.layer_key): to_oihw(
                keras.ops.convert_to_numpy(layer.kernel),
                kinds[tuple(layer.layer_key)],
            )
            for layer in model.shared_layers(0)
        }

    def matrices(grads, signal, w):
        return {
            b: similarity_matrix(keys, grads, signal=signal, weights=w)
            for b, keys in bins.items()
        }

    def summed(batches):
        keys = batches[0].keys()
        return {k: sum(b[k] for b in batches) for k in keys}

    rows, last = [], {}
    trained = 0
    start = time.time()
    for epoch in sorted(args.epochs):
        if epoch > trained:
            model.fit(
                x,
                y,
                batch_size=args.batch_size,
                epochs=epoch,
                initial_epoch=trained,
                verbose=0,
            )
            trained = epoch
        grads = per_batch_gradients()
        w = weights()
        for signal in ("gradient", "gradient+weight", "parameter"):
            for n in sorted(args.batches):
                a = matrices(summed(grads[:n]), signal, w)
                b = matrices(summed(grads[most : most + n]), signal, w)
                rows.append(
                    {
                        "epoch": epoch,
                        "signal": signal,
                        "batches": n,
                        "batch_agreement": _correlation(a, b),
                    }
                )
                if n == most:
                    last[(epoch, signal)] = a
        print(f"[signal] epoch {epoch} done ({time.time() - start:.0f} s)")
    final = max(args.epochs)
    for row in rows:
        if row["batches"] == most:
            signal = row["signal"]
            row["agreement_with_last_epoch"] = _correlation(
                last[(row["epoch"], signal)], last[(final, signal)]
            )
    result = {
        "network": f"WRN-{args.depth}-{args.width}",
        "budget": budget,
        "batch_size": args.batch_size,
        "bins": {str(b): len(k) for b, k in bins.items()},
        "rows": rows,
        "seconds": round(time.time() - start, 1),
    }
    tmp = args.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.output)
    md = [
        "| search epochs | signal | batches | agreement between disjoint "
        "batch sets | agreement with the last epoch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        drift = r.get("agreement_with_last_epoch")
        md.append(
            f"| {r['epoch']} | {r['signal']} | {r['batches']} | "
            f"{r['batch_agreement']:.3f} | "
            f"{'' if drift is None else f'{drift:.3f}'} |"
        )
    text = "\n".join(md) + "\n"
    stem = os.path.splitext(args.output)[0]
    with open(stem + ".md.tmp", "w") as f:
        f.write(text)
    os.replace(stem + ".md.tmp", stem + ".md")
    print(text)
    return result


if __name__ == "__main__":
    main()
