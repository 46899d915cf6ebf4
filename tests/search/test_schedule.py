"""Learning-rate schedules of the training recipe (`keras_swn.training.optim`):
step milestones as fractions of the run, the cosine schedule, and the
reference's absolute milestones."""

import math

import numpy as np
import pytest

from keras_swn.training import optim


class TestMilestones:
    @pytest.mark.parametrize(
        "epochs, expected",
        [
            (200, (60, 120, 160)),  # the reference's run
            (100, (30, 60, 80)),
            (15, (5, 9, 12)),  # 4.5 -> the first epoch past it
            (10, (3, 6, 8)),  # 0.3 * 10 is 3.0000000000000004
            (2, (1, 2, 2)),
            (1, (1, 1, 1)),  # no drop inside a one-epoch run
        ],
    )
    def test_default_fractions(self, epochs, expected):
        assert optim.milestone_epochs(optim.MILESTONE_FRACTIONS, epochs) == (
            expected
        )

    def test_epochs_are_absolute(self):
        assert optim.milestone_epochs([160, 60, 120], 15) == (60, 120, 160)
        assert optim.milestone_epochs(np.array([3, 1]), 15) == (1, 3)
        assert optim.milestone_epochs([], 15) == ()

    @pytest.mark.parametrize(
        "milestones",
        [[-1], [0.5, 3], [1.0], [0.0], [True], "60", None, 60, [float("nan")]],
    )
    def test_bad_milestones(self, milestones):
        with pytest.raises(
            ValueError,
            match=(
                r"Invalid value for argument `milestones`\. Expected a list "
                r"of epochs .* Received: milestones="
            ),
        ):
            optim.check_milestones(milestones)


class TestLearningRateAt:
    def test_step_default_is_fractions_of_the_run(self):
        lrs = [optim.learning_rate_at(e, 10) for e in range(10)]
        expected = [0.1] * 3 + [0.02] * 3 + [0.004] * 2 + [0.0008] * 2
        np.testing.assert_allclose(lrs, expected, rtol=1e-12)
        # The reference's run: the same drops as its absolute milestones.
        for e in (0, 59, 60, 119, 120, 159, 160, 199):
            assert optim.learning_rate_at(e, 200) == pytest.approx(
                optim.step_learning_rate(e)
            )

    def test_step_with_explicit_milestones_and_gamma(self):
        lrs = [
            optim.learning_rate_at(
                e, 6, learning_rate=0.2, milestones=[2, 4], gamma=0.5
            )
            for e in range(6)
        ]
        np.testing.assert_allclose(lrs, [0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
        fractions = [
            optim.learning_rate_at(e, 4, milestones=[0.5], gamma=0.1)
            for e in range(4)
        ]
        np.testing.assert_allclose(fractions, [0.1, 0.1, 0.01, 0.01])
        flat = [optim.learning_rate_at(e, 4, milestones=[]) for e in range(4)]
        assert flat == [0.1] * 4

    @pytest.mark.parametrize("epochs", [1, 3, 7, 200])
    def test_cosine(self, epochs):
        lrs = [
            optim.learning_rate_at(
                e, epochs, schedule="cosine", learning_rate=0.05
            )
            for e in range(epochs)
        ]
        expected = [
            0.05 * 0.5 * (1 + math.cos(math.pi * e / epochs))
            for e in range(epochs)
        ]
        np.testing.assert_allclose(lrs, expected, rtol=1e-12)
        assert lrs[0] == 0.05
        assert all(a > b for a, b in zip(lrs, lrs[1:]))
        assert lrs[-1] > 0

    def test_cosine_values(self):
        lrs = [
            optim.cosine_learning_rate(e, epochs=4, learning_rate=0.1)
            for e in range(4)
        ]
        np.testing.assert_allclose(
            lrs, [0.1, 0.0853553390593, 0.05, 0.0146446609407], rtol=1e-9
        )

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"schedule": "linear"}, "Received: schedule='linear'"),
            (
                {"schedule": [60, 120]},
                r"Pass step milestones as `milestones=`\. Received: "
                r"schedule=\[60, 120\]",
            ),
            (
                {"schedule": "cosine", "milestones": [0.5]},
                r"applies to schedule='step' only.* Received: "
                r"milestones=\[0.5\]",
            ),
            (
                {"schedule": "cosine", "gamma": 0.1},
                "applies to schedule='step' only.* Received: gamma=0.1",
            ),
            ({"gamma": 0.0}, "Received: gamma=0.0"),
            ({"gamma": "0.2"}, "Received: gamma='0.2'"),
        ],
    )
    def test_bad_schedule(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            optim.check_schedule(**kwargs)
        with pytest.raises(ValueError, match=message):
            optim.learning_rate_at(0, 10, **kwargs)

    def test_bad_epochs(self):
        with pytest.raises(ValueError, match="Received: epochs=0"):
            optim.learning_rate_at(0, 0, schedule="cosine")

    def test_defaults_filled_in(self):
        assert optim.check_schedule() == ("step", (0.3, 0.6, 0.8), 0.2)
        assert optim.check_schedule("cosine") == ("cosine", None, None)
        assert optim.check_schedule("step", [120, 60], 0.5) == (
            "step",
            (60, 120),
            0.5,
        )
