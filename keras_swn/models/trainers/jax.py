"""JAX: probe gradients by differentiating a function of the probes."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import keras

from keras_swn.models.trainers.common import batch_statistics
from keras_swn.models.trainers.common import loss_metric
from keras_swn.models.trainers.common import split_targets
from keras_swn.models.trainers.common import trained_outputs
from keras_swn.probe import probe_scope


def probed(fn: Callable, keys: list) -> Callable:
    """The capture primitive: `fn(*args)` as a function `(zeros, *args)`
    that runs with the zero probes `zeros` in scope, so that `jax.grad`
    with respect to argument 0 gives the probe gradients."""

    def with_probes(zeros, *args):
        with probe_scope(dict(zip(keys, zeros))):
            return fn(*args)

    return with_probes


def _zeros(shapes: list) -> list:
    return [jnp.zeros(shape) for shape in shapes]


def probe_gradients(
    model, x, y, sample_weight, probes, training=False, batch_stats=True
):
    """Gradients of `model.probe_loss` w.r.t. zero probes (see
    tensorflow.py), jitted once per model, probe set and mode."""
    keys, shapes = [k for k, _ in probes], [s for _, s in probes]
    cache = model.__dict__.setdefault("_swn_jit_cache", {})
    with_stats = bool(batch_stats and not training)
    key = (tuple(keys), bool(training), with_stats)
    if key not in cache:

        def loss(tv, ntv, x, y, sample_weight):
            y_pred, _ = model.stateless_call(tv, ntv, x, training=training)
            return model.probe_loss(y, y_pred, sample_weight)

        gradients = jax.grad(probed(loss, keys))

        def run(zeros, tv, ntv, x, y, sample_weight):
            if with_stats:  # outside `gradients`: the statistics are constants
                variables = model.non_trainable_variables
                mapping = list(zip(model.trainable_variables, tv))
                stats = batch_statistics(
                    model, x, mapping + list(zip(variables, ntv))
                )
                new = {id(v): value for v, value in stats}
                ntv = [new.get(id(v), n) for v, n in zip(variables, ntv)]
            return gradients(zeros, tv, ntv, x, y, sample_weight)

        cache[key] = jax.jit(run)
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    return cache[key](_zeros(shapes), tv, ntv, x, y, sample_weight)


class CaptureTrainer:
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `capture_targets()` returns them.

    The step is stateless: the accumulators travel in the non-trainable
    state, so they survive `jax.jit`; read them after `jax_state_sync()`.
    """

    def train_step(self, state, data):
        targets = self.capture_targets()
        if targets is None:
            return super().train_step(state, data)
        tv, ntv, ov, mv = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        keys, shapes, accumulators = split_targets(targets)

        def loss_fn(tv, ntv, mv):
            return self.compute_loss_and_updates(
                tv,
                ntv,
                mv,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=ov,
            )

        (_, aux), (probe_grads, grads) = jax.value_and_grad(
            probed(loss_fn, keys), argnums=(0, 1), has_aux=True
        )(_zeros(shapes), tv, ntv, mv)
        unscaled_loss, y_pred, ntv, mv = aux
        y_pred = trained_outputs(self, y_pred)
        # A loss-scaling optimizer (mixed_float16) scaled the loss; unscale
        # the probe gradients by the same factor (read from the old state).
        mapping = list(zip(self.optimizer.variables, ov))
        with keras.StatelessScope(state_mapping=mapping):
            scale = self.optimizer.scale_loss(jnp.ones(()))
        probe_grads = [g / scale for g in probe_grads]
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        ntv = list(ntv)
        index = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        for acc, grad in zip(accumulators, probe_grads):
            i = index[id(acc)]
            ntv[i] = ntv[i] + grad
        logs, mv = self._metrics_update(
            mv, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (tv, ntv, ov, mv)

    def _metrics_update(self, mv, loss, x, y, y_pred, sample_weight):
        """Update the loss tracker and the metrics statelessly, as Keras'
        JAX `train_step` does (public API only)."""
        mapping = list(zip(self.metrics_variables, mv))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            batch = next(i for i in jax.tree.leaves(x) if i is not None)
            loss_metric(self).update_state(loss, sample_weight=batch.shape[0])
            logs = self.compute_metrics(x, y, y_pred, sample_weight)
        new = [scope.get_current_value(v) for v in self.metrics_variables]
        return logs, [
            v.value if n is None else n
            for v, n in zip(self.metrics_variables, new)
        ]


def replica_count() -> int:
    """Losses are global on this backend: no per-replica scaling."""
    return 1
