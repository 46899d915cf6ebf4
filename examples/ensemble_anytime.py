"""
Title: Heterogeneous ensembles and anytime prediction
Author: keras_swn contributors
Date created: 2026/11/27
Last modified: 2026/11/27
Description: A heterogeneous SWN ensemble, its metrics and anytime prediction.
Accelerator: None
"""

"""
## Introduction

Members of an SWN ensemble need not look alike: a deep, wide member and
two cheap ones can share one template budget. Such a *heterogeneous*
ensemble supports **anytime prediction**: at run time, given how many
FLOPs you can spend per image, run only the best subset of members that
fits. This example

1. trains a three-member ensemble on the bundled digits,
2. evaluates every member and the ensemble (`evaluate_ensemble`: top-1,
   NLL, calibration, diversity),
3. ranks every member subset by FLOPs with its accuracy
   (`anytime_curve`), and
4. predicts under a FLOPs budget (`predict_within_budget`), running only
   the chosen members.

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
from keras_swn import ensembles
from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet

SMOKE = os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
keras.utils.set_random_seed(0)

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]

"""
## A heterogeneous ensemble

Three members of different depth and width, the deepest first (member 0
seeds every sharing group). Stored separately they would need about 1.07M
parameters; here they share 300,000 template parameters, plus their own
BatchNorm layers and classifiers.
"""

if SMOKE:
    members = [WideResNet(16, 1), WideResNet(10, 1)]
else:
    members = [WideResNet(16, 2), WideResNet(10, 2), WideResNet(10, 1)]
model = keras_swn.SWNModel(
    members=members,
    input_shape=x_train.shape[1:],
    num_classes=10,
    budget=60_000 if SMOKE else 300_000,
    seed=0,
)
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
model.fit(
    x_train,
    y_train,
    batch_size=64,
    epochs=1 if SMOKE else 8,
    validation_data=(x_val, y_val),
    verbose=2,
)

"""
## Ensemble evaluation

`evaluate_ensemble` runs every member once and reports, per member and for
the ensemble (mean of the member softmaxes): top-1 accuracy, negative
log-likelihood, expected calibration error, and how often members
disagree.
"""

evaluation = ensembles.evaluate_ensemble(model, x_val, y_val)
print(evaluation)

"""
## FLOPs per member and the anytime curve

`member_flops` counts each member's multiply-adds per image from layer
shapes (no forward pass). `anytime_curve` takes the members' validation
probabilities and FLOPs and ranks every non-empty subset of members by
cost, with the accuracy of its averaged prediction and the Pareto front.
"""

flops = [ensembles.member_flops(model, i) for i in range(len(members))]
for report in flops:
    print(
        f"member {report.member} ({members[report.member].name}): "
        f"{report.inference_macs:,} multiply-adds per image"
    )

probabilities = ensembles.member_probabilities(model, x_val)
curve = ensembles.anytime_curve(
    probabilities, y_val, flops, names=[m.name for m in members]
)
print(curve)

plot_path = curve.plot(os.path.join(tempfile.mkdtemp(), "anytime.png"))
print(f"accuracy vs FLOPs plot: {plot_path}")

"""
## Predicting under a FLOPs budget

Say each image may cost at most what the two cheapest members cost
together. `predict_within_budget` picks the subset with the best
validation accuracy on the curve among those that fit, runs only those
members, and returns their averaged probabilities.
"""

costs = sorted(curve.member_flops)
budget = costs[0] + costs[1]
choice = ensembles.best_subset(curve, flops_budget=budget)
print(
    f"budget {budget:,.0f} FLOPs per image -> members {choice.members} "
    f"({choice.flops:,.0f} FLOPs, validation accuracy {choice.accuracy:.3f})"
)

predictions = ensembles.predict_within_budget(
    model, x_val, flops_budget=budget, curve=curve
)
accuracy = float(np.mean(np.argmax(predictions, axis=-1) == y_val))
print(f"accuracy within the budget: {accuracy:.3f}")
assert predictions.shape == (len(x_val), 10)
