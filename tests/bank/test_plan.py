"""Tests for `keras_swn.bank.plan` (swn-algorithm.md §1.4-§1.7, App. B)."""

import json
import pathlib
import random

import numpy as np
import pytest

from keras_swn.bank.plan import BankPlan
from keras_swn.bank.plan import Level
from keras_swn.bank.plan import OverBudgetWarning
from keras_swn.bank.plan import allocate
from keras_swn.bank.plan import assemble
from keras_swn.bank.plan import layer_levels
from keras_swn.bank.plan import need_proxy
from keras_swn.bank.plan import one_template_total
from keras_swn.bank.plan import stacking_chains
from keras_swn.bank.plan import window_offsets
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.policy.wide_resnet_shapes import wide_resnet_layer_specs

DATA = pathlib.Path(__file__).parents[1] / "data"
README_MEMBERS = [(28, 7), (28, 4), (16, 7), (16, 4)]
MULTI_WIDTH_MEMBERS = [(28, 7), (28, 4), (28, 3)]
BUDGET = 18_000_000


def reference_values():
    with open(DATA / "reference_values_readme.json", encoding="utf-8") as f:
        return json.load(f)


def member_specs(members):
    return [
        s
        for m, (d, w) in enumerate(members)
        for s in wide_resnet_layer_specs(d, w, member=m)
    ]


def np_assemble(levels, vectors, shape=None):
    return assemble(
        levels,
        vectors,
        concatenate=np.concatenate,
        reshape=np.reshape,
        shape=shape,
    )


def random_vectors(levels, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(level.seg) for level in levels]


def conv1x1(member, layer_id, out, inp):
    return LayerSpec(member, layer_id, "conv2d", (out, inp, 1, 1))


def check_against_reference(plan, ref):
    assert [str(g) for g in plan.chains] == list(ref["chains"])
    for g, chain in plan.chains.items():
        expected = ref["chains"][str(g)]
        assert [list(s) for s in chain.shapes] == expected["shapes"]
        assert list(chain.segs) == expected["seg"]
        assert [
            [list(p) for p in level.pieces] for level in chain.levels
        ] == expected["pieces"]
    assert [f"{g},{w}" for g, w in plan.banks] == list(ref["K"])
    for (g, w), bank in plan.banks.items():
        key = f"{g},{w}"
        assert bank.templates == ref["K"][key], key
        assert bank.size == ref["P"][key], key
        assert bank.unit == bank.seg == ref["unit"][key], key
        assert bank.users == ref["users"][key], key
    for m, row in ref["levels_per_layer"].items():
        got = [plan.layers[(int(m), lid)].num_levels for lid in range(len(row))]
        assert got == row
    assert len(plan.banks) == ref["n_banks"]
    assert plan.max_width == ref["max_width"]
    assert plan.bank_total == ref["bank_total"]
    assert plan.coefficient_scalars == ref["coefficient_scalars"]
    assert plan.coefficient_vectors == ref["coefficient_vectors"]
    assert plan.over_budget == 0


# ----------------------------------------------------------------------
# README configuration, search phase


