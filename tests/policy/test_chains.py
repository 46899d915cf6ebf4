"""Tests for `keras_swn.policy.chains`: the stacking chains."""

import functools

import numpy as np
import pytest

from keras_swn.bank.assembly import assemble
from keras_swn.bank.plan import BankPlan
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.policy.chains import Level
from keras_swn.policy.chains import chains_and_levels
from keras_swn.policy.chains import group_members
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.chains import need_proxy
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.chains import stacking_chains
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

np_assemble = functools.partial(
    assemble, concatenate=np.concatenate, reshape=np.reshape
)


def random_vectors(levels, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(level.seg) for level in levels]


def conv1x1(member, layer_id, out, inp):
    return LayerSpec(member, layer_id, "conv2d", (out, inp, 1, 1))


def wrn_16_4_specs():
    return wide_resnet_layer_specs(16, 4)


def small_chain_specs():
    shapes = [(2, 2), (4, 2), (3, 4), (5, 3), (5, 5), (7, 6)]
    specs = [conv1x1(0, lid, o, i) for lid, (o, i) in enumerate(shapes)]
    # Member 1 repeats (4, 2): a duplicate adds no level.
    specs.append(conv1x1(1, 0, 4, 2))
    return specs


class TestHandCheckedChain:
    def test_chain(self):
        specs = small_chain_specs()
        chains = stacking_chains(specs, [[0] * 6, [0]])
        assert list(chains) == [0]
        chain = chains[0]
        assert chain.kernel == (1, 1)
        assert chain.levels == (
            Level(2, 2, ((2, 2, 1, 1),), 4),
            Level(4, 2, ((2, 2, 1, 1),), 4),  # rows only
            # negative d_out: drop one row, add two columns for 3 rows
            Level(3, 4, ((-1, 4, 1, 1), (3, 2, 1, 1)), 6),
            # column cropping: keep 3 of 4 columns, add two rows
            Level(5, 3, ((2, 3, 1, 1),), 6),
            # columns only (d_out = 0)
            Level(5, 5, ((0, 5, 1, 1), (5, 2, 1, 1)), 10),
            # rows and columns
            Level(7, 6, ((2, 6, 1, 1), (5, 1, 1, 1)), 12 + 5),
        )
        levels = layer_levels(specs, [[0] * 6, [0]])
        assert levels == {
            (0, 0): 1,
            (0, 1): 2,
            (0, 2): 3,
            (0, 3): 4,
            (0, 4): 5,
            (0, 5): 6,
            (1, 0): 2,
        }

    def test_assemble_matches_hand_built_blocks(self):
        specs = small_chain_specs()
        chain = stacking_chains(specs, [[0] * 6, [0]])[0]
        v = [
            np.arange(level.seg, dtype=np.float64) + 100 * (w + 1)
            for w, level in enumerate(chain.levels)
        ]
        # Hand-built 2-D blocks (kernel 1x1), level by level.
        b0 = v[0].reshape(2, 2)
        b1 = np.vstack([b0, v[1].reshape(2, 2)])
        b2 = np.hstack([b1[:3], v[2].reshape(3, 2)])  # crop a row, add cols
        b3 = np.vstack([b2[:, :3], v[3].reshape(2, 3)])  # crop a col, add rows
        b4 = np.hstack([b3, v[4].reshape(5, 2)])  # columns only
        b5 = np.vstack(
            [
                np.hstack([b4, v[5][:5].reshape(5, 1)]),  # columns come first
                v[5][5:].reshape(2, 6),  # then the new rows
            ]
        )
        expected = [b0, b1, b2, b3, b4, b5]
        for n in range(1, 7):
            w = np_assemble(chain.levels[:n], v[:n])
            assert w.shape == expected[n - 1].shape + (1, 1)
            np.testing.assert_array_equal(w[:, :, 0, 0], expected[n - 1])
        # A few entries by hand.
        assert b5[0, 0] == 100 and b5[1, 1] == 103  # level 0
        assert b5[2, 0] == 200  # level 1 rows (row 3 dropped by level 2)
        assert b5[0, 2] == 300 and b5[2, 2] == 304  # level 2 column 2 kept
        assert b5[3, 0] == 400 and b5[4, 2] == 405  # level 3 rows
        assert b5[0, 3] == 500 and b5[4, 4] == 509  # level 4 columns
        assert b5[0, 5] == 600 and b5[4, 5] == 604  # level 5 columns
        assert b5[5, 0] == 605 and b5[6, 5] == 616  # level 5 rows

    def test_equal_numel_tie(self):
        specs = [conv1x1(0, 0, 8, 2), conv1x1(0, 1, 2, 8), conv1x1(0, 2, 4, 4)]
        groups = [[0, 0, 0]]
        chain = stacking_chains(specs, groups)[0]
        # stable key (numel, out, in)
        assert chain.shapes == ((2, 8), (4, 4), (8, 2))
        assert chain.levels[1].pieces == ((2, 4, 1, 1),)
        assert chain.levels[2].pieces == ((4, 2, 1, 1),)
        assert layer_levels(specs, groups) == {(0, 0): 3, (0, 1): 1, (0, 2): 2}
        # reference: numpy's default argsort over the input order
        order = np.argsort(np.array([16, 16, 16]))
        ref_chain = stacking_chains(specs, groups, chain_sort="reference")[0]
        assert ref_chain.shapes[0] == specs[order[0]].shape[:2]
        for sort in ("stable", "reference"):
            policy = SharingPolicy(groups=groups, chain_sort=sort)
            plan = BankPlan.create(specs, policy, 1000, chain_sort=sort)
            for spec in specs:
                levels = plan.levels_of(*spec.key)
                assert (
                    np_assemble(levels, random_vectors(levels)).shape
                    == spec.shape
                )

    def test_group_mixing_kernel_sizes(self):
        specs = wrn_16_4_specs()
        with pytest.raises(ValueError, match=r"Group 0 mixes kernel"):
            stacking_chains(specs, [[0] * 16])

    def test_groups_must_match_specs(self):
        specs = wrn_16_4_specs()
        with pytest.raises(ValueError, match=r"`groups`"):
            stacking_chains(specs, [[0] * 15])

    def test_unknown_chain_sort(self):
        specs = wrn_16_4_specs()
        groups = SharingPolicy.from_bins(specs, 4).groups
        with pytest.raises(ValueError, match=r"chain_sort='numpy'"):
            stacking_chains(specs, groups, chain_sort="numpy")


