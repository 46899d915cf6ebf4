"""
Title: Quickstart: a SuperWeight Wide ResNet at a parameter budget
Author: keras_swn contributors
Date created: 2026/11/27
Last modified: 2026/11/27
Description: An SWN of two Wide ResNets at a budget: fit, report, save, load.
Accelerator: None
"""

"""
## Introduction

A SuperWeight Network (SWN) does not store its convolution kernels. Every
kernel is composed, at every forward pass, from a shared bank of trainable
*templates*: `kernel = sum_k alpha_k * template_k`. You choose the
architectures of the members and a **parameter budget** (how many template
parameters the bank may hold); `keras_swn` plans which layers draw on which
templates, reports where every parameter goes, and trains all members with
one `model.fit`.

This example trains two Wide ResNets (WRN-16-2 and WRN-10-1) that share a
budget of 300,000 template parameters (the two stored separately
would need 769,000) on the real 8x8 handwritten digits
bundled with scikit-learn, so it runs offline on a laptop CPU in about a
minute. Set `KERAS_SWN_EXAMPLE_SMOKE=1` for a seconds-long smoke run.
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

"""
## Data

`load_digits_dataset` returns NumPy arrays `(N, 8, 8, 1)` in `[0, 1]` and
integer labels, split 80/20 with a fixed seed. No download is involved.
"""

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]
print(f"train {x_train.shape}, validation {x_val.shape}")

"""
## An SWN at a budget

`SWNModel` takes a list of member builders (deepest first), the input
shape, the number of classes and the template budget. Members differ in
depth and width; their convolutions are grouped into bins and each group
draws its kernels from the same template banks. Each member keeps its own
BatchNorm layers and classifier.
"""

members = (
    [WideResNet(10, 1)] if SMOKE else [WideResNet(16, 2), WideResNet(10, 1)]
)
model = keras_swn.SWNModel(
    members=members,
    input_shape=x_train.shape[1:],
    num_classes=10,
    budget=60_000 if SMOKE else 300_000,
    seed=0,
)

"""
The budget report shows, before any training, the template banks, the
members' sizes without sharing, and the deduplicated totals: this is the
number of parameters the optimizer actually trains.
"""

report = model.budget_report()
print(report)

"""
## Train with `model.fit`

The loss is the sum of the member losses; `fit` logs every member's
accuracy and the accuracy of the ensemble (the mean of the member
softmaxes). The reference recipe uses SGD with Nesterov momentum.
"""

model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
history = model.fit(
    x_train,
    y_train,
    batch_size=64,
    epochs=1 if SMOKE else 6,
    validation_data=(x_val, y_val),
    verbose=2,
)
final = {k: round(v[-1], 3) for k, v in history.history.items()}
print(final)

"""
Calling the model returns one logits array per member;
`predict_ensemble` averages their softmax probabilities.
"""

probabilities = model.predict_ensemble(x_val, verbose=0)
accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_val))
print(f"ensemble validation accuracy: {accuracy:.3f}")

"""
## Save and reload

A `.keras` file keeps one shared bank: after loading, every member still
reads the same templates, and the predictions are identical.
"""

path = os.path.join(tempfile.mkdtemp(), "swn.keras")
model.save(path)
reloaded = keras.models.load_model(path)
same = np.allclose(
    reloaded.predict_ensemble(x_val, verbose=0), probabilities, atol=1e-5
)
print(f"saved to {path}; reloaded predictions identical: {same}")
assert same
assert reloaded.members[0].get_layer("stem").bank is reloaded.bank

"""
## Next steps

* `examples/search_and_refine.py`: let the search decide which layers
  share (Neural Parameter Allocation Search).
* `examples/ensemble_anytime.py`: ensemble metrics and anytime
  prediction under a FLOPs budget.
* `examples/export_deploy.py`: turn a member into a plain Keras model.
"""