class TestReadmeSearchPhase:
    def setup_method(self):
        self.specs = member_specs(README_MEMBERS)
        self.policy = SharingPolicy.from_bins(self.specs, 4)
        self.plan = BankPlan.create(self.specs, self.policy, BUDGET)
        self.ref = reference_values()["search_phase"]

    def test_matches_reference(self):
        check_against_reference(self.plan, self.ref)
        assert self.plan.bank_total == 17_997_568
        assert self.plan.coefficient_scalars == 143

    def test_layer_levels_function(self):
        levels = layer_levels(self.specs, self.policy.groups)
        for m, row in self.ref["levels_per_layer"].items():
            assert [levels[(int(m), lid)] for lid in range(len(row))] == row

    def test_one_vector_per_bank(self):
        assert len(self.plan.owner_slots) == len(self.plan.banks) == 25
        assert self.plan.num_slots == sum(
            sum(r) for r in self.ref["levels_per_layer"].values()
        )
        # Every owner is the first user of its bank.
        for m, lid, w in self.plan.owner_slots:
            g = self.policy.groups[m][lid]
            first = min(
                k
                for k, r in self.plan.layers.items()
                if r.group == g and r.num_levels > w
            )
            assert (m, lid) == first

    def test_windows_never_slide_with_bank_size_8(self):
        for key in self.plan.layers:
            for bank, offset, k, seg in self.plan.windows(*key):
                assert offset == 0
                assert k == self.plan.banks[bank].templates
                assert k * seg <= self.plan.banks[bank].size

    def test_reference_chain_sort_is_identical(self):
        # No distinct shapes with equal parameter counts in this config.
        policy = SharingPolicy.from_bins(self.specs, 4, chain_sort="reference")
        plan = BankPlan.create(
            self.specs, policy, BUDGET, chain_sort="reference"
        )
        assert plan.chains == self.plan.chains
        assert plan.banks == self.plan.banks
        assert plan.layers == self.plan.layers

    def test_every_kernel_assembles_to_its_shape(self):
        for spec in self.specs:
            levels = self.plan.levels_of(*spec.key)
            vectors = random_vectors(levels, seed=spec.layer_id)
            w = np_assemble(levels, vectors, shape=spec.shape)
            assert w.shape == spec.shape
            # Level 0 (the group's smallest shape) sits in the top-left
            # corner of every kernel that keeps those rows and columns.
            o = min(levels[0].out, spec.shape[0])
            i = min(levels[0].in_, spec.shape[1])
            base = vectors[0].reshape(levels[0].pieces[0])
            np.testing.assert_array_equal(w[:o, :i], base[:o, :i])

    def test_proxies(self):
        groups = self.policy.groups
        assert one_template_total(self.specs, groups) == sum(
            b.unit for b in self.plan.banks.values()
        )
        assert one_template_total(self.specs, groups) == 4_422_656
        # need ignores the stacking waste, so it is never larger.
        assert need_proxy(self.specs, groups) == 4_277_504
        assert need_proxy(self.specs, groups) <= one_template_total(
            self.specs, groups
        )

    def test_independent_of_spec_order(self):
        shuffled = list(self.specs)
        random.Random(1).shuffle(shuffled)
        policy = SharingPolicy.from_bins(shuffled, 4)
        assert policy == self.policy
        plan = BankPlan.create(shuffled, policy, BUDGET)
        assert plan.specs == self.plan.specs
        assert plan.chains == self.plan.chains
        assert plan.banks == self.plan.banks
        assert plan.layers == self.plan.layers
        assert plan.owner_slots == self.plan.owner_slots
        assert stacking_chains(shuffled, policy.groups) == self.plan.chains


# ----------------------------------------------------------------------
# Appendix B: a learned grouping and its final banks


def appendix_b_partners(ref, groups, *, mirror_fix=False):
    """Partner layer ids from the reference's coefficient-share map.

    The reference map stores `(partner member, index in the partner's group
    list)`. Banks index that list in ascending layer id, so the ascending
    reading is the partner the reference actually used (its F2 bug: for the
    cross-depth member 2 the index was computed in descending order). With
    `mirror_fix=True`, member 2's index is read in descending order, which
    recovers the member-0 layer it was matched to.
    """
    partners = {}
    for m, entries in ref["coeff_share_map"].items():
        m = int(m)
        for lid, entry in entries.items():
            lid = int(lid)
            pm, g = entry["net"], groups[m][lid]
            candidates = [x for x, gg in enumerate(groups[pm]) if gg == g]
            if mirror_fix and m == 2:
                candidates = candidates[::-1]
            partners[(m, lid)] = (pm, candidates[entry["layer"]])
    return partners


