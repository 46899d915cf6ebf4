"""The member-builder protocol: how an architecture becomes an SWN member."""

from __future__ import annotations

from typing import Sequence

import keras

from keras_swn.api_export import swn_export
from keras_swn.bank.budget_report import MemberBudget
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.layers.super_weight_conv2d import SuperWeightConv2D
from keras_swn.layers.super_weight_dense import SuperWeightDense
from keras_swn.policy.layer_spec import LayerSpec


class LayerFactory:
    """Creates the shared layers of one member, in construction order.

    A member builder asks the factory for every layer whose kernel should come
    from the shared bank; the factory numbers them (the layer ids of the
    algorithm page, [Shared layers and layer ids][layer-ids]) and returns
    [`SuperWeightConv2D`][keras_swn.layers.SuperWeightConv2D] /
    [`SuperWeightDense`][keras_swn.layers.SuperWeightDense] layers bound to
    `bank`. With `bank=None` it returns stock Keras layers instead, which is how
    the shapes of a user's architecture are traced before any bank exists.

    Args:
        bank: the shared [`TemplateBank`][keras_swn.TemplateBank], or None to
            trace shapes.
        member: int, the member index.
        seed: int or None, a seed for the member's own initialisers (a
            builder passes it to e.g. its classifier's initializer).

    Examples:
        Without a bank (`bank=None`), the factory returns stock Keras layers
        and records what it created:

        >>> factory = keras_swn.models.LayerFactory(bank=None, member=0)
        >>> conv = factory.conv2d(8, 3, padding=1, name="conv")
        >>> head = factory.dense(10, name="head")
        >>> [(kind, name) for kind, name, _ in factory.created]
        [('conv2d', 'conv'), ('dense', 'head')]
        >>> tuple(conv(keras.ops.ones((1, 8, 8, 3))).shape)
        (1, 8, 8, 8)
    """

    def __init__(
        self, bank: TemplateBank | None, member: int, seed: int | None = None
    ):
        self.bank = bank
        self.member = member
        self.seed = seed
        self.created: list[tuple[str, str, keras.layers.Layer]] = []

    def _next_key(self) -> tuple[int, int]:
        return (self.member, len(self.created))

    def conv2d(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        *,
        strides: int | tuple[int, int] = 1,
        padding="valid",
        name: str | None = None,
    ) -> keras.layers.Layer:
        """A shared convolution (no bias), PyTorch-style `padding` allowed.

        Args:
            filters: int, output channels.
            kernel_size: an int or a `(kh, kw)` pair.
            strides: an int or a pair.
            padding (str | int | tuple): `"valid"`, `"same"`, an int `p`
                (pad `p` on every side, as PyTorch) or
                `((top, bottom), (left, right))`.
            name: the layer name.

        Returns:
            A [`SuperWeightConv2D`][keras_swn.layers.SuperWeightConv2D] reading
            the bank, or a stock Keras convolution when the factory has no bank.
        """
        name = name or f"conv_{len(self.created)}"
        if self.bank is None:
            layer = _TracedConv2D(filters, kernel_size, strides, padding, name)
        else:
            layer = SuperWeightConv2D(
                filters,
                kernel_size,
                strides=strides,
                padding=padding,
                bank=self.bank,
                layer_key=self._next_key(),
                name=name,
            )
        self.created.append(("conv2d", name, layer))
        return layer

    def dense(
        self,
        units: int,
        *,
        activation=None,
        use_bias: bool = True,
        name: str | None = None,
    ) -> keras.layers.Layer:
        """A shared dense layer (its bias stays a plain per-layer weight).

        Args:
            units: int, output units.
            activation (str | Callable | None): a Keras activation.
            use_bias: bool, add a (per-layer, unshared) bias.
            name: the layer name.

        Returns:
            A [`SuperWeightDense`][keras_swn.layers.SuperWeightDense] reading
            the bank, or a stock Keras `Dense` when the factory has no bank.
        """
        name = name or f"dense_{len(self.created)}"
        if self.bank is None:
            layer = keras.layers.Dense(
                units, activation=activation, use_bias=use_bias, name=name
            )
        else:
            layer = SuperWeightDense(
                units,
                activation=activation,
                use_bias=use_bias,
                bank=self.bank,
                layer_key=self._next_key(),
                name=name,
            )
        self.created.append(("dense", name, layer))
        return layer


class _TracedConv2D(keras.layers.Layer):
    """A stock convolution (with explicit padding) used to trace shapes."""

    def __init__(self, filters, kernel_size, strides, padding, name):
        super().__init__(name=name)
        explicit = not isinstance(padding, str)
        if explicit and isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        self.pad = keras.layers.ZeroPadding2D(padding) if explicit else None
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="valid" if explicit else padding,
            use_bias=False,
        )

    def call(self, x):
        return self.conv(self.pad(x) if self.pad is not None else x)


