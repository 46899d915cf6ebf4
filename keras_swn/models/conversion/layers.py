"""One Keras `Conv2D` / `Dense` as a SuperWeight layer, and its spec."""

from __future__ import annotations

from typing import Any

import keras

from keras_swn.bank.template_bank import TemplateBank
from keras_swn.layers.super_weight_conv2d import SuperWeightConv2D
from keras_swn.layers.super_weight_dense import SuperWeightDense
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import OIHW


def kernel_shape(layer: Any) -> OIHW:
    """The OIHW kernel shape `(out, in, kh, kw)` of a built `Conv2D` or
    `Dense` (`(units, in, 1, 1)`)."""
    shape = tuple(int(d) for d in layer.kernel.shape)
    if len(shape) == 4:
        kh, kw, i, o = shape
        return (o, i, kh, kw)
    i, o = shape
    return (o, i, 1, 1)


def layer_spec(layer: Any, member: int, layer_id: int, path: str) -> LayerSpec:
    """The `LayerSpec` of a Keras `Conv2D` / `Dense`."""
    kind = "dense" if isinstance(layer, keras.layers.Dense) else "conv2d"
    return LayerSpec(member, layer_id, kind, kernel_shape(layer), path)


def super_weight_layer(
    layer: Any,
    bank: TemplateBank,
    key: tuple[int, int],
    *,
    name: str | None = None,
    drop_softmax: bool = False,
) -> keras.layers.Layer:
    """A SuperWeight layer with `layer`'s name, options and bias, reading
    layer `key` of `bank`.

    Args:
        layer: a Keras `Conv2D` (groups 1, channels last) or `Dense`.
        bank: the shared `TemplateBank`.
        key: `(member, layer_id)` of the layer in the bank's plan.
        name: the new layer's name (default: `layer`'s).
        drop_softmax: bool, build it without its softmax activation (the
            model's final softmax: an SWN member returns logits).

    Returns:
        A `SuperWeightConv2D` or `SuperWeightDense` (not built).
    """
    config = layer.get_config()
    activation = None if drop_softmax else config.get("activation")
    common = dict(
        use_bias=config["use_bias"],
        bias_initializer=config.get("bias_initializer", "zeros"),
        activation=activation,
        bank=bank,
        layer_key=key,
        name=name or layer.name,
        dtype=layer.dtype_policy,
        trainable=layer.trainable,
    )
    if isinstance(layer, keras.layers.Dense):
        return SuperWeightDense(config["units"], **common)
    return SuperWeightConv2D(
        config["filters"],
        tuple(config["kernel_size"]),
        strides=tuple(config["strides"]),
        padding=config["padding"],
        dilation_rate=tuple(config["dilation_rate"]),
        data_format=config.get("data_format") or "channels_last",
        **common,
    )


def plain_copy(
    layer: Any, *, name: str | None = None, drop_softmax: bool = False
) -> Any:
    """A fresh copy of a kept layer from its config, named `name` (default:
    its own name); a final softmax dropped: a `Dense` without activation,
    a `Softmax` / `Activation` layer as a linear `Activation`."""
    config = {**layer.get_config(), "name": name or layer.name}
    if not drop_softmax:
        return layer.__class__.from_config(config)
    if isinstance(layer, keras.layers.Dense):
        return layer.__class__.from_config({**config, "activation": None})
    return keras.layers.Activation(
        "linear", name=config["name"], dtype=layer.dtype_policy
    )
