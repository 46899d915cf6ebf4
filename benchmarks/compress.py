"""Compress a trained Keras model into an SWN budget, and fine-tune it.

The workflow of the how-to page *Bring your own Keras model*, measured:

1. a plain WRN-`depth`-`width` (stock `Conv2D` layers: the export of an
   SWN `WideResNet`) trained for `--epochs_plain` epochs;
2. compressed with `KerasMember(model, init="trained")` into
   `--fraction` of its kernel parameters (the bank fitted to its kernels by
   least squares), evaluated before any training (the reconstruction error
   per layer is reported), then fine-tuned for `--epochs_finetune` epochs;
3. against an SWN of the same members and budget trained from scratch for
   `--epochs_plain + --epochs_finetune` epochs.

Every model trains with SGD (Nesterov momentum 0.9), a cosine learning
rate over its own epochs, no augmentation, on the data split and
normalisation of `keras_swn.data.load_npz` (the first 90% for training),
or, with `--eval_data`, on the whole `--data` file, evaluated on the
`--eval_data` file (e.g. the 40,000 other CIFAR-10 training images).
Prints one JSON object and a Markdown table (every row, including any
row where compression loses).

Usage:
    python benchmarks/compress.py --data ../shared/data/cifar10_train_10k.npz
        [--eval_data ../shared/data/cifar10_extra_40k.npz]
        [--depth 16] [--width 2] [--fraction 0.4] [--epochs_plain 15]
        [--epochs_finetune 4] [--batch_size 128] [--learning_rate 0.05]
        [--finetune_learning_rate 0.01] [--seed 0] [--out result.json]
    python benchmarks/compress.py --smoke   # seconds, random 8x8 images
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--eval_data")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.4)
    parser.add_argument("--epochs_plain", type=int, default=15)
    parser.add_argument("--epochs_finetune", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--finetune_learning_rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--smoke", action="store_true")
    return parser


def _data(args):
    import numpy as np

    if args.smoke:
        rng = np.random.default_rng(args.seed)
        x = rng.normal(size=(48, 8, 8, 3)).astype("float32")
        y = rng.integers(0, 10, 48)
        return (x[:32], y[:32]), (x[32:], y[32:])
    from keras_swn.data import load_npz

    if args.eval_data is None:
        return load_npz(args.data, seed=args.seed, normalize=True)
    # Train on the whole --data file, evaluate on --eval_data, both
    # standardised per channel with the training images' statistics.
    train, held = (np.load(p) for p in (args.data, args.eval_data))
    x = train["x"].astype("float32") / 255.0
    xv = held["x"].astype("float32") / 255.0
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    return (
        ((x - mean) / std, train["y"].astype("int64")),
        ((xv - mean) / std, held["y"].astype("int64")),
    )


def _compile(model, learning_rate, epochs, steps, smoke, plain=False):
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, max(1, epochs * steps)
    )
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    if plain:
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            run_eagerly=smoke,
        )
    else:
        model.compile(optimizer, run_eagerly=smoke)


def _accuracy(logits, y) -> float:
    import numpy as np

    return float(np.mean(np.asarray(logits).argmax(-1) == np.asarray(y)))


def run(args) -> dict:
    """The three runs; returns the result dict."""
    import keras
    import numpy as np

    import keras_swn
    from keras_swn.models import KerasMember
    from keras_swn.models import WideResNet

    # KerasMember's notice that the final softmax is dropped (expected).
    warnings.filterwarnings("ignore", message=r"KerasMember\('plain_wrn'\)")
    keras.utils.set_random_seed(args.seed)
    (x, y), (xv, yv) = _data(args)
    classes = int(max(y.max(), yv.max())) + 1
    steps = -(-len(x) // args.batch_size)
    total_epochs = args.epochs_plain + args.epochs_finetune

    def plain_wrn(seed):
        """A plain WRN: the export of a fresh SWN WideResNet member."""
        swn = keras_swn.SWNModel(
            [WideResNet(args.depth, args.width)],
            x.shape[1:],
            classes,
            budget=10**9,
            seed=seed,
        )
        return keras_swn.export.to_keras(swn, name="plain_wrn")

    # 1. The plain model.
    t0 = time.time()
    plain = plain_wrn(args.seed)
    _compile(
        plain,
        args.learning_rate,
        args.epochs_plain,
        steps,
        args.smoke,
        plain=True,
    )
    plain.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs_plain, verbose=2
    )
    plain_acc = _accuracy(plain.predict(xv, verbose=0), yv)
    kernels = sum(
        int(np.prod(layer.kernel.shape))
        for layer in plain.layers
        if type(layer) is keras.layers.Conv2D
    )

    # 2. Compressed into the budget, then fine-tuned.
    member = KerasMember(plain, init="trained")
    model = keras_swn.SWNModel.from_keras(
        [member], budget=args.fraction, seed=args.seed
    )
    errors = member.reconstruction_errors
    compressed_acc = _accuracy(model.predict(xv, verbose=0)[0], yv)
    _compile(
        model,
        args.finetune_learning_rate,
        args.epochs_finetune,
        steps,
        args.smoke,
    )
    model.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs_finetune, verbose=2
    )
    finetuned_acc = _accuracy(model.predict(xv, verbose=0)[0], yv)

    # 3. The same SWN from scratch, for the same total epochs.
    scratch = keras_swn.SWNModel.from_keras(
        [KerasMember(plain_wrn(args.seed + 1))],
        budget=args.fraction,
        seed=args.seed,
    )
    _compile(scratch, args.learning_rate, total_epochs, steps, args.smoke)
    scratch.fit(
        x, y, batch_size=args.batch_size, epochs=total_epochs, verbose=2
    )
    scratch_acc = _accuracy(scratch.predict(xv, verbose=0)[0], yv)
    return {
        "model": f"WRN-{args.depth}-{args.width}",
        "backend": keras.backend.backend(),
        "kernel_params": kernels,
        "budget": model.budget,
        "fraction": args.fraction,
        "epochs_plain": args.epochs_plain,
        "epochs_finetune": args.epochs_finetune,
        "plain_accuracy": plain_acc,
        "compressed_accuracy_before_finetune": compressed_acc,
        "compressed_accuracy_after_finetune": finetuned_acc,
        "scratch_accuracy": scratch_acc,
        "reconstruction_error_mean": float(np.mean(list(errors.values()))),
        "reconstruction_error_max": float(np.max(list(errors.values()))),
        "reconstruction_errors": errors,
        "seconds": round(time.time() - t0, 1),
    }


def table(result: dict) -> str:
    """The result as Markdown rows."""
    e = result["epochs_plain"] + result["epochs_finetune"]
    rows = [
        (
            "plain (unshared)",
            result["kernel_params"],
            f"{result['epochs_plain']}",
            result["plain_accuracy"],
        ),
        (
            "compressed, no fine-tuning",
            result["budget"],
            f"{result['epochs_plain']} + 0",
            result["compressed_accuracy_before_finetune"],
        ),
        (
            "compressed + fine-tuned",
            result["budget"],
            f"{result['epochs_plain']} + {result['epochs_finetune']}",
            result["compressed_accuracy_after_finetune"],
        ),
        (
            "SWN from scratch",
            result["budget"],
            f"{e}",
            result["scratch_accuracy"],
        ),
    ]
    lines = [
        f"{result['model']} ({result['backend']}): kernel reconstruction "
        f"error mean {result['reconstruction_error_mean']:.3f}, max "
        f"{result['reconstruction_error_max']:.3f}",
        "",
    ]
    lines += report.markdown_table(
        ["model", "kernel / template parameters", "epochs", "val accuracy"],
        [[a, f"{b:,}", c, f"{d:.4f}"] for a, b, c, d in rows],
        align=["---", "---:", "---", "---:"],
    )
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.depth, args.width = 10, 1
        args.epochs_plain, args.epochs_finetune = 1, 1
        args.batch_size = 16
        args.fraction = max(args.fraction, 0.8)
    elif not args.data:
        _parser().error("--data is required (or --smoke)")
    result = run(args)
    print(json.dumps(result))
    print(table(result))
    if args.out:
        report.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