@swn_export
class MemberBuilder:
    """Base class of the architectures that can be members of an `SWNModel`.

    To use your own architecture, subclass it and implement `__call__`: build
    the member's graph from `inputs`, creating every layer whose kernel should
    come from the shared templates through `layers` (a
    [`LayerFactory`][keras_swn.models.member_builder.LayerFactory]:
    `layers.conv2d(...)`, `layers.dense(...)`), and any other layer
    (normalisation, activations, a plain classifier) as usual. Return the
    logits. Layer ids are the order of the `layers.*` calls. Implement
    `get_config` if the constructor takes arguments. The shapes of the shared
    layers are traced once with stock layers (`layer_specs`); override
    `layer_specs` and `unshared_params` with closed forms when the architecture
    is large (as [`WideResNet`][keras_swn.models.wide_resnet.WideResNet] does).

    Examples:
        >>> class TinyNet(keras_swn.models.MemberBuilder):
        ...     def __call__(self, inputs, layers, num_classes):
        ...         x = layers.conv2d(8, 3, padding=1, name="conv")(inputs)
        ...         x = keras.layers.GlobalAveragePooling2D()(x)
        ...         return keras.layers.Dense(num_classes, name="head")(x)
        >>> [s.shape for s in TinyNet().layer_specs((8, 8, 3))]
        [(8, 3, 3, 3)]
    """

    def __call__(self, inputs, layers: LayerFactory, num_classes: int):
        raise NotImplementedError(
            f"{type(self).__name__} must implement "
            "`__call__(inputs, layers, num_classes)`."
        )

    @property
    def name(self) -> str:
        return type(self).__name__

    def _trace(self, input_shape, num_classes: int):
        factory = LayerFactory(None, 0)
        inputs = keras.Input(tuple(input_shape))
        outputs = self(inputs, factory, num_classes)
        model = keras.Model(inputs, outputs)
        return factory, model

    def layer_specs(
        self, input_shape: Sequence[int], member: int = 0
    ) -> list[LayerSpec]:
        """The shared layers of this member, traced with stock layers.

        Args:
            input_shape: the shape of one input, e.g. `(32, 32, 3)`.
            member: the member index the specs are labelled with.

        Returns:
            A list of [`LayerSpec`][keras_swn.LayerSpec], in layer-id order.
        """
        factory, _ = self._trace(input_shape, 2)
        specs = []
        for layer_id, (kind, name, layer) in enumerate(factory.created):
            if kind == "conv2d":
                kh, kw, i, o = layer.conv.kernel.shape
                shape = (o, i, kh, kw)
            else:
                i, o = layer.kernel.shape
                shape = (o, i, 1, 1)
            specs.append(LayerSpec(member, layer_id, kind, shape, name))
        return specs

    def unshared_params(
        self, input_shape: Sequence[int], num_classes: int
    ) -> MemberBudget:
        """Parameter counts of this member built without sharing.

        Args:
            input_shape: the shape of one input.
            num_classes: classes of the head.

        Returns:
            A [`MemberBudget`][keras_swn.MemberBudget].
        """
        factory, model = self._trace(input_shape, num_classes)
        shared = 0
        for kind, _, layer in factory.created:
            kernel = layer.conv.kernel if kind == "conv2d" else layer.kernel
            shared += int(keras.ops.size(kernel))
        trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
        return MemberBudget(
            name=self.name,
            conv_params_unshared=shared,
            params_unshared=trainable,
            unshared_trainable=trainable - shared,
        )

    def build_member(
        self,
        bank: TemplateBank,
        member: int,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        name: str,
        seed: int | None = None,
    ) -> keras.Model:
        """This member as a functional model reading `bank`.

        Args:
            bank: the [`TemplateBank`][keras_swn.TemplateBank] the shared layers
                read.
            member: the member index (selects its layers in the plan).
            input_shape: the shape of one input.
            num_classes: classes of the head.
            name: the model name.
            seed: int or `None`, the seed of the member's own (unshared)
                weights.

        Returns:
            A `keras.Model`.
        """
        factory = LayerFactory(bank, member, seed)
        inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
        # Variable paths `member_i/<layer>/<weight>`: unique across members
        # (optimizer slots and checkpoints are keyed by path).
        with keras.name_scope(name):
            outputs = self(inputs, factory, num_classes)
        expected = sum(1 for k in bank.plan.layers if k[0] == member)
        if len(factory.created) != expected:
            raise ValueError(
                f"Member {member} ({self.name}) created "
                f"{len(factory.created)} shared layers, but its layer specs "
                f"list {expected}."
            )
        return keras.Model(inputs, outputs, name=name)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "MemberBuilder":
        """Rebuild a builder from `get_config` output.

        Args:
            config: the dict `get_config` returned.

        Returns:
            The builder.
        """
        return cls(**config)
