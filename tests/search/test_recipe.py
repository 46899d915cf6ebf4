"""`SearchAndRefine`'s training recipe: the learning rate per epoch (step
fractions, cosine, the reference's milestones), the budget checked before
any training, and the template initialisation passed to `SWNModel`.

Tiny runs: WRN-10-x on a few dozen 8x8 digits, run eagerly.
"""

import math
import os
import re

import keras
import pytest
from swn_fixtures import FULL_PHASES
from swn_fixtures import digits
from swn_fixtures import make_search

from keras_swn.analysis.clustering import attach_members
from keras_swn.bank.plan import one_template_total
from keras_swn.models import WideResNet
from keras_swn.policy.bins import initial_bins
from keras_swn.search import TrainingRecipe
from keras_swn.search.oracle import Phase
from keras_swn.search.steps import StepRunner


def make(directory, members=((10, 1),), project="p", **kwargs):
    options = dict(budget=80_000, run_eagerly=True, plots=False, seed=1)
    return make_search(directory, members, project, **{**options, **kwargs})


def least_demanding(members, num_bins=4):
    """The exact one-template total of every bin fully merged."""
    specs = []
    for m, (d, w) in enumerate(members):
        specs += WideResNet(d, w).layer_specs((8, 8, 1), member=m)
    bins = initial_bins(specs, num_bins)
    merged = attach_members(specs, bins, bins[0], lambda a, b: 0.0).groups
    return one_template_total(specs, merged)


class LearningRateLog(keras.callbacks.Callback):
    """The optimizer's learning rate at every batch, by (phase, epoch)."""

    def __init__(self, search):
        super().__init__()
        self.search = search
        self.seen = {}

    def on_train_batch_begin(self, batch, logs=None):
        step = self.search.oracle.current()
        lr = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        self.seen.setdefault((step.phase, step.epoch), set()).add(round(lr, 6))


