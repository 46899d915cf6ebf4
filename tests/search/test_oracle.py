"""Tests for the pure phase oracle of `SearchAndRefine`."""

import json

import pytest
from swn_fixtures import FULL_PHASES

from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.search.oracle import Sharing
from keras_swn.search.oracle import Step
from keras_swn.search.oracle import schedule


def names(steps):
    return [str(s) for s in steps]


class TestSchedule:
    def test_learned(self):
        steps = schedule("learned", 2, 3, 1)
        assert names(steps) == [
            "search_training epoch 1",
            "search_training epoch 2",
            "clustering",
            "training epoch 1",
            "refine",
            "training epoch 2",
            "training epoch 3",
            "finish",
            "done",
        ]

    def test_learned_no_refine_and_soft(self):
        for regime in ("learned_no_refine", "soft"):
            steps = schedule(regime, 1, 2, None)
            assert names(steps) == [
                "search_training epoch 1",
                "clustering",
                "training epoch 1",
                "training epoch 2",
                "finish",
                "done",
            ]

    def test_bins_hard_has_no_search(self):
        steps = schedule("bins_hard", 0, 3, 2)
        assert [s.phase for s in steps] == [
            Phase.TRAINING,
            Phase.TRAINING,
            Phase.REFINE,
            Phase.TRAINING,
            Phase.FINISH,
            Phase.DONE,
        ]

    def test_zero_search_epochs_still_clusters(self):
        steps = schedule("learned", 0, 2, 1)
        assert steps[0] == Step(Phase.CLUSTERING)

    def test_regime_properties(self):
        assert Sharing("learned").searches and Sharing("learned").refines
        assert not Sharing("bins_hard").searches
        assert Sharing("bins_hard").refines
        assert not Sharing("soft").refines
        assert not Sharing("learned_no_refine").refines

    @pytest.mark.parametrize(
        "args, message",
        [
            (("shared", 1, 2, 1), "Received: sharing='shared'"),
            (("learned", -1, 2, 1), "Received: search_epochs=-1"),
            (("learned", 1, 0, 1), "Received: epochs=0"),
            (("learned", 1, 2, 2), "Received: refine_after=2"),
            (("learned", 1, 2, 0), "Received: refine_after=0"),
            (("learned", 1, 2, None), "Received: refine_after=None"),
            (("bins_hard", 3, 2, 1), "Received: search_epochs=3"),
            (("learned", 1.5, 2, 1), "Received: search_epochs=1.5"),
        ],
    )
    def test_bad_arguments(self, args, message):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            schedule(*args)


class TestPhaseOracle:
    def run_to_end(self, oracle):
        while not oracle.done:
            step = oracle.current()
            logs = {"loss": 1.0} if step.epoch is not None else None
            oracle.complete(step, logs=logs, summary={"seconds": 0.5})

    def test_walk_and_history(self):
        oracle = PhaseOracle(
            "learned", search_epochs=1, epochs=3, refine_after=2
        )
        assert oracle.phases() == (
            Phase.SEARCH_TRAINING,
            Phase.CLUSTERING,
            Phase.TRAINING,
            Phase.REFINE,
            Phase.FINISH,
            Phase.DONE,
        )
        self.run_to_end(oracle)
        assert oracle.done
        assert [e["epoch"] for e in oracle.history["training"]] == [0, 1, 2]
        assert len(oracle.history["search_training"]) == 1
        assert [e["phase"] for e in oracle.phase_log] == FULL_PHASES

    def test_steps_complete_in_order(self):
        oracle = PhaseOracle("soft", search_epochs=1, epochs=1)
        with pytest.raises(ValueError, match="not the current step"):
            oracle.complete(Step(Phase.CLUSTERING))
        self.run_to_end(oracle)
        with pytest.raises(ValueError, match="not the current step"):
            oracle.complete(oracle.current())

    @pytest.mark.parametrize("stop", range(0, 9))
    def test_json_round_trip_at_every_step(self, stop):
        oracle = PhaseOracle(
            "learned", search_epochs=2, epochs=3, refine_after=1
        )
        for _ in range(stop):
            step = oracle.current()
            oracle.complete(
                step,
                logs={"loss": 0.25} if step.epoch is not None else None,
                artifacts={"checkpoint": f"c{oracle.cursor}.npz"},
            )
        text = oracle.to_json()
        again = PhaseOracle.from_json(text)
        assert again == oracle
        assert again.current() == oracle.current()
        assert json.loads(again.to_json()) == json.loads(text)
        # Both go on identically.
        self.run_to_end(oracle)
        self.run_to_end(again)
        assert again == oracle

    def test_artifacts_and_non_finite_logs(self):
        oracle = PhaseOracle(
            "bins_hard", search_epochs=0, epochs=2, refine_after=1
        )
        oracle.complete(
            oracle.current(),
            logs={"loss": float("nan"), "acc": 0.5},
            artifacts={"policy": {"groups": [[0, 1]]}, "checkpoint": "a"},
        )
        state = json.loads(json.dumps(oracle.get_state()))
        assert state["history"]["training"][0] == {
            "epoch": 0,
            "loss": None,
            "acc": 0.5,
        }
        assert state["artifacts"]["policy"] == {"groups": [[0, 1]]}

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"format": "other"}, "Invalid oracle state"),
            ({"version": 99}, "Unsupported oracle state version"),
            ({"cursor": 42}, "cursor=42"),
            ({"current": ["refine", None]}, "does not point"),
            ({"sharing": "nope"}, "Received: sharing='nope'"),
        ],
    )
    def test_bad_state(self, change, message):
        oracle = PhaseOracle(
            "learned", search_epochs=1, epochs=2, refine_after=1
        )
        state = {**oracle.get_state(), **change}
        with pytest.raises(ValueError, match=message):
            PhaseOracle.from_state(state)

    def test_bad_json(self):
        with pytest.raises(ValueError, match="Invalid oracle state JSON"):
            PhaseOracle.from_json("{not json")
