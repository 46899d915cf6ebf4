"""Callbacks that drive gradient capture during `fit`."""

from __future__ import annotations

from typing import Iterable

import keras

__all__ = ["KernelGradientCapture"]


class KernelGradientCapture(keras.callbacks.Callback):
    """Accumulate each shared layer's dL/dkernel during chosen epochs.

    At the start of each chosen epoch the model's accumulators are zeroed
    and capture is switched on (the train function is retraced once); at the
    end of the epoch the sums are read into `gradients[epoch]` (per member,
    layer name -> NumPy array) and capture is switched off. The model must
    be built with `capture_kernel_gradients=True`.

    Args:
        epochs: the 0-based epochs to capture.
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
