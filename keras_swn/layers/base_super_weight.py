"""Shared machinery of the SuperWeight layers."""

from __future__ import annotations

from typing import Mapping

import keras

from keras_swn.bank.allocation import ALLOCATION_CAP
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.probe import active_probe
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


class BaseSuperWeight(keras.layers.Layer):
    """A layer whose kernel is composed from a `TemplateBank` on every call.

    Either the layer reads layer `layer_key` of a shared `bank` (the way
    `SWNModel` builds its members), or, with `bank=None`, it makes its own
    small bank of `num_templates` full-size templates when it is built.
    """

    kind = "conv2d"
    #: What the last input dimension is called in a build error.
    channels = "last dimension"

    def __init__(
        self,
        *,
        use_bias: bool = False,
        bias_initializer="zeros",
        bank: TemplateBank | Mapping | None = None,
        layer_key: tuple[int, int] | None = None,
        num_templates: int = 4,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(bank, Mapping):
            bank = keras.saving.deserialize_keras_object(bank)
        if bank is not None and not isinstance(bank, TemplateBank):
            raise invalid_argument(
                "bank", "Expected a `keras_swn.TemplateBank` or None.", bank
            )
        if bank is not None and layer_key is None:
            raise invalid_argument(
                "layer_key",
                "Argument `layer_key` is required with a shared `bank`.",
                layer_key,
            )
        num_templates = check_int(
            "num_templates", num_templates, minimum=1, maximum=ALLOCATION_CAP
        )
        self.use_bias = bool(use_bias)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.owns_bank = bank is None
        self.bank = bank
        self.layer_key = None if layer_key is None else tuple(layer_key)
        self.num_templates = num_templates
        self.seed = seed
        if bank is not None and self.layer_key not in bank.plan.layers:
            raise invalid_argument(
                "layer_key", "The bank has no such layer.", layer_key
            )

    def _kernel_spec_shape(self, input_shape) -> tuple[int, int, int, int]:
        """The OIHW kernel shape for these inputs (`out` first)."""
        raise NotImplementedError

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise invalid_argument(
                "input_shape",
                f"The {self.channels} of the inputs must be defined.",
                input_shape,
                shown=f"input_shape={input_shape}",
            )
        self._build_bank(input_shape)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self._kernel_spec_shape(input_shape)[0],),
                initializer=self.bias_initializer,
            )
        self.built = True

    def _build_bank(self, input_shape) -> None:
        shape = self._kernel_spec_shape(input_shape)
        if self.bank is None:
            spec = LayerSpec(0, 0, self.kind, shape, name=self.name)
            # The allocator adds a template only while strictly more than
            # one template's worth is left (the budget rule): the `+ 1`.
            budget = self.num_templates * spec.numel + 1
            self.bank = TemplateBank(
                [spec],
                SharingPolicy(groups=((0,),)),
                budget,
                seed=self.seed,
                name="bank",
            )
            self.layer_key = (0, 0)
        expected = self.bank.plan.layers[self.layer_key].shape
        if tuple(expected) != tuple(shape):
            raise invalid_argument(
                "input_shape",
                f"Layer '{self.name}' reads layer {self.layer_key} of the "
                f"bank, whose kernel is {expected} (out, in, kh, kw), but "
                f"its inputs need {shape}.",
                input_shape,
                shown=f"input_shape={input_shape}",
            )
        self.bank.build()

    @property
    def kernel(self):
        """The composed kernel, in Keras layout and the compute dtype."""
        if self.bank is None or not self.bank.built:
            raise AttributeError(
                "You must build the layer before accessing `kernel`."
            )
        kernel = self.bank.kernel(self.layer_key, dtype=self.compute_dtype)
        probe = active_probe(self)
        if probe is not None:
            kernel = kernel + keras.ops.cast(probe, kernel.dtype)
        return kernel

    def get_config(self):
        config = {
            **super().get_config(),
            "use_bias": self.use_bias,
            "bias_initializer": keras.initializers.serialize(
                self.bias_initializer
            ),
            "num_templates": self.num_templates,
            "seed": self.seed,
        }
        if not self.owns_bank:
            # The object itself, so that Keras' object-sharing scope keeps
            # one bank when several layers hold it (Keras tracks it once).
            config["bank"] = self.bank
            config["layer_key"] = list(self.layer_key)
        return config
