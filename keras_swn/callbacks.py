"""Callbacks: gradient capture during `fit`, a stop on a non-finite loss."""

from __future__ import annotations

import math
from typing import Iterable

import keras

__all__ = ["KernelGradientCapture", "StopOnNonFiniteLoss"]


class KernelGradientCapture(keras.callbacks.Callback):
    """Accumulate each shared layer's dL/dkernel during chosen epochs.

    At the start of each chosen epoch the model's accumulators are zeroed
    and capture is switched on (the train function is retraced once); at the
    end of the epoch the sums are read into `gradients[epoch]` (per member,
    layer name -> NumPy array) and capture is switched off. The model must
    be built with `capture_kernel_gradients=True`.

    Args:
        epochs: the 0-based epochs to capture.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=60_000, seed=0,
        ...     capture_kernel_gradients=True)
        >>> model.compile(optimizer="sgd")
        >>> (x, y), _ = keras_swn.data.load_digits_dataset()
        >>> capture = keras_swn.callbacks.KernelGradientCapture(epochs=[0])
        >>> _ = model.fit(x[:32], y[:32], batch_size=16, epochs=1,
        ...               verbose=0, callbacks=[capture])
        >>> member0 = capture.gradients[0][0]  # epoch 0, member 0
        >>> member0["stage1_block1_conv1"].shape  # dL/dkernel, summed
        (3, 3, 16, 16)
    """

    def __init__(self, epochs: Iterable[int]):
        super().__init__()
        self.epochs = sorted({int(e) for e in epochs})
        self.gradients: dict[int, list[dict]] = {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch in self.epochs:
            self.model.start_kernel_gradient_capture()

    def on_epoch_end(self, epoch, logs=None):
        if epoch in self.epochs:
            self.gradients[epoch] = self.model.accumulated_kernel_gradients()
            self.model.stop_kernel_gradient_capture()


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise a clear error when an epoch ends with a NaN or infinite loss.

    Keras' `TerminateOnNaN` stops training quietly, and a run then ends
    "successfully" with NaN weights. This callback raises instead, at the end of
    the epoch (one check per epoch, no per-step host sync), before anything
    after `fit` saves the epoch:
    [`SearchAndRefine`][keras_swn.search.SearchAndRefine] keeps the checkpoint
    of the last good epoch, so a rerun with a lower learning rate resumes from
    there.

    Raises:
        FloatingPointError: naming the epoch, the logged value and what to
            change.

    Examples:
        >>> callback = keras_swn.callbacks.StopOnNonFiniteLoss()
        >>> callback.on_epoch_end(0, {"loss": 0.5})
        >>> callback.on_epoch_end(1, {"loss": float("nan")})
        Traceback (most recent call last):
        ...
        FloatingPointError: The training loss is nan at the end of epoch 2...
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(keras.ops.convert_to_numpy(loss))
        if not math.isfinite(value):
            raise FloatingPointError(
                f"The training loss is {value} at the end of epoch "
                f"{epoch + 1}: training diverged (a learning rate too high, "
                "or non-finite inputs). Nothing of this epoch was saved; "
                "lower the learning rate (`learning_rate`) or check "
                "the data, then rerun."
            )
