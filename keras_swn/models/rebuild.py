"""Rebuild an `SWNModel` for a new policy, carrying its trained values over.

This is how the refine step (see the algorithm page, [Refine][refine]) takes
effect: the refined policy gives some slots a new owner; the new model has one
coefficient variable row per owner, so every block of a partition is one vector
used by all of its members (F3), initialised from the value it had.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from typing import Mapping

import keras
import numpy as np

from keras_swn.bank.bank_config import BankConfig
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.types import Slot

_BANK = frozenset(f.name for f in dataclasses.fields(BankConfig))


def _copy(variable) -> np.ndarray:
    """A host copy of a variable's value. Assigning the variable itself
    would let two models share one device buffer, which JAX may donate
    (delete) when either model takes a step."""
    return np.array(keras.ops.convert_to_numpy(variable))


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
            var.assign(_copy(old))
    src_policy = src_bank.policy
    all_src_rows = src_bank.coefficient_rows
    for (g, w), rows in dst_bank.coefficient_rows.items():
        value = keras.ops.convert_to_numpy(dst_bank.coefficients[(g, w)])
        value = np.array(value)
        for (m, l), row in rows.items():
            from_slot = copies.get((m, l, w), (m, l, w))
            owner = src_policy.owner(from_slot)
            if src_bank.plan.layers[(m, l)].group != g:
                continue
            src_rows = all_src_rows.get((g, w), {})
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
                    layer.bias.assign(
                        _copy(src_member.get_layer(layer.name).bias)
                    )
                continue
            if layer.weights:
                layer.set_weights(
                    src_member.get_layer(layer.name).get_weights()
                )


def transfer_optimizer_state(source, target) -> None:
    """Carry optimizer state over to a rebuilt model (after refine).

    The iteration count and the slots (e.g. momentum) of every variable
    that exists in both models with the same path and shape are copied. In
    a coefficient variable, the rows of owners that existed before keep
    their slots, and new owners (the rewired blocks) start from zero, as
    the reference's new coefficient tensors do.
    """
    if source.optimizer is None or target.optimizer is None:
        return
    if not source.optimizer.built:
        return
    if not target.optimizer.built:
        target.optimizer.build(target.trainable_variables)
    old = {v.path: v for v in source.optimizer.variables}
    src_rows = source.bank.coefficient_rows
    dst_rows = target.bank.coefficient_rows
    pattern = re.compile(r"coefficients_g(\d+)_w(\d+)")
    for var in target.optimizer.variables:
        match = old.get(var.path)
        if match is None:
            continue
        if tuple(match.shape) == tuple(var.shape):
            var.assign(_copy(match))
            continue
        found = pattern.search(var.path)
        if found is None:
            continue
        key = (int(found.group(1)), int(found.group(2)))
        src = np.asarray(keras.ops.convert_to_numpy(match))
        dst = np.zeros(tuple(var.shape), dtype=src.dtype)
        for owner, row in dst_rows.get(key, {}).items():
            if owner in src_rows.get(key, {}):
                dst[row] = src[src_rows[key][owner]]
        var.assign(dst)


def with_policy(model, policy, **overrides):
    """`model.with_policy(policy, **overrides)`: a fresh model from
    `model`'s config with `policy`; `overrides` replace constructor
    arguments, the bank options among them inside `bank_config`."""
    config = {**model.get_config(), "policy": policy.to_dict()}
    for name in ("name", "trainable", "dtype"):
        config.pop(name, None)
    bank = {k: overrides.pop(k) for k in list(overrides) if k in _BANK}
    config["bank_config"] = {**config["bank_config"], **bank}
    config.update(overrides)
    return type(model).from_config(config)


def clone_swn_model(model, *, copy_weights: bool = True):
    """A copy of `model` with its own (still shared) bank.

    `keras.models.clone_model` would hand the clone the original's bank
    object; this builds a new model from the config, so the clone's members
    share the clone's bank, and copies the weights.

    Args:
        model (SWNModel): the model to copy.
        copy_weights: bool, copy `model`'s current values into the clone
            (True) or keep the clone's fresh initial values (False).

    Returns:
        clone (SWNModel): a new model with its own bank.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> clone = keras_swn.clone_swn_model(model)
        >>> clone.bank is model.bank
        False
        >>> x = keras.ops.ones((1, 8, 8, 3))
        >>> bool(np.allclose(model(x)[0], clone(x)[0], atol=1e-6))
        True
    """
    clone = type(model).from_config(model.get_config())
    if copy_weights:
        clone.set_weights(model.get_weights())
    return clone


class RebuildMethods:
    """`refined` and `with_policy` of `SWNModel`: the model rebuilt for
    another sharing policy (the attributes below are `SWNModel`'s, declared
    for mypy, which sees a mixin of `object`)."""

    compiled: bool
    optimizer: Any
    get_compile_config: Any

    def refined(
        self, policy: SharingPolicy, *, copies=None, compile: bool = True
    ) -> keras.Model:
        """This model rebuilt for `policy`, with its trained values.

        Used after the refine step: `policy` and `copies` come from
        [`keras_swn.analysis.refine_partition`][].
        Each new owner's coefficient vector starts from its former owner's
        value; templates, BatchNorm and heads are copied. If this model is
        compiled, the new one is compiled the same way and keeps the optimizer
        state of every unchanged variable (fresh state for the rewired
        coefficients).

        Args:
            policy: the refined [`SharingPolicy`][keras_swn.SharingPolicy].
            copies (dict | None): the refine's copies (new owner ->
                former owner), or None.
            compile: bool, compile the new model as this one (and carry
                the optimizer state over) when this one is compiled.

        Returns:
            The new [`SWNModel`][keras_swn.SWNModel].
        """
        new = self.with_policy(policy)
        transfer_weights(self, new, copies=copies)
        if compile and self.compiled and self.optimizer is not None:
            config = self.get_compile_config()
            new.compile_from_config(config)
            transfer_optimizer_state(self, new)
        return new

    def with_policy(self, policy: SharingPolicy, **overrides) -> keras.Model:
        """A new, freshly initialised model with another sharing policy.

        Same members and options; the model's own policy is not changed.

        Args:
            policy: the [`SharingPolicy`][keras_swn.SharingPolicy] of the new
                model.
            **overrides (Any): constructor arguments to replace (bank options
                too).

        Returns:
            The new [`SWNModel`][keras_swn.SWNModel].
        """
        return with_policy(self, policy, **overrides)
