"""Per-backend gradient code, chosen at import time as Keras chooses its own
trainer: the probe gradient of one batch (`probe_gradients`) and a
`CaptureTrainer` mixin whose `train_step` can also accumulate per-layer
kernel gradients into variables during `fit`."""

import keras

_BACKEND = keras.backend.backend()
if _BACKEND == "tensorflow":
    from keras_swn.models.trainers.tensorflow import CaptureTrainer
    from keras_swn.models.trainers.tensorflow import probe_gradients
    from keras_swn.models.trainers.tensorflow import replica_count
elif _BACKEND == "jax":
    from keras_swn.models.trainers.jax import CaptureTrainer
    from keras_swn.models.trainers.jax import probe_gradients
    from keras_swn.models.trainers.jax import replica_count
elif _BACKEND == "torch":
    from keras_swn.models.trainers.torch import CaptureTrainer
    from keras_swn.models.trainers.torch import probe_gradients
    from keras_swn.models.trainers.torch import replica_count
else:  # pragma: no cover
    raise ImportError(
        f"keras_swn supports the tensorflow, jax and torch backends. "
        f"Received: KERAS_BACKEND={_BACKEND!r}"
    )

__all__ = ["CaptureTrainer", "probe_gradients", "replica_count"]
