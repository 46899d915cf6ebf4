"""
Title: Export an SWN member and deploy it as a plain Keras model
Author: keras_swn contributors
Date created: 2026/11/27
Last modified: 2026/11/27
Description: Export an SWN member to plain Keras layers and a SavedModel.
Accelerator: None
"""

"""
## Introduction

During training an SWN composes every kernel from shared templates on
every forward pass. For deployment you usually want the opposite: one
member, its kernels computed once and stored, and nothing that depends on
`keras_swn`. `keras_swn.export.to_keras(model, member)` rebuilds a member
from stock Keras layers (`Conv2D`, `Dense`, plus a `ZeroPadding2D` where
the member used PyTorch-style explicit padding) with the composed kernels
as ordinary weights. The result has the same outputs, loads without
`keras_swn` installed, and can be exported with `model.export()` to a
TensorFlow SavedModel (for TF Serving, TFLite conversion, ...).

Set `KERAS_SWN_EXAMPLE_SMOKE=1` for a seconds-long smoke run.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tempfile

import keras
import numpy as np

import keras_swn
from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet

SMOKE = os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
keras.utils.set_random_seed(0)
workdir = tempfile.mkdtemp()

"""
## Train a small SWN

Two members share the templates; we will deploy member 0.
"""

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]

model = keras_swn.SWNModel(
    members=[WideResNet(16, 1), WideResNet(10, 1)],
    input_shape=x_train.shape[1:],
    num_classes=10,
    budget=100_000,
    seed=0,
)
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
model.fit(x_train, y_train, batch_size=64, epochs=1 if SMOKE else 6, verbose=2)

"""
## Materialise member 0

`to_keras` returns a functional `keras.Model` whose convolutions are stock
`Conv2D` layers holding the composed kernels. It has more *stored*
parameters than the SWN member trains (the kernels are no longer
composed from a shared budget), and the same outputs.
"""

plain = keras_swn.export.to_keras(model, member=0)
print(
    "layer types:",
    sorted({type(layer).__name__ for layer in plain.layers}),
)
print(f"stored parameters of the plain model: {plain.count_params():,}")

swn_logits = model.members[0].predict(x_val, verbose=0)
plain_logits = plain.predict(x_val, verbose=0)
scale = max(1.0, float(np.abs(swn_logits).max()))
max_diff = float(np.abs(swn_logits - plain_logits).max()) / scale
print(f"largest relative difference, SWN vs plain logits: {max_diff:.2e}")
assert max_diff < 1e-4

"""
## Save as `.keras`

The file holds only stock Keras layers, so `keras.models.load_model` reads
it without any `keras_swn` class.
"""

keras_path = os.path.join(workdir, "member0.keras")
plain.save(keras_path)
restored = keras.models.load_model(keras_path)
np.testing.assert_allclose(
    restored.predict(x_val, verbose=0), plain_logits, rtol=1e-5, atol=1e-5
)
print(f"saved {keras_path}")

"""
## Export a SavedModel (TensorFlow)

`model.export(path)` writes a TensorFlow SavedModel with a `serve`
endpoint for inference (TF Serving, TFLite, `tf.saved_model.load`). It
needs TensorFlow; on the TensorFlow backend it is the native format.
"""

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    export_dir = os.path.join(workdir, "member0_savedmodel")
    plain.export(export_dir, verbose=False)
    served = tf.saved_model.load(export_dir)
    served_logits = served.serve(tf.constant(x_val)).numpy()
    np.testing.assert_allclose(
        served_logits, plain_logits, rtol=1e-4, atol=1e-4
    )
    print(f"exported SavedModel to {export_dir}; serve() matches")
else:
    print(
        f"SavedModel export is shown on the TensorFlow backend; this run "
        f"uses {keras.backend.backend()!r}, so it is skipped."
    )
