"""The initial values of a template bank, as NumPy arrays.

See `keras_swn.TemplateBank` (*Initialisation*) for the three schemes of
`template_fan_in`. Every draw is seeded from the root seed and the
identity of the variable, so the same seed gives the same values on every
backend. Pure NumPy: no Keras import.
"""

from __future__ import annotations

import math
from typing import Mapping
from typing import cast

import numpy as np

from keras_swn import seeding
from keras_swn.bank import layout
from keras_swn.bank.plan import BankPlan
from keras_swn.types import BankKey
from keras_swn.types import LayerKey

__all__ = ["coefficients", "level_fan_in", "templates", "use_gains"]


def level_fan_in(plan: BankPlan, group: int, width: int) -> int:
    """`in * kh * kw` of the chain shape that introduced a width level."""
    kh, kw = plan.chains[group].kernel
    return plan.chains[group].levels[width].in_ * kh * kw


def use_gains(
    plan: BankPlan, key: LayerKey, template_fan_in: int | str = "kernel"
) -> tuple[float, ...]:
    """The fixed gain of each level a layer reads.

    Under `template_fan_in="kernel"`, `sqrt(fan_in_level / fan_in_layer)`
    per level, so that a level drawn at He-normal scale for the shape that
    introduced it has He-normal scale for the layer that reads it; 1.0
    for every level otherwise.

    Args:
        plan: the `BankPlan`.
        key: `(member, layer_id)` of the layer.
        template_fan_in: the initialisation scheme.

    Returns:
        One float per width level the layer uses.

    Examples:
        >>> from keras_swn.bank.initial_values import use_gains
        >>> specs = [keras_swn.LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
        ...          keras_swn.LayerSpec(0, 1, "conv2d", (8, 12, 3, 3))]
        >>> plan = keras_swn.BankPlan.create(
        ...     specs, keras_swn.SharingPolicy(groups=[[0, 0]]), 10_000)
        >>> [round(g, 3) for g in use_gains(plan, (0, 1))]
        [0.5, 1.0]
    """
    recipe = plan.layers[cast(LayerKey, tuple(key))]
    if template_fan_in != "kernel":
        return (1.0,) * recipe.num_levels
    out, inp, kh, kw = recipe.shape
    return tuple(
        math.sqrt(level_fan_in(plan, recipe.group, w) / (inp * kh * kw))
        for w in range(recipe.num_levels)
    )


def templates(
    plan: BankPlan, bank: BankKey, template_fan_in: int | str, seed: int
) -> np.ndarray:
    """The initial flat template vector of `bank`, in storage order.

    N(0, 2 / fan_in) entries, `fan_in` the fan-in of the chain shape that
    introduced the level (9 under `template_fan_in=9`), drawn in OIHW
    order and stored in HWIO order (`keras_swn.bank.layout`): the same
    kernels.

    Args:
        plan: the `BankPlan`.
        bank: `(group, width)`.
        template_fan_in: the initialisation scheme.
        seed: int, the root seed.

    Returns:
        A float32 vector of the bank's size.
    """
    g, w = bank
    fan_in = 9 if template_fan_in == 9 else level_fan_in(plan, g, w)
    rng = seeding.rng_for(seed, "templates", g, w)
    size = plan.banks[bank].size
    value = (rng.standard_normal(size) * math.sqrt(2.0 / fan_in)).astype(
        "float32"
    )
    return layout.to_storage(value, layout.bank_storage_order(plan, bank))


def coefficients(
    plan: BankPlan,
    bank: BankKey,
    rows: Mapping[LayerKey, int],
    template_fan_in: int | str,
    seed: int,
) -> np.ndarray:
    """The initial coefficient matrix of `bank`, one row per owner slot.

    One orthogonal matrix per `(group, width, member)` over all of the
    member's layers in the bank, rows in ascending layer id; each owner
    slot's row is its layer's row (normalised to unit norm under
    `template_fan_in="kernel"`).

    Args:
        plan: the `BankPlan`.
        bank: `(group, width)`.
        rows: `{owner (member, layer_id): row}` of the bank.
        template_fan_in: the initialisation scheme.
        seed: int, the root seed.

    Returns:
        A float32 `(len(rows), K)` matrix.
    """
    g, w = bank
    k = plan.banks[bank].templates
    value = np.zeros((len(rows), k), "float32")
    users: dict[int, list[int]] = {}
    for (m, l), recipe in sorted(plan.layers.items()):
        if recipe.group == g and recipe.num_levels > w:
            users.setdefault(m, []).append(l)
    for m, layer_ids in users.items():
        rng = seeding.rng_for(seed, "coefficients", g, w, m)
        matrix = seeding.orthogonal(rng, len(layer_ids), k)
        for i, l in enumerate(layer_ids):
            if (m, l) in rows:
                value[rows[(m, l)]] = matrix[i]
    if template_fan_in == "kernel":
        value /= np.linalg.norm(value, axis=1, keepdims=True)
    return value