class TestSchedule:
    def test_cosine_over_the_run_and_across_refine(self, tmp_path):
        members = [(10, 2), (10, 1)]
        search = make(tmp_path, members=members, budget=250_000)
        log = LearningRateLog(search)
        train, val = digits()
        search.search(
            train,
            val,
            search_epochs=2,
            epochs=4,
            learning_rate=0.2,
            schedule="cosine",
            callbacks=[log],
            verbose=0,
        )

        def exact(e, n):
            return 0.2 * 0.5 * (1 + math.cos(math.pi * e / n))

        def cosine(e, n):
            return round(exact(e, n), 6)

        # The search replays the first epochs of the run's schedule.
        expected = {(Phase.SEARCH_TRAINING, e): {cosine(e, 4)} for e in (0, 1)}
        expected.update({(Phase.TRAINING, e): {cosine(e, 4)} for e in range(4)})
        assert log.seen == expected
        history = search.oracle.history
        for phase, n in (("search_training", 2), ("training", 4)):
            assert [h["learning_rate"] for h in history[phase]] == (
                pytest.approx([exact(e, 4) for e in range(n)], rel=1e-12)
            )
        # refine_after=None: 5% of 4 epochs, rounded up: after epoch 1,
        # and the schedule goes on over the rebuilt model.
        phases = [p["phase"] for p in search.oracle.phase_log]
        assert phases == FULL_PHASES
        refine = search.oracle.phase_log[3]
        assert refine["vectors_after"] > refine["vectors_before"]  # rebuilt
        assert search.oracle.refine_after == 1
        assert search.run_config.to_dict()["schedule"] == "cosine"
        assert search.run_config.to_dict()["milestones"] is None

    def test_step_fractions_and_explicit_milestones(self, tmp_path):
        search = make(tmp_path, sharing="learned_no_refine")
        log = LearningRateLog(search)
        train, val = digits()
        search.search(
            train, val, search_epochs=3, epochs=4, callbacks=[log], verbose=0
        )
        # 0.3/0.6/0.8 of 4 epochs: drops before epochs 2, 3 and 4, in the
        # search (which replays the run's first epochs) as in the training.
        assert log.seen == {
            (Phase.SEARCH_TRAINING, 0): {0.1},
            (Phase.SEARCH_TRAINING, 1): {0.1},
            (Phase.SEARCH_TRAINING, 2): {0.02},
            (Phase.TRAINING, 0): {0.1},
            (Phase.TRAINING, 1): {0.1},
            (Phase.TRAINING, 2): {0.02},
            (Phase.TRAINING, 3): {0.004},
        }
        assert search.run_config.to_dict()["milestones"] == [0.3, 0.6, 0.8]

        # Explicit epochs keep working, in both phases.
        explicit = make(tmp_path, project="q", sharing="learned_no_refine")
        log = LearningRateLog(explicit)
        explicit.search(
            train,
            val,
            search_epochs=2,
            epochs=2,
            milestones=[1],
            gamma=0.5,
            callbacks=[log],
            verbose=0,
        )
        assert log.seen == {
            (Phase.SEARCH_TRAINING, 0): {0.1},
            (Phase.SEARCH_TRAINING, 1): {0.05},
            (Phase.TRAINING, 0): {0.1},
            (Phase.TRAINING, 1): {0.05},
        }

    def test_reference_mode_keeps_60_120_160(self, tmp_path):
        search = make(
            tmp_path, reference_compatible=True, sharing="learned_no_refine"
        )
        train, val = digits()
        search.search(train, val, search_epochs=1, epochs=3, verbose=0)
        assert search.run_config.to_dict()["schedule"] == "step"
        assert search.run_config.to_dict()["milestones"] == [60, 120, 160]
        assert search.run_config.to_dict()["gamma"] == 0.2
        lrs = [h["learning_rate"] for h in search.oracle.history["training"]]
        assert lrs == pytest.approx([0.1, 0.1, 0.1])  # fractions: 0.02 at 1

    def test_reference_mode_defaults_without_training(
        self, tmp_path, monkeypatch
    ):
        def fail(*args, **kwargs):
            raise AssertionError("no training expected")

        monkeypatch.setattr(keras.Model, "fit", fail)
        train, val = digits()
        search = make(tmp_path, reference_compatible=True)
        with pytest.raises(
            ValueError,
            match=(
                r"reference_compatible=True selects schedule='step'.*"
                r"Received: schedule='cosine'"
            ),
        ):
            search.search(train, val, epochs=3, schedule="cosine", verbose=0)
        # The reference refines after 10 epochs whatever `epochs`.
        with pytest.raises(ValueError, match="Received: refine_after=10"):
            search.search(train, val, search_epochs=1, epochs=3, verbose=0)
        assert not os.path.exists(search.project_dir)

    def test_history_logs_the_rate_a_callback_set(self, tmp_path):
        """A callback that sets its own rate per epoch (the quality
        benchmark's cosine) is what the epoch trains at and what the
        history records, not the recipe's schedule."""
        search = make(tmp_path, sharing="learned_no_refine")
        log = LearningRateLog(search)

        def own(phase, epoch):
            return (
                0.05 if phase is Phase.SEARCH_TRAINING else 0.03 / (1 + epoch)
            )

        class OwnRate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                phase = search.oracle.current().phase
                self.model.optimizer.learning_rate = own(phase, epoch)

        train, val = digits()
        search.search(
            train,
            val,
            search_epochs=1,
            epochs=2,
            callbacks=[OwnRate(), log],
            verbose=0,
        )
        assert log.seen == {
            (Phase.SEARCH_TRAINING, 0): {0.05},
            (Phase.TRAINING, 0): {0.03},
            (Phase.TRAINING, 1): {0.015},
        }
        history = search.oracle.history
        assert [h["learning_rate"] for h in history["search_training"]] == (
            pytest.approx([0.05], rel=1e-6)
        )
        assert [h["learning_rate"] for h in history["training"]] == (
            pytest.approx([0.03, 0.015], rel=1e-6)
        )

    def test_search_epochs_default(self, tmp_path, monkeypatch):
        calls = []
        monkeypatch.setattr(
            StepRunner, "train_epoch", lambda self, task: calls.append(1)
        )
        monkeypatch.setattr(
            StepRunner,
            "start",
            lambda self: (_ for _ in ()).throw(RuntimeError("stop")),
        )
        train, val = digits()
        search = make(tmp_path)
        with pytest.raises(RuntimeError, match="stop"):
            search.search(train, val, epochs=40, verbose=0)
        assert search.oracle.search_epochs == 2  # 5% of 40
        assert search.oracle.refine_after == 2  # 5% of 40
        hard = make(tmp_path, project="hard", sharing="bins_hard")
        with pytest.raises(RuntimeError, match="stop"):
            hard.search(train, val, epochs=200, verbose=0)
        assert hard.oracle.search_epochs == 0
        assert hard.oracle.refine_after == 10
        assert not calls


