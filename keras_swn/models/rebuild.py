"""Rebuild an `SWNModel` for a new policy, carrying its trained values over.

This is how the refine step (swn-algorithm.md §3.2) takes effect: the
refined policy gives some slots a new owner; the new model has one
coefficient variable row per owner, so every block of a partition is one
vector used by all of its members (F3), initialised from the value it had.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np

Slot = tuple[int, int, int]


def transfer_weights(
    source, target, *, copies: Mapping[Slot, Slot] | None = None
) -> None:
    """Copy trained values from `source` into `target` (same members).

    - Templates: bank by bank, where both plans have the bank `(g, w)` with
      the same size (always, when only coefficient sharing changed).
    - Coefficients: every owner slot of `target` takes the vector of the
      same slot in `source` if that slot read a vector there, else the
      vector of `copies[slot]` (the slot's former owner).
    - Everything else of each member (BatchNorm, heads, biases) layer by
      layer.

    Raises:
        ValueError: if the members differ.
    """
    if [type(b).__name__ for b in source.member_builders] != [
        type(b).__name__ for b in target.member_builders
    ] or [b.get_config() for b in source.member_builders] != [
        b.get_config() for b in target.member_builders
    ]:
        raise ValueError(
            "Cannot transfer weights between models with different members."
        )
    copies = dict(copies or {})
    src_bank, dst_bank = source.bank, target.bank
    for key, var in dst_bank.templates.items():
        old = src_bank.templates.get(key)
        if old is not None and tuple(old.shape) == tuple(var.shape):
            var.assign(old)
    src_policy = src_bank.policy
    for (g, w), rows in dst_bank._rows.items():
        value = keras.ops.convert_to_numpy(dst_bank.coefficients[(g, w)])
        value = np.array(value)
        for (m, l), row in rows.items():
            from_slot = copies.get((m, l, w), (m, l, w))
            owner = src_policy.owner(from_slot)
            if src_bank.plan.layers[(m, l)].group != g:
                continue
            src_rows = src_bank._rows.get((g, w), {})
            if owner in src_rows:
                src_value = keras.ops.convert_to_numpy(
                    src_bank.coefficients[(g, w)]
                )
                value[row] = src_value[src_rows[owner]]
        dst_bank.coefficients[(g, w)].assign(value)
    for src_member, dst_member in zip(source.members, target.members):
        for layer in dst_member.layers:
            if getattr(layer, "bank", None) is not None:
                if getattr(layer, "bias", None) is not None:
                    layer.bias.assign(src_member.get_layer(layer.name).bias)
                continue
            if layer.weights:
                layer.set_weights(src_member.get_layer(layer.name).get_weights())


def transfer_optimizer_state(source, target) -> None:
    """Copy optimizer slots of variables that are unchanged (same path and
    shape); every other slot keeps its fresh (zero) state, the way the
    reference gives rewired coefficient vectors fresh momentum."""
    if source.optimizer is None or target.optimizer is None:
        return
    if not target.optimizer.built:
        target.optimizer.build(target.trainable_variables)
    old = {(v.path, tuple(v.shape)): v for v in source.optimizer.variables}
    for var in target.optimizer.variables:
        match = old.get((var.path, tuple(var.shape)))
        if match is not None:
            var.assign(match)
