"""`SWNTuner` end to end on the real 8x8 digits.

One tuning run (module fixture) over two budgets, WRN-10-1 with 2 bins,
a search epoch, two final epochs and a refine step per trial. It is
interrupted in the last epoch of the second trial; a second tuner on the
same folder resumes that trial from its search folder. The tests then
read the finished run: the trials and their folders, `results_summary`,
`get_best_hyperparameters`, `get_best_models` (against the scores the
trials reported) and a third tuner that finds nothing left to run.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

kt = pytest.importorskip("keras_tuner")

import keras_swn  # noqa: E402
from keras_swn.data import load_digits_dataset  # noqa: E402
from keras_swn.models import SWNModel  # noqa: E402
from keras_swn.models import WideResNet  # noqa: E402
from keras_swn.search import tuner as tuner_module  # noqa: E402
from keras_swn.search.tuner import SWNTuner  # noqa: E402

BUDGETS = [50_000, 80_000]
RUN = dict(search_epochs=1, epochs=2, refine_after=1, verbose=0)
#: `fit` calls of one trial: the search epoch and two final epochs.
FITS_PER_TRIAL = 3
#: Every `fit` of the current tuner's trials (a list per tuner).
FITS: list = []


class Interrupted(BaseException):
    """A crash KerasTuner does not catch (like KeyboardInterrupt)."""


class CountFits(keras.callbacks.Callback):
    """Counts `fit` calls in `FITS` (shared by the per-trial copies);
    raises `Interrupted` at the start of fit number `stop_at`."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at = stop_at

    def on_train_begin(self, logs=None):
        FITS.append(1)
        if len(FITS) == self.stop_at:
            raise Interrupted


def digits(n_train=32, n_val=32):
    (x, y), (xv, yv) = load_digits_dataset(seed=0)
    return (x[:n_train], y[:n_train]), (xv[:n_val], yv[:n_val])


def build_search(hp, budgets=BUDGETS):
    return dict(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=hp.Choice("budget", budgets),
        num_bins=2,
        batch_size=16,
        seed=0,
        plots=False,
        run_eagerly=True,
    )


def make_tuner(directory, **kwargs):
    return SWNTuner(
        build_search, directory=str(directory), project_name="tuning", **kwargs
    )


