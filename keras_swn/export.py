"""`to_keras`: one SWN member as a plain Keras model of stock layers."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_swn.layers.super_weight_conv2d import SuperWeightConv2D
from keras_swn.layers.super_weight_dense import SuperWeightDense
from keras_swn.models.swn_model import SWNModel
from keras_swn.validation import check_index
from keras_swn.validation import invalid_argument

__all__ = ["to_keras"]


def _stock_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The stock layer standing in for a SuperWeight layer (no padding)."""
    if isinstance(layer, SuperWeightConv2D):
        padding = layer.padding if isinstance(layer.padding, str) else "valid"
        return keras.layers.Conv2D(
            layer.filters,
            layer.kernel_size,
            strides=layer.strides,
            padding=padding,
            dilation_rate=getattr(layer, "dilation_rate", 1),
            activation=getattr(layer, "activation", None),
            use_bias=layer.use_bias,
            # Overwritten by the composed kernel; "zeros" skips drawing
            # random values for a kernel that is thrown away.
            kernel_initializer="zeros",
            name=layer.name,
            dtype=layer.dtype_policy,
        )
    return keras.layers.Dense(
        layer.units,
        activation=layer.activation,
        use_bias=layer.use_bias,
        kernel_initializer="zeros",
        name=layer.name,
        dtype=layer.dtype_policy,
    )


def to_keras(
    model: Any, member: int = 0, *, name: str | None = None
) -> keras.Model:
    """Turn one SWN member into a plain Keras model with stored kernels.

    Every [`SuperWeightConv2D`][keras_swn.layers.SuperWeightConv2D] becomes a
    stock `keras.layers.Conv2D` (and every
    [`SuperWeightDense`][keras_swn.layers.SuperWeightDense] a
    `keras.layers.Dense`) of the same name whose kernel is the member's composed
    kernel, materialised once. An explicit (PyTorch-style) padding becomes a
    `ZeroPadding2D` layer named `f"{name}_pad"` in front of a `"valid"`
    convolution. Every other layer (BatchNorm, the classifier, activations, ...)
    is cloned from its config and gets a copy of the member's weights. The
    result has the member's outputs (within float tolerance), no tie to the
    bank, and can be saved as `.keras` or exported with `model.export()`.

    The graph is rebuilt with `keras.models.clone_model`, so any functional
    member built with the
    [`MemberBuilder`][keras_swn.models.member_builder.MemberBuilder] protocol
    works.

    Args:
        model: an [`SWNModel`][keras_swn.SWNModel].
        member: int, the member index.
        name: optional name of the new model (default: the member's).

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: if `member` is not a member index.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> plain = keras_swn.export.to_keras(model, member=0)
        >>> type(plain.get_layer("stem")).__name__
        'Conv2D'
        >>> plain.get_layer("stage2_block1_conv1_pad").padding
        ((1, 1), (1, 1))
    """
    if not isinstance(model, SWNModel):
        raise invalid_argument(
            "model", "Expected a keras_swn.SWNModel.", type(model).__name__
        )
    source = model.members[check_index("member", member, len(model.members))]
    padding_of: dict[int, tuple] = {}

    def clone_function(layer):
        if isinstance(layer, (SuperWeightConv2D, SuperWeightDense)):
            clone = _stock_layer(layer)
            if isinstance(layer, SuperWeightConv2D) and not isinstance(
                layer.padding, str
            ):
                padding_of[id(clone)] = layer.padding
            return clone
        return layer.__class__.from_config(layer.get_config())

    def call_function(layer, *args, **kwargs: Any):
        padding = padding_of.get(id(layer))
        if padding is not None:
            if any(p for side in padding for p in side):
                pad = keras.layers.ZeroPadding2D(
                    padding,
                    name=f"{layer.name}_pad",
                    dtype=layer.dtype_policy,
                )
                args = (pad(args[0]), *args[1:])
        return layer(*args, **kwargs)

    # recursive: a nested functional / Sequential sub-model (a converted
    # `KerasMember`) is rebuilt with stock layers too.
    exported = keras.models.clone_model(
        source,
        clone_function=clone_function,
        call_function=call_function,
        recursive=True,
    )
    if name is not None:
        exported = keras.Model(exported.input, exported.output, name=name)
    _copy_weights(source, exported)
    return exported


def _is_graph_model(layer: Any) -> bool:
    """A functional or Sequential model (what `clone_model` recurses
    into)."""
    return any(
        c.__name__ in ("Functional", "Sequential") for c in type(layer).__mro__
    )


def _copy_weights(source: keras.Model, exported: keras.Model) -> None:
    """Composed kernels and every other weight, layer by layer (into
    nested sub-models too)."""
    for layer in source.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        target = exported.get_layer(layer.name)
        if _is_graph_model(layer) and _is_graph_model(target):
            _copy_weights(layer, target)
            continue
        if isinstance(layer, (SuperWeightConv2D, SuperWeightDense)):
            kernel = keras.ops.convert_to_numpy(
                keras.ops.cast(layer.kernel, "float32")
            )
            weights = [kernel]
            if layer.use_bias:
                weights.append(keras.ops.convert_to_numpy(layer.bias))
            target.set_weights(
                [
                    np.asarray(w, dtype=v.dtype)
                    for w, v in zip(weights, target.weights)
                ]
            )
        else:
            target.set_weights(layer.get_weights())
