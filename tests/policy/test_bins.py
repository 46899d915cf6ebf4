"""Tests for `keras_swn.policy.bins` (swn-algorithm.md §1.3)."""

import random

import pytest
from swn_fixtures import readme_specs
from swn_fixtures import reference_values

from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.bins import bins_per_kernel
from keras_swn.policy.bins import index_specs
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.layer_spec import LayerSpec


def conv(member, layer_id, out, inp, k=3):
    return LayerSpec(member, layer_id, "conv2d", (out, inp, k, k))


def members_of(groups, g):
    return {
        m: [lid for lid, x in enumerate(row) if x == g]
        for m, row in enumerate(groups)
    }


class TestInitialBins:
    def test_readme_bins_match_reference(self):
        ref = reference_values()["search_phase"]["bins"]
        groups = initial_bins(readme_specs(), 4)
        assert len({g for row in groups for g in row}) == len(ref) == 5
        for g, layers in ref.items():
            got = members_of(groups, int(g))
            assert {str(m): v for m, v in got.items()} == layers

    def test_readme_bin_kernels(self):
        specs = readme_specs()
        groups = initial_bins(specs, 4)
        for s in specs:
            g = groups[s.member][s.layer_id]
            assert (g == 0) == (s.kernel_key == "1 1")

    def test_bins_per_kernel_readme(self):
        # 1x1: max(1, round(4 * 3 / 28)) = 1; 3x3: round(4 * 25 / 28) = 4.
        assert bins_per_kernel(readme_specs(), 4) == {"1 1": 1, "3 3": 4}

    def test_round_half_to_even(self):
        # Member 0: one 1x1 and nine 3x3 layers; B = 5.
        # 1x1: max(1, round(0.5)) = 1; 3x3: round(4.5) = 4 (half to even).
        specs = [conv(0, 0, 8, 8, k=1)] + [
            conv(0, i, 8, 8) for i in range(1, 10)
        ]
        assert bins_per_kernel(specs, 5) == {"1 1": 1, "3 3": 4}
        groups = initial_bins(specs, 5)
        # 9 layers into 4 bins: the first bin takes the extra layer.
        assert groups == ((0, 1, 1, 1, 2, 2, 3, 3, 4, 4),)

    def test_first_bins_take_extra_and_trailing_bins_stay_empty(self):
        # Member 0 sets 3 bins for 7 layers (3, 2, 2); member 1 has only 2
        # layers: bins 0 and 1 get one each, bin 2 stays empty.
        specs = [conv(0, i, 8, 8) for i in range(7)]
        specs += [conv(1, i, 4, 4) for i in range(2)]
        groups = initial_bins(specs, 3)
        assert groups == ((0, 0, 0, 1, 1, 2, 2), (0, 1))

    def test_kernel_keys_sorted_as_strings_with_consecutive_ids(self):
        specs = [
            LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
            LayerSpec(0, 1, "dense", (10, 8, 1, 1)),
            LayerSpec(0, 2, "conv2d", (8, 8, 1, 1)),
            LayerSpec(0, 3, "conv2d", (8, 8, 3, 3)),
        ]
        # "1 1" -> bin 0, "3 3" -> bin 1, "dense" -> bin 2.
        assert initial_bins(specs, 2) == ((1, 2, 0, 1),)

    def test_independent_of_spec_order(self):
        specs = readme_specs()
        expected = initial_bins(specs, 4)
        shuffled = list(specs)
        random.Random(0).shuffle(shuffled)
        assert initial_bins(shuffled, 4) == expected
        assert initial_bins(tuple(reversed(specs)), 4) == expected

    def test_single_member(self):
        # Alone, WRN-16 sets the bin counts: 3x3 gets round(4 * 13 / 16) = 3
        # bins of 5, 4, 4 layers.
        specs = wide_resnet_layer_specs(16, 4)
        assert bins_per_kernel(specs, 4) == {"1 1": 1, "3 3": 3}
        groups = initial_bins(specs, 4)
        assert members_of(groups, 0) == {0: [3, 8, 13]}
        assert members_of(groups, 1) == {0: [0, 1, 2, 4, 5]}
        assert members_of(groups, 2) == {0: [6, 7, 9, 10]}
        assert members_of(groups, 3) == {0: [11, 12, 14, 15]}


class TestInitialBinsErrors:
    @pytest.mark.parametrize("num_bins", [0, -3])
    def test_num_bins_below_one(self, num_bins):
        with pytest.raises(
            ValueError, match=rf"`num_bins`.*Received: num_bins={num_bins}"
        ):
            initial_bins(readme_specs(), num_bins)

    @pytest.mark.parametrize("num_bins", [2.0, "4", True, None])
    def test_num_bins_not_int(self, num_bins):
        with pytest.raises(
            ValueError, match=r"`num_bins`.*Received: num_bins="
        ):
            initial_bins(readme_specs(), num_bins)

    def test_too_many_bins(self):
        specs = [
            conv(0, 0, 8, 8, k=1),
            conv(0, 1, 8, 8, k=3),
            conv(0, 2, 8, 8, k=5),
            conv(0, 3, 8, 8, k=7),
        ]
        with pytest.raises(ValueError, match=r"need 4 bins.*num_bins=2"):
            initial_bins(specs, 2)
        assert initial_bins(specs, 3) == ((0, 1, 2, 3),)

    @pytest.mark.parametrize(
        "specs,match",
        [
            (  # a student kernel type unknown to member 0
                [conv(0, 0, 8, 8), conv(1, 0, 8, 8, k=5)],
                r"Member 1 has kernel types",
            ),
            (  # a gap in the layer ids
                [conv(0, 0, 8, 8), conv(0, 2, 8, 8)],
                r"member 0 lacks layer ids \[1\]",
            ),
            (  # a gap in the members
                [conv(0, 0, 8, 8), conv(2, 0, 8, 8)],
                r"members numbered 0 \.\. M-1",
            ),
            (  # a duplicate layer
                [conv(0, 0, 8, 8), conv(0, 0, 4, 4)],
                r"listed twice",
            ),
        ],
    )
    def test_bad_specs(self, specs, match):
        with pytest.raises(ValueError, match=match):
            initial_bins(specs, 2)

    def test_empty_specs(self):
        with pytest.raises(ValueError, match=r"`specs`"):
            initial_bins([], 2)

    def test_index_specs(self):
        by_member = index_specs(list(reversed(readme_specs())))
        assert [len(r) for r in by_member] == [28, 28, 16, 16]
        assert all(
            s.key == (m, lid)
            for m, row in enumerate(by_member)
            for lid, s in enumerate(row)
        )
