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
from keras_swn.validation import check_int
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

    With `channels` instead of `width` the four channel counts are free
    (e.g. a plain network narrowed to a parameter count between two
    integer widths); a block then has a 1x1 shortcut wherever its input
    and output differ in channels or it strides.

    Args:
        depth: int, `6n + 4` with `n >= 1` (10, 16, 22, 28, ...).
        width: int, the widening factor `k`.
        channels: four ints `[stem, stage 1, stage 2, stage 3]`, instead
            of `width` (`width=k` is `channels=[16, 16k, 32k, 64k]`).

    Raises:
        ValueError: naming `depth`, `width` or `channels` when one is
            invalid, or when neither or both of `width` and `channels`
            are given.

    Examples:
        >>> wrn = keras_swn.models.WideResNet(16, 4)
        >>> len(wrn.layer_specs((32, 32, 3)))
        16
        >>> narrow = keras_swn.models.WideResNet(16, channels=[16, 14, 28, 57])
        >>> narrow.name
        'WRN-16 (16-14-28-57)'
        >>> narrow.unshared_params((32, 32, 3), 10).params_unshared
        138139
    """

    def __init__(
        self,
        depth: int,
        width: int | None = None,
        *,
        channels: Sequence[int] | None = None,
    ):
        if (width is None) == (channels is None):
            raise invalid_argument(
                "channels",
                "Give either `width` (the widening factor) or `channels` "
                "(four channel counts), not both or neither.",
                channels,
            )
        if channels is not None:
            if isinstance(channels, (str, bytes)) or len(channels) != 4:
                raise invalid_argument(
                    "channels",
                    "Expected four ints >= 1: [stem, stage 1, stage 2, "
                    "stage 3].",
                    channels,
                )
            for value in channels:
                check_int("channels", value, minimum=1)
            channels = [int(c) for c in channels]
        # Validates depth and width (raises ValueError naming them).
        wide_resnet_param_counts(
            depth, 1 if width is None else width, num_classes=1
        )
        self.depth = depth
        self.width = width
        self.channels = channels

    @property
    def name(self) -> str:
        if self.channels is not None:
            return f"WRN-{self.depth} ({'-'.join(map(str, self.channels))})"
        return f"WRN-{self.depth}-{self.width}"

    def _widths(self) -> list[int]:
        if self.channels is not None:
            return list(self.channels)
        assert self.width is not None  # given when channels is not
        k = int(self.width)
        return [16, 16 * k, 32 * k, 64 * k]

    def _channel_specs(self, in_channels: int, member: int) -> list[LayerSpec]:
        """The shared layers with free channels, in construction order."""
        widths, n = self._widths(), (self.depth - 4) // 6
        shapes = [((widths[0], in_channels, 3, 3), "stem")]
        c_in = widths[0]
        for s in range(1, 4):
            for b in range(1, n + 1):
                c_out, p = widths[s], f"stage{s}_block{b}"
                shapes += [
                    ((c_out, c_in, 3, 3), f"{p}_conv1"),
                    ((c_out, c_out, 3, 3), f"{p}_conv2"),
                ]
                if c_in != c_out or (s > 1 and b == 1):
                    shapes.append(((c_out, c_in, 1, 1), f"{p}_shortcut"))
                c_in = c_out
        return [
            LayerSpec(member, i, "conv2d", shape, name)
            for i, (shape, name) in enumerate(shapes)
        ]

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
        if self.channels is not None:
            return self._channel_specs(int(input_shape[-1]), member)
        assert self.width is not None  # given when channels is not
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
        if self.channels is not None:
            specs = self._channel_specs(int(input_shape[-1]), 0)
            conv = sum(s.numel for s in specs)
            # Two BatchNorms per block (gamma, beta over the input of each
            # conv), the head's BatchNorm and the classifier.
            bn = sum(2 * s.shape[1] for s in specs if s.name.endswith("conv1"))
            bn += sum(2 * s.shape[1] for s in specs if s.name.endswith("conv2"))
            final = self.channels[-1]
            other = bn + 2 * final + final * num_classes + num_classes
            return MemberBudget(
                name=self.name,
                conv_params_unshared=conv,
                params_unshared=conv + other,
                unshared_trainable=other,
            )
        assert self.width is not None  # given when channels is not
        return wide_resnet_member_budget(
            self.name,
            self.depth,
            self.width,
            in_channels=int(input_shape[-1]),
            num_classes=num_classes,
        )

    def __call__(self, inputs, layers: LayerFactory, num_classes: int):
        n = (self.depth - 4) // 6
        widths = self._widths()

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
        if self.channels is not None:
            return {"depth": self.depth, "channels": list(self.channels)}
        return {"depth": self.depth, "width": self.width}
