"""Tests for `keras_swn.analysis.clustering`: `search_groups` (§2.6, App. B).

The per-bin clustering is tested in test_partition.py, the attachment of
the other members in test_attachment.py."""

import json
import os
import re

import numpy as np
import pytest

from keras_swn.analysis import clustering
from keras_swn.analysis.grouping_config import GroupingConfig
from keras_swn.analysis.search_result import SearchResult
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.sharing_policy import SharingPolicy

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


#: These tests were written for the reference's threshold loop: the
#: `"step"` schedule over the proxy `need`, the whole budget for groups.
STEP = GroupingConfig(budget_check="proxy", schedule="step", group_share=1.0)


def search_groups(specs, bins, gradients, budget, **options):
    """`clustering.search_groups` with the `STEP` options underneath."""
    return clustering.search_groups(
        specs, bins, gradients, budget, STEP, **options
    )


def _raises(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


def _load_appendix_b():
    with open(os.path.join(DATA, "appendix_b.json"), encoding="utf-8") as f:
        return json.load(f)


# ----------------------------------------------------------------------
# Appendix B fixture: README members, hand-made gradients.


def _readme_specs():
    specs = []
    for m, (depth, width) in enumerate([(28, 7), (28, 4), (16, 7), (16, 4)]):
        specs += wide_resnet_layer_specs(depth, width, member=m)
    return specs


def _appendix_b_gradients(specs, bins, members=(0, 2)):
    """Hand-made gradients of reference-values-readme.json, Appendix B.

    Inside every bin and for every member, layers are paired in ascending
    id order (1st with 2nd, 3rd with 4th, ...; an odd last layer stays
    alone). Only the top-left `(16, 3)` corner, which every crop of the
    bin contains, is non-zero. With orthonormal directions `e`, the j-th
    layer (j in {0, 1}) of pair p is `e[3p] + a_p e[3p + 1 + j]`: the two
    layers of a pair have cosine `c_p = 1 / (1 + a_p^2)` (0.92, 0.91, ...),
    layers of different pairs have cosine 0. A student's layer gets the
    vector of the member-0 layer at the same (pair, position): it is most
    similar (cosine 1) to that layer and next (c_p) to its pair mate.
    """
    rng = np.random.default_rng(1234)
    basis = {
        k: np.linalg.qr(rng.standard_normal((16 * 3 * k * k, 12)))[0]
        for k in (1, 3)
    }
    by_key = {s.key: s for s in specs}
    grads = {}
    for m in members:
        row = bins[m]
        for b in sorted(set(row)):
            ids = [lid for lid in range(len(row)) if row[lid] == b]
            for idx, lid in enumerate(ids):
                spec = by_key[(m, lid)]
                k = spec.shape[2]
                p, j = divmod(idx, 2)
                c = 0.92 - 0.01 * p
                a = np.sqrt(1.0 / c - 1.0)
                v = basis[k][:, 3 * p] + a * basis[k][:, 3 * p + 1 + j]
                g = np.zeros(spec.shape)
                g[:16, :3] = v.reshape(16, 3, k, k)
                grads[(m, lid)] = g
    return grads


@pytest.fixture(scope="module")
def readme():
    specs = _readme_specs()
    bins = initial_bins(specs, 4)
    grads = _appendix_b_gradients(specs, bins)
    return specs, bins, grads


@pytest.fixture(scope="module")
def appendix_b():
    return _load_appendix_b()


@pytest.fixture(scope="module")
def searched(readme):
    """The default-mode search on the Appendix B input (run once)."""
    specs, bins, grads = readme
    return search_groups(specs, bins, grads, 18_000_000)


# ----------------------------------------------------------------------
# §2.6 and Appendix B


class TestSearchGroupsAppendixB:
    @pytest.mark.parametrize("mode", ["connected_components", "reference"])
    def test_appendix_b_grouping(self, readme, appendix_b, searched, mode):
        specs, bins, grads = readme
        if mode == "connected_components":
            result = searched
        else:
            result = search_groups(
                specs, bins, grads, appendix_b["max_params"], clustering=mode
            )
        assert result.clustering == mode
        assert result.threshold == appendix_b["threshold"] == 0.1
        assert result.iterations == appendix_b["iterations"] == 1
        assert result.need == appendix_b["need"] == 10_189_312
        assert result.num_groups == appendix_b["num_groups"] == 15
        assert [list(r) for r in result.groups] == appendix_b["layer2group"]
        assert result.history == ((0.1, 10_189_312),)

    def test_appendix_b_partners_f2(self, readme, appendix_b, searched):
        specs, bins, grads = readme
        result = searched
        expected = {(a, b): (c, d) for a, b, c, d in appendix_b["partners_f2"]}
        assert result.partners == expected
        # The student shares with the member-0 layer it was matched to:
        # layer 6 of WRN-16-7 (2nd of its bin-2 pair) matches layer 9
        # (2nd of member 0's first bin-2 pair), not the mirror position.
        assert result.partners[(2, 6)] == (0, 9)
        assert result.partners[(2, 5)] == (0, 8)
        assert result.partners[(2, 13)] == (0, 21)
        # Same depth: positional, with the exact layer of the large member.
        assert result.partners[(1, 12)] == (0, 12)
        assert result.partners[(3, 8)] == (2, 8)
        for (m, lid), (pm, pl) in result.partners.items():
            assert result.groups[m][lid] == result.groups[pm][pl]

    def test_appendix_b_bank_total(self, readme, appendix_b, searched):
        from keras_swn.bank.plan import BankPlan

        specs, bins, grads = readme
        result = searched
        policy = result.to_policy(specs)
        plan = BankPlan.create(specs, policy, appendix_b["max_params"])
        assert plan.bank_total == appendix_b["bank_total"] == 17_999_792
        assert plan.max_width == appendix_b["max_width"]
        assert plan.coefficient_vectors == appendix_b["coefficient_vectors_f2"]
        assert SharingPolicy.from_json(policy.to_json()) == policy

    def test_exact_budget_check(self, readme):
        from keras_swn.bank.plan import one_template_total

        specs, bins, grads = readme
        result = search_groups(
            specs, bins, grads, 18_000_000, budget_check="exact"
        )
        assert result.need == one_template_total(specs, result.groups)
        assert result.need <= 18_000_000
        assert result.budget_check == "exact"

    def test_gradient_dict_order_does_not_matter(self, readme, searched):
        specs, bins, grads = readme
        keys = list(grads)
        rng = np.random.default_rng(11)
        shuffled = {keys[i]: grads[keys[i]] for i in rng.permutation(len(keys))}
        b = search_groups(list(reversed(specs)), bins, shuffled, 18_000_000)
        assert b == searched

    def test_result_round_trip(self, readme, searched):
        specs, bins, grads = readme
        result = searched
        text = json.dumps(result.to_dict())
        again = SearchResult.from_dict(json.loads(text))
        assert again == result
        assert again.to_policy(specs) == result.to_policy(specs)
        ids, matrix = result.similarity[2]
        assert ids == (8, 9, 10, 11, 13, 14)
        assert matrix.shape == (6, 6)
        assert matrix[0, 1] == pytest.approx(0.92)
        assert not matrix.flags.writeable

    def test_missing_gradients(self, readme):
        specs, bins, grads = readme
        partial = {k: v for k, v in grads.items() if k != (2, 7)}
        with pytest.raises(
            ValueError,
            match=re.escape(
                "Invalid value for argument `gradients`. No entry for "
                "layers [(2, 7)] (signal='gradient')."
            ),
        ):
            search_groups(specs, bins, partial, 18_000_000)


class TestSearchGroupsSchedule:
    def _setup(self):
        specs = wide_resnet_layer_specs(16, 2, member=0) + (
            wide_resnet_layer_specs(10, 2, member=1)
        )
        bins = initial_bins(specs, 2)
        rng = np.random.default_rng(12)
        grads = {s.key: rng.standard_normal(s.shape) for s in specs}
        return specs, bins, grads

    def test_threshold_goes_down_until_budget(self):
        from keras_swn.bank.plan import need_proxy

        specs, bins, grads = self._setup()
        top = search_groups(specs, bins, grads, 10**9)
        assert top.iterations == 1
        budget = top.need - 1
        result = search_groups(specs, bins, grads, budget)
        assert result.iterations > 1
        assert result.need <= budget
        ts = [t for t, _ in result.history]
        needs = [n for _, n in result.history]
        assert ts[0] == 0.1
        assert all(b < a for a, b in zip(ts, ts[1:]))
        assert all(b <= a for a, b in zip(needs, needs[1:]))
        assert result.threshold == ts[-1]
        assert result.need == need_proxy(specs, result.groups)

    def test_unreachable_budget_raises(self):
        specs, bins, grads = self._setup()
        fully = search_groups(specs, bins, grads, 10**9, threshold_start=-2.0)
        smallest = fully.need
        with pytest.raises(ValueError) as info:
            search_groups(specs, bins, grads, 1000)
        message = str(info.value)
        assert message.startswith(
            "Invalid value for argument `budget`. "
            "The parameter budget cannot be met: the smallest `need` "
            f"reached is {smallest:,} parameters, above budget=1,000, and no "
            "lower threshold can change the grouping (every bin is fully "
            "merged; "
        )
        assert message.endswith(
            "Raise `budget` or use more initial bins. Received: budget=1000"
        )

    def test_unreachable_budget_raises_reference_mode(self):
        specs, bins, grads = self._setup()
        with pytest.raises(ValueError) as info:
            search_groups(specs, bins, grads, 1000, clustering="reference")
        message = str(info.value)
        assert "above budget=1,000" in message
        assert "the threshold is below -1, where every pair passes" in message
        assert "23 thresholds tried" in message

    @pytest.mark.parametrize("budget", [0, -5])
    def test_non_positive_budget(self, budget):
        specs, bins, grads = self._setup()
        with _raises(
            "Invalid value for argument `budget`. Expected a strictly "
            f"positive integer. Received: budget={budget}"
        ):
            search_groups(specs, bins, grads, budget)

    def test_bad_options(self):
        specs, bins, grads = self._setup()
        with _raises(
            "Invalid value for argument `threshold_decrement`. Expected a "
            "strictly positive number (thresholds only go down). Received: "
            "threshold_decrement=0.0"
        ):
            search_groups(specs, bins, grads, 10**9, threshold_decrement=0.0)
        with _raises(
            "Invalid value for argument `budget_check`. Expected one of "
            "('proxy', 'exact'). Received: budget_check='loose'"
        ):
            search_groups(specs, bins, grads, 10**9, budget_check="loose")
        with _raises(
            "Invalid value for argument `signal`. Expected one of "
            "('gradient', 'gradient+weight', 'parameter'). Received: "
            "signal='hessian'"
        ):
            search_groups(specs, bins, grads, 10**9, signal="hessian")

    def test_wrong_gradient_shape(self):
        specs, bins, grads = self._setup()
        grads = dict(grads)
        grads[(0, 1)] = np.zeros((3, 3, 16, 32))  # HWIO by mistake
        with _raises(
            "Invalid value for argument `gradients`. The entry for layer "
            "(0, 1) has shape (3, 3, 16, 32) but the layer kernel is OIHW "
            "(32, 16, 3, 3). Convert Keras kernels with `to_oihw`. Received: "
            "gradients[(0, 1)].shape=(3, 3, 16, 32)"
        ):
            search_groups(specs, bins, grads, 10**9)

    def test_bins_as_policy_and_parameter_signal(self):
        specs, _, grads = self._setup()
        policy = SharingPolicy.from_bins(specs, 2, coefficients="per_layer")
        a = search_groups(specs, policy, grads, 10**9)
        assert a.iterations == 1
        b = search_groups(
            specs, policy, None, 10**9, signal="parameter", weights=grads
        )
        assert a.groups == b.groups and a.partners == b.partners


class TestFillSchedule:
    _setup = TestSearchGroupsSchedule._setup

    def test_no_merging_when_the_budget_allows(self):
        specs, bins, grads = self._setup()
        result = search_groups(specs, bins, grads, 10**9, schedule="fill")
        assert result.iterations == 1 and result.threshold >= 1.0
        assert len(set(result.groups[0])) == len(result.groups[0])

    @pytest.mark.parametrize("mode", ["connected_components", "reference"])
    @pytest.mark.parametrize("share", [1.0, 0.5])
    def test_least_merged_grouping_that_fits(self, mode, share):
        specs, bins, grads = self._setup()
        unmerged = search_groups(specs, bins, grads, 10**9, schedule="fill")
        budget = int(unmerged.need * 0.9)
        result = search_groups(
            specs,
            bins,
            grads,
            budget,
            schedule="fill",
            group_share=share,
            clustering=mode,
        )
        limit = int(share * budget)
        assert result.need <= limit
        # Every higher threshold tried gave a grouping that did not fit.
        assert all(need > limit for _, need in result.history[:-1])
        ts = [t for t, _ in result.history]
        assert all(b < a for a, b in zip(ts, ts[1:]))
        # The reference's step schedule at the same budget merges at least
        # as much under connected components (it starts at 0.1).
        if mode == "connected_components" and share == 1.0:
            step = search_groups(specs, bins, grads, budget)
            assert result.num_groups >= step.num_groups

    def test_group_share_validated(self):
        specs, bins, grads = self._setup()
        for bad in (0, 1.5, "half"):
            with pytest.raises(ValueError, match="group_share"):
                search_groups(
                    specs, bins, grads, 10**9, schedule="fill", group_share=bad
                )
        with _raises(
            "Invalid value for argument `schedule`. Expected one of "
            "('fill', 'split', 'step'). Received: schedule='down'"
        ):
            search_groups(specs, bins, grads, 10**9, schedule="down")

    def test_unreachable_budget_raises(self):
        specs, bins, grads = self._setup()
        with pytest.raises(ValueError, match="group_share=0.5"):
            search_groups(
                specs, bins, grads, 1000, schedule="fill", group_share=0.5
            )

    def test_share_falls_back_to_the_whole_budget(self):
        specs, bins, grads = self._setup()
        merged = search_groups(specs, bins, grads, 10**9, threshold_start=-2.0)
        budget = merged.need + 10  # fits fully merged, never half of it
        result = search_groups(
            specs, bins, grads, budget, schedule="fill", group_share=0.5
        )
        assert result.need <= budget
        assert all(need > budget for _, need in result.history[:-1])


class TestSplitSchedule:
    _setup = TestSearchGroupsSchedule._setup

    def _bins_need(self, specs, bins, grads):
        merged = search_groups(specs, bins, grads, 10**9, threshold_start=-2.0)
        return merged

    def test_no_budget_to_spare_returns_the_bins(self):
        specs, bins, grads = self._setup()
        merged = self._bins_need(specs, bins, grads)
        result = search_groups(
            specs, bins, grads, merged.need, schedule="split"
        )
        assert result.groups == merged.groups and result.need == merged.need

    def test_a_large_budget_splits_every_layer(self):
        specs, bins, grads = self._setup()
        result = search_groups(
            specs, bins, grads, 10**9, schedule="split", group_share=1.0
        )
        assert len(set(result.groups[0])) == len(result.groups[0])

    @pytest.mark.parametrize("share", [1.0, 0.5])
    def test_splits_fit_and_every_refused_split_did_not(self, share):
        specs, bins, grads = self._setup()
        merged = self._bins_need(specs, bins, grads)
        unmerged = search_groups(specs, bins, grads, 10**9, schedule="fill")
        budget = (merged.need + unmerged.need) // 2
        result = search_groups(
            specs, bins, grads, budget, schedule="split", group_share=share
        )
        limit = merged.need + int(share * (budget - merged.need))
        assert merged.need <= result.need <= limit
        # The needs tried: the bins first, then one entry per split tried;
        # each is either accepted (the running need) or above the limit.
        needs = [n for _, n in result.history]
        assert needs[0] == merged.need
        accepted = [n for n in needs[1:] if n <= limit]
        assert result.need == (accepted[-1] if accepted else merged.need)
        # Groups only ever split inside the initial bins.
        for g, b in zip(result.groups[0], bins[0]):
            same = [i for i, h in enumerate(result.groups[0]) if h == g]
            assert {bins[0][i] for i in same} == {b}

    def test_least_similar_split_first(self):
        # One bin of three layers: (0, 1) similar, 2 dissimilar. The first
        # split separates 2; the second (0 from 1) is too expensive.
        from keras_swn.analysis.clustering import _search_split

        sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])

        class Att:
            def __init__(self, member0):
                self.groups = (tuple(member0),)
                self.partners = {}

        def evaluate(member0):
            return Att(member0), 10 * len(set(member0))

        threshold, need, att, hist = _search_split(
            {0: ((0, 1, 2), sim)}, 3, evaluate, 25, 1.0
        )
        groups = att.groups
        assert need == 20 and threshold == pytest.approx(0.2)
        assert groups[0][0] == groups[0][1] != groups[0][2]
        assert [n for _, n in hist] == [10, 20, 30]

    def test_needs_connected_components(self):
        specs, bins, grads = self._setup()
        with pytest.raises(ValueError, match="schedule"):
            search_groups(
                specs,
                bins,
                grads,
                10**9,
                schedule="split",
                clustering="reference",
            )

    def test_search_config_accepts_split(self):
        from keras_swn.search.config import THRESHOLD_SCHEDULES

        assert "split" in THRESHOLD_SCHEDULES
