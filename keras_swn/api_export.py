"""One decorator makes a class public and Keras-serialisable."""

from __future__ import annotations

from typing import TypeVar

import keras

T = TypeVar("T", bound=type)


def swn_export(cls: T) -> T:
    """Register `cls` for Keras serialisation under the `keras_swn` package."""
    return keras.saving.register_keras_serializable(package="keras_swn")(cls)
