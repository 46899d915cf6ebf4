"""TensorFlow: probe gradients with `tf.GradientTape`."""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras
import tensorflow as tf

from keras_swn.models.trainers.common import StatefulCapture
from keras_swn.models.trainers.common import batch_statistics
from keras_swn.models.trainers.common import loss_metric
from keras_swn.models.trainers.common import trained_outputs
from keras_swn.probe import probe_scope


@contextlib.contextmanager
def probed(keys: list, shapes: list) -> Iterator[tuple]:
    """The capture primitive: zero probes in scope, watched by a tape.

    Yields:
        `(tape, zeros)`: compute the loss inside; `tape.gradient(loss,
        zeros)` is then the gradient with respect to each probe.
    """
    zeros = [tf.zeros(shape) for shape in shapes]
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        with probe_scope(dict(zip(keys, zeros))):
            yield tape, zeros


def _probe_gradients(
    model, x, y, sample_weight, probes, training=False, batch_stats=True
):
    """Gradients of `model.probe_loss` w.r.t. zero probes.

    Args:
        model: the `SWNModel`.
        x, y, sample_weight: one batch.
        probes: list of `(scope_key, shape)`.
        training: whether BatchNorm runs in training mode.
        batch_stats: in inference mode, whether BatchNorm reads the
            statistics of this batch (`common.batch_statistics`) instead
            of its moving statistics.

    Returns:
        One gradient tensor per probe.
    """
    stats = batch_statistics(model, x) if batch_stats and not training else []
    with probed([k for k, _ in probes], [s for _, s in probes]) as (
        tape,
        zeros,
    ):
        with keras.StatelessScope(state_mapping=stats):
            y_pred = model(x, training=training)
        loss = model.probe_loss(y, y_pred, sample_weight)
    return tape.gradient(loss, zeros)


probe_gradients = tf.function(_probe_gradients, reduce_retracing=True)


class CaptureTrainer(StatefulCapture):
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `capture_targets()` returns them."""

    def capture_step(self, x, y, sample_weight, keys, shapes, accumulators):
        """One training step that also adds dL/dkernel into `accumulators`.

        Called by `train_step` while capture targets are set.

        Args:
            x (Tensor): the batch's inputs.
            y (Tensor): the batch's labels.
            sample_weight (Tensor | None): the batch's sample weights.
            keys (list): the probe key of each captured kernel.
            shapes (list): the kernel shape of each key.
            accumulators (list): one variable per key that the kernel
                gradients are added to.

        Returns:
            metrics (dict): the step's metrics, as `compute_metrics`
                returns them.
        """
        weights = self.trainable_weights
        with probed(keys, shapes) as (tape, zeros):
            y_pred = trained_outputs(self, self(x, training=True))
            loss = self.compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=True,
            )
            replicas = replica_count()
            batch = tf.shape(tf.nest.flatten(x)[0])[0]
            loss_metric(self).update_state(loss * replicas, sample_weight=batch)
            # A loss-scaling optimizer (mixed_float16) scales the loss; the
            # probe gradients are unscaled by the same factor below.
            scale = self.optimizer.scale_loss(tf.constant(1.0))
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, list(weights) + zeros)
        self.optimizer.apply_gradients(zip(grads[: len(weights)], weights))
        # Each replica's loss is its share of the global-batch mean, so the
        # global gradient is the sum over replicas. The accumulators use
        # "mean" aggregation (a replica-context `assign_add` on a mirrored
        # variable aggregates the new *values*), hence the factor.
        for acc, grad in zip(accumulators, grads[len(weights) :]):
            if grad is not None:  # None: a member that does not train
                acc.assign_add(grad * (replicas / scale))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def replica_count() -> int:
    """Replicas of the current `tf.distribute` strategy (1 outside one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync
