"""Tests for `keras_swn.analysis.refine` (swn-algorithm.md §3.2)."""

import json
import os
import re

import numpy as np
import pytest

from keras_swn.analysis.refine import refine_partition
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.sharing_policy import SharingPolicy

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


def _raises(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


def _unit(deg):
    r = np.deg2rad(deg)
    return np.array([np.cos(r), np.sin(r), 0.0])


def _policy():
    """Group 0: layers (0,0), (0,1), (1,0), (1,1), (2,0); one level each.

    Slots (1, 0, 0) and (2, 0, 0) read (0, 0)'s vector (a set of three);
    (1, 1, 0) reads (0, 1)'s vector (a set of two).
    """
    return SharingPolicy(
        groups=[[0, 0], [0, 0], [0]],
        coefficient_owners={
            (1, 0, 0): (0, 0),
            (2, 0, 0): (0, 0),
            (1, 1, 0): (0, 1),
        },
    )


LEVELS = {(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 1, (2, 0): 1}
LEVELS_SLOTS = [(m, lid, 0) for m, lid in LEVELS]


class TestRefinePartition:
    def test_agreeing_set_stays_shared(self):
        policy = _policy()
        grads = {
            (0, 0, 0): _unit(0),
            (1, 0, 0): _unit(5),
            (2, 0, 0): _unit(10),
            (0, 1, 0): _unit(90),
            (1, 1, 0): 2.0 * _unit(91),
        }
        result = refine_partition(policy, grads, levels=LEVELS)
        assert result.policy == policy
        assert result.copies == {}
        assert result.vectors_before == result.vectors_after == 2
        cos = {(a, b): c for a, b, c in result.pair_cosines[(0, 0)]}
        assert cos[((0, 0, 0), (1, 0, 0))] == pytest.approx(np.cos(np.pi / 36))
        assert len(cos) == 4  # 3 pairs in the first set, 1 in the second

    def test_disagreeing_set_splits(self):
        policy = _policy()
        grads = {
            (0, 0, 0): _unit(0),
            (1, 0, 0): _unit(90),  # disagrees with the owner
            (2, 0, 0): _unit(93),  # agrees with (1, 0, 0)
            (0, 1, 0): _unit(0),
            (1, 1, 0): _unit(180),
        }
        result = refine_partition(policy, grads, levels=LEVELS)
        # {(0,0,0)} keeps the owner; {(1,0,0), (2,0,0)} gets owner (1, 0);
        # {(1,1,0)} becomes its own owner.
        assert result.policy.owner((0, 0, 0)) == (0, 0)
        assert result.policy.owner((1, 0, 0)) == (1, 0)
        assert result.policy.owner((2, 0, 0)) == (1, 0)
        assert result.policy.owner((0, 1, 0)) == (0, 1)
        assert result.policy.owner((1, 1, 0)) == (1, 1)
        assert result.policy.coefficient_owners == {(2, 0, 0): (1, 0)}
        assert result.copies == {
            (1, 0, 0): (0, 0, 0),
            (1, 1, 0): (0, 1, 0),
        }
        assert result.num_new_vectors == 2
        assert (result.vectors_before, result.vectors_after) == (2, 4)
        assert result.policy.groups == policy.groups

    def test_owner_block_keeps_owner_even_if_not_smallest(self):
        # The owner is (1, 0); (0, 0) reads it and disagrees.
        policy = SharingPolicy(
            groups=[[0], [0], [0]],
            coefficient_owners={(0, 0, 0): (1, 0), (2, 0, 0): (1, 0)},
        )
        grads = {
            (0, 0, 0): _unit(90),
            (1, 0, 0): _unit(0),
            (2, 0, 0): _unit(2),
        }
        result = refine_partition(policy, grads)
        assert result.copies == {(0, 0, 0): (1, 0, 0)}
        assert result.policy.coefficient_owners == {(2, 0, 0): (1, 0)}

    def test_reference_greedy_differs(self):
        # Entries A=(0,0,0) < B=(1,0,0) < C=(2,0,0); cos(A,B)=cos 22deg
        # =.927, cos(B,C)=cos 20deg=.940, cos(A,C)=cos 42deg=.743.
        # Greedy queue (each pair once, stable ascending):
        # (A,C,.743) (A,B,.927) (B,C,.940). Pop (B,C): label[C]=label[B];
        # pop (A,B): label[B]=label[A]; stop. Blocks {A, B}, {C}.
        policy = SharingPolicy(
            groups=[[0], [0], [0]],
            coefficient_owners={(1, 0, 0): (0, 0), (2, 0, 0): (0, 0)},
        )
        grads = {
            (0, 0, 0): _unit(0),
            (1, 0, 0): _unit(22),
            (2, 0, 0): _unit(42),
        }
        cc = refine_partition(policy, grads, threshold=0.9)
        assert cc.policy == policy and cc.copies == {}
        ref = refine_partition(
            policy, grads, threshold=0.9, clustering="reference"
        )
        assert ref.copies == {(2, 0, 0): (0, 0, 0)}
        assert ref.policy.coefficient_owners == {(1, 0, 0): (0, 0)}

    def test_zero_gradient_splits(self):
        policy = SharingPolicy(
            groups=[[0], [0]], coefficient_owners={(1, 0, 0): (0, 0)}
        )
        grads = {(0, 0, 0): np.zeros(3), (1, 0, 0): np.zeros(3)}
        result = refine_partition(policy, grads, threshold=-0.5)
        assert result.copies == {}  # cosine 0 > -0.5: stays
        result = refine_partition(policy, grads, threshold=0.0)
        assert result.copies == {(1, 0, 0): (0, 0, 0)}  # 0 is not > 0

    def test_independent_of_insertion_order(self):
        policy = _policy()
        rng = np.random.default_rng(0)
        base = rng.standard_normal(3)
        grads = {
            (0, 0, 0): base,
            (1, 0, 0): -base,
            (2, 0, 0): base + 0.01 * rng.standard_normal(3),
            (0, 1, 0): rng.standard_normal(3),
            (1, 1, 0): rng.standard_normal(3),
        }
        expected = refine_partition(policy, grads)
        for seed in range(4):
            order = np.random.default_rng(seed).permutation(len(grads))
            keys = list(grads)
            shuffled = {keys[i]: grads[keys[i]] for i in order}
            for mode in ("connected_components", "reference"):
                result = refine_partition(policy, shuffled, clustering=mode)
                assert result == refine_partition(
                    policy, grads, clustering=mode
                )
            assert refine_partition(policy, shuffled) == expected

    def test_policy_json_round_trip(self):
        grads = {
            (0, 0, 0): _unit(0),
            (1, 0, 0): _unit(90),
            (2, 0, 0): _unit(93),
            (0, 1, 0): _unit(0),
            (1, 1, 0): _unit(180),
        }
        result = refine_partition(_policy(), grads)
        again = SharingPolicy.from_json(result.policy.to_json())
        assert again == result.policy
        summary = json.loads(json.dumps(result.to_dict()))
        assert SharingPolicy.from_dict(summary["policy"]) == result.policy
        assert summary["copies"] == [
            [*new, *old] for new, old in result.copies.items()
        ]
        assert (summary["vectors_before"], summary["vectors_after"]) == (
            result.vectors_before,
            result.vectors_after,
        )

    def test_keeps_the_chain_order(self):
        policy = _policy()
        policy = SharingPolicy(
            groups=policy.groups,
            coefficient_owners=policy.coefficient_owners,
            chain_sort="reference",
        )
        grads = {s: _unit(90 * s[0]) for s in LEVELS_SLOTS}
        result = refine_partition(policy, grads, levels=LEVELS)
        assert result.copies
        assert result.policy.chain_sort == "reference"

    def test_multi_width_slots(self):
        # Layer (1, 0) reads (0, 0) at levels 0 and 1; refine per level.
        policy = SharingPolicy(
            groups=[[0], [0]],
            coefficient_owners={(1, 0, 0): (0, 0), (1, 0, 1): (0, 0)},
        )
        grads = {
            (0, 0, 0): _unit(0),
            (1, 0, 0): _unit(1),
            (0, 0, 1): _unit(0),
            (1, 0, 1): _unit(120),
        }
        result = refine_partition(policy, grads, levels={(0, 0): 2, (1, 0): 2})
        assert result.policy.coefficient_owners == {(1, 0, 0): (0, 0)}
        assert result.copies == {(1, 0, 1): (0, 0, 1)}
        assert set(result.pair_cosines) == {(0, 0), (0, 1)}

    def test_errors(self):
        policy = _policy()
        with _raises(
            "Invalid value for argument `coefficient_grads`. No gradient for "
            "slots [(0, 1, 0), (1, 1, 0)], which share the vector of "
            "(0, 1, 0). Received: coefficient_grads with keys [(0, 0, 0), "
            "(1, 0, 0), (2, 0, 0)]"
        ):
            refine_partition(
                policy,
                {(0, 0, 0): _unit(0), (1, 0, 0): _unit(0), (2, 0, 0): _unit(0)},
            )
        with _raises(
            "Invalid value for argument `clustering`. Expected one of "
            "('connected_components', 'reference'). Received: "
            "clustering='greedy'"
        ):
            refine_partition(policy, {}, clustering="greedy")
        with _raises(
            "Invalid value for argument `threshold`. Expected a finite real "
            "number. Received: threshold=nan"
        ):
            refine_partition(policy, {}, threshold=float("nan"))


class TestRefineAppendixB:
    def test_everything_unshares(self):
        with open(os.path.join(DATA, "appendix_b.json"), encoding="utf-8") as f:
            ref = json.load(f)
        specs = []
        for m, (depth, width) in enumerate(ref["members"]):
            specs += wide_resnet_layer_specs(depth, width, member=m)
        partners = {(a, b): (c, d) for a, b, c, d in ref["partners_f2"]}
        groups = ref["layer2group"]
        policy = SharingPolicy.from_partners(specs, groups, partners)
        levels = layer_levels(specs, groups)
        slots = [
            (m, lid, w) for (m, lid), n in levels.items() for w in range(n)
        ]
        assert len(slots) == ref["coefficient_slots"] == 164
        # Gradients that never agree (cosine 0 with everything).
        grads = {s: np.zeros(4) for s in slots}
        result = refine_partition(policy, grads, threshold=0.9, levels=levels)
        assert result.vectors_before == ref["coefficient_vectors_f2"] == 71
        assert result.vectors_after == 164
        assert len(result.copies) == 164 - 71
        assert result.policy.coefficient_owners == {}
        # Every copy reads from the old owner of the new owner's slot.
        for new, old in result.copies.items():
            assert (*policy.owner(new), new[2]) == old
        # Agreeing gradients: nothing changes.
        same = {s: np.ones(4) for s in slots}
        kept = refine_partition(policy, same, threshold=0.9, levels=levels)
        assert kept.policy == policy and kept.copies == {}
