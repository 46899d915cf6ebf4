"""
Title: Bring your own Keras model: MobileNetV2 as an SWN
Author: keras_swn contributors
Date created: 2026/12/07
Last modified: 2026/12/07
Description: Convert keras.applications models into SWN members, train, export.
Accelerator: None
"""

"""
## Introduction

You do not need to rewrite a network to use SuperWeight sharing.
`keras_swn.SWNModel.from_keras(models, budget=...)` takes functional or
Sequential Keras models, here two `keras.applications` networks, and
rebuilds each with its `Conv2D` and `Dense` kernels composed from one
shared bank of templates (`keras_swn.models.KerasMember`); every other
layer (BatchNorm, depthwise convolutions, pooling, residual adds,
squeeze-and-excitation multiplies, ...) is kept as it is. The ensemble
trains with `fit`, prints a budget report, and each member exports back
to a plain Keras model of its original architecture.

The same conversion compresses a *trained* network: with `init="trained"`
the bank is fitted to its kernels by least squares, and you fine-tune from
there (see the how-to page *Bring your own Keras model*).

Run with `--smoke` (or `KERAS_SWN_EXAMPLE_SMOKE=1`) for a seconds-long
run on random images.
"""

"""
## Setup
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import warnings

import keras
import numpy as np

import keras_swn
from keras_swn.models.keras_member import ConversionNotice

SMOKE = (
    "--smoke" in sys.argv or os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
)
keras.utils.set_random_seed(0)

"""
## Data

CIFAR-10 sized images. The example uses random images so that it runs
anywhere; point `x_train` / `y_train` at real data (for instance
`keras_swn.data.load_npz_dataset`) for a real run.
"""

n_train = 8 if SMOKE else 512
rng = np.random.default_rng(0)
x_train = (rng.random((n_train, 32, 32, 3)) * 255).astype("float32")
y_train = rng.integers(0, 10, n_train)

"""
## Two keras.applications networks

Build them as usual, without pretrained weights (this example runs
offline), for 32x32 inputs and 10 classes. `classifier_activation=None`
gives logits, which is what an SWN member returns (a final softmax would
be dropped with a notice).
"""

common = dict(
    weights=None,
    input_shape=(32, 32, 3),
    classes=10,
    classifier_activation=None,
)
efficientnet = keras.applications.EfficientNetB0(**common)
mobilenet = keras.applications.MobileNetV2(alpha=0.35, **common)

"""
## Convert: one call

The deeper network comes first (member 0 seeds every group of the
search). `budget` is the number of template parameters, or a fraction of
the members' shared kernel parameters. Depthwise convolutions have no
SuperWeight counterpart: they stay unshared, and a one-line
`ConversionNotice` names them (silenced here). The classifier heads stay
unshared too (`share_head=True` shares them).
"""

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConversionNotice)
    model = keras_swn.SWNModel.from_keras(
        [efficientnet, mobilenet], budget=0.5, seed=0
    )
print(model.budget_report())

"""
## Train

A plain `fit`: the loss is the sum of the members' losses, and the logs
show each member's accuracy and the ensemble's.
"""

model.compile(
    optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
    run_eagerly=SMOKE,  # tracing two 200-layer graphs costs more than a step
)
model.fit(
    x_train,
    y_train,
    batch_size=4 if SMOKE else 64,
    epochs=1,
    steps_per_epoch=1 if SMOKE else None,
    verbose=2,
)

"""
## Export

`keras_swn.export.to_keras` rebuilds a member from stock layers with the
composed kernels stored: the layer names and graph of the original
`keras.applications` model, no tie to `keras_swn`.
"""

plain = keras_swn.export.to_keras(model, member=1)
x = x_train[:2]
np.testing.assert_allclose(
    keras.ops.convert_to_numpy(plain(x)),
    keras.ops.convert_to_numpy(model(x)[1]),
    rtol=1e-4,
    atol=1e-4,
)
same = [l.name for l in plain.layers] == [l.name for l in mobilenet.layers]
print(f"exported '{plain.name}': same layer names as MobileNetV2: {same}")
