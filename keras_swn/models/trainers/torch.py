"""PyTorch: probe gradients with `torch.autograd`."""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras
import torch

from keras_swn.models.trainers.common import StatefulCapture
from keras_swn.models.trainers.common import batch_statistics
from keras_swn.models.trainers.common import loss_metric
from keras_swn.models.trainers.common import trained_outputs
from keras_swn.probe import probe_scope


@contextlib.contextmanager
def probed(keys: list, shapes: list, device) -> Iterator[list]:
    """The capture primitive: zero probes that require grad, in scope.

    Yields:
        The probes: after `backward()` (or `torch.autograd.grad`) of a
        loss computed inside, their gradients.
    """
    zeros = [
        torch.zeros(shape, device=device).requires_grad_(True)
        for shape in shapes
    ]
    with probe_scope(dict(zip(keys, zeros))):
        yield zeros


def probe_gradients(
    model, x, y, sample_weight, probes, training=False, batch_stats=True
):
    """Gradients of `model.probe_loss` w.r.t. zero probes (see
    tensorflow.py); eager, as Keras runs PyTorch."""
    device = keras.ops.convert_to_tensor(0.0).device
    x = keras.ops.convert_to_tensor(x)
    y = keras.ops.convert_to_tensor(y)
    keys, shapes = [k for k, _ in probes], [s for _, s in probes]
    stats = []
    if batch_stats and not training:
        with torch.no_grad():
            stats = batch_statistics(model, x)
    with probed(keys, shapes, device) as zeros:
        with keras.StatelessScope(state_mapping=stats):
            y_pred = model(x, training=training)
        loss = model.probe_loss(y, y_pred, sample_weight)
    grads = torch.autograd.grad(loss, zeros, allow_unused=True)
    return [
        torch.zeros_like(z) if g is None else g for z, g in zip(zeros, grads)
    ]


class CaptureTrainer(StatefulCapture):
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `capture_targets()` returns them."""

    def capture_step(self, x, y, sample_weight, keys, shapes, accumulators):
        """One training step that also adds dL/dkernel into `accumulators`:
        the arguments and result of the TensorFlow trainer's `capture_step`
        (`keras_swn.models.trainers.tensorflow`)."""
        with probed(keys, shapes, x.device) as zeros:
            y_pred = trained_outputs(self, self(x, training=True))
        self.zero_grad()
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        loss_metric(self).update_state(loss, sample_weight=x.shape[0])
        # A loss-scaling optimizer (mixed_float16) scales the loss; the
        # probe gradients are unscaled by the same factor below.
        scale = self.optimizer.scale_loss(torch.ones((), device=x.device))
        loss = self.optimizer.scale_loss(loss)
        loss.backward()
        weights = self.trainable_weights[:]
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in weights], weights)
            for acc, z in zip(accumulators, zeros):
                if z.grad is not None:
                    acc.assign_add(z.grad / scale)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def replica_count() -> int:
    """Losses are global on this backend: no per-replica scaling."""
    return 1
