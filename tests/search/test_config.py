"""`SearchConfig`, `RunConfig` and `TrainingRecipe`: validated once,
frozen, JSON round trip, errors that name the argument."""

import dataclasses
import json

import pytest

from keras_swn.models import WideResNet
from keras_swn.search import RunConfig
from keras_swn.search import SearchConfig
from keras_swn.search import TrainingRecipe
from keras_swn.validation import ArgumentError


def config(**kwargs):
    options = dict(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=80_000,
    )
    options.update(kwargs)
    return SearchConfig(**options)


def json_round_trip(data):
    return json.loads(json.dumps(data))


class TestSearchConfig:
    def test_defaults_resolved_and_round_trip(self):
        c = config()
        assert (c.clustering, c.chain_sort, c.template_fan_in) == (
            "connected_components",
            "stable",
            "kernel",
        )
        assert (c.budget_check, c.threshold_schedule) == ("exact", "split")
        # The split schedule splits single-linkage clusters: the
        # reference's label propagation gets the one-threshold "fill".
        assert config(clustering="reference").threshold_schedule == "fill"
        with pytest.raises(ValueError, match="threshold_schedule"):
            config(clustering="reference", threshold_schedule="split")
        again = SearchConfig.from_dict(json_round_trip(c.to_dict()))
        assert again == c
        assert again.to_dict() == c.to_dict()
        assert config(budget=90_000) != c
        with pytest.raises(dataclasses.FrozenInstanceError):
            c.budget = 1

    def test_reference_compatible(self):
        c = config(reference_compatible=True)
        assert (c.clustering, c.chain_sort, c.template_fan_in) == (
            "reference",
            "reference",
            9,
        )
        assert (c.budget_check, c.threshold_schedule) == ("proxy", "step")
        assert SearchConfig.from_dict(json_round_trip(c.to_dict())) == c

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"num_bins": 0}, "num_bins"),
            ({"template_fan_in": 9.0}, "template_fan_in"),
            ({"sharing": "hard"}, "sharing"),
            ({"group_share": 1.5}, "group_share"),
            ({"members": []}, "members"),
            ({"budget": 1000}, "budget"),  # below the least-demanding
            (
                {"reference_compatible": True, "chain_sort": "stable"},
                "chain_sort",
            ),
        ],
    )
    def test_errors_name_the_argument(self, kwargs, argument):
        with pytest.raises(ArgumentError) as info:
            config(**kwargs)
        assert info.value.argument == argument
        assert f"Received: {argument}=" in str(info.value)


class TestRunConfig:
    def test_defaults_depend_on_the_regime(self):
        run = RunConfig.create(
            config(), search_epochs=None, epochs=40, refine_after=None
        )
        assert (run.search_epochs, run.refine_after, run.batch_size) == (
            2,  # 5% of 40 epochs
            2,
            128,
        )
        for epochs, search_epochs in [(2, 1), (15, 1), (21, 2), (200, 10)]:
            run_e = RunConfig.create(
                config(), search_epochs=None, epochs=epochs, refine_after=1
            )
            assert run_e.search_epochs == search_epochs
        assert run.recipe == TrainingRecipe()
        hard = RunConfig.create(
            config(sharing="bins_hard"),
            search_epochs=None,
            epochs=200,
            refine_after=None,
            batch_size=16,
        )
        assert (hard.search_epochs, hard.refine_after) == (0, 10)
        assert hard.batch_size == 16
        soft = RunConfig.create(
            config(sharing="soft"), search_epochs=1, epochs=2, refine_after=5
        )
        assert soft.refine_after is None  # the regime does not refine
        reference = RunConfig.create(
            config(reference_compatible=True),
            search_epochs=1,
            epochs=20,
            refine_after=None,
        )
        assert reference.refine_after == 10
        paper = RunConfig.create(
            config(reference_compatible=True),
            search_epochs=None,
            epochs=20,
            refine_after=None,
        )
        assert paper.search_epochs == 20  # the paper's
        assert reference.recipe.milestones == (60, 120, 160)

    def test_round_trip(self):
        run = RunConfig.create(
            config(),
            search_epochs=1,
            epochs=4,
            refine_after=1,
            schedule="cosine",
            learning_rate=0.2,
        )
        data = json_round_trip(run.to_dict())
        assert RunConfig.from_dict(data) == run
        assert data["schedule"] == "cosine" and data["milestones"] is None

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            ({"refine_after": 4}, "refine_after"),
            ({"epochs": 0}, "epochs"),
            ({"search_epochs": -1}, "search_epochs"),
            ({"batch_size": 0}, "batch_size"),
            ({"schedule": "cosine", "gamma": 0.5}, "gamma"),
            ({"milestones": [0.5, 3]}, "milestones"),
            ({"learning_rate": 0}, "learning_rate"),
            ({"weight_decay": -1.0}, "weight_decay"),
        ],
    )
    def test_errors_name_the_argument(self, kwargs, argument):
        options = dict(search_epochs=1, epochs=4, refine_after=1)
        options.update(kwargs)
        with pytest.raises(ArgumentError) as info:
            RunConfig.create(config(), **options)
        assert info.value.argument == argument


class TestTrainingRecipe:
    def test_schedule_and_round_trip(self):
        recipe = TrainingRecipe(milestones=[2], gamma=0.5)
        assert recipe.milestones == (2,)
        assert [recipe.learning_rate_at(e, epochs=4) for e in range(4)] == (
            pytest.approx([0.1, 0.1, 0.05, 0.05])
        )
        assert TrainingRecipe.from_dict(json_round_trip(recipe.to_dict())) == (
            recipe
        )
        optimizer = recipe.optimizer()
        assert (optimizer.l2, optimizer.nesterov) == (5e-4, True)

    def test_reference_schedule_conflict(self):
        with pytest.raises(ArgumentError) as info:
            RunConfig.create(
                config(reference_compatible=True),
                search_epochs=1,
                epochs=20,
                refine_after=None,
                schedule="cosine",
            )
        assert info.value.argument == "schedule"


class TestOneDeclaration:
    """Each search option is declared once: `SearchAndRefine` restates the
    fields of `SearchConfig` in its signature, and `SearchConfig` takes
    the grouping defaults from `keras_swn.analysis.GroupingConfig`."""

    #: `SearchAndRefine` options that are not `SearchConfig` fields (where
    #: the run goes, how it compiles): a new one must be added here.
    RUN_OPTIONS = {
        "directory",
        "project_name",
        "overwrite",
        "allow_existing_files",
        "plots",
        "jit_compile",
        "run_eagerly",
        "distribution",
    }

    def test_search_and_refine_signature_equals_the_config_fields(self):
        import inspect

        from keras_swn.search import SearchAndRefine

        params = dict(inspect.signature(SearchAndRefine.__init__).parameters)
        params.pop("self")
        fields = [f for f in dataclasses.fields(SearchConfig) if f.init]
        names = [f.name for f in fields]
        assert [p for p in params if p in names] == names
        assert set(params) - set(names) == self.RUN_OPTIONS
        for f in fields:
            want = (
                inspect.Parameter.empty
                if f.default is dataclasses.MISSING
                else f.default
            )
            assert params[f.name].default == want, f.name

    def test_grouping_defaults_come_from_the_analysis_layer(self):
        from keras_swn.analysis import GroupingConfig

        c = config()
        grouping = GroupingConfig()
        assert GroupingConfig(**c.clustering_kwargs()) == grouping
        reference = config(reference_compatible=True)
        assert (
            GroupingConfig(
                **{**reference.clustering_kwargs(), "group_share": 0.5}
            )
            == GroupingConfig.reference()
        )
