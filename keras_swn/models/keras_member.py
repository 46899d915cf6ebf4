"""`KerasMember`: any functional or Sequential Keras model as an SWN member."""

from __future__ import annotations

import json
import warnings
import weakref
from typing import Any
from typing import Callable
from typing import Mapping
from typing import Sequence

import keras

from keras_swn.api_export import swn_export
from keras_swn.bank.budget_report import MemberBudget
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.models.conversion import compress
from keras_swn.models.conversion import graph
from keras_swn.models.conversion.clone import rebuild_graph
from keras_swn.models.conversion.layers import layer_spec
from keras_swn.models.conversion.layers import plain_copy
from keras_swn.models.conversion.layers import super_weight_layer
from keras_swn.models.member_builder import LayerFactory
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.validation import check_choice
from keras_swn.validation import invalid_argument

_INITS = (None, "trained")


class ConversionNotice(UserWarning):
    """A one-line notice of `KerasMember`: kernel layers left unshared, or
    a final softmax dropped."""


@swn_export
class KerasMember(MemberBuilder):
    """A functional or Sequential Keras model, as an SWN member.

    The member is the model rebuilt layer by layer (with
    `keras.models.clone_model`): every shared `Conv2D` and `Dense` becomes
    a `SuperWeightConv2D` / `SuperWeightDense` of the same name whose
    kernel is composed from the shared bank (its bias stays its own), and
    every other layer (BatchNorm, activations, pooling, `Add`,
    `Concatenate`, padding, `Rescaling`, `Normalization`, depthwise
    convolutions, ...) is kept as it is. Layer names and the graph do not
    change, so `keras_swn.export.to_keras` of the member gives back a
    plain model of the original architecture with stored kernels. A
    nested functional or Sequential sub-model is inlined: its layers join
    the member's graph under their own names (a name that occurs twice in
    the model becomes its path, `"block_conv"`), so that gradient capture,
    the refine rebuild and FLOPs see every shared layer. Kept layers
    start from the values they have in `model`.

    Shared by default: every `Conv2D` with `groups=1` and every `Dense`
    except the classifier head (the last `Dense`). Kernel layers without
    a SuperWeight counterpart (`DepthwiseConv2D`, `SeparableConv2D`,
    grouped convolutions, `Conv1D`, ...) are left unshared, with one
    `ConversionNotice` naming them. An SWN member returns logits: a
    final softmax (a `Dense(..., activation="softmax")` or a `Softmax`
    layer at the output) is dropped, with a notice (build
    `keras.applications` models with `classifier_activation=None` to
    avoid it).

    Args:
        model: a functional or Sequential `keras.Model` with one input and
            one output (the logits), built (a Sequential model needs an
            `Input`); channels-last convolutions.
        share: which kernel layers draw their kernels from the bank: None
            (the default above), a predicate `layer -> bool` called on
            every convolution and dense layer (the head is still left out
            unless `share_head=True`), or a list of layer names (or paths
            `"submodel/layer"` inside a nested sub-model), shared exactly.
        share_head: bool, share the classifier head too.
        init: None (templates and coefficients initialised as in any SWN)
            or `"trained"`: fit the bank to `model`'s trained kernels when
            the member is built (least squares per bank; see
            `keras_swn.models.conversion.compress`), so that a trained
            network is compressed into the budget and fine-tuned.
            Members built with it are fitted jointly (each build refits
            the bank to every trained kernel registered so far). `init`
            is not part of the config: a member read back from a file, or
            rebuilt by the refine step, takes its values from there.
        name: the member's display name (default: the model's name).

    Raises:
        ValueError: for a subclassed model (its graph is Python code), a
            model with several inputs or outputs, or a layer in a shared
            position that cannot be shared (named in the message).

    Examples:
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
        >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        >>> outputs = keras.layers.Dense(10, name="head")(x)
        >>> net = keras.Model(inputs, outputs)
        >>> member = keras_swn.models.KerasMember(net)
        >>> [(s.name, s.shape) for s in member.layer_specs((8, 8, 3))]
        [('conv', (8, 3, 3, 3))]
        >>> model = keras_swn.SWNModel([member], (8, 8, 3), 10,
        ...     budget=5_000, seed=0)
        >>> type(model.members[0].get_layer("conv")).__name__
        'SuperWeightConv2D'
    """

    def __init__(
        self,
        model: keras.Model | Mapping,
        share: Callable[[Any], bool] | Sequence[str] | None = None,
        *,
        share_head: bool = False,
        init: str | None = None,
        name: str | None = None,
    ):
        self.init = check_choice("init", init, _INITS)
        self.share_head = bool(share_head)
        self._fitted: tuple | None = None
        if isinstance(model, Mapping):  # from `get_config`: built lazily
            self._model = None
            self._model_config = _plain(model)
            if share is None or callable(share):
                raise invalid_argument(
                    "share",
                    "A KerasMember built from a serialized model takes the "
                    "list of shared layer names.",
                    share,
                )
            self._shared = tuple(share)
            self._name = name or str(
                self._model_config.get("config", {}).get("name", "model")
            )
            return
        self._model = graph.check_graph_model(model)
        self._model_config = _plain(keras.saving.serialize_keras_object(model))
        selection = graph.select_layers(model, share, self.share_head)
        self._shared = selection.shared
        self._name = name or model.name
        if not self._shared:
            raise invalid_argument(
                "share",
                f"No layer of '{model.name}' is shared: a member needs at "
                "least one `Conv2D` or `Dense` drawing from the bank.",
                share,
            )
        notes = []
        if selection.left_out:
            notes.append(
                f"left unshared (no SuperWeight layer): "
                f"{', '.join(selection.left_out)}"
            )
        dropped = graph.softmax_output(model)
        if dropped is not None:
            notes.append(
                f"final softmax of layer '{dropped.name}' dropped (an SWN "
                "member returns logits)"
            )
        if notes:
            warnings.warn(
                f"KerasMember('{model.name}'): " + "; ".join(notes) + ".",
                ConversionNotice,
                stacklevel=2,
            )

    # ------------------------------------------------------------------
    @property
    def model(self) -> keras.Model:
        """The Keras model this member converts.

        Rebuilt from its config, with fresh weights, for a member read back
        from a file.
        """
        if self._model is None:
            self._model = graph.check_graph_model(
                # A copy: deserializing consumes parts of the config.
                keras.saving.deserialize_keras_object(
                    _plain(self._model_config)
                )
            )
        return self._model

    @property
    def name(self) -> str:
        return self._name

    @property
    def shared_layers(self) -> tuple[str, ...]:
        """Paths of the shared layers, in layer-id order."""
        return self._shared

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input (no batch dimension)."""
        shape = self.model.inputs[0].shape[1:]
        if any(d is None for d in shape):
            raise ValueError(
                f"The input of '{self.name}' has unknown dimensions "
                f"{tuple(shape)}: build the model for a fixed input shape "
                "(e.g. `input_shape=(32, 32, 3)`)."
            )
        return tuple(int(d) for d in shape)

    @property
    def num_classes(self) -> int:
        """The size of the model's output (the classes of its head)."""
        return int(self.model.outputs[0].shape[-1])

    def _layers(self) -> dict[str, Any]:
        """The shared layers of the model by path, in layer-id order."""
        found = {p: l for p, l in graph.walk(self.model) if p in self._shared}
        missing = [p for p in self._shared if p not in found]
        if missing:
            raise ValueError(
                f"'{self.name}' has no layers {missing}; its layers changed "
                "since the member was made."
            )
        return {p: found[p] for p in self._shared}

    # ------------------------------------------------------------------
    def layer_specs(
        self, input_shape: Sequence[int], member: int = 0
    ) -> list[LayerSpec]:
        """The shared layers of the model, read from its built layers.

        Args:
            input_shape: the shape of one input (must be the model's).
            member: the member index the specs are labelled with.

        Returns:
            A list of `LayerSpec`, in layer-id order (graph order).
        """
        self._check_shapes(input_shape, None)
        names = graph.flat_names(self.model)
        return [
            layer_spec(layer, member, i, names[path])
            for i, (path, layer) in enumerate(self._layers().items())
        ]

    def unshared_params(
        self, input_shape: Sequence[int], num_classes: int
    ) -> MemberBudget:
        """Parameter counts of the model as it is (no sharing).

        Args:
            input_shape: the shape of one input.
            num_classes: classes of the head.

        Returns:
            A `MemberBudget`.
        """
        shared = sum(
            int(keras.ops.size(layer.kernel))
            for layer in self._layers().values()
        )
        trainable = sum(
            int(keras.ops.size(v)) for v in self.model.trainable_weights
        )
        return MemberBudget(
            name=self.name,
            conv_params_unshared=shared,
            params_unshared=trainable,
            unshared_trainable=trainable - shared,
        )

    def _check_shapes(self, input_shape, num_classes) -> None:
        if tuple(int(d) for d in input_shape) != self.input_shape:
            raise invalid_argument(
                "input_shape",
                f"Member '{self.name}' takes inputs of shape "
                f"{self.input_shape}.",
                tuple(input_shape),
            )
        if num_classes is not None and num_classes != self.num_classes:
            raise invalid_argument(
                "num_classes",
                f"Member '{self.name}' has {self.num_classes} outputs.",
                num_classes,
            )

    def __call__(self, inputs, layers: LayerFactory, num_classes: int):
        raise NotImplementedError(
            "KerasMember builds its member with `build_member`."
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
        """The model rebuilt with its shared layers reading `bank`.

        Args:
            bank: the `TemplateBank` the shared layers read.
            member: the member index (selects its layers in the plan).
            input_shape: the shape of one input (the model's).
            num_classes: classes of the head (the model's).
            name: the model name.
            seed: unused: kept layers start from the model's values.

        Returns:
            A functional `keras.Model`.
        """
        self._check_shapes(input_shape, num_classes)
        source = self.model
        shared = self._layers()
        keys = {id(l): (member, i) for i, l in enumerate(shared.values())}
        expected = sum(1 for k in bank.plan.layers if k[0] == member)
        if len(keys) != expected:
            raise ValueError(
                f"Member {member} ({self.name}) has {len(keys)} shared "
                f"layers, but the bank's plan lists {expected}."
            )
        softmax = graph.softmax_output(source)
        names = graph.flat_names(source)
        name_of = {id(l): names[p] for p, l in graph.walk(source)}

        def make_layer(layer):
            drop = layer is softmax
            new_name = name_of.get(id(layer), layer.name)
            if id(layer) in keys:
                return super_weight_layer(
                    layer,
                    bank,
                    keys[id(layer)],
                    name=new_name,
                    drop_softmax=drop,
                )
            return plain_copy(layer, name=new_name, drop_softmax=drop)

        first = source.inputs[0]
        # Variable paths `member_i/<layer>/<weight>`: unique across members.
        with keras.name_scope(name):
            inputs = keras.Input(
                batch_shape=tuple(first.shape),
                dtype=first.dtype,
                name=graph.input_name(source),
            )
            outputs = rebuild_graph(source, inputs, make_layer)
        built = keras.Model(inputs, outputs, name=name)
        _copy_kept_weights(source, built, set(shared), names)
        if self.init == "trained":
            compress.fit_member(bank, member, shared)
            self._fitted = (weakref.ref(bank), member, tuple(shared))
        return built

    @property
    def reconstruction_errors(self) -> dict[str, float]:
        """How far each composed kernel is from the trained one.

        After `init="trained"`: `{layer: ||W_fit - W|| / ||W||}`, after the
        latest fit of the bank (members built later refit shared
        templates). Empty before the member is built.
        """
        if self._fitted is None or self._fitted[0]() is None:
            return {}
        bank_ref, member, paths = self._fitted
        names = graph.flat_names(self.model)
        errors = compress.latest_errors(bank_ref(), member)
        return {names[p]: errors[(member, i)] for i, p in enumerate(paths)}

    # ------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "model": _plain(self._model_config),
            "share": list(self._shared),
            "share_head": self.share_head,
            "name": self._name,
        }

    @classmethod
    def from_config(cls, config: dict) -> "KerasMember":
        """Rebuild a member from `get_config` output.

        Lazily: the Keras model is deserialized when first needed.

        Args:
            config: the dict `get_config` returned.

        Returns:
            The `KerasMember`.
        """
        return cls(**config)


