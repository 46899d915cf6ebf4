"""End-to-end tests of `SearchAndRefine` on tiny members and real digits.

Every run is WRN-10-x on the 8x8 digits bundled with scikit-learn, a few
dozen examples, one or two epochs, run eagerly (tracing costs more than
these runs on a CPU).
"""

import json
import os

import keras
import numpy as np
import pytest
from swn_fixtures import digits
from swn_fixtures import make_search

from keras_swn.models import WideResNet
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search import ReferenceSGD
from keras_swn.search import SearchAndRefine
from keras_swn.search import steps as steps_module
from keras_swn.search.oracle import Phase

MEMBERS = [(10, 2), (10, 1)]  # different layer counts: a cross-depth student
RUN = dict(search_epochs=1, epochs=2, refine_after=1, verbose=0)


def make(directory, project="p", members=MEMBERS, **kwargs):
    options = dict(budget=250_000, run_eagerly=True, seed=3)
    return make_search(directory, members, project, **{**options, **kwargs})


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted learned search (shared by several tests)."""
    keras.utils.clear_session()
    directory = tmp_path_factory.mktemp("reference")
    search = make(directory)
    train, val = digits()
    search.search(train, val, **RUN)
    return search


def final_weights(search):
    return search.get_best_models()[0].get_weights()


class TestEndToEnd:
    @pytest.mark.backend_sensitive
    def test_outputs(self, reference_run, capsys):
        search = reference_run
        folder = search.project_dir
        files = set(os.listdir(folder))
        assert {
            "state.json",
            "policy.json",
            "search_result.json",
            "refine.json",
            "budget_report.json",
            "budget_report.txt",
            "results.json",
            "history.json",
            "model.keras",
            "plots",
            "checkpoints",
        } <= files
        pngs = sorted(os.listdir(os.path.join(folder, "plots")))
        assert "groups.png" in pngs and "refine_cosines.png" in pngs
        assert any(p.startswith("similarity_bin") for p in pngs)
        for p in pngs:
            with open(os.path.join(folder, "plots", p), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        # Only the last checkpoint is kept; no temporary files are left.
        assert len(os.listdir(os.path.join(folder, "checkpoints"))) == 1
        assert not [f for f in files if f.startswith(".tmp")]

        policy = SharingPolicy.load(os.path.join(folder, "policy.json"))
        assert search.policy == policy
        result = search.search_result()
        assert result.budget == 250_000 and result.need <= 250_000
        # Real clustering: fewer groups than layers of member 0.
        assert result.num_groups < len(result.groups[0])
        assert policy.groups == result.groups
        report = search.budget_report()
        assert report.bank_total <= 250_000

        results = search.results()
        assert results["members"] == ["WRN-10-2", "WRN-10-1"]
        assert len(results["val_member_accuracy"]) == 2
        assert 0.0 <= results["val_ensemble_accuracy"] <= 1.0
        assert results["groups"] == policy.num_groups
        assert [p["phase"] for p in results["phases"]] == [
            "search_training",
            "clustering",
            "training",
            "refine",
            "training",
        ]
        history = json.load(open(os.path.join(folder, "history.json")))
        assert [e["epoch"] for e in history["training"]] == [0, 1]
        # Step milestones at 0.3/0.6/0.8 of `epochs`: epoch 1 of 2 is past
        # 0.3 * 2; the one search epoch replays epoch 0.
        assert history["training"][0]["learning_rate"] == pytest.approx(0.1)
        assert history["training"][1]["learning_rate"] == pytest.approx(0.02)
        assert history["search_training"][0]["learning_rate"] == (
            pytest.approx(0.1)
        )

        model = search.get_best_models()[0]
        assert model.policy == policy
        _, (xv, yv) = digits()
        evaluation = model.evaluate(xv, yv, verbose=0, return_dict=True)
        np.testing.assert_allclose(
            evaluation["ensemble_accuracy"],
            results["val_ensemble_accuracy"],
            atol=1e-6,
        )

        search.results_summary()
        out = capsys.readouterr().out
        assert "ensemble" in out and "WRN-10-2" in out and "Groups:" in out

    def test_finished_search_reloads_without_work(
        self, reference_run, monkeypatch
    ):
        def fail(*args, **kwargs):
            raise AssertionError("a finished search must not train again")

        monkeypatch.setattr(keras.Model, "fit", fail)
        again = make(reference_run.directory)
        assert again.oracle.done
        train, val = digits()
        again.search(train, val, **RUN)
        assert again.policy == reference_run.policy


class Crash(Exception):
    pass


class CrashAt(keras.callbacks.Callback):
    """Raise after `batch` of the given phase and epoch."""

    def __init__(self, search, phase, epoch, batch=0):
        super().__init__()
        self.search, self.phase, self.epoch = search, phase, epoch
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        step = self.search.oracle.current()
        if (step.phase, step.epoch, batch) == (
            self.phase,
            self.epoch,
            self.batch,
        ):
            raise Crash(str(step))


def test_resume_after_a_crash_in_every_phase(
    reference_run, tmp_path, monkeypatch
):
    """Kill the search inside every phase, restart it each time with
    `overwrite=False`: it ends with the policy, history and bit-identical
    weights of the uninterrupted run."""
    train, val = digits()

    def attempt(callbacks=(), patch=None):
        search = make(tmp_path)
        if patch is not None:
            monkeypatch.setattr(steps_module, patch[0], patch[1])
        try:
            search.search(train, val, callbacks=list(callbacks), **RUN)
        finally:
            monkeypatch.undo()
        return search

    def raises(*args, **kwargs):
        raise Crash("patched")

    real_refine = steps_module.refine_partition

    def refine_then_crash(*args, **kwargs):
        real_refine(*args, **kwargs)
        raise Crash("after refine_partition")

    # 1. Inside the first search-training epoch (mid-epoch).
    search = make(tmp_path)
    with pytest.raises(Crash):
        search.search(
            train,
            val,
            callbacks=[CrashAt(search, Phase.SEARCH_TRAINING, 0)],
            **RUN,
        )
    # 2. Inside clustering (gradients captured, before the grouping).
    with pytest.raises(Crash):
        attempt(patch=("search_groups", raises))
    assert make(tmp_path).oracle.phase is Phase.CLUSTERING
    # 3. Inside the first final-training epoch.
    search = make(tmp_path)
    with pytest.raises(Crash):
        search.search(
            train, val, callbacks=[CrashAt(search, Phase.TRAINING, 0)], **RUN
        )
    # 4. Inside refine (after the partition, before anything is saved).
    with pytest.raises(Crash):
        attempt(patch=("refine_partition", refine_then_crash))
    assert make(tmp_path).oracle.phase is Phase.REFINE
    # 5. Inside the epoch after refine, on its second batch.
    search = make(tmp_path)
    with pytest.raises(Crash):
        search.search(
            train,
            val,
            callbacks=[CrashAt(search, Phase.TRAINING, 1, batch=1)],
            **RUN,
        )
    # 6. Inside finish (before the model file is written).
    with pytest.raises(Crash):
        attempt(patch=("clone_swn_model", raises))
    assert not os.path.exists(os.path.join(tmp_path, "p", "model.keras"))
    # 7. Restart to the end.
    resumed = attempt()

    assert resumed.oracle.done
    assert resumed.policy == reference_run.policy
    assert resumed.search_result() == reference_run.search_result()
    assert resumed.oracle.history == reference_run.oracle.history
    for a, b in zip(final_weights(resumed), final_weights(reference_run)):
        np.testing.assert_array_equal(a, b)


def test_other_configuration_is_refused(reference_run):
    with pytest.raises(ValueError, match="another configuration"):
        make(reference_run.directory, budget=300_000)
    search = make(reference_run.directory)
    train, val = digits()
    with pytest.raises(ValueError, match="other arguments"):
        search.search(train, val, search_epochs=1, epochs=3, refine_after=1)


class TestOptions:
    def test_bad_options(self, tmp_path):
        cases = [
            ({"sharing": "hard"}, "Received: sharing='hard'"),
            ({"num_bins": 0}, "Received: num_bins=0"),
            ({"threshold_decrement": 0.0}, "Received: threshold_decrement=0.0"),
            ({"clustering": "kmeans"}, "Received: clustering='kmeans'"),
            ({"signal": "weights"}, "Received: signal='weights'"),
            ({"capture_batches": 0}, "Received: capture_batches=0"),
            ({"refine_threshold": "high"}, "Received: refine_threshold='high'"),
            ({"budget_check": "maybe"}, "Received: budget_check='maybe'"),
            ({"chain_sort": "random"}, "Received: chain_sort='random'"),
            ({"budget": 0}, "Received: budget=0"),
            ({"bank_size": 9}, "Received: bank_size=9"),
            (
                {
                    "reference_compatible": True,
                    "clustering": "connected_components",
                },
                "Received: clustering='connected_components'",
            ),
            (
                {"sharing": "bins_hard", "signal": "parameter"},
                "Received: signal='parameter'",
            ),
        ]
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=message):
                make(tmp_path, **kwargs)
        assert not os.path.exists(os.path.join(tmp_path, "p"))

    def test_reference_compatible(self, tmp_path):
        search = make(tmp_path, reference_compatible=True)
        assert (
            search.clustering,
            search.chain_sort,
            search.template_fan_in,
            search.budget_check,
        ) == ("reference", "reference", 9, "proxy")

    def test_search_members(self, tmp_path):
        # 10-2 (10 shared layers) and 10-1 (9): two depths, both train.
        assert make(tmp_path).search_members == [0, 1]
        same = make(tmp_path, members=[(10, 2), (10, 1), (10, 1)])
        assert same.search_members == [0, 1]
        gated = make(
            tmp_path, members=[(10, 1), (10, 1)], coefficient_threshold=0.5
        )
        assert gated.search_members == [0, 1]

    def test_bad_search_arguments(self, tmp_path):
        search = make(tmp_path)
        train, val = digits()
        cases = [
            ({"refine_after": 2}, "Received: refine_after=2"),
            ({"epochs": 0}, "Received: epochs=0"),
            ({"learning_rate": 0}, "Received: learning_rate=0"),
            ({"schedule": [60]}, r"Received: schedule=\[60\]"),
            ({"schedule": "linear"}, "Received: schedule='linear'"),
            ({"milestones": [-1]}, r"Received: milestones=\[-1\]"),
            ({"milestones": [0.5, 3]}, r"Received: milestones=\[0.5, 3\]"),
            (
                {"schedule": "cosine", "milestones": [1]},
                r"Received: milestones=\[1\]",
            ),
            ({"schedule": "cosine", "gamma": 0.5}, "Received: gamma=0.5"),
            ({"gamma": 0}, "Received: gamma=0"),
            ({"weight_decay": -1.0}, "Received: weight_decay=-1.0"),
            ({"batch_size": 0}, "Received: batch_size=0"),
        ]
        for kwargs, message in cases:
            with pytest.raises(ValueError, match=message):
                search.search(train, val, **{**RUN, **kwargs})
        with pytest.raises(ValueError, match="train_data"):
            search.search("digits.npz", **RUN)

    def test_results_before_search(self, tmp_path):
        search = make(tmp_path)
        assert search.policy is None
        assert search.budget_report().bank_total <= 250_000
        with pytest.raises(ValueError, match="call `search\\(\\)` first"):
            search.get_best_models()


def test_optimizer_matches_reference_form():
    """Coupled L2 (not on coefficients) and PyTorch's Nesterov buffer."""
    w = keras.Variable(np.array([1.0, -2.0], "float32"), name="kernel")
    c = keras.Variable(np.array([0.5], "float32"), name="coefficients_g0_w0")
    opt = ReferenceSGD(0.1, momentum=0.9, l2=0.01)
    opt.build([w, c])
    g = [np.array([0.2, 0.4], "float32"), np.array([1.0], "float32")]
    wn, cn = np.array([1.0, -2.0]), np.array([0.5])
    bw, bc = np.zeros(2), np.zeros(1)
    for lr in (0.1, 0.1, 0.02):
        opt.learning_rate = lr
        opt.apply(g, [w, c])
        gw = g[0] + 0.01 * wn
        bw = 0.9 * bw + gw
        wn = wn - lr * (gw + 0.9 * bw)
        bc = 0.9 * bc + g[1]
        cn = cn - lr * (g[1] + 0.9 * bc)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), wn, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(c), cn, rtol=1e-6)
    assert opt.get_config()["l2"] == 0.01


