"""PyTorch: probe gradients with `torch.autograd.grad`."""

from __future__ import annotations

import keras
import torch

from keras_swn.probe import probe_scope


def probe_gradients(model, x, y, sample_weight, probes, training=False):
    """Gradients of the model's loss w.r.t. zero probes (see tensorflow.py)."""
    zeros = [
        torch.zeros(
            shape, device=keras.ops.convert_to_tensor(0.0).device
        ).requires_grad_(True)
        for _, shape in probes
    ]
    x = keras.ops.convert_to_tensor(x)
    y = keras.ops.convert_to_tensor(y)
    with probe_scope({k: z for (k, _), z in zip(probes, zeros)}):
        y_pred = model(x, training=training)
        loss = model.probe_loss(y, y_pred, sample_weight)
    grads = torch.autograd.grad(loss, zeros, allow_unused=True)
    return [
        torch.zeros_like(z) if g is None else g for z, g in zip(zeros, grads)
    ]


class CaptureTrainer:
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `model.capture_kernel_gradients` is on."""

    def compiled_probe_gradients(self, *args, **kwargs):
        return probe_gradients(self, *args, **kwargs)

    def train_step(self, data):
        if not self._capture_active():
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probes = self._capture_probes()
        zeros = [
            torch.zeros(shape, device=x.device).requires_grad_(True)
            for _, shape in probes
        ]
        with probe_scope({k: z for (k, _), z in zip(probes, zeros)}):
            y_pred = self(x, training=True)
        self.zero_grad()
        loss = self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        self._loss_tracker.update_state(loss, sample_weight=x.shape[0])
        # A loss-scaling optimizer (mixed_float16) scales the loss; the
        # probe gradients are unscaled by the same factor below.
        scale = self.optimizer.scale_loss(torch.ones((), device=x.device))
        loss = self.optimizer.scale_loss(loss)
        loss.backward()
        weights = self.trainable_weights[:]
        with torch.no_grad():
            self.optimizer.apply([v.value.grad for v in weights], weights)
            for acc, z in zip(self._kernel_accumulators, zeros):
                if z.grad is not None:
                    acc.assign_add(z.grad / scale)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def replica_count() -> int:
    """Losses are global on this backend: no per-replica scaling."""
    return 1
