"""
Title: Searching SuperWeight clusters under a parameter budget
Author: keras_swn authors
Date created: 2026/05/14
Last modified: 2026/05/14
Description: Run the full SuperWeight pipeline (search, train, refine) on
the digits bundled with scikit-learn, resume it, and let KerasTuner tune
the budget.
"""

"""
## Introduction

A SuperWeight Network (SWN) composes every convolution kernel from a shared
budget of trainable templates. *Which* layers share templates is decided by
a search (Teterwak et al., WACV 2024):

1. **Search training**: a short run where all layers of an initial bin
   share one set of templates and one coefficient vector.
2. **Clustering**: the gradient of each layer's kernel on one batch; layers
   whose gradients point the same way (cosine above a threshold) form a
   SuperWeight cluster; the least-merged clustering whose one template per
   bank fits half the budget is kept (the rest pays for more templates).
3. **Final training** of a freshly initialised model built from the learned
   clusters, where the smaller members hard-share coefficients with the
   member-0 layer they were matched to.
4. **Refine**: after a few epochs, shared coefficient vectors whose users'
   gradients disagree are split, and training goes on.

`keras_swn.search.SearchAndRefine` runs all of it, saves its state after
every epoch and phase, and has the surface of a KerasTuner tuner. This
example runs on a CPU in a few minutes.
"""

"""
## Setup
"""

import os  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_swn  # noqa: E402
from keras_swn.data import load_digits_dataset  # noqa: E402
from keras_swn.models import WideResNet  # noqa: E402
from keras_swn.search import SearchAndRefine  # noqa: E402

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
print(x_train.shape, x_val.shape)

"""
## A search under a budget

Two Wide ResNets share one budget of 250,000 template parameters. The
initial bins alone need about 200,000, and giving every layer of the larger
member its own group would need about 300,000, so the search has to merge
some layers. The epochs are tiny so that the example runs quickly; the
paper's recipe is `search_epochs=20, epochs=200, refine_after=10`.
"""

workdir = tempfile.mkdtemp()
search = SearchAndRefine(
    members=[WideResNet(10, 2), WideResNet(10, 1)],
    input_shape=(8, 8, 1),
    num_classes=10,
    budget=250_000,
    directory=workdir,
    project_name="digits",
    batch_size=64,
    seed=0,
)
search.search(
    (x_train, y_train),
    (x_val, y_val),
    search_epochs=1,
    epochs=3,
    refine_after=1,
    learning_rate=0.05,
    verbose=2,
)
search.results_summary()

"""
The learned policy says which group every layer draws its templates from,
and which coefficient vector each layer reads:
"""

print(search.policy.groups)
print(search.budget_report())

"""
The project folder holds the policy, the search result (with the
similarity matrices), the refine result, the budget report, the results,
`model.keras` and PNG plots:
"""

for name in sorted(os.listdir(search.project_dir)):
    print(name)
print(sorted(os.listdir(os.path.join(search.project_dir, "plots"))))

model = search.get_best_models()[0]
print(model.evaluate(x_val, y_val, verbose=0, return_dict=True))

"""
## Resuming

The state is written after every epoch and phase. A new `SearchAndRefine`
with the same arguments and `overwrite=False` (the default) picks up where
an interrupted search stopped; for a finished search it only reloads the
results.
"""

again = SearchAndRefine(
    members=[WideResNet(10, 2), WideResNet(10, 1)],
    input_shape=(8, 8, 1),
    num_classes=10,
    budget=250_000,
    directory=workdir,
    project_name="digits",
    batch_size=64,
    seed=0,
)
print(again.oracle)  # PhaseOracle(..., next='done', ...)
print(again.policy == search.policy)

"""
## Tuning the budget with KerasTuner

A stock KerasTuner tuner can drive `SearchAndRefine`: override `run_trial`,
build a search from the trial's hyperparameters, and return the metric.
"""

try:
    import keras_tuner as kt
except ImportError:  # keras-tuner is optional
    kt = None

if kt is not None:

    class SWNTuner(kt.GridSearch):
        def run_trial(self, trial, train, val):
            hp = trial.hyperparameters
            trial_search = SearchAndRefine(
                members=[WideResNet(10, 1)],
                input_shape=(8, 8, 1),
                num_classes=10,
                budget=hp.Choice("budget", [55_000, 80_000]),
                threshold_start=hp.Fixed("threshold", 0.1),
                sharing="learned_no_refine",
                directory=self.project_dir,
                project_name=f"trial_{trial.trial_id}",
                batch_size=64,
                plots=False,
            )
            trial_search.search(
                train, val, search_epochs=1, epochs=1, verbose=0
            )
            results = trial_search.results()
            return {"val_ensemble_accuracy": results["val_ensemble_accuracy"]}

    tuner = SWNTuner(
        objective=kt.Objective("val_ensemble_accuracy", "max"),
        directory=workdir,
        project_name="tuning",
    )
    tuner.search(train=(x_train, y_train), val=(x_val, y_val))
    tuner.results_summary(num_trials=2)

"""
## From the command line

`keras-swn search` runs the same pipeline (on these digits by default) and
prints its output folder; `keras-swn evaluate --model_dir DIR` reloads the
model and prints each member's and the ensemble's accuracy.
"""
print(keras.backend.backend(), keras_swn.__version__)