class TestBudgetBeforeTraining:
    def test_unreachable_budget_raises_before_training(
        self, tmp_path, monkeypatch
    ):
        def fail(*args, **kwargs):
            raise AssertionError("the budget must be checked before fitting")

        monkeypatch.setattr(keras.Model, "fit", fail)
        members = [(10, 2), (10, 1)]
        minimum = least_demanding(members)
        assert minimum == 201_728
        for kwargs in (
            {},
            {"on_over_budget": "report"},
            {"budget_check": "proxy"},
            {"sharing": "soft"},
            {"reference_compatible": True},
        ):
            with pytest.raises(
                ValueError,
                match=(
                    r"Invalid value for argument `budget`\. Expected at least "
                    r"201,728: .*Received: budget=201727"
                ),
            ):
                make(tmp_path, members=members, budget=minimum - 1, **kwargs)
        assert not os.path.exists(os.path.join(tmp_path, "p"))
        # No search: the bins are the grouping, and "report" is honoured.
        make(
            tmp_path,
            members=members,
            budget=minimum - 1,
            sharing="bins_hard",
            on_over_budget="report",
        )

    def test_the_minimum_budget_searches_to_the_end(self, tmp_path):
        """At exactly the least-demanding budget the exact check merges
        every bin and the plan fits: the search never fails after its
        training."""
        minimum = least_demanding([(10, 1)])
        search = make(tmp_path, budget=minimum, sharing="learned_no_refine")
        assert search.budget_check == "exact"
        train, val = digits()
        search.search(train, val, search_epochs=1, epochs=1, verbose=0)
        assert search.oracle.done
        result = search.search_result()
        assert result.need == minimum
        assert search.budget_report().bank_total <= minimum


class TestTemplateFanIn:
    def test_default_and_reference(self, tmp_path):
        assert make(tmp_path).template_fan_in == "kernel"
        assert make(tmp_path).budget_check == "exact"
        reference = make(tmp_path, reference_compatible=True)
        assert reference.template_fan_in == 9
        assert reference.budget_check == "proxy"

    @pytest.mark.parametrize("value", ["kernel", "layer", 9])
    def test_passed_to_the_model(self, tmp_path, value):
        search = make(tmp_path, template_fan_in=value)
        assert search.template_fan_in == value
        assert (
            search.models.model_kwargs()["bank_config"].template_fan_in == value
        )
        model = search.models.search_model(
            TrainingRecipe(learning_rate=0.1, weight_decay=5e-4)
        )
        assert model.template_fan_in == value

    @pytest.mark.parametrize(
        "value", ["fan_in", "Kernel", 9.0, True, 3, 0, ("layer",)]
    )
    def test_invalid(self, tmp_path, value):
        with pytest.raises(
            ValueError,
            match=(
                r"Invalid value for argument `template_fan_in`\. Expected "
                r"one of 'kernel' .*'layer' or 9 .* Received: "
                + re.escape(f"template_fan_in={value!r}")
            ),
        ):
            make(tmp_path, template_fan_in=value)

    def test_reference_mode_conflict(self, tmp_path):
        with pytest.raises(
            ValueError,
            match=(
                r"reference_compatible=True selects template_fan_in=9.*"
                r"Received: template_fan_in='kernel'"
            ),
        ):
            make(tmp_path, reference_compatible=True, template_fan_in="kernel")


