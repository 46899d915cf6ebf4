"""Tests of the ensemble metrics on hand-made probability arrays."""

import math

import numpy as np
import pytest

from keras_swn.ensembles import ensemble_metrics
from keras_swn.ensembles import expected_calibration_error
from keras_swn.ensembles.evaluation import ECE_BINS

# Three members, four examples, three classes; labels [0, 1, 2, 0].
P0 = np.array(
    [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.6, 0.3, 0.1]]
)
P1 = np.array(
    [[0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]]
)
P2 = np.array(
    [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]]
)
Y = np.array([0, 1, 2, 0])


class TestEnsembleMetrics:
    def test_accuracy(self):
        result = ensemble_metrics([P0, P1, P2], Y)
        # Predictions: P0 [0,1,0,0], P1 [1,1,2,0], P2 [0,0,2,1].
        assert [m.top1 for m in result.members] == [0.75, 0.75, 0.5]
        # Mean: [0.633,0.267,0.1] [0.3,0.6,0.1] [0.267,0.233,0.5]
        # [0.6,0.317,0.083] -> [0, 1, 2, 0]: all correct.
        assert result.ensemble.top1 == 1.0
        assert result.members[0].top5 is None  # 3 classes

    def test_nll(self):
        result = ensemble_metrics([P0, P1, P2], Y)
        expected0 = -np.mean(np.log([0.7, 0.8, 0.1, 0.6]))
        assert result.members[0].nll == pytest.approx(expected0)
        mean_true = [
            (0.7 + 0.4 + 0.8) / 3,
            (0.8 + 0.7 + 0.3) / 3,
            (0.1 + 0.8 + 0.6) / 3,
            (0.6 + 0.9 + 0.3) / 3,
        ]
        assert result.ensemble.nll == pytest.approx(-np.mean(np.log(mean_true)))

    def test_ece(self):
        result = ensemble_metrics([P0, P1, P2], Y)
        # Member 0: confidences 0.7, 0.8, 0.5, 0.6 fall in four different
        # bins of width 1/15, correct = 1, 1, 0, 1: each bin contributes
        # |acc - conf| / 4.
        expected = (0.3 + 0.2 + 0.5 + 0.4) / 4
        assert result.members[0].ece == pytest.approx(expected)
        assert ECE_BINS == 15

    def test_ece_shared_bin(self):
        # 0.90 and 0.92 share the bin (14/15, 1]; one right, one wrong:
        # |0.5 - 0.91| * 2/2.
        probs = np.array([[0.9, 0.1], [0.08, 0.92]])
        assert expected_calibration_error(probs, [0, 0]) == pytest.approx(0.41)

    def test_ece_bin_edges(self):
        # 0.6 = 9/15 is the upper edge of bin 8; 0.6 + 1e-9 is in bin 9.
        probs = np.array([[0.6, 0.4], [0.6 + 1e-9, 0.4 - 1e-9]])
        ece = expected_calibration_error(probs, [0, 1])
        assert ece == pytest.approx((0.4 + (0.6 + 1e-9)) / 2)

    def test_disagreement_and_diversity(self):
        result = ensemble_metrics([P0, P1, P2], Y)
        # P0 vs P1 differ on examples 0, 2; P0 vs P2 on 1, 2, 3;
        # P1 vs P2 on 0, 1, 3.
        assert result.disagreement[0][1] == 0.5
        assert result.disagreement[0][2] == 0.75
        assert result.disagreement[1][2] == 0.75
        assert result.disagreement[1][1] == 0.0
        assert result.mean_disagreement == pytest.approx(2 / 3)
        # The ensemble makes no error: diversity is undefined.
        assert math.isnan(result.diversity)

    def test_diversity(self):
        # Two members, labels [0, 0, 0, 0]; predictions [0,1,0,1] and
        # [0,0,1,1]; the mean predicts [0, ?, ?, 1]: ties go to class 0.
        a = np.array([[0.9, 0.1], [0.3, 0.7], [0.8, 0.2], [0.2, 0.8]])
        b = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.1, 0.9]])
        result = ensemble_metrics([a, b], [0, 0, 0, 0])
        # Mean: [0.9, 0.45, 0.6, 0.15] for class 0 -> 0, 1, 0, 1.
        assert result.ensemble.top1 == 0.5
        assert result.mean_disagreement == 0.5
        assert result.diversity == pytest.approx(0.5 / 0.5)

    def test_top5(self):
        probs = np.tile(np.arange(1, 7, dtype=float) / 21, (3, 1))
        # Order by probability: 5, 4, 3, 2, 1, 0; class 0 is 6th.
        result = ensemble_metrics([probs], [5, 1, 0])
        assert result.members[0].top5 == pytest.approx(2 / 3)
        assert result.members[0].top1 == pytest.approx(1 / 3)
        assert math.isnan(result.mean_disagreement)

    def test_one_hot_labels(self):
        one_hot = np.eye(3)[Y]
        assert ensemble_metrics([P0], one_hot).members[0].top1 == 0.75

    def test_table_and_dict(self):
        result = ensemble_metrics([P0, P1, P2], Y, names=["a", "b", "c"])
        text = str(result)
        assert "member 2 (c)" in text and "ensemble" in text
        assert "100.00" in text
        d = result.to_dict()
        assert d["ensemble"]["top1"] == 1.0
        assert d["ece_bins"] == 15
        assert d["names"] == ["a", "b", "c"]

    def test_bad_arguments(self):
        with pytest.raises(
            ValueError, match="Invalid value for argument `probs_per_member`"
        ):
            ensemble_metrics(P0, Y)
        with pytest.raises(ValueError, match="Invalid value for argument `y`"):
            ensemble_metrics([P0], Y[:3])
        with pytest.raises(ValueError, match=r"Expected labels in \[0, 3\)"):
            ensemble_metrics([P0], [0, 1, 2, 3])
        with pytest.raises(ValueError, match="argument `names`"):
            ensemble_metrics([P0], Y, names=["a", "b"])