def _plain(config: Mapping) -> dict:
    """A serialized model as plain JSON data (lists, not tuples), so that
    a member and its copy read back from a config compare equal."""
    return json.loads(json.dumps(dict(config)))


def _copy_kept_weights(
    source: keras.Model,
    built: keras.Model,
    shared: set[str],
    names: dict[str, str],
) -> None:
    """Give every kept layer of `built` the values of its `source` layer,
    and every shared layer its source bias."""
    for path, layer in graph.walk(source):
        target = built.get_layer(names[path])
        if path in shared:
            if getattr(layer, "use_bias", False):
                target.bias.assign(keras.ops.convert_to_numpy(layer.bias))
        elif layer.weights:
            target.set_weights(layer.get_weights())


def keras_members(
    models: Any, budget: int | float, kwargs: dict
) -> tuple[list, int, dict]:
    """`SWNModel.from_keras`'s arguments resolved: the members, the budget
    as an int, and the `SWNModel` arguments.

    Args:
        models: a Keras model, a member builder, or a list of them.
        budget: an int, or a float in (0, 1] (a fraction of the members'
            shared kernel parameters).
        kwargs: `KerasMember` and `SWNModel` keyword arguments.

    Returns:
        `(members, budget, kwargs)`.
    """
    kwargs = dict(kwargs)
    options = {
        k: kwargs.pop(k) for k in ("share", "share_head", "init") if k in kwargs
    }
    listed = list(models) if isinstance(models, (list, tuple)) else [models]
    if not listed:
        raise invalid_argument(
            "models", "Expected a Keras model or a list of them.", models
        )
    members = [
        m if isinstance(m, MemberBuilder) else KerasMember(m, **options)
        for m in listed
    ]
    first = next((m for m in members if isinstance(m, KerasMember)), None)
    if first is not None:
        kwargs.setdefault("input_shape", first.input_shape)
        kwargs.setdefault("num_classes", first.num_classes)
    if isinstance(budget, float):
        if not 0 < budget <= 1:
            raise invalid_argument(
                "budget",
                "Expected an int (parameters) or a float in (0, 1] (a "
                "fraction of the shared kernels' parameters).",
                budget,
            )
        shape = tuple(kwargs.get("input_shape") or ())
        total = 0
        for i, m in enumerate(members):
            total += sum(s.numel for s in m.layer_specs(shape, member=i))
        budget = max(1, int(budget * total))
    return members, budget, kwargs