class TestChainHelpers:
    def test_chains_and_levels_is_both_functions(self):
        specs = small_chain_specs()
        groups = [[0] * 6, [0]]
        for sort in CHAIN_SORTS:
            chains, levels = chains_and_levels(specs, groups, chain_sort=sort)
            assert chains == stacking_chains(specs, groups, chain_sort=sort)
            assert levels == layer_levels(specs, groups, chain_sort=sort)

    def test_group_members_in_reference_order(self):
        specs = [conv1x1(1, 0, 2, 2), conv1x1(0, 1, 4, 4), conv1x1(0, 0, 8, 8)]
        members = group_members(specs, [[1, 0], [0]])
        assert list(members) == [0, 1]
        # Ascending layer id, then ascending member.
        assert [s.key for s in members[0]] == [(1, 0), (0, 1)]
        assert [s.key for s in members[1]] == [(0, 0)]
        with pytest.raises(ValueError, match=r"non-negative.*group -1"):
            group_members(specs, [[-1, 0], [0]])

    def test_budget_measures(self):
        specs = small_chain_specs()
        groups = [[0] * 6, [0]]
        # need: the largest kernel; the exact total adds the cropping waste.
        assert need_proxy(specs, groups) == 7 * 6
        assert one_template_total(specs, groups) == 4 + 4 + 6 + 6 + 10 + 17
        assert one_template_total(specs, [[0, 1, 2, 3, 4, 5], [1]]) == sum(
            o * i for o, i in [(2, 2), (4, 2), (3, 4), (5, 3), (5, 5), (7, 6)]
        )
