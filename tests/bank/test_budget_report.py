"""Tests for `keras_swn.bank.budget_report` (swn-algorithm.md §1.7)."""

import json

import pytest
from swn_fixtures import README_MEMBERS
from swn_fixtures import readme_specs
from swn_fixtures import reference_values

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.budget_report import MemberBudget
from keras_swn.bank.plan import BankPlan
from keras_swn.models.wide_resnet_shapes import wide_resnet_param_counts
from keras_swn.policy.sharing_policy import SharingPolicy

BUDGET = 18_000_000


def readme_members():
    return [
        MemberBudget.from_counts(
            f"WRN-{d}-{w}", wide_resnet_param_counts(d, w, num_classes=100)
        )
        for d, w in README_MEMBERS
    ]


class TestBudgetReport:
    def setup_method(self):
        specs = readme_specs()
        policy = SharingPolicy.from_bins(specs, 4)
        self.plan = BankPlan.create(specs, policy, BUDGET)
        self.report = BudgetReport.create(self.plan, readme_members())
        self.ref = reference_values()

    def test_readme_totals(self):
        r, ref = self.report, self.ref["search_phase"]
        assert r.budget == BUDGET
        assert r.bank_total == ref["bank_total"] == 17_997_568
        assert r.coefficient_scalars == 143
        assert r.coefficient_vectors == 25
        assert r.unshared_trainable == (
            ref["trainable_breakdown"]["bn"]
            + ref["trainable_breakdown"]["classifier"]
        )
        assert r.trainable_total == ref["trainable_total"] == 18_168_607
        assert r.over_budget == 0
        assert r.conv_params_unshared == 34_835_648
        assert r.params_unshared == 35_006_544

    def test_banks_and_groups(self):
        r = self.report
        assert [b.key for b in r.banks] == list(self.plan.banks)
        assert [g.group for g in r.groups] == [0, 1, 2, 3, 4]
        assert sum(g.params for g in r.groups) == r.bank_total
        assert [g.levels for g in r.groups] == [6, 5, 6, 6, 2]
        assert [g.kernel for g in r.groups] == [(1, 1)] + [(3, 3)] * 4
        assert sum(g.layers for g in r.groups) == 88

    def test_to_dict(self):
        d = self.report.to_dict()
        json.dumps(d)  # plain data
        for key in (
            "budget",
            "bank_total",
            "coefficient_scalars",
            "coefficient_vectors",
            "trainable_total",
            "over_budget",
            "banks",
            "members",
        ):
            assert key in d
        assert d["trainable_total"] == 18_168_607
        assert len(d["banks"]) == 25
        assert d["banks"][0] == {
            "group": 0,
            "width": 0,
            "seg": 1024,
            "templates": 8,
            "params": 8192,
            "users": 12,
        }
        assert d["banks"][-1] == {
            "group": 4,
            "width": 1,
            "seg": 1_216_512,
            "templates": 5,
            "params": 6_082_560,
            "users": 9,
        }
        for m, (name, expected) in zip(
            d["members"], self.ref["unshared"].items()
        ):
            assert m["name"] == name
            assert m["conv_params_unshared"] == expected["conv"]
            assert m["params_unshared"] == expected["total"]

    def test_str(self):
        text = str(self.report)
        for needle in (
            "17,997,568",
            "18,168,607",
            "18,000,000",
            "WRN-28-7",
            "17,868,464",
            "6,082,560",
            "coefficients (25 vectors)",
        ):
            assert needle in text
        # One row per bank and per member.
        assert (
            len(
                [
                    ln
                    for ln in text.splitlines()
                    if ln.strip().startswith("4     1")
                ]
            )
            == 1
        )

    def test_members_must_match_plan(self):
        with pytest.raises(ValueError, match=r"`members`.*Received: 2"):
            BudgetReport.create(self.plan, readme_members()[:2])


def test_appendix_b_trainable_total():
    ref = reference_values()["appendix_b_final_phase"]
    specs = readme_specs()
    groups = ref["layer2group"]
    partners = {}
    for m, entries in ref["coeff_share_map"].items():
        for lid, e in entries.items():
            g = groups[int(m)][int(lid)]
            lst = [x for x, gg in enumerate(groups[e["net"]]) if gg == g]
            partners[(int(m), int(lid))] = (e["net"], lst[e["layer"]])
    policy = SharingPolicy.from_partners(specs, groups, partners)
    plan = BankPlan.create(specs, policy, BUDGET)
    report = BudgetReport.create(plan, readme_members())
    assert report.bank_total == 17_999_792
    assert report.coefficient_scalars == 169
    assert report.coefficient_vectors == 75
    assert report.trainable_total == ref["trainable_total"] == 18_170_857


def test_over_budget_report():
    specs = readme_specs()
    policy = SharingPolicy.from_bins(specs, 4)
    with pytest.warns(UserWarning):
        plan = BankPlan.create(
            specs, policy, 4_000_000, on_over_budget="report"
        )
    report = BudgetReport.create(plan, readme_members())
    assert report.over_budget == 422_656
    assert report.to_dict()["over_budget"] == 422_656
    assert "422,656" in str(report)


class TestMemberBudget:
    def test_from_counts(self):
        counts = wide_resnet_param_counts(28, 7, num_classes=100)
        m = MemberBudget.from_counts("WRN-28-7", counts)
        assert m.conv_params_unshared == 17_868_464
        assert m.params_unshared == 17_925_940
        assert m.unshared_trainable == 12_576 + 44_900

    @pytest.mark.parametrize("value", [-1, 1.0, None])
    def test_bad_counts(self, value):
        with pytest.raises(ValueError, match=r"`params_unshared`"):
            MemberBudget("x", 1, value, 0)
