"""Reading a Keras model's graph: which layers a `KerasMember` shares.

Walks a functional or Sequential model (and the functional / Sequential
sub-models nested in it) with public Keras APIs only, classifies every
layer that holds a kernel, and applies the user's `share` choice.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Sequence
from typing import cast

import keras

from keras_swn.validation import invalid_argument

#: Layer classes that hold a kernel but have no SuperWeight counterpart:
#: left unshared by default, refused in a shared position.
_OTHER_KERNEL_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in (
        "Conv1D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
        "EinsumDense",
    )
    if hasattr(keras.layers, name)
)


def is_graph_model(layer: Any) -> bool:
    """Whether `layer` is a functional or Sequential model (a graph that
    can be rebuilt layer by layer), not a subclassed one."""
    return isinstance(layer, keras.Model) and any(
        c.__name__ in ("Functional", "Sequential") for c in type(layer).__mro__
    )


def walk(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(path, layer)` of every layer in graph order, nested sub-models
    entered (their layers' paths are `"sub/layer"`); input layers and the
    sub-models themselves are skipped."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if is_graph_model(layer):
            yield from walk(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def flat_names(model: keras.Model) -> dict[str, str]:
    """`{path: name}`: the name every layer has once nested sub-models are
    inlined. A layer keeps its own name unless another layer of the model
    has it too; then its path with `_` for `/` (`"block_conv"`)."""
    paths = [p for p, _ in walk(model)]
    counts: dict[str, int] = {}
    for p in paths:
        leaf = p.rsplit("/", 1)[-1]
        counts[leaf] = counts.get(leaf, 0) + 1
    return {
        p: (
            p.rsplit("/", 1)[-1]
            if counts[p.rsplit("/", 1)[-1]] == 1
            else p.replace("/", "_")
        )
        for p in paths
    }


def unsupported_reason(layer: Any) -> str | None:
    """Why a kernel layer cannot be shared, or None if it can."""
    if type(layer) is keras.layers.Dense:
        return None
    if type(layer) is keras.layers.Conv2D:
        if getattr(layer, "groups", 1) != 1:
            return f"a grouped convolution (groups={layer.groups})"
        if layer.data_format != "channels_last":
            return (
                f"data_format={layer.data_format!r} (SuperWeight "
                "convolutions are channels-last only)"
            )
        return None
    return f"a {type(layer).__name__}"


def is_kernel_layer(layer: Any) -> bool:
    """Whether `layer` holds a kernel (a convolution or a dense layer)."""
    return isinstance(
        layer, (keras.layers.Conv2D, keras.layers.Dense) + _OTHER_KERNEL_LAYERS
    )


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which kernel layers of a model share, and which do not.

    Attributes:
        shared: paths of the shared layers, in graph order (layer ids).
        left_out: `{path: reason}` of the kernel layers that cannot be
            shared and were left as they are.
        head: path of the classifier head (the last `Dense`), or None.
    """

    shared: tuple[str, ...]
    left_out: dict[str, str]
    head: str | None


def _match(names: Sequence[str], kernel_layers: dict[str, Any]) -> set[str]:
    """The paths `names` select: a path, or a layer name."""
    chosen: set[str] = set()
    unknown = []
    for name in names:
        hits = [
            p for p, layer in kernel_layers.items() if name in (p, layer.name)
        ]
        if not hits:
            unknown.append(name)
        chosen.update(hits)
    if unknown:
        raise invalid_argument(
            "share",
            f"No convolution or dense layer is named {unknown}. Kernel "
            f"layers of the model: {sorted(kernel_layers)[:20]}"
            + (" ..." if len(kernel_layers) > 20 else "")
            + ".",
            list(names),
        )
    return chosen


