"""Coupled L2 weight decay: which variables decay, and the loss term.

One rule for the library (see the algorithm page, *Training recipe*): every
trainable variable decays except the coefficients (the reference's rule) and the
own variables of members that do not train (loss weight 0; their parameters get
no gradient in the reference, see *Search training*). `SWNModel` adds the term
to its loss (`weight_decay=`); an optimizer that applies decay itself should
take its variables from `decayed_variables`.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from keras_swn.models.trainers import replica_count


def decayed_variables(model: Any) -> list:
    """The variables of `model` under coupled L2 weight decay.

    Args:
        model: an `SWNModel`.

    Returns:
        The trainable variables of `model` (each shared variable once),
        less the bank's coefficients and the own variables (BatchNorm,
        head, biases) of members whose loss weight is 0.

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
    skip = {id(v) for v in model.bank.coefficients.values()}
    shared = {id(v) for v in model.bank.trainable_variables}
    for member, w in zip(model.members, model.member_loss_weights or []):
        if w == 0:
            skip |= {id(v) for v in member.trainable_variables} - shared
    return [v for v in model.trainable_variables if id(v) not in skip]


def l2_penalty(model: Any, weight_decay: float) -> Any:
    """`weight_decay / 2 * sum ||w||^2` over `decayed_variables(model)`,
    divided by the replicas of a `tf.distribute` strategy (each replica's
    loss is its share of the global loss)."""
    squares = [ops.sum(ops.square(v)) for v in decayed_variables(model)]
    return 0.5 * weight_decay * ops.sum(ops.stack(squares)) / replica_count()
