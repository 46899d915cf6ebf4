"""Tests for `keras_swn.analysis.attachment` (swn-algorithm.md §2.5)."""

import re

import numpy as np
import pytest

from keras_swn.analysis.attachment import AttachmentPlan
from keras_swn.analysis.attachment import attach_members
from keras_swn.analysis.attachment import check_bins
from keras_swn.policy.bins import index_specs
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy


def _raises(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


def _small_specs():
    """Member 0: 4 layers; member 1: same depth, narrower; member 2: 2."""
    specs = []
    for m, widths, n in [(0, 8, 4), (1, 4, 4), (2, 6, 2)]:
        for lid in range(n):
            specs.append(LayerSpec(m, lid, "conv2d", (widths, widths, 3, 3)))
    return specs


class TestAttachMembers:
    def test_same_depth_and_cross_depth(self):
        specs = _small_specs()
        bins = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 1]]
        rng = np.random.default_rng(9)
        base = {lid: rng.standard_normal((8, 8, 3, 3)) for lid in range(4)}
        grads = {(0, lid): base[lid] for lid in range(4)}
        grads[(2, 0)] = base[1][:6, :6]  # most similar to (0, 1)
        grads[(2, 1)] = base[2][:6, :6]  # most similar to (0, 2)
        att = attach_members(specs, bins, [10, 11, 12, 13], grads)
        assert att.groups == (
            (10, 11, 12, 13),
            (10, 11, 12, 13),
            (11, 12),
        )
        assert att.partners == {
            (1, 0): (0, 0),
            (1, 1): (0, 1),
            (1, 2): (0, 2),
            (1, 3): (0, 3),
            (2, 0): (0, 1),
            (2, 1): (0, 2),
        }

    def test_first_maximum_in_ascending_order_wins(self):
        specs = _small_specs()
        bins = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0]]
        g = np.ones((8, 8, 3, 3))
        grads = {(0, lid): g for lid in range(4)}
        grads[(2, 0)] = g[:6, :6]
        grads[(2, 1)] = -g[:6, :6]  # ties everywhere
        att = attach_members(specs, bins, [0, 0, 1, 1], grads)
        assert att.partners[(2, 0)] == (0, 0)
        assert att.partners[(2, 1)] == (0, 0)

    def test_coefficient_threshold_gates_sharing(self):
        specs = _small_specs()
        bins = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 1]]
        rng = np.random.default_rng(10)
        grads = {
            (0, lid): rng.standard_normal((8, 8, 3, 3)) for lid in range(4)
        }
        for lid in range(4):  # member 1 agrees on layers 0, 1 only
            g = grads[(0, lid)][:4, :4]
            grads[(1, lid)] = g if lid < 2 else -g
        grads[(2, 0)] = grads[(0, 0)][:6, :6]
        grads[(2, 1)] = rng.standard_normal((6, 6, 3, 3))  # weak match
        att = attach_members(
            specs, bins, [0, 0, 1, 1], grads, coefficient_threshold=0.5
        )
        assert att.groups[1] == (0, 0, 1, 1)
        assert att.partners == {(1, 0): (0, 0), (1, 1): (0, 1), (2, 0): (0, 0)}

    def test_member0_must_be_deepest(self):
        specs = [LayerSpec(0, 0, "conv2d", (4, 4, 3, 3))] + [
            LayerSpec(1, lid, "conv2d", (4, 4, 3, 3)) for lid in range(2)
        ]
        with _raises(
            "Invalid value for argument `specs`. Member 0 must be the "
            "deepest member. Member(s) [1] have more shared layers "
            "than member 0. Received: layers per member=[1, 2]"
        ):
            attach_members(specs, [[0], [0, 0]], [0], {})

    def test_callable_similarity(self):
        specs = _small_specs()
        bins = [[0, 0, 1, 1], [0, 0, 1, 1], [0, 1]]
        table = {
            ((2, 0), (0, 0)): 0.1,
            ((2, 0), (0, 1)): 0.7,
            ((2, 1), (0, 2)): 0.7,
            ((2, 1), (0, 3)): 0.9,
        }
        att = attach_members(
            specs, bins, {0: 0, 1: 1, 2: 2, 3: 2}, lambda a, b: table[(a, b)]
        )
        assert att.partners[(2, 0)] == (0, 1)
        assert att.partners[(2, 1)] == (0, 3)
        assert att.groups[2] == (1, 2)


class TestAttachmentPlan:
    def test_candidates_and_needed_keys(self):
        by_member = index_specs(_small_specs())
        bins = ((0, 0, 1, 1), (0, 0, 1, 1), (0, 1))
        plan = AttachmentPlan.create(by_member, bins)
        assert plan.order == [0, 1, 2]
        assert plan.large == {0: None, 1: 0, 2: None}
        assert plan.candidates[(1, 2)] == [(0, 2)]
        assert plan.candidates[(2, 1)] == [(0, 2), (0, 3)]
        # Same-depth members read no similarity unless gated.
        assert plan.needed_keys(False) == [
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 3),
            (2, 0),
            (2, 1),
        ]
        assert (1, 3) in plan.needed_keys(True)

    def test_check_bins(self):
        by_member = index_specs(_small_specs())
        policy = SharingPolicy(groups=[[0, 0, 1, 1], [0, 0, 1, 1], [0, 1]])
        assert check_bins(by_member, policy) == policy.groups
        with _raises(
            "Invalid value for argument `bins`. Bin ids must be "
            "non-negative. Received: bins=((0, 0, 1, -1), (0, 0, 1, 1), "
            "(0, 1))"
        ):
            check_bins(by_member, [[0, 0, 1, -1], [0, 0, 1, 1], [0, 1]])