def test_keras_tuner_drives_search_and_refine(tmp_path):
    """A stock `kt.GridSearch` with the usual `run_trial` override."""
    kt = pytest.importorskip("keras_tuner")
    train, val = digits(24, 16)

    class SWNTuner(kt.GridSearch):
        def run_trial(self, trial, train, val):
            hp = trial.hyperparameters
            search = SearchAndRefine(
                [WideResNet(10, 1)],
                (8, 8, 1),
                10,
                budget=hp.Choice("budget", [50_000, 80_000]),
                threshold_start=hp.Fixed("threshold", 0.1),
                num_bins=hp.Fixed("bins", 2),
                sharing="learned_no_refine",
                # A folder of its own, not KerasTuner's trial folder.
                directory=self.project_dir,
                project_name=f"swn_trial_{trial.trial_id}",
                batch_size=16,
                plots=False,
                run_eagerly=True,
            )
            search.search(train, val, search_epochs=0, epochs=1, verbose=0)
            r = search.results()
            return {
                "val_ensemble_accuracy": r["val_ensemble_accuracy"],
                "groups": r["groups"],
            }

    tuner = SWNTuner(
        objective=kt.Objective("val_ensemble_accuracy", "max"),
        directory=str(tmp_path),
        project_name="tuning",
        max_trials=2,
    )
    tuner.search(train=train, val=val)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    budgets = sorted(t.hyperparameters.get("budget") for t in trials)
    assert budgets == [50_000, 80_000]
    for t in trials:
        assert t.status == "COMPLETED"
        assert 0.0 <= t.score <= 1.0
        groups = t.metrics.get_last_value("groups")
        assert 1 <= groups <= 10
    # A tight budget gives fewer groups than a loose one.
    by_budget = {
        t.hyperparameters.get("budget"): t.metrics.get_last_value("groups")
        for t in trials
    }
    assert by_budget[50_000] < by_budget[80_000]
