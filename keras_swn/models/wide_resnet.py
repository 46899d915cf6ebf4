"""`WideResNet`: the CIFAR pre-activation WRN as an SWN member.

See the algorithm page, *Architecture*.
"""

from __future__ import annotations

from typing import Sequence

import keras

from keras_swn.api_export import swn_export
from keras_swn.bank.budget_report import MemberBudget
from keras_swn.models.member_builder import LayerFactory
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.models.wide_resnet_shapes import wide_resnet_member_budget
from keras_swn.models.wide_resnet_shapes import wide_resnet_param_counts
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.validation import invalid_argument


@swn_export
class WideResNet(MemberBuilder):
    """The CIFAR wide residual network (pre-activation), as an SWN member.

    Channels `[16, 16k, 32k, 64k]`, `(depth - 4) / 6` pre-activation basic
    blocks per stage, strides 1, 2, 2 (see the algorithm page, *Architecture*).
    Block:
    `h = relu(bn1(x))`, `out = conv2(relu(bn2(conv1(h))))`, residual `x`
    or a 1x1 convolution of `h` when the width changes. Every convolution
    (stem, block convs, shortcuts) is shared through the bank; BatchNorm
    (momentum 0.9, epsilon 1e-5: PyTorch's defaults) and the classifier
    (He-normal weights, zero bias) belong to the member. The 3x3 convs use
    PyTorch-style explicit padding 1, also at stride 2.

    Args:
        depth: int, `6n + 4` with `n >= 1` (10, 16, 22, 28, ...).
        width: int, the widening factor `k`.

    Examples:
        >>> wrn = keras_swn.models.WideResNet(16, 4)
        >>> len(wrn.layer_specs((32, 32, 3)))
        16
    """

    def __init__(self, depth: int, width: int):
        # Validates both arguments (raises ValueError naming them).
        wide_resnet_param_counts(depth, width, num_classes=1)
        self.depth = depth
        self.width = width

    @property
    def name(self) -> str:
        return f"WRN-{self.depth}-{self.width}"

    def layer_specs(
        self, input_shape: Sequence[int], member: int = 0
    ) -> list[LayerSpec]:
        """The shared layers of this WRN, from its architecture.

        Args:
            input_shape: the shape of one input (its last entry is the
                number of input channels).
            member: the member index the specs are labelled with.

        Returns:
            A list of `LayerSpec`, in layer-id order.

        Raises:
            ValueError: naming `input_shape` unless it is `(H, W, C)`.
        """
        if len(tuple(input_shape)) != 3:
            raise invalid_argument(
                "input_shape",
                "A WideResNet takes images: expected (height, width, "
                "channels).",
                input_shape,
            )
        return wide_resnet_layer_specs(
            self.depth,
            self.width,
            member=member,
            in_channels=int(input_shape[-1]),
        )

    def unshared_params(
        self, input_shape: Sequence[int], num_classes: int
    ) -> MemberBudget:
        """Parameter counts of this WRN built without sharing.

        Args:
            input_shape: the shape of one input.
            num_classes: classes of the head.

        Returns:
            A `MemberBudget`.
        """
        return wide_resnet_member_budget(
            self.name,
            self.depth,
            self.width,
            in_channels=int(input_shape[-1]),
            num_classes=num_classes,
        )

    def __call__(self, inputs, layers: LayerFactory, num_classes: int):
        n = (self.depth - 4) // 6
        widths = [16, 16 * self.width, 32 * self.width, 64 * self.width]

        def bn(name):
            return keras.layers.BatchNormalization(
                momentum=0.9, epsilon=1e-5, name=name
            )

        x = layers.conv2d(widths[0], 3, padding=1, name="stem")(inputs)
        in_width = widths[0]
        for s in range(1, 4):
            for b in range(1, n + 1):
                prefix = f"stage{s}_block{b}"
                stride = (1 if s == 1 else 2) if b == 1 else 1
                out_width = widths[s]
                h = keras.layers.ReLU(name=f"{prefix}_relu1")(
                    bn(f"{prefix}_bn1")(x)
                )
                out = layers.conv2d(
                    out_width,
                    3,
                    strides=stride,
                    padding=1,
                    name=f"{prefix}_conv1",
                )(h)
                out = keras.layers.ReLU(name=f"{prefix}_relu2")(
                    bn(f"{prefix}_bn2")(out)
                )
                out = layers.conv2d(
                    out_width, 3, padding=1, name=f"{prefix}_conv2"
                )(out)
                if in_width != out_width or stride != 1:
                    shortcut = layers.conv2d(
                        out_width,
                        1,
                        strides=stride,
                        name=f"{prefix}_shortcut",
                    )(h)
                else:
                    shortcut = x
                x = keras.layers.Add(name=f"{prefix}_add")([out, shortcut])
                in_width = out_width
        x = keras.layers.ReLU(name="relu")(bn("bn")(x))
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.VarianceScaling(
                2.0, "fan_in", "untruncated_normal", seed=layers.seed
            ),
            name="head",
        )(x)

    def get_config(self) -> dict:
        return {"depth": self.depth, "width": self.width}
