"""Rebuilding a Keras model's graph with new layers, sub-models inlined.

`rebuild_graph` runs the graph of a functional or Sequential model on new
input tensors with `keras.models.clone_model`, replacing every layer by
`make_layer(layer)`. A nested functional or Sequential sub-model is not
kept as one layer: its layers are called in its place, on the outer
tensors, so the member is one flat functional graph. Every part of
keras_swn that walks a member's layers (gradient capture, the refine
rebuild, FLOPs, export) then sees every shared layer.
"""

from __future__ import annotations

from typing import Any
from typing import Callable

import keras

from keras_swn.models.conversion.graph import is_graph_model


class _Inline:
    """Stands in for a nested sub-model while its graph is inlined."""

    def __init__(self, model: keras.Model):
        self.model = model


def rebuild_graph(
    model: keras.Model, inputs: Any, make_layer: Callable[[Any], Any]
) -> Any:
    """`model`'s graph on `inputs`, every layer replaced, sub-models
    inlined.

    Args:
        model: a functional or Sequential model.
        inputs: the new input tensor(s), as `model.input`.
        make_layer: `layer -> new layer`, called once per layer of
            `model` and of its nested sub-models (a layer used twice is
            made once, so shared layers stay shared).

    Returns:
        The output tensor(s).
    """
    made: dict[int, Any] = {}

    def clone_function(layer):
        if is_graph_model(layer):
            return _Inline(layer)
        if id(layer) not in made:
            made[id(layer)] = make_layer(layer)
        return made[id(layer)]

    def call_function(op, *args, **kwargs):
        if isinstance(op, _Inline):
            return run(op.model, args[0])
        return op(*args, **kwargs)

    def run(graph_model: keras.Model, x: Any) -> Any:
        if isinstance(graph_model, keras.Sequential):
            for layer in graph_model.layers:
                x = call_function(clone_function(layer), x)
            return x
        if graph_model is model:
            clone = keras.models.clone_model(
                graph_model,
                input_tensors=x,
                clone_function=clone_function,
                call_function=call_function,
            )
            return clone.output
        # A nested functional model: its nodes run on the outer tensors.
        # `clone_model` would build a `Functional` on intermediate tensors,
        # which re-wires their nodes; this is the graph walk it runs itself
        # (Keras 3 `Function`), without building a model.
        return graph_model._run_through_graph(
            x, operation_fn=clone_function, call_fn=call_function
        )

    return run(model, inputs)
