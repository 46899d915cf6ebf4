"""`SuperWeightConv2D`: a 2D convolution with a composed kernel."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_swn.api_export import swn_export
from keras_swn.layers.base_super_weight import BaseSuperWeight
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise invalid_argument(
            name, "Expected an int or a tuple of 2 ints.", value
        ) from None
    if a < 1 or b < 1:
        raise invalid_argument(
            name, "Expected strictly positive values.", value
        )
    return (a, b)


def _padding(value) -> str | tuple[tuple[int, int], tuple[int, int]]:
    if value in ("valid", "same"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return ((value, value), (value, value))
    try:
        (t, b), (l, r) = value
        out = ((int(t), int(b)), (int(l), int(r)))
    except (TypeError, ValueError):
        out = None
    if out is None or min(min(p) for p in out) < 0:
        raise invalid_argument(
            "padding",
            "Expected 'valid', 'same', a non-negative int, or "
            "((top, bottom), (left, right)).",
            value,
        )
    return out


@swn_export
class SuperWeightConv2D(BaseSuperWeight):
    """2D convolution whose kernel is rebuilt on every call from templates.

    The kernel is not a variable: `kernel` composes it from the bank's templates
    and this layer's coefficient vectors (see the algorithm page, [Kernel
    assembly][kernel-assembly]), so gradients reach the templates and
    coefficients. `call()` pads (if asked), then runs `keras.ops.conv` with that
    kernel.

    Args:
        filters: int, the number of output channels.
        kernel_size: int or tuple of 2 ints.
        strides: int or tuple of 2 ints.
        padding: `"valid"`, `"same"`, or PyTorch-style explicit zero
            padding: an int `p` pads `p` on every side (what a PyTorch
            `padding=1` does, also with stride 2), or
            `((top, bottom), (left, right))`.
        use_bias: bool, whether to add a (plain, unshared) bias.
        bias_initializer: initializer of the bias.
        dilation_rate: int or tuple of 2 ints, the dilation of the
            convolution (as `keras.layers.Conv2D`).
        activation: the activation applied after the bias (name or
            callable), or None.
        data_format: `"channels_last"` (or None): the only layout; a
            `"channels_first"` layer is refused (transpose the inputs, or
            build the model channels-last).
        **kwargs: the shared-bank arguments below and the base
            layer's arguments (`name`, `dtype`, ...).

    Other Parameters:
        bank (TemplateBank | None):
            [`keras_swn.TemplateBank`][] or None. With
            None the layer makes its own bank of `num_templates` full-size
            templates.
        layer_key (tuple[int, int]): `(member, layer_id)` of this layer
            in `bank`.
        num_templates (int): templates of the layer's own bank (1 to 8).
        seed (int | None): seeds the layer's own bank.

    Input shape:
        4D tensor `(batch, rows, cols, channels)` (channels last).

    Output shape:
        4D tensor `(batch, new_rows, new_cols, filters)`.

    Examples:
        >>> layer = keras_swn.layers.SuperWeightConv2D(8, 3, seed=0)
        >>> tuple(layer(keras.ops.ones((2, 16, 16, 3))).shape)
        (2, 14, 14, 8)
        >>> tuple(layer.kernel.shape)
        (3, 3, 3, 8)

    References:
        - Teterwak et al., "Learning to Compose SuperWeights for Neural
          Parameter Allocation Search", WACV 2024, arXiv 2312.01274.
    """

    kind = "conv2d"
    channels = "channel dimension"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        *,
        strides: int | tuple[int, int] = 1,
        padding: Any = "valid",
        use_bias: bool = False,
        bias_initializer: Any = "zeros",
        dilation_rate: int | tuple[int, int] = 1,
        activation: Any = None,
        data_format: str | None = None,
        **kwargs: Any,
    ):
        filters = check_int("filters", filters, minimum=1)
        if data_format not in (None, "channels_last"):
            raise invalid_argument(
                "data_format",
                "SuperWeight convolutions are channels-last only: build the "
                "model with `data_format='channels_last'` (the Keras "
                "default).",
                data_format,
            )
        super().__init__(
            use_bias=use_bias, bias_initializer=bias_initializer, **kwargs
        )
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if self.dilation_rate != (1, 1) and self.strides != (1, 1):
            raise invalid_argument(
                "dilation_rate",
                "A dilated convolution takes strides 1 (as "
                "keras.layers.Conv2D).",
                dilation_rate,
                shown=f"dilation_rate={dilation_rate!r}, strides={strides!r}",
            )
        self.activation = keras.activations.get(activation)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _kernel_spec_shape(self, input_shape):
        return (self.filters, int(input_shape[-1]), *self.kernel_size)

    def convolution_op(self, inputs, kernel):
        """Pad `inputs` as `padding` says, then convolve with `kernel`.

        Args:
            inputs (Tensor): a `(batch, height, width, channels)` tensor.
            kernel (Tensor): the composed HWIO kernel.

        Returns:
            outputs (Tensor): the convolution's output (no bias).
        """
        padding = self.padding
        if not isinstance(padding, str):
            (t, b), (l, r) = padding
            if t or b or l or r:
                inputs = ops.pad(inputs, [[0, 0], [t, b], [l, r], [0, 0]])
            padding = "valid"
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=padding,
            dilation_rate=self.dilation_rate,
        )

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.kernel)
        if self.bias is not None:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        rows, cols = input_shape[1], input_shape[2]
        out = []
        for size, k, s, d, i in zip(
            (rows, cols),
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            (0, 1),
        ):
            k = (k - 1) * d + 1  # the dilated kernel's extent
            if size is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-size // s))
            else:
                pad = 0 if self.padding == "valid" else sum(self.padding[i])
                out.append((size + pad - k) // s + 1)
        return (input_shape[0], out[0], out[1], self.filters)

    def get_config(self):
        padding = self.padding
        if not isinstance(padding, str):
            padding = [list(p) for p in padding]
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": keras.activations.serialize(self.activation),
        }
