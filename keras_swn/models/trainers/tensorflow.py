"""TensorFlow: probe gradients with `tf.GradientTape`."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_swn.probe import probe_scope


def probe_gradients(model, x, y, sample_weight, probes, training=False):
    """Gradients of `model.probe_loss` w.r.t. zero probes.

    Args:
        model: the `SWNModel`.
        x, y, sample_weight: one batch.
        probes: list of `(scope_key, shape)`.
        training: whether BatchNorm runs in training mode.

    Returns:
        One gradient tensor per probe.
    """
    zeros = [tf.zeros(shape) for _, shape in probes]
    with tf.GradientTape() as tape:
        tape.watch(zeros)
        with probe_scope({k: z for (k, _), z in zip(probes, zeros)}):
            y_pred = model(x, training=training)
            loss = model.probe_loss(y, y_pred, sample_weight)
    return tape.gradient(loss, zeros)


_probe_gradients_fn = tf.function(probe_gradients, reduce_retracing=True)


class CaptureTrainer:
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `model.capture_kernel_gradients` is on."""

    def compiled_probe_gradients(self, *args, **kwargs):
        return _probe_gradients_fn(self, *args, **kwargs)

    def train_step(self, data):
        if not self._capture_active():
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probes = self._capture_probes()
        zeros = [tf.zeros(shape) for _, shape in probes]
        weights = self.trainable_weights
        with tf.GradientTape() as tape:
            tape.watch(zeros)
            with probe_scope({k: z for (k, _), z in zip(probes, zeros)}):
                y_pred = self(x, training=True)
                loss = self._compute_loss(
                    x=x,
                    y=y,
                    y_pred=y_pred,
                    sample_weight=sample_weight,
                    training=True,
                )
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            batch = tf.shape(tf.nest.flatten(x)[0])[0]
            self._loss_tracker.update_state(
                loss * replicas, sample_weight=batch
            )
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
        for acc, grad in zip(self._kernel_accumulators, grads[len(weights) :]):
            if grad is not None:  # None: a member that does not train
                acc.assign_add(grad * (replicas / scale))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def replica_count() -> int:
    """Replicas of the current `tf.distribute` strategy (1 outside one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync
