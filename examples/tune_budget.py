"""
Title: Tuning the budget and the refine threshold with KerasTuner
Author: keras_swn contributors
Date created: 2026/11/30
Last modified: 2026/11/30
Description: A KerasTuner grid over budget x refine threshold whose trials
are SuperWeight searches: results, best models and resume.
Accelerator: None
"""

"""
## Introduction

`keras_swn.search.SearchAndRefine` runs the SuperWeight pipeline (search
training, clustering, final training, refine) for *one* set of options.
Which budget, or which refine threshold, gives the best ensemble is a
hyperparameter question, and KerasTuner is the Keras tool for it.

`keras_swn.search.SWNTuner` is a `keras_tuner.Tuner` whose trials are
`SearchAndRefine` runs. You write a function `build_search(hp)` that
returns the search's arguments with values drawn from `hp`; every trial
runs its search in its own folder (`trial_<id>/search`) and reports the
validation accuracy of the ensemble, the number of groups and the
parameters. `search`, `results_summary`, `get_best_hyperparameters` and
`get_best_models` work as for any tuner, and a tuner created again on the
same folder resumes: finished trials are not run again and an interrupted
trial resumes its search from the last saved epoch.

This example tunes a grid of **budget x refine threshold** for a WRN-10-2
and a WRN-10-1 on the 8x8 digits bundled with keras_swn, on a CPU in a few
minutes. It needs KerasTuner (`pip install 'keras-swn[tuner]'`). Set
`KERAS_SWN_EXAMPLE_SMOKE=1` for a run of about a minute.
"""

"""
## Setup
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tempfile

import keras

from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet
from keras_swn.search import SWNTuner

SMOKE = os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
keras.utils.set_random_seed(0)

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]
print(f"train {x_train.shape}, validation {x_val.shape}")

"""
## The search space

`build_search(hp)` returns a dict of `SearchAndRefine` arguments. Two of
them are hyperparameters:

- `budget`, the template parameters the members share. The two members
  stored separately would need about 381,000 parameters; the search needs
  at least about 156,000 to start.
- `refine_threshold`: after `refine_after` epochs, a coefficient vector
  that several layers share is split when its users' gradients agree less
  than this cosine. A high threshold splits more (more coefficients, less
  sharing), a low one keeps the learned sharing.

The tuner chooses where each trial's search lives, so the dict has no
`directory`, `project_name` or `overwrite`. (To tune the clustering
threshold instead, pass `threshold_schedule="step"` and draw
`threshold_start` from `hp`.)
"""

if SMOKE:
    MEMBERS = [(10, 1)]
    BUDGETS = [50_000, 80_000]
else:
    MEMBERS = [(10, 2), (10, 1)]
    BUDGETS = [200_000, 300_000]


def build_search(hp):
    return dict(
        members=[WideResNet(depth, width) for depth, width in MEMBERS],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=hp.Choice("budget", BUDGETS),
        refine_threshold=hp.Choice("refine_threshold", [0.5, 0.9]),
        num_bins=2,
        batch_size=64,
        seed=0,
        plots=False,
    )


"""
## The tuner

Without an `oracle`, `SWNTuner` runs a grid search
(`keras_tuner.oracles.GridSearchOracle`) that maximises the validation
accuracy of the ensemble, `val_ensemble_accuracy`. Pass any KerasTuner
oracle instead, e.g.
`oracle=keras_tuner.oracles.RandomSearchOracle(objective=...,
max_trials=...)`. The smoke run stops after two trials of the grid.
"""

workdir = tempfile.mkdtemp()
tuner = SWNTuner(
    build_search,
    max_trials=2 if SMOKE else None,
    directory=workdir,
    project_name="budget_x_threshold",
)
tuner.search_space_summary()

"""
The arguments of `tuner.search` go to every trial's
`SearchAndRefine.search`. The epochs are tiny so that the example runs
quickly; the paper's recipe is `search_epochs=20, epochs=200,
refine_after=10`.
"""

tuner.search(
    (x_train, y_train),
    (x_val, y_val),
    search_epochs=1,
    epochs=2 if SMOKE else 4,
    refine_after=1,
    learning_rate=0.05,
    verbose=0,
)

"""
## Results

`results_summary` prints the best trials with their hyperparameters,
score, groups, parameters and search folder.
"""

tuner.results_summary()

"""
Every trial also records the groups and the parameters of its model, so
the whole grid reads as a table:
"""

print(f"{'budget':>8} {'refine':>6} {'accuracy':>8} {'groups':>6} trainable")
for trial in sorted(
    tuner.oracle.trials.values(),
    key=lambda t: (t.hyperparameters.get("budget"), t.trial_id),
):
    if trial.status != "COMPLETED":
        continue
    hp, metrics = trial.hyperparameters, trial.metrics
    print(
        f"{hp.get('budget'):>8,} {hp.get('refine_threshold'):>6} "
        f"{metrics.get_last_value('val_ensemble_accuracy'):>8.4f} "
        f"{int(metrics.get_last_value('groups')):>6} "
        f"{int(metrics.get_last_value('trainable_total')):>9,}"
    )

"""
## The best hyperparameters and the best model

`get_best_hyperparameters` returns the `HyperParameters` of the best
trials; `tuner.hypermodel.build(hp)` gives back their search arguments.
`get_best_models` reloads the final model of the best trials (each
trial's `search/model.keras`), compiled for evaluation.
"""

best_hp = tuner.get_best_hyperparameters()[0]
print(best_hp.values)

model = tuner.get_best_models()[0]
print(model.evaluate(x_val, y_val, verbose=0, return_dict=True))

"""
`get_trial_search` reopens a trial's `SearchAndRefine` (nothing is
trained) for its policy and its budget report.
"""

best_trial = tuner.oracle.get_best_trials(1)[0]
search = tuner.get_trial_search(best_trial)
print(search.policy.groups)
print(search.budget_report())

"""
## Resuming

A tuner created again on the same folder with `overwrite=False` (the
default) reloads the trials. Here they have all finished, so `search` runs
nothing; after an interruption it would run the unfinished trial again in
its folder, where its search resumes from its last saved epoch or phase.
"""

again = SWNTuner(
    build_search,
    max_trials=2 if SMOKE else None,
    directory=workdir,
    project_name="budget_x_threshold",
)
again.search(
    (x_train, y_train),
    (x_val, y_val),
    search_epochs=1,
    epochs=2 if SMOKE else 4,
    refine_after=1,
    learning_rate=0.05,
    verbose=0,
)
best_again = again.get_best_hyperparameters()[0]
print(f"{len(again.oracle.trials)} trials; best {best_again.values}")