class TestWeightDecayRule:
    """One L2 rule: the optimizer of a recipe decays `decayed_variables`."""

    def test_compile_decays_exactly_the_decayed_variables(self):
        from keras_swn import SWNModel
        from keras_swn.models import decayed_variables

        model = SWNModel(
            members=[WideResNet(10, 1), WideResNet(10, 1)],
            input_shape=(8, 8, 1),
            num_classes=10,
            budget=60_000,
            member_loss_weights=[1.0, 0.0],
            seed=0,
        )
        TrainingRecipe(learning_rate=0.1, weight_decay=5e-4).compile(model)
        decayed = {id(v) for v in decayed_variables(model)}
        mask = {
            id(v): model.optimizer.decays(v) for v in model.trainable_variables
        }
        assert {i for i, d in mask.items() if d} == decayed
        # Coefficients and the non-training member's own variables: no L2.
        assert not any(
            model.optimizer.decays(v) for v in model.bank.coefficients.values()
        )
        assert not all(mask.values()) and any(mask.values())

    @staticmethod
    def _model(**kwargs):
        from keras_swn import SWNModel

        return SWNModel(
            members=[WideResNet(10, 1), WideResNet(10, 1)],
            input_shape=(8, 8, 1),
            num_classes=10,
            budget=60_000,
            member_loss_weights=[1.0, 0.0],
            seed=0,
            **kwargs,
        )

    def test_compile_applies_the_rule_and_reload_keeps_it(self):
        """`SWNModel.compile` hands the rule to any optimizer that decays
        itself, so a model compiled directly, or rebuilt from its configs,
        decays the same variables as one compiled by the recipe."""
        from keras_swn import SWNModel
        from keras_swn.models import decayed_variables
        from keras_swn.search import ReferenceSGD

        model = self._model()
        model.compile(ReferenceSGD(0.1, l2=5e-4))
        decayed = {id(v) for v in decayed_variables(model)}
        assert decayed and len(decayed) < len(model.trainable_variables)
        got = {
            id(v)
            for v in model.trainable_variables
            if model.optimizer.decays(v)
        }
        assert got == decayed
        again = SWNModel.from_config(model.get_config())
        again.compile_from_config(model.get_compile_config())
        assert isinstance(again.optimizer, ReferenceSGD)
        assert [
            again.optimizer.decays(v) for v in again.trainable_variables
        ] == [id(v) in decayed for v in model.trainable_variables]

    def test_optimizer_config_has_no_second_rule(self):
        from keras_swn.search import ReferenceSGD

        optimizer = ReferenceSGD(0.1, l2=1e-3)
        config = optimizer.get_config()
        assert "exclude_patterns" not in config
        old = {**config, "exclude_patterns": ["coefficients"]}
        assert ReferenceSGD.from_config(old).l2 == 1e-3
        # Without a model: every variable but the bank coefficients.
        c = keras.Variable([1.0], name="coefficients_g3_w1")
        k = keras.Variable([1.0], name="templates_g3_w1")
        assert (optimizer.decays(c), optimizer.decays(k)) == (False, True)

    @pytest.mark.backend_sensitive
    def test_loss_term_and_optimizer_l2_are_one_rule(self):
        """Plain SGD on the model's L2 loss term and `ReferenceSGD`'s
        coupled L2 (no momentum) take the same steps: the same variables
        decay, by the same amount. Both at once is refused."""
        import numpy as np

        from keras_swn.search import ReferenceSGD

        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 10, 16)
        term = self._model(weight_decay=0.05)
        term.compile(keras.optimizers.SGD(0.1))
        coupled = self._model()
        coupled.compile(ReferenceSGD(0.1, momentum=0.0, l2=0.05))
        for model in (term, coupled):
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        moved = 0
        start = self._model()
        for a, b, s in zip(
            term.trainable_variables,
            coupled.trainable_variables,
            start.trainable_variables,
        ):
            a, b, s = (keras.ops.convert_to_numpy(v) for v in (a, b, s))
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
            moved += not np.allclose(a, s)
        assert moved > 0
        with pytest.raises(ValueError, match="weight_decay=0.05"):
            self._model(weight_decay=0.05).compile(ReferenceSGD(0.1))

    def test_decay_only_after_build_is_an_error(self):
        from keras_swn.search import ReferenceSGD

        optimizer = ReferenceSGD(0.1)
        w = keras.Variable([1.0, 2.0])
        optimizer.build([w])
        with pytest.raises(ValueError, match="before the optimizer is built"):
            optimizer.decay_only([w])
