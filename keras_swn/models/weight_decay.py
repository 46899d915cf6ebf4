"""Coupled L2 weight decay: which variables decay, and the loss term.

One rule for the library (see the algorithm page, [Training recipe][recipe]):
every trainable variable decays except the coefficients (the reference's rule)
and the own variables of members that do not train (loss weight 0; their
parameters get no gradient in the reference, see
[Search training][search-training]).
`decayed_variables` is that rule, and the only place that chooses. It is applied
in one of two ways, never both: `SWNModel(weight_decay=)` adds the term to the
loss (`l2_penalty`), or an optimizer that decays itself (one with a
`decay_only(variables)` method, such as `keras_swn.search.ReferenceSGD`) is
given the same variables when the model is compiled (`configure_optimizer`).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from keras_swn.bank.template_bank import is_coefficient
from keras_swn.models.trainers import replica_count
from keras_swn.validation import invalid_argument


def decayed_variables(model: Any) -> list:
    """The variables of `model` under coupled L2 weight decay.

    Args:
        model: an [`SWNModel`][keras_swn.SWNModel] (or any Keras model: its
            trainable variables less any bank coefficients).

    Returns:
        The trainable variables of `model` (each shared variable once),
        less the bank's coefficients (`is_coefficient`) and the own
        variables (BatchNorm, head, biases) of members whose loss weight
        is 0.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> decayed = keras_swn.models.decayed_variables(model)
        >>> any("coefficients" in v.path for v in decayed)
        False
        >>> skipped = len(model.trainable_variables) - len(decayed)
        >>> skipped == len(model.bank.coefficients)
        True
    """
    skip = set()
    bank = getattr(model, "bank", None)
    shared = {id(v) for v in getattr(bank, "trainable_variables", ())}
    members = getattr(model, "members", ())
    for member, w in zip(
        members, getattr(model, "member_loss_weights", None) or []
    ):
        if w == 0:
            skip |= {id(v) for v in member.trainable_variables} - shared
    return [
        v
        for v in model.trainable_variables
        if id(v) not in skip and not is_coefficient(v)
    ]


def configure_optimizer(model: Any, optimizer: Any) -> None:
    """Apply the rule to an optimizer that decays itself; refuse two L2s.

    `SWNModel.compile` calls this. An optimizer with a
    `decay_only(variables)` method (e.g. `keras_swn.search.ReferenceSGD`;
    a loss-scaling wrapper's inner optimizer too) is told to decay
    `decayed_variables(model)`, unless it is already built.

    Args:
        model: the `SWNModel` being compiled.
        optimizer: its optimizer.

    Raises:
        ValueError: naming `weight_decay` when the model adds the L2 term
            to its loss and the optimizer applies L2 itself (`l2 > 0`):
            the decay would be applied twice.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not hasattr(inner, "decay_only"):
        return
    if getattr(model, "weight_decay", 0) and getattr(inner, "l2", 0):
        raise invalid_argument(
            "weight_decay",
            f"The optimizer applies coupled L2 itself (l2={inner.l2}), so "
            "the model's loss term would decay every variable twice. Pass "
            "weight_decay=0 to the model or l2=0 to the optimizer.",
            model.weight_decay,
        )
    if not inner.built:
        inner.decay_only(decayed_variables(model))


def l2_penalty(model: Any, weight_decay: float) -> Any:
    """`weight_decay / 2 * sum ||w||^2` over `decayed_variables(model)`,
    divided by the replicas of a `tf.distribute` strategy (each replica's
    loss is its share of the global loss)."""
    squares = [ops.sum(ops.square(v)) for v in decayed_variables(model)]
    return 0.5 * weight_decay * ops.sum(ops.stack(squares)) / replica_count()
