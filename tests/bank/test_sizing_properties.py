"""Property test of the sizing (`BankPlan.create`): for random small Wide
ResNet ensembles, budgets and bin counts, either a clear `ValueError` or a
plan in which every layer assembles to exactly its shape and the bank
total respects the budget rule. Pure sizing: no model is built."""

import functools

import numpy as np
import pytest

from keras_swn.bank.assembly import assemble
from keras_swn.bank.plan import BankPlan
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import one_template_total
from keras_swn.policy.sharing_policy import SharingPolicy

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

np_assemble = functools.partial(
    assemble, concatenate=np.concatenate, reshape=np.reshape
)

WRN = st.tuples(st.sampled_from([10, 16]), st.integers(1, 2))


def ensemble_specs(members):
    """The specs of `members`, the member with the most shared layers
    first (member 0 must be the deepest)."""
    ordered = sorted(members, key=lambda dw: -len(wide_resnet_layer_specs(*dw)))
    return [
        s
        for m, (d, w) in enumerate(ordered)
        for s in wide_resnet_layer_specs(d, w, member=m)
    ]


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    members=st.lists(WRN, min_size=1, max_size=2),
    num_bins=st.integers(1, 6),
    budget_factor=st.floats(0.5, 3.0),
    coefficients=st.sampled_from(["per_layer", "per_bank"]),
)
def test_plan_or_clear_error(members, num_bins, budget_factor, coefficients):
    specs = ensemble_specs(members)
    try:
        policy = SharingPolicy.from_bins(
            specs, num_bins, coefficients=coefficients
        )
    except ValueError as e:
        assert "num_bins" in str(e) or "bins" in str(e), e
        return
    least = one_template_total(specs, policy.groups)
    budget = max(1, int(least * budget_factor))
    try:
        plan = BankPlan.create(specs, policy, budget)
    except ValueError as e:
        # Only the budget can fail here, and only below one template
        # per bank; the message names it with the numbers.
        assert budget < least, e
        assert "Received: budget=" in str(e) and f"{least:,}" in str(e), e
        return
    assert budget >= least
    assert least <= plan.bank_total <= budget
    assert plan.over_budget == 0
    assert plan.bank_total == sum(b.size for b in plan.banks.values())
    for bank in plan.banks.values():
        assert bank.size % bank.unit == 0
        assert 1 <= bank.size // bank.unit <= 8
        assert bank.templates == min(bank.size // bank.seg, 8) >= 1
    rng = np.random.default_rng(0)
    for spec in specs:
        levels = plan.levels_of(*spec.key)
        vectors = [rng.standard_normal(level.seg) for level in levels]
        kernel = np_assemble(levels, vectors, shape=spec.shape)
        assert kernel.shape == spec.shape
        recipe = plan.layers[spec.key]
        for w, offset in enumerate(recipe.offsets):
            bank = plan.banks[(recipe.group, w)]
            # The layer's template window lies inside its bank.
            assert 0 <= offset
            assert offset + bank.templates * bank.seg <= bank.size
