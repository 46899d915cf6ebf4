"""Per-backend training code, chosen at import time as Keras chooses its
own trainer.

Each backend module has one capture primitive, `probed` (zero probes in a
`keras_swn.probe.probe_scope`, made differentiable the backend's way),
used by both of its paths:

- `probe_gradients(model, x, y, sample_weight, probes, training,
  batch_stats)`: the probe gradients of `model.probe_loss` on one batch,
  compiled where the backend compiles (`tf.function`, `jax.jit`); the
  research tools of `keras_swn.models.capture` sum it over data. In
  inference mode with `batch_stats`, BatchNorm reads the batch's own
  statistics (`common.batch_statistics`, a stateless training pass).
- `CaptureTrainer`, a mixin whose `train_step` is Keras' own until
  capture is on, and then also adds each probe's gradient into its
  accumulator variable during `fit`.

What the mixin reads from the model (`SWNModel` provides it):
`capture_targets()` (None, or `(probe, accumulator)` pairs),
`compute_loss(..., training=True)`, `probe_loss`, and the compiled loss
tracker, found by name in the public `metrics` (`loss_metric`).

Keras privates: none. The capturing `train_step` re-states Keras' own
step (3.12-3.15) with public API: `compute_loss` instead of
`_compute_loss` (SWNModel's takes `training`), the loss tracker from
`model.metrics` instead of `_loss_tracker`, and on JAX a
`keras.StatelessScope` instead of `_update_metrics_variables`. It still
follows that step's conventions (the loss tracker's per-replica scaling
on TensorFlow, `compute_loss_and_updates` and the stateless state tuple
on JAX), so a Keras release that changes them needs a look here.
"""

import keras

_BACKEND = keras.backend.backend()
# One branch runs. mypy checks all three and gives `CaptureTrainer` the type
# of the first (TensorFlow's class), so the other two ignore the mismatch.
if _BACKEND == "tensorflow":
    from keras_swn.models.trainers.tensorflow import CaptureTrainer
    from keras_swn.models.trainers.tensorflow import probe_gradients
    from keras_swn.models.trainers.tensorflow import replica_count
elif _BACKEND == "jax":
    from keras_swn.models.trainers.jax import CaptureTrainer  # type: ignore[assignment]
    from keras_swn.models.trainers.jax import probe_gradients
    from keras_swn.models.trainers.jax import replica_count
elif _BACKEND == "torch":
    from keras_swn.models.trainers.torch import CaptureTrainer  # type: ignore[assignment]
    from keras_swn.models.trainers.torch import probe_gradients
    from keras_swn.models.trainers.torch import replica_count
else:  # pragma: no cover
    raise ImportError(
        f"keras_swn supports the tensorflow, jax and torch backends. "
        f"Received: KERAS_BACKEND={_BACKEND!r}"
    )

__all__ = ["CaptureTrainer", "probe_gradients", "replica_count"]
