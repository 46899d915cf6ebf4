"""What every backend's capturing `train_step` shares."""

from __future__ import annotations

from typing import Any
from typing import Sequence

import keras


def loss_metric(model: Any) -> keras.metrics.Metric:
    """The compiled model's loss tracker: the metric named `"loss"` that
    `compile` adds to `model.metrics` (and that `fit` logs as `loss`)."""
    for metric in model.metrics:
        if metric.name == "loss":
            return metric
    raise ValueError(
        "The model has no `loss` metric. Call `model.compile()` first."
    )


def split_targets(targets: list) -> tuple[list, list, list]:
    """`(probe keys, probe shapes, accumulators)` of `capture_targets()`."""
    keys = [key for (key, _), _ in targets]
    shapes = [shape for (_, shape), _ in targets]
    return keys, shapes, [acc for _, acc in targets]


def trained_outputs(model: Any, y_pred: list) -> list:
    """`y_pred` as Keras' own step sees it: None for the members with loss
    weight 0. A capturing step runs under probes, so `SWNModel.call` also
    runs those members (in inference mode, for probe passes); their
    logits must reach neither the loss nor the metrics of a training
    step."""
    frozen = model._frozen_members()
    return [None if i in frozen else p for i, p in enumerate(y_pred)]


class StatefulCapture:
    """The `train_step(data)` of the stateful backends (TensorFlow,
    PyTorch): Keras' own step until `capture_targets()` returns targets,
    then the backend's `capture_step`, which also fills the accumulators."""

    def train_step(self, data):
        targets = self.capture_targets()
        if targets is None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return self.capture_step(x, y, sample_weight, *split_targets(targets))


def batch_norm_layers(model: Any) -> list:
    """Every `BatchNormalization` of every member whose moving statistics
    a training-mode call would update (trainable, no renorm), found
    through `layers`, nested models included."""
    found: list = []
    seen: set = set()

    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable and not layer.renorm:
                found.append(layer)
        for sub in getattr(layer, "layers", None) or ():
            visit(sub)

    for member in model.members:
        visit(member)
    return found


def batch_statistics(model: Any, x: Any, mapping: Sequence = ()) -> list:
    """The statistics of batch `x` as every BatchNorm's moving statistics.

    Every member runs on `x` in training mode with BatchNorm momentum 0
    inside a `keras.StatelessScope`, so no variable changes; the moving
    means and variances it would have assigned are the batch's own. An
    inference-mode pass that reads them (`state_mapping`) computes what a
    training step computes, and its gradient treats the statistics as
    constants, as an inference-mode gradient does. Members with loss
    weight 0 are run too (the capture differentiates every member).

    Args:
        model: the `SWNModel`.
        x: one batch of inputs.
        mapping: `(variable, value)` pairs the pass reads instead of the
            variables (JAX's traced state), or empty.

    Returns:
        `(moving variable, value)` pairs, for a `keras.StatelessScope`.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return []
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        with keras.StatelessScope(state_mapping=list(mapping)) as scope:
            with model.bank.composed():
                for member in model.members:
                    member(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    found = []
    for layer in layers:
        for variable in (layer.moving_mean, layer.moving_variance):
            value = scope.get_current_value(variable)
            if value is not None:
                found.append((variable, value))
    return found
