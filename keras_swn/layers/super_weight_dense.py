"""`SuperWeightDense`: a dense layer with a composed kernel."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_swn.api_export import swn_export
from keras_swn.layers.base_super_weight import BaseSuperWeight
from keras_swn.validation import check_int


@swn_export
class SuperWeightDense(BaseSuperWeight):
    """Dense layer whose kernel is rebuilt on every call from templates.

    Computes `activation(inputs @ kernel + bias)`, where `kernel` is composed
    from the bank (a dense kernel is the `(units, in, 1, 1)` case of the
    algorithm's OIHW kernels, returned in Keras' `(in, units)` layout).

    Args:
        units: int, the output dimension.
        activation: the activation (name or callable), or None.
        use_bias: bool, whether to add a (plain, unshared) bias.
        bias_initializer: initializer of the bias.
        **kwargs: the shared-bank arguments below and the base
            layer's arguments (`name`, `dtype`, ...).

    Other Parameters:
        bank (TemplateBank | None):
            [`keras_swn.TemplateBank`][] or None (the
            layer makes its own).
        layer_key (tuple[int, int]): `(member, layer_id)` of this layer
            in `bank`.
        num_templates (int): templates of the layer's own bank (1 to 8).
        seed (int | None): seeds the layer's own bank.

    Input shape:
        N-D tensor `(batch, ..., in)`.

    Output shape:
        N-D tensor `(batch, ..., units)`.

    Examples:
        >>> layer = keras_swn.layers.SuperWeightDense(4, seed=0)
        >>> tuple(layer(keras.ops.ones((2, 8))).shape)
        (2, 4)
    """

    kind = "dense"

    def __init__(
        self,
        units: int,
        *,
        activation: Any = None,
        use_bias: bool = True,
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ):
        units = check_int("units", units, minimum=1)
        super().__init__(
            use_bias=use_bias, bias_initializer=bias_initializer, **kwargs
        )
        self.units = units
        self.activation = keras.activations.get(activation)

    def _kernel_spec_shape(self, input_shape):
        return (self.units, int(input_shape[-1]), 1, 1)

    def call(self, inputs):
        outputs = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }
