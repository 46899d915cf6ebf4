"""JAX: probe gradients by differentiating a function of the probes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras

from keras_swn.probe import probe_scope


def _loss_of_probes(model, tv, ntv, zeros, keys, x, y, sample_weight, training):
    with probe_scope(dict(zip(keys, zeros))):
        y_pred, _ = model.stateless_call(tv, ntv, x, training=training)
        return model.probe_loss(y, y_pred, sample_weight)


def probe_gradients(model, x, y, sample_weight, probes, training=False):
    """Gradients of the model's loss w.r.t. zero probes (see tensorflow.py)."""
    keys = [k for k, _ in probes]
    zeros = [jnp.zeros(shape) for _, shape in probes]
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    return jax.grad(
        lambda z: _loss_of_probes(
            model, tv, ntv, z, keys, x, y, sample_weight, training
        )
    )(zeros)


class CaptureTrainer:
    """`train_step` that also adds dL/dkernel of every shared layer into
    accumulator variables while `model.capture_kernel_gradients` is on.

    The step is stateless: the accumulators travel in the non-trainable
    state, so they survive `jax.jit`; read them after `jax_state_sync()`.
    """

    def compiled_probe_gradients(self, x, y, sample_weight, probes, training):
        keys = [k for k, _ in probes]
        cache = self.__dict__.setdefault("_swn_jit_cache", {})
        key = (tuple(keys), bool(training))
        if key not in cache:

            def fn(tv, ntv, zeros, x, y, sample_weight):
                return jax.grad(
                    lambda z: _loss_of_probes(
                        self, tv, ntv, z, keys, x, y, sample_weight, training
                    )
                )(zeros)

            cache[key] = jax.jit(fn)
        zeros = [jnp.zeros(shape) for _, shape in probes]
        tv = [v.value for v in self.trainable_variables]
        ntv = [v.value for v in self.non_trainable_variables]
        return cache[key](tv, ntv, zeros, x, y, sample_weight)

    def train_step(self, state, data):
        if not self._capture_active():
            return super().train_step(state, data)
        tv, ntv, ov, mv = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        probes = self._capture_probes()
        keys = [k for k, _ in probes]
        zeros = [jnp.zeros(shape) for _, shape in probes]

        def loss_fn(tv, zeros, ntv, mv):
            with probe_scope(dict(zip(keys, zeros))):
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

        (_, aux), (grads, probe_grads) = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True
        )(tv, zeros, ntv, mv)
        unscaled_loss, y_pred, ntv, mv = aux
        # A loss-scaling optimizer (mixed_float16) scaled the loss; unscale
        # the probe gradients by the same factor (read from the old state).
        mapping = list(zip(self.optimizer.variables, ov))
        with keras.StatelessScope(state_mapping=mapping):
            scale = self.optimizer.scale_loss(jnp.ones(()))
        probe_grads = [g / scale for g in probe_grads]
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        ntv = list(ntv)
        index = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        for acc, grad in zip(self._kernel_accumulators, probe_grads):
            i = index[id(acc)]
            ntv[i] = ntv[i] + grad
        logs, mv = self._update_metrics_variables(
            mv, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (tv, ntv, ov, mv)


def replica_count() -> int:
    """Losses are global on this backend: no per-replica scaling."""
    return 1