class TestAppendixB:
    def setup_method(self):
        self.specs = member_specs(README_MEMBERS)
        self.ref = reference_values()["appendix_b_final_phase"]
        self.groups = self.ref["layer2group"]

    def test_partners_of_same_depth_members_are_the_same_layer(self):
        partners = appendix_b_partners(self.ref, self.groups)
        assert all(partners[(1, lid)] == (0, lid) for lid in range(28))
        assert all(partners[(3, lid)] == (2, lid) for lid in range(16))
        assert sorted({pm for pm, _ in partners.values()}) == [0, 2]

    def test_need(self):
        assert need_proxy(self.specs, self.groups) == self.ref["need"]

    def test_matches_reference(self):
        partners = appendix_b_partners(self.ref, self.groups)
        policy = SharingPolicy.from_partners(self.specs, self.groups, partners)
        plan = BankPlan.create(self.specs, policy, BUDGET)
        assert policy.num_groups == self.ref["num_groups"] == 15
        check_against_reference(plan, self.ref)
        assert plan.bank_total == 17_999_792
        assert plan.coefficient_scalars == 169
        assert plan.coefficient_vectors == 75
        assert plan.num_slots == 164
        assert (
            plan.num_slots == self.ref["coefficient_slots_member_layer_width"]
        )

    def test_correct_partners_change_only_the_coefficients(self):
        # F2: sharing with the matched layer instead of its mirror changes
        # which slots own a vector, not the banks.
        partners = appendix_b_partners(self.ref, self.groups, mirror_fix=True)
        policy = SharingPolicy.from_partners(self.specs, self.groups, partners)
        plan = BankPlan.create(self.specs, policy, BUDGET)
        assert plan.bank_total == 17_999_792
        assert plan.num_slots == 164
        assert (plan.coefficient_vectors, plan.coefficient_scalars) == (70, 155)

    def test_every_owner_slot_is_reachable(self):
        partners = appendix_b_partners(self.ref, self.groups)
        policy = SharingPolicy.from_partners(self.specs, self.groups, partners)
        plan = BankPlan.create(self.specs, policy, BUDGET)
        for (m, lid), recipe in plan.layers.items():
            for w in range(recipe.num_levels):
                assert (*policy.owner((m, lid, w)), w) in plan.owner_slots


# ----------------------------------------------------------------------
# Multi-width configuration


