"""Test helpers for code built on keras_swn (in the spirit of Keras' own).

[`run_layer_test`][keras_swn.testing.run_layer_test] checks what every
SuperWeight layer must do, on the current backend: config round trip, output
shape, one training step that reaches every trainable variable, a
mixed-precision call, and a `.keras` save/load that gives the same outputs. Use
it for a layer of your own that subclasses a keras_swn layer; the library's
tests use it for each of its layers.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any
from typing import Mapping
from typing import Sequence

import keras
import numpy as np

__all__ = ["run_layer_test"]


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _model(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: Mapping,
    input_shape: Sequence,
):
    inputs = keras.Input(tuple(input_shape[1:]))
    return keras.Model(inputs, layer_cls(**init_kwargs)(inputs))


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: Mapping[str, Any],
    input_shape: Sequence[int],
    *,
    expected_output_shape: Sequence[int],
    mixed_precision: str | None = "mixed_bfloat16",
    seed: int = 0,
) -> None:
    """Check a SuperWeight layer end to end; raise `AssertionError` if not.

    Steps: build the layer and compare its config with the config of
    `layer_cls.from_config(config)`; call it on random inputs of
    `input_shape` and compare the output shape with
    `expected_output_shape` and `compute_output_shape`; train one step of a
    one-layer model (SGD, mean squared error) and check that every
    trainable variable (templates, coefficients, bias) moved; call a copy
    with `dtype=mixed_precision` and check the output dtype (the compute
    dtype) while the variables stay `float32`; save the trained model to a
    `.keras` file, load it, and compare outputs.

    Args:
        layer_cls: the layer class, e.g.
            [`keras_swn.layers.SuperWeightDense`][keras_swn.layers.SuperWeightDense].
        init_kwargs: the constructor arguments (include `seed` to make the
            layer's own bank reproducible).
        input_shape: the input shape with the batch dimension, e.g.
            `(2, 8, 8, 3)`.
        expected_output_shape: the output shape, batch dimension included.
        mixed_precision: a Keras dtype policy name for the mixed-precision
            check, or None to skip it.
        seed: seeds the random inputs and targets.

    Raises:
        AssertionError: naming the check that failed.

    Examples:
        >>> from keras_swn.testing import run_layer_test
        >>> run_layer_test(
        ...     keras_swn.layers.SuperWeightDense,
        ...     {"units": 3, "seed": 0},
        ...     (2, 5),
        ...     expected_output_shape=(2, 3),
        ... )
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=tuple(input_shape)).astype("float32")
    expected = tuple(expected_output_shape)

    layer = layer_cls(**init_kwargs)
    y = layer(x)
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "config round trip changed config"
    assert tuple(y.shape) == expected, (
        f"output shape {tuple(y.shape)} != expected {expected}"
    )
    computed = tuple(layer.compute_output_shape(tuple(input_shape)))
    assert computed == expected, (
        f"compute_output_shape gave {computed}, expected {expected}"
    )

    model = _model(layer_cls, init_kwargs, input_shape)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = [_numpy(v).copy() for v in model.trainable_variables]
    target = rng.normal(size=expected).astype("float32")
    model.train_on_batch(x, target)
    for v, b in zip(model.trainable_variables, before):
        assert not np.array_equal(_numpy(v), b), (
            f"one training step did not change {v.path}"
        )

    if mixed_precision is not None:
        mixed = layer_cls(**{**init_kwargs, "dtype": mixed_precision})
        out = mixed(x)
        policy = keras.dtype_policies.get(mixed_precision)
        assert keras.backend.standardize_dtype(out.dtype) == (
            policy.compute_dtype
        ), f"mixed precision output is {out.dtype}"
        for v in mixed.weights:
            assert v.dtype == "float32", f"{v.path} is {v.dtype}"

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer_test.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _numpy(loaded(x)),
        _numpy(model(x)),
        rtol=1e-6,
        atol=1e-6,
        err_msg="outputs differ after a .keras save/load",
    )
