"""The project store, the data wrapper and the oracle's tasks."""

import json

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.io.store import ProjectStore
from keras_swn.models import WideResNet
from keras_swn.search.oracle import Artifacts
from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.training.data import DataSource
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.validation import ArgumentError


def tiny_model():
    model = keras_swn.SWNModel(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=80_000,
        seed=0,
    )
    TrainingRecipe().compile(model, run_eagerly=True)
    return model


class TestProjectStore:
    def test_checkpoint_by_variable_path(self, tmp_path):
        store = ProjectStore(tmp_path / "p")
        model = tiny_model()
        name = store.save_checkpoint(model, 3)
        assert name == "checkpoint-00003.npz"
        with np.load(store.path("checkpoints", name)) as data:
            keys = set(data.files)
        assert keys == {f"w/{v.path}" for v in model.weights} | {
            f"o/{v.path}" for v in model.optimizer.variables
        }
        before = [keras.ops.convert_to_numpy(v) for v in model.weights]
        for v in model.weights:
            v.assign(np.zeros(v.shape, v.dtype))
        store.load_checkpoint(model, name)
        for a, v in zip(before, model.weights):
            np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))

    def test_prune_is_explicit(self, tmp_path):
        store = ProjectStore(tmp_path / "p")
        model = tiny_model()
        names = [store.save_checkpoint(model, i) for i in range(3)]
        store.write_state({"a": 1}, None, {"b": 2})
        assert len(list((tmp_path / "p" / "checkpoints").iterdir())) == 3
        store.prune_checkpoints(names[1])
        assert [p.name for p in (tmp_path / "p" / "checkpoints").iterdir()] == [
            names[1]
        ]

    def test_state_round_trip_and_other_versions(self, tmp_path):
        store = ProjectStore(tmp_path / "p")
        assert store.read_state() is None
        store.write_state({"budget": 1}, {"epochs": 2}, {"cursor": 0})
        state = store.read_state()
        assert (state["config"], state["run"], state["oracle"]) == (
            {"budget": 1},
            {"epochs": 2},
            {"cursor": 0},
        )
        (tmp_path / "p" / "state.json").write_text(
            json.dumps({**state, "version": 1})
        )
        with pytest.raises(ValueError, match="overwrite=True"):
            store.read_state()


class TestDataSource:
    def test_validation_uses_the_batch_size(self):
        x, y = np.zeros((10, 2)), np.zeros(10)
        data = DataSource((x, y), "validation_data")
        kwargs = data.validation_kwargs(4)
        assert kwargs["validation_batch_size"] == 4
        assert kwargs["validation_data"][0] is data.x
        batches = DataSource([(x, y)], "validation_data")
        assert batches.validation_kwargs(4) == {"validation_data": [(x, y)]}

    def test_seeded_order_and_errors(self):
        x, y = np.arange(10.0)[:, None], np.arange(10)
        data = DataSource((x, y), "train_data")
        a = data.ordered_fit_kwargs(4, 0, "epoch", 1, 2)
        b = data.ordered_fit_kwargs(4, 0, "epoch", 1, 2)
        np.testing.assert_array_equal(a["x"], b["x"])
        assert a["shuffle"] is False and a["batch_size"] == 4
        capture = data.collect_kwargs(4, 0, "capture", 2)
        assert len(capture["x"]) == 8
        for bad in ("file.npz", None, (x, y[:3])):
            with pytest.raises(ArgumentError) as info:
                DataSource(bad, "train_data")
            assert info.value.argument == "train_data"


class TestOracleTasks:
    def test_the_oracle_says_what_runs_next(self):
        oracle = PhaseOracle(
            "learned", search_epochs=1, epochs=2, refine_after=1
        )
        assert oracle.fresh
        task = oracle.next_task()
        assert (task.phase, task.model, task.epochs) == (
            Phase.SEARCH_TRAINING,
            "search",
            1,
        )
        assert task.first_of_phase and task.last_of_phase
        oracle.complete(task.step, logs={}, artifacts={"checkpoint": "c0"})
        task = oracle.next_task()
        assert (task.phase, task.checkpoint) == (Phase.CLUSTERING, "c0")
        oracle.complete(
            task.step, artifacts={"policy": {"g": [[0]]}, "checkpoint": None}
        )
        task = oracle.next_task()
        assert (task.model, task.policy, task.checkpoint) == (
            "final",
            {"g": [[0]]},
            None,
        )
        assert task.epochs == 2 and task.last_of_phase  # refine follows
        assert isinstance(oracle.artifacts, Artifacts)
        while (task := oracle.next_task()) is not None:
            logs = {"loss": 1.0} if task.epochs is not None else None
            oracle.complete(task.step, logs=logs)
        assert oracle.done and oracle.next_task() is None

    def test_artifacts_are_typed(self):
        oracle = PhaseOracle(
            "bins_hard", search_epochs=0, epochs=2, refine_after=1
        )
        oracle.start(policy={"groups": [[0]]})
        assert oracle.artifacts.policy == {"groups": [[0]]}
        assert not oracle.fresh
        with pytest.raises(ValueError, match="already started"):
            oracle.start(policy=None)
        with pytest.raises(ValueError, match="Unknown artifacts"):
            oracle.complete(oracle.current(), logs={}, artifacts={"x": 1})
