"""Baseline for the search-and-refine run: the same members, unshared.

Trains each WRN member as an ordinary Keras model (stock `Conv2D` kernels,
the same `WideResNet` builder, BatchNorm and head) on the same data split
and normalisation as `keras-swn search --data FILE --normalize`, with the
same optimizer (SGD, Nesterov momentum 0.9) and epochs, then reports each
member's validation accuracy and the ensemble's (mean of softmaxes), next
to the parameter count. Compare with the SWN run's `results.json`.

Usage:
    python benchmarks/plain_ensemble.py --data cifar10_train_10k.npz
        [--members 16-4,16-2] [--epochs 12] [--batch_size 128]
        [--learning_rate 0.05] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--members", default="16-4,16-2")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    from keras_swn.data import load_npz
    from keras_swn.models import LayerFactory
    from keras_swn.models import WideResNet

    keras.utils.set_random_seed(args.seed)
    (x, y), (xv, yv) = load_npz(args.data, seed=args.seed, normalize=True)
    num_classes = int(max(y.max(), yv.max())) + 1
    probs, accs, params = [], [], 0
    for i, member in enumerate(args.members.split(",")):
        depth, width = (int(v) for v in member.split("-"))
        wrn = WideResNet(depth, width)
        inputs = keras.Input(x.shape[1:])
        outputs = wrn(
            inputs, LayerFactory(None, i, seed=args.seed), num_classes
        )
        model = keras.Model(inputs, outputs, name=f"plain_{member}")
        model.compile(
            keras.optimizers.SGD(
                args.learning_rate, momentum=0.9, nesterov=True
            ),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(
            x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=2
        )
        logits = model.predict(xv, batch_size=512, verbose=0)
        p = np.asarray(keras.ops.convert_to_numpy(keras.ops.softmax(logits)))
        probs.append(p)
        accs.append(float(np.mean(p.argmax(1) == yv)))
        params += sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        print(f"{wrn.name}: validation accuracy {accs[-1]:.4f}")
    ensemble = float(np.mean(np.mean(probs, axis=0).argmax(1) == yv))
    print(
        json.dumps(
            {
                "members": args.members.split(","),
                "params_total": int(params),
                "val_member_accuracy": accs,
                "val_ensemble_accuracy": ensemble,
                "epochs": args.epochs,
            }
        )
    )


if __name__ == "__main__":
    main()
