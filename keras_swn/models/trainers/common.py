"""What every backend's capturing `train_step` shares."""

from __future__ import annotations

from typing import Any

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
