"""Tests for `keras_swn.bank.plan` (swn-algorithm.md §1.4-§1.7, App. B)."""

import functools
import json
import pathlib
import random

import numpy as np
import pytest

from keras_swn.bank.assembly import assemble
from keras_swn.bank.plan import BankPlan
from keras_swn.bank.plan import OverBudgetWarning
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.chains import need_proxy
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.chains import stacking_chains
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

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


np_assemble = functools.partial(
    assemble, concatenate=np.concatenate, reshape=np.reshape
)


def random_vectors(levels, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(level.seg) for level in levels]


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
# Sliding windows (the allocator itself: test_allocation.py)


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

    @pytest.mark.parametrize(
        "owners,match",
        [
            (  # bin 1 of member 0: the stem uses 1 level, layer 2 uses 5
                {(0, 2, 2): (0, 0)},
                r"Slot \(member=0, layer_id=2, width=2\) reads the "
                r"coefficients of layer \(member=0, layer_id=0\) at width 2",
            ),
            (
                {(0, 0, 3): (0, 2)},
                r"slot \(member=0, layer_id=0, width=3\) does not exist",
            ),
        ],
    )
    def test_owner_slots_need_their_width_level(self, owners, match):
        policy = SharingPolicy(
            groups=self.policy.groups, coefficient_owners=owners
        )
        with pytest.raises(ValueError, match=match):
            BankPlan.create(self.specs, policy, BUDGET)

    def test_layer_lookup(self):
        plan = BankPlan.create(self.specs, self.policy, BUDGET)
        with pytest.raises(KeyError, match=r"member=4"):
            plan.levels_of(4, 0)


# ----------------------------------------------------------------------
# The chain order of the policy and of the plan


class TestChainSort:
    def setup_method(self):
        self.specs = member_specs([(16, 4), (16, 2)])

    def test_plan_takes_the_policy_chain_sort(self):
        policy = SharingPolicy.from_bins(self.specs, 4, chain_sort="reference")
        plan = BankPlan.create(self.specs, policy, BUDGET)
        assert plan.chain_sort == "reference"
        same = BankPlan.create(
            self.specs, policy, BUDGET, chain_sort="reference"
        )
        assert same.chains == plan.chains and same.layers == plan.layers

    def test_other_chain_sort_refused_for_named_slots(self):
        policy = SharingPolicy.from_bins(self.specs, 4)
        assert policy.coefficient_owners
        with pytest.raises(
            ValueError,
            match=r"`chain_sort`.*defined for chain_sort='stable'.*"
            r"Received: chain_sort='reference'",
        ):
            BankPlan.create(self.specs, policy, BUDGET, chain_sort="reference")

    def test_policy_without_owners_fits_either_order(self):
        policy = SharingPolicy.from_bins(
            self.specs, 4, coefficients="per_layer"
        )
        assert policy.chain_sort == "stable"
        plan = BankPlan.create(
            self.specs, policy, BUDGET, chain_sort="reference"
        )
        assert plan.chain_sort == "reference"
