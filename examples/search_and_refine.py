"""
Title: Searching SuperWeight clusters under a parameter budget
Author: keras_swn authors
Date created: 2026/05/14
Last modified: 2026/12/07
Description: Run the full SuperWeight pipeline (search, train, refine) on
the digits that ship with keras_swn, resume it, and let KerasTuner tune
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
example runs on a CPU in a few minutes; `--smoke` (or
`KERAS_SWN_EXAMPLE_SMOKE=1`) runs it on a few images in about a minute.
"""

"""
## Setup
"""

import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_swn  # noqa: E402
from keras_swn.data import load_digits_dataset  # noqa: E402
from keras_swn.models import WideResNet  # noqa: E402
from keras_swn.search import SearchAndRefine  # noqa: E402

SMOKE = "--smoke" in sys.argv or (
    os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
)
keras.utils.set_random_seed(0)

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]
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
    epochs=2 if SMOKE else 3,
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

`keras_swn.search.SWNTuner` is a KerasTuner tuner whose trials are
`SearchAndRefine` runs: `build_search(hp)` returns the search's arguments,
some of them drawn from `hp`, and each trial is scored on
`val_ensemble_accuracy`. It needs KerasTuner (`pip install -e '.[tuner]'`);
`examples/tune_budget.py` goes further.
"""

try:
    from keras_swn.search import SWNTuner
except ImportError:  # keras-tuner is optional
    SWNTuner = None

if SWNTuner is not None:

    def build_search(hp):
        return dict(
            members=[WideResNet(10, 1)],
            input_shape=(8, 8, 1),
            num_classes=10,
            budget=hp.Choice("budget", [55_000, 80_000]),
            sharing="learned_no_refine",
            batch_size=64,
            plots=False,
        )

    tuner = SWNTuner(build_search, directory=workdir, project_name="tuning")
    tuner.search(
        (x_train, y_train),
        (x_val, y_val),
        search_epochs=1,
        epochs=1,
        verbose=0,
    )
    tuner.results_summary(num_trials=2)

"""
## From the command line

`keras-swn search` runs the same pipeline (on these digits by default) and
prints its output folder; `keras-swn evaluate --model_dir DIR` reloads the
model and prints each member's and the ensemble's accuracy.
"""
print(keras.backend.backend(), keras_swn.__version__)