def select_layers(
    model: keras.Model,
    share: Callable[[Any], bool] | Sequence[str] | None,
    share_head: bool,
) -> Selection:
    """Apply a `KerasMember`'s `share` and `share_head` to `model`.

    Args:
        model: a functional or Sequential model.
        share: None (every `Conv2D` and `Dense` that can be shared), a
            predicate `layer -> bool` called on every kernel layer, or a
            list of layer names / paths (exactly those are shared).
        share_head: bool, share the classifier head (the last `Dense`)
            too; a name list is taken as it is.

    Returns:
        A `Selection`.

    Raises:
        ValueError: naming the layer, when a selected layer cannot be
            shared (a `DepthwiseConv2D`, a grouped or channels-first
            convolution, ...), or when `share` names no such layer.
    """
    kernel_layers = {p: l for p, l in walk(model) if is_kernel_layer(l)}
    dense = [
        p for p, l in kernel_layers.items() if type(l) is keras.layers.Dense
    ]
    head = dense[-1] if dense else None
    explicit = share is not None and not callable(share)
    if explicit:
        if isinstance(share, str):
            share = [share]
        chosen = _match(list(share), kernel_layers)  # type: ignore[arg-type]
    elif share is None:
        # Every Conv2D and Dense; a channels-first Conv2D is refused below.
        chosen = {
            p
            for p, l in kernel_layers.items()
            if type(l) in (keras.layers.Conv2D, keras.layers.Dense)
            and getattr(l, "groups", 1) == 1
        }
    else:
        predicate = cast(Callable[[Any], bool], share)
        chosen = {p for p, l in kernel_layers.items() if predicate(l)}
    if not explicit and not share_head and head is not None:
        chosen.discard(head)
    for path in chosen:
        reason = unsupported_reason(kernel_layers[path])
        if reason is not None:
            raise ValueError(
                f"Layer '{path}' cannot draw its kernel from the shared "
                f"bank: it is {reason}. SuperWeight layers exist for "
                "`Conv2D` (groups=1, channels_last) and `Dense`; leave "
                "the layer unshared with `share=` (a predicate or a list "
                "of the layer names to share)"
                + (
                    ", or build the model channels-last."
                    if "channels" in reason
                    else "."
                )
            )
    left_out = {
        p: str(unsupported_reason(l))
        for p, l in kernel_layers.items()
        if p not in chosen and unsupported_reason(l) is not None
    }
    shared = tuple(p for p in kernel_layers if p in chosen)
    return Selection(shared, left_out, head)


def check_graph_model(model: Any) -> keras.Model:
    """`model` if a `KerasMember` can convert it, else a clear error.

    Raises:
        ValueError: naming `model`, for anything but a built functional
            or Sequential model with one input and one output.
    """
    if not isinstance(model, keras.Model):
        raise invalid_argument(
            "model",
            "Expected a functional or Sequential `keras.Model`.",
            type(model).__name__,
        )
    if not is_graph_model(model):
        raise invalid_argument(
            "model",
            f"'{model.name}' is a subclassed `keras.Model` "
            f"({type(model).__name__}): its graph lives in Python code "
            "(`call`), which KerasMember cannot rebuild. Build it with the "
            "functional API or `keras.Sequential`, or write a "
            "`keras_swn.models.MemberBuilder` for it.",
            type(model).__name__,
            shown=f"model={type(model).__name__}",
        )
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise invalid_argument(
            "model",
            f"'{model.name}' has no inputs yet: give a Sequential model an "
            "`keras.Input(shape)` first layer (or build it).",
            model.name,
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise invalid_argument(
            "model",
            "An SWN member takes one input and returns one output (the "
            f"logits); '{model.name}' has {len(inputs)} inputs and "
            f"{len(outputs)} outputs.",
            model.name,
        )
    return model


def input_name(model: keras.Model) -> str | None:
    """The name of the model's input layer (None if unknown)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            return layer.name
    layers = model.get_config().get("layers") or [{}]
    if layers[0].get("class_name") == "InputLayer":
        return layers[0].get("config", {}).get("name")
    return None


def softmax_output(model: keras.Model) -> Any:
    """The layer that applies a final softmax to the model's output, or
    None (an SWN member returns logits)."""
    layer = model.layers[-1] if model.layers else None
    if layer is None or is_graph_model(layer):
        return None
    try:
        if layer.output is not model.outputs[0]:
            return None
    except (AttributeError, ValueError):
        return None
    activation = getattr(layer, "activation", None)
    if isinstance(layer, keras.layers.Softmax):
        return layer
    if activation is keras.activations.softmax:
        return layer
    return None
