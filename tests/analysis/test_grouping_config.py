"""`GroupingConfig`: the clustering options, declared once."""

import dataclasses

import numpy as np
import pytest

from keras_swn.analysis import GroupingConfig
from keras_swn.analysis import search_groups
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.bins import initial_bins


def test_defaults_are_the_library_choices():
    c = GroupingConfig()
    assert (c.schedule, c.budget_check, c.group_share) == (
        "split",
        "exact",
        0.5,
    )
    assert (c.clustering, c.chain_sort) == ("connected_components", "stable")
    r = GroupingConfig.reference(group_share=1.0)
    assert (r.schedule, r.budget_check, r.clustering, r.chain_sort) == (
        "step",
        "proxy",
        "reference",
        "reference",
    )
    assert r.group_share == 1.0
    assert GroupingConfig(**c.to_dict()) == c


@pytest.mark.parametrize(
    "options, argument",
    [
        ({"threshold_decrement": 0.0}, "threshold_decrement"),
        ({"budget_check": "loose"}, "budget_check"),
        ({"schedule": "down"}, "schedule"),
        ({"group_share": 1.5}, "group_share"),
        ({"signal": "hessian"}, "signal"),
        ({"clustering": "reference"}, "schedule"),  # "split" needs CC
        ({"coefficient_threshold": "high"}, "coefficient_threshold"),
    ],
)
def test_invalid_options_name_the_argument(options, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        GroupingConfig(**options)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="shedule"):
        GroupingConfig().replace(shedule="step")


def _setup():
    specs = [
        s
        for m, (depth, width) in enumerate([(16, 2), (10, 1)])
        for s in wide_resnet_layer_specs(depth, width, member=m)
    ]
    rng = np.random.default_rng(0)
    grads = {s.key: rng.normal(size=s.shape) for s in specs}
    return specs, initial_bins(specs, 3), grads


def test_search_groups_defaults_equal_the_config():
    """Called with no options, `search_groups` groups as the search does
    by default; options set on top of a config replace its fields."""
    specs, bins, grads = _setup()
    budget = 200_000
    plain = search_groups(specs, bins, grads, budget)
    explicit = search_groups(specs, bins, grads, budget, GroupingConfig())
    assert plain.groups == explicit.groups
    assert plain.budget_check == "exact"
    step = GroupingConfig.reference(clustering="connected_components")
    a = search_groups(specs, bins, grads, budget, step)
    b = search_groups(
        specs,
        bins,
        grads,
        budget,
        budget_check="proxy",
        schedule="step",
        chain_sort="reference",
    )
    assert a.groups == b.groups and a.history == b.history
    assert dataclasses.replace(step, group_share=0.25) == step.replace(
        group_share=0.25
    )
