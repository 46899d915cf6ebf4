"""Tests for `keras_swn.analysis.partition` (swn-algorithm.md §2.4, §3.2)."""

import re

import numpy as np
import pytest

from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.partition import UnionFind
from keras_swn.analysis.partition import cluster_bin
from keras_swn.analysis.partition import threshold_blocks


def _raises(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


class TestThresholdBlocks:
    def test_union_find_roots_are_smallest(self):
        uf = UnionFind(5)
        uf.union(4, 3)
        uf.union(3, 1)
        uf.union(2, 2)
        assert [uf.find(x) for x in range(5)] == [0, 1, 2, 1, 1]

    def test_connected_components_are_transitive(self):
        pairs = [(0.9, 0, 1), (0.9, 1, 2), (0.1, 0, 3), (0.5, 3, 4)]
        blocks = threshold_blocks(5, pairs, 0.5, "connected_components")
        assert blocks == [[0, 1, 2], [3], [4]]  # 0.5 is not above 0.5

    def test_reference_pops_the_highest_score_first(self):
        # Popped in descending score: (3, 4) gives 4 the label 3, then
        # (0, 1) links, then (2, 3) gives 3 the label 2 but leaves 4 with
        # label 3; (1, 2) is not above the threshold.
        pairs = [(0.9, 0, 1), (0.2, 1, 2), (0.6, 2, 3), (0.95, 3, 4)]
        blocks = threshold_blocks(5, pairs, 0.5, "reference")
        assert blocks == [[0, 1], [2, 3], [4]]
        connected = threshold_blocks(5, pairs, 0.5, "connected_components")
        assert connected == [[0, 1], [2, 3, 4]]

    def test_reference_labels_are_not_transitive(self):
        # b takes a's label at the time of the pop: 2 -> 1 first, then
        # 1 -> 0 relabels only 1.
        pairs = [(0.8, 0, 1), (0.9, 1, 2)]
        assert threshold_blocks(3, pairs, 0.5, "reference") == [[0, 1], [2]]
        assert threshold_blocks(3, pairs, 0.5, "connected_components") == [
            [0, 1, 2]
        ]

    @pytest.mark.parametrize("mode", CLUSTERINGS)
    def test_no_items(self, mode):
        assert threshold_blocks(0, [], 0.0, mode) == []


class TestClusterBin:
    def test_connected_components_and_numbering(self):
        s = np.eye(5)
        ids = [0, 1, 2, 4, 7]
        for x, y in [(0, 1), (2, 3)]:  # {0, 1} and {2, 4}; 7 alone
            s[x, y] = s[y, x] = 0.92
        assert cluster_bin(ids, s, 0.1) == [(7,), (2, 4), (0, 1)]

    def test_strict_threshold(self):
        s = np.array([[1.0, 0.5], [0.5, 1.0]])
        assert cluster_bin([3, 5], s, 0.5) == [(5,), (3,)]
        assert cluster_bin([3, 5], s, 0.4999) == [(3, 5)]
        assert cluster_bin([3, 5], s, 0.5, clustering="reference") == [
            (5,),
            (3,),
        ]

    @pytest.mark.parametrize("mode", ["connected_components", "reference"])
    def test_independent_of_input_order(self, mode):
        rng = np.random.default_rng(7)
        n = 9
        x = rng.standard_normal((n, 4))
        s = np.corrcoef(x)
        ids = list(rng.choice(40, size=n, replace=False))
        expected = cluster_bin(ids, s, 0.3, clustering=mode)
        for _ in range(5):
            perm = rng.permutation(n)
            shuffled = cluster_bin(
                [ids[i] for i in perm],
                s[np.ix_(perm, perm)],
                0.3,
                clustering=mode,
            )
            assert shuffled == expected

    def test_monotone_merging(self):
        rng = np.random.default_rng(8)
        s = np.corrcoef(rng.standard_normal((12, 5)))
        ids = list(range(12))
        previous = None
        for t in np.arange(1.0, -1.05, -0.05):
            clusters = cluster_bin(ids, s, float(t))
            assert sorted(lid for c in clusters for lid in c) == ids
            if previous is not None:
                # Every earlier cluster lies inside one later cluster.
                for c in previous:
                    assert any(set(c) <= set(d) for d in clusters)
            previous = clusters
        assert previous == [tuple(ids)]

    def test_reference_label_propagation_differs(self):
        # Hook order 21, 12, 3. Queue (stable, ascending):
        # (21,3,0) (3,21,0) (12,3,.8) (3,12,.8) (21,12,.9) (12,21,.9).
        # Popping: label[21]=label[12]; label[12]=label[21];
        # label[12]=label[3]; label[3]=label[12]; stop at 0.
        # 21 keeps label "12", {12, 3} share label "3": 21 is pulled out
        # of the group it joined first, although sim(21, 12) = 0.9.
        s = np.array(
            [[1.0, 0.8, 0.0], [0.8, 1.0, 0.9], [0.0, 0.9, 1.0]]
        )  # ids 3, 12, 21
        ids = [3, 12, 21]
        assert cluster_bin(ids, s, 0.5, clustering="reference") == [
            (21,),
            (3, 12),
        ]
        assert cluster_bin(ids, s, 0.5) == [(3, 12, 21)]

    def test_reference_numbering_by_label(self):
        s = np.eye(3)
        s[0, 1] = s[1, 0] = 0.92  # {3, 12}
        assert cluster_bin([3, 12, 21], s, 0.1, clustering="reference") == [
            (21,),
            (3, 12),
        ]

    def test_errors(self):
        with _raises(
            "Invalid value for argument `clustering`. Expected one of "
            "('connected_components', 'reference'). Received: "
            "clustering='kmeans'"
        ):
            cluster_bin([0], np.eye(1), 0.1, clustering="kmeans")
        with _raises(
            "Invalid value for argument `sim`. Expected a square matrix "
            "matching `layer_ids`, shape (2, 2). Received: sim.shape=(1, 1)"
        ):
            cluster_bin([0, 1], np.eye(1), 0.1)
        with _raises(
            "Invalid value for argument `layer_ids`. Expected unique ids. "
            "Received: layer_ids=[1, 1]"
        ):
            cluster_bin([1, 1], np.eye(2), 0.1)