class TestMultiWidth:
    def test_sanity(self):
        specs = member_specs(MULTI_WIDTH_MEMBERS)
        policy = SharingPolicy.from_bins(specs, 4)
        plan = BankPlan.create(specs, policy, BUDGET)
        # Same depth everywhere: identical bins for every member.
        assert policy.groups[0] == policy.groups[1] == policy.groups[2]
        assert one_template_total(specs, policy.groups) <= plan.bank_total
        assert plan.bank_total <= BUDGET
        assert plan.coefficient_vectors == len(plan.banks)
        for (g, w), bank in plan.banks.items():
            users = [
                r
                for r in plan.layers.values()
                if r.group == g and r.num_levels > w
            ]
            assert bank.users == len(users) > 0
            assert bank.size % bank.unit == 0
            assert 1 <= bank.size // bank.unit <= 8
            assert bank.templates == min(bank.size // bank.seg, 8)
        for spec in specs:
            levels = plan.levels_of(*spec.key)
            w = np_assemble(levels, random_vectors(levels), shape=spec.shape)
            assert w.shape == spec.shape
        # The three widths of one position stack in one chain: the widest
        # member uses the most levels.
        for lid in range(28):
            n = [plan.layers[(m, lid)].num_levels for m in range(3)]
            assert n[0] >= n[1] >= n[2] >= 1


# ----------------------------------------------------------------------
# Small hand-checked chains


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

    def test_assemble_3x3_negative_d_out(self):
        # Bin 1 of the README chain: (16,3) -> (64,16) -> (112,16) ->
        # (64,64) -> (112,112); the step to (64,64) drops 48 rows.
        levels = [
            Level(16, 3, ((16, 3, 3, 3),), 432),
            Level(64, 16, ((48, 16, 3, 3), (16, 13, 3, 3)), 8784),
            Level(112, 16, ((48, 16, 3, 3),), 6912),
            Level(64, 64, ((-48, 64, 3, 3), (64, 48, 3, 3)), 27648),
        ]
        v = random_vectors(levels, seed=3)
        w = np_assemble(levels, v, shape=(64, 64, 3, 3))
        e = np.zeros((64, 64, 3, 3))
        e[:16, :3] = v[0].reshape(16, 3, 3, 3)
        e[:16, 3:16] = v[1][: 16 * 13 * 9].reshape(16, 13, 3, 3)
        e[16:64, :16] = v[1][16 * 13 * 9 :].reshape(48, 16, 3, 3)
        # level 2 rows (64:112) are dropped again by level 3
        e[:, 16:64] = v[3].reshape(64, 48, 3, 3)
        np.testing.assert_array_equal(w, e)

    def test_assemble_shape_mismatch(self):
        levels = [Level(2, 2, ((2, 2, 1, 1),), 4)]
        with pytest.raises(ValueError, match=r"assembled kernel has shape"):
            np_assemble(levels, [np.zeros(4)], shape=(3, 2, 1, 1))
        with pytest.raises(ValueError, match=r"one vector per level"):
            np_assemble(levels, [])
        with pytest.raises(ValueError, match=r"`levels`"):
            np_assemble([], [])

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
            policy = SharingPolicy(groups=groups)
            plan = BankPlan.create(specs, policy, 1000, chain_sort=sort)
            for spec in specs:
                levels = plan.levels_of(*spec.key)
                assert (
                    np_assemble(levels, random_vectors(levels)).shape
                    == spec.shape
                )

    def test_group_mixing_kernel_sizes(self):
        specs = member_specs([(16, 4)])
        with pytest.raises(ValueError, match=r"Group 0 mixes kernel"):
            stacking_chains(specs, [[0] * 16])

    def test_groups_must_match_specs(self):
        specs = member_specs([(16, 4)])
        with pytest.raises(ValueError, match=r"`groups`"):
            stacking_chains(specs, [[0] * 15])

    def test_unknown_chain_sort(self):
        specs = member_specs([(16, 4)])
        groups = SharingPolicy.from_bins(specs, 4).groups
        with pytest.raises(ValueError, match=r"chain_sort='numpy'"):
            stacking_chains(specs, groups, chain_sort="numpy")


# ----------------------------------------------------------------------
# Allocation and sliding windows


class TestAllocate:
    def test_hand_example(self):
        units = {(0, 0): 10, (0, 1): 5, (1, 0): 20}
        users = {(0, 0): 3, (0, 1): 1, (1, 0): 2}
        alloc = allocate(units, users, 100)
        assert alloc.sizes == {(0, 0): 40, (0, 1): 15, (1, 0): 40}
        assert alloc.templates == {(0, 0): 4, (0, 1): 3, (1, 0): 2}
        assert alloc.excess == 5
        alloc = allocate(units, users, 100, bank_size=2)
        assert alloc.templates == {(0, 0): 2, (0, 1): 2, (1, 0): 2}

    def test_strict_test(self):
        # excess - unit == 0 does not buy a template.
        alloc = allocate({(0, 0): 10}, {(0, 0): 2}, 20)
        assert alloc.sizes == {(0, 0): 10} and alloc.excess == 10
        alloc = allocate({(0, 0): 10}, {(0, 0): 2}, 21)
        assert alloc.sizes == {(0, 0): 20} and alloc.excess == 1

    def test_cap_is_8_not_bank_size(self):
        alloc = allocate({(0, 0): 1}, {(0, 0): 20}, 1000, bank_size=4)
        assert alloc.sizes == {(0, 0): 8}
        assert alloc.templates == {(0, 0): 4}

    def test_one_template_does_not_fit(self):
        alloc = allocate({(0, 0): 10, (0, 1): 10}, {(0, 0): 5, (0, 1): 5}, 15)
        assert alloc.sizes == {(0, 0): 10, (0, 1): 10}
        assert alloc.excess == -5


def same_shape_specs(n_members, n_layers):
    return [
        LayerSpec(m, lid, "conv2d", (4, 4, 3, 3))
        for m in range(n_members)
        for lid in range(n_layers)
    ]


class TestSlidingWindows:
    SEG = 4 * 4 * 9

    def test_eight_templates_k4_alternate(self):
        specs = same_shape_specs(2, 4)  # 8 users, one level
        policy = SharingPolicy(groups=[[0] * 4] * 2)
        plan = BankPlan.create(specs, policy, 1_000_000, bank_size=4)
        bank = plan.banks[(0, 0)]
        assert (bank.size, bank.templates) == (8 * self.SEG, 4)
        offsets = [plan.layers[k].offsets[0] for k in sorted(plan.layers)]
        half = 4 * self.SEG
        assert offsets == [0, half, 0, half, 0, half, 0, half]
        assert plan.windows(0, 1) == (((0, 0), half, 4, self.SEG),)
        # The default bank size never slides.
        plan8 = BankPlan.create(specs, policy, 1_000_000)
        assert plan8.banks[(0, 0)].templates == 8
        assert all(r.offsets == (0,) for r in plan8.layers.values())

    def test_six_templates_k4_all_read_the_first_four(self):
        specs = same_shape_specs(1, 6)  # 6 users -> 6 templates in pass 1
        policy = SharingPolicy(groups=[[0] * 6])
        plan = BankPlan.create(specs, policy, 6 * self.SEG + 1, bank_size=4)
        bank = plan.banks[(0, 0)]
        assert (bank.size, bank.templates) == (6 * self.SEG, 4)
        assert all(r.offsets == (0,) for r in plan.layers.values())

    def test_window_offsets(self):
        assert window_offsets(8, 1, 4, 5) == [0, 4, 0, 4, 0]
        assert window_offsets(6, 1, 4, 3) == [0, 0, 0]
        assert window_offsets(8, 1, 8, 3) == [0, 0, 0]
        # The counter also wraps after K layers.
        assert window_offsets(8, 1, 2, 5) == [0, 2, 0, 2, 0]
        assert window_offsets(9, 1, 3, 4) == [0, 3, 6, 0]
        assert window_offsets(8, 1, 3, 4) == [0, 3, 0, 3]


# ----------------------------------------------------------------------
# F6 and argument errors


class TestBudgetChecks:
    def setup_method(self):
        self.specs = member_specs(README_MEMBERS)
        self.policy = SharingPolicy.from_bins(self.specs, 4)

    def test_over_budget_raises(self):
        with pytest.raises(
            ValueError,
            match=r"need 4,422,656 parameters, 422,656 more than the budget "
            r"of 4,000,000.*budget=4000000",
        ):
            BankPlan.create(self.specs, self.policy, 4_000_000)

    def test_over_budget_report(self):
        with pytest.warns(OverBudgetWarning, match=r"4,422,656"):
            plan = BankPlan.create(
                self.specs, self.policy, 4_000_000, on_over_budget="report"
            )
        assert plan.bank_total == 4_422_656
        assert plan.over_budget == 422_656
        assert all(b.size == b.unit for b in plan.banks.values())
        assert all(b.templates == 1 for b in plan.banks.values())
        assert plan.coefficient_scalars == 25

    def test_exact_fit(self):
        plan = BankPlan.create(self.specs, self.policy, 4_422_656)
        assert plan.bank_total == 4_422_656 and plan.over_budget == 0

    @pytest.mark.parametrize("budget", [0, -5, 1.5e7, True, "18000000"])
    def test_bad_budget(self, budget):
        with pytest.raises(ValueError, match=r"`budget`.*Received: budget="):
            BankPlan.create(self.specs, self.policy, budget)

    @pytest.mark.parametrize("bank_size", [0, 9, 4.0])
    def test_bad_bank_size(self, bank_size):
        with pytest.raises(ValueError, match=r"`bank_size`.*bank_size="):
            BankPlan.create(
                self.specs, self.policy, BUDGET, bank_size=bank_size
            )

    def test_bad_options(self):
        with pytest.raises(ValueError, match=r"on_over_budget='ignore'"):
            BankPlan.create(
                self.specs, self.policy, BUDGET, on_over_budget="ignore"
            )
        with pytest.raises(ValueError, match=r"chain_sort='x'"):
            BankPlan.create(self.specs, self.policy, BUDGET, chain_sort="x")

    def test_policy_must_cover_specs(self):
        policy = SharingPolicy.from_bins(member_specs([(16, 4)]), 4)
        with pytest.raises(ValueError, match=r"`policy`.*do not cover"):
            BankPlan.create(self.specs, policy, BUDGET)
        with pytest.raises(ValueError, match=r"Expected a SharingPolicy"):
            BankPlan.create(self.specs, self.policy.groups, BUDGET)

    def test_owner_lacks_width_level(self):
        # Bin 1 of member 0: layer 0 (the stem) uses 1 level, layer 2 uses 5.
        policy = SharingPolicy(
            groups=self.policy.groups,
            coefficient_owners={(0, 2, 2): (0, 0)},
        )
        with pytest.raises(
            ValueError,
            match=r"slot \(member=0, layer_id=2, width=2\) reads the "
            r"coefficients of layer \(member=0, layer_id=0\) at width 2",
        ):
            BankPlan.create(self.specs, policy, BUDGET)

    def test_slot_does_not_exist(self):
        policy = SharingPolicy(
            groups=self.policy.groups,
            coefficient_owners={(0, 0, 3): (0, 2)},
        )
        with pytest.raises(
            ValueError,
            match=r"slot \(member=0, layer_id=0, width=3\) does not exist",
        ):
            BankPlan.create(self.specs, policy, BUDGET)

    def test_layer_lookup(self):
        plan = BankPlan.create(self.specs, self.policy, BUDGET)
        with pytest.raises(KeyError, match=r"member=4"):
            plan.levels_of(4, 0)