def fits_of(tuner, train, val, **kwargs):
    """Run `tuner.search` and return how many `fit` calls it made."""
    FITS.clear()
    tuner.search(train, val, callbacks=[CountFits(**kwargs)], **RUN)
    return len(FITS)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The interrupted run, resumed by a second tuner: (tuner, folder,
    fits of the resumed run)."""
    folder = tmp_path_factory.mktemp("tuner")
    train, val = digits()
    keras.utils.set_random_seed(0)
    first = make_tuner(folder)
    with pytest.raises(Interrupted):
        # Trial 0 completes; trial 1 stops at its last final epoch.
        fits_of(first, train, val, stop_at=2 * FITS_PER_TRIAL)
    statuses = [
        first.oracle.trials[t].status for t in sorted(first.oracle.trials)
    ]
    assert statuses == ["COMPLETED", "RUNNING"]
    second = make_tuner(folder)
    resumed = fits_of(second, train, val)
    return second, folder, resumed


def test_interrupted_trial_resumes_its_search(tuned):
    tuner, _, resumed = tuned
    # Only trial 1's last epoch ran again: no trial started over.
    assert resumed == 1
    second = tuner.oracle.trials[sorted(tuner.oracle.trials)[1]]
    results = tuner.get_trial_search(second).results()
    phases = [p["phase"] for p in results["phases"]]
    assert phases[:2] == ["search_training", "clustering"]
    assert "refine" in phases


def test_trials_complete_in_their_own_folders(tuned):
    tuner, folder, _ = tuned
    trials = tuner.oracle.get_best_trials(10)
    assert len(trials) == 2
    assert sorted(t.hyperparameters.get("budget") for t in trials) == BUDGETS
    for t in trials:
        assert t.status == "COMPLETED"
        assert 0.0 <= t.score <= 1.0
        assert t.score == t.metrics.get_last_value("val_ensemble_accuracy")
        for name in ("val_loss", "groups", "bank_total", "trainable_total"):
            assert t.metrics.exists(name), name
        budget = t.hyperparameters.get("budget")
        assert t.metrics.get_last_value("bank_total") <= budget
        trial_dir = os.path.join(folder, "tuning", f"trial_{t.trial_id}")
        assert tuner.search_dir(t.trial_id) == os.path.join(trial_dir, "search")
        assert sorted(os.listdir(trial_dir)) == ["search", "trial.json"]
        assert os.path.exists(os.path.join(trial_dir, "search", "model.keras"))
    # No checkpoint of KerasTuner's in any trial; a finished search keeps
    # at most the one checkpoint its state names (its last).
    for trial_dir, _, files in os.walk(folder):
        for name in files:
            assert not name.endswith(".h5"), name
            if name.endswith(".npz"):
                assert os.path.basename(trial_dir) == "checkpoints", name
                assert len(files) == 1, files
    # A tight budget leaves fewer groups than a loose one.
    groups = {
        t.hyperparameters.get("budget"): t.metrics.get_last_value("groups")
        for t in trials
    }
    assert groups[50_000] <= groups[80_000]


def test_results_summary(tuned, capsys):
    tuner, _, _ = tuned
    tuner.results_summary()
    out = capsys.readouterr().out
    assert "Results summary" in out
    assert "val_ensemble_accuracy" in out
    for budget in BUDGETS:
        assert f"budget: {budget}" in out
    assert out.count("Score: ") == 2
    assert out.count("Groups: ") == 2
    assert out.count("Search folder: ") == 2


def test_best_hyperparameters(tuned):
    tuner, _, _ = tuned
    hps = tuner.get_best_hyperparameters(2)
    trials = tuner.oracle.get_best_trials(2)
    assert trials[0].score >= trials[1].score
    assert [h.values for h in hps] == [t.hyperparameters.values for t in trials]
    # The hypermodel rebuilds the best trial's search arguments.
    assert tuner.hypermodel.build(hps[0])["budget"] == hps[0].get("budget")


def test_best_model_scores_what_its_trial_reported(tuned):
    tuner, _, _ = tuned
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models()[0]
    assert isinstance(model, SWNModel)
    assert model.budget == best.hyperparameters.get("budget")
    assert model.policy == tuner.get_trial_search(best).policy
    _, (xv, yv) = digits()
    evaluation = model.evaluate(xv, yv, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        evaluation["ensemble_accuracy"], best.score, atol=1e-6
    )
    models = tuner.get_best_models(num_models=5)
    assert len(models) == 2  # every completed trial, best first
    with pytest.raises(ValueError, match="num_models"):
        tuner.get_best_models(0)


def test_rerun_on_a_finished_folder_runs_nothing(tuned):
    tuner, folder, _ = tuned
    again = make_tuner(folder)
    train, val = digits()
    assert fits_of(again, train, val) == 0
    scores = {t.trial_id: t.score for t in tuner.oracle.trials.values()}
    assert {t.trial_id: t.score for t in again.oracle.trials.values()} == (
        scores
    )


def test_infeasible_budget_fails_its_trial_before_training(tmp_path):
    def tiny_budget(hp):
        return build_search(hp, budgets=[1_000])

    tuner = SWNTuner(tiny_budget, directory=str(tmp_path), project_name="t")
    train, val = digits(16, 16)
    FITS.clear()
    tuner.search(train, val, callbacks=[CountFits()], **RUN)
    assert FITS == []
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"
    assert "budget" in trial.message
    assert tuner.get_best_models() == []


def test_arguments_are_checked(tmp_path):
    train, val = digits(16, 16)
    with pytest.raises(ValueError, match="oracle"):
        SWNTuner(
            build_search,
            oracle=kt.oracles.RandomSearchOracle(max_trials=1),
            objective="val_loss",
        )
    with pytest.raises(ValueError, match="oracle"):
        SWNTuner(build_search, oracle="grid", directory=str(tmp_path))
    with pytest.raises(ValueError, match="max_trials"):
        make_tuner(tmp_path / "m", max_trials=0)
    with pytest.raises(ValueError, match="build_search"):
        SWNTuner({"budget": 1}, directory=str(tmp_path))
    with pytest.raises(ValueError, match="objective"):
        make_tuner(tmp_path / "a", objective="groups")
    tuner = make_tuner(tmp_path / "b")
    with pytest.raises(ValueError, match="ephocs"):
        tuner.search(train, val, ephocs=1)
    with pytest.raises(ValueError, match="validation_data"):
        tuner.search(train, None)

    def owns_folder(hp):
        return {**build_search(hp), "directory": "elsewhere"}

    owner = SWNTuner(owns_folder, directory=str(tmp_path), project_name="c")
    with pytest.raises(kt.errors.FatalValueError, match="directory"):
        owner.search(train, val, **RUN)


def test_objective_names(tmp_path):
    loss = make_tuner(tmp_path / "a", objective="val_loss")
    assert loss.oracle.objective.direction == "min"
    default = make_tuner(tmp_path / "b")
    assert default.oracle.objective.name == "val_ensemble_accuracy"
    assert default.oracle.objective.direction == "max"


def test_trial_metrics_leave_out_missing_values():
    metrics = tuner_module.trial_metrics(
        {
            "evaluation": None,
            "val_ensemble_accuracy": None,
            "groups": 3,
            "coefficient_vectors": 5,
            "threshold": 0.25,
            "parameters": {"bank_total": 10, "trainable_total": 30},
        }
    )
    assert metrics == {
        "groups": 3.0,
        "coefficient_vectors": 5.0,
        "clustering_threshold": 0.25,
        "bank_total": 10.0,
        "trainable_total": 30.0,
    }


def test_keras_swn_imports_keras_tuner_only_for_the_tuner():
    code = (
        "import sys, keras_swn, keras_swn.search as s\n"
        "assert 'keras_tuner' not in sys.modules\n"
        "assert 'SWNTuner' not in s.__all__\n"
        "from keras_swn.search.tuner import SWNTuner\n"
        "assert s.SWNTuner is SWNTuner\n"
        "assert 'keras_tuner' in sys.modules\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert keras_swn.search.SWNTuner is SWNTuner
    with pytest.raises(AttributeError):
        keras_swn.search.PhaseOracle
