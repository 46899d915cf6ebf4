"""`WideResNet(depth, channels=[...])`: a WRN of free channel counts."""

import dataclasses

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.models import LayerFactory
from keras_swn.models import WideResNet


def _traced(wrn, input_shape=(8, 8, 3), num_classes=10):
    """The WRN built with stock layers, and its shared layers."""
    factory = LayerFactory(None, 0)
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, wrn(inputs, factory, num_classes))
    return model, factory.created


@pytest.mark.parametrize("depth,width", [(10, 1), (16, 2), (22, 3)])
def test_integer_width_channels_are_the_width(depth, width):
    by_width = WideResNet(depth, width)
    by_channels = WideResNet(
        depth, channels=[16, 16 * width, 32 * width, 64 * width]
    )
    shape = (32, 32, 3)
    assert by_channels.layer_specs(shape, 1) == by_width.layer_specs(shape, 1)
    a = by_channels.unshared_params(shape, 10)
    b = by_width.unshared_params(shape, 10)
    assert dataclasses.replace(a, name="x") == dataclasses.replace(b, name="x")


@pytest.mark.parametrize(
    "channels", [[16, 14, 28, 57], [8, 5, 5, 5], [16, 1, 1, 2]]
)
def test_counts_and_specs_match_the_built_model(channels):
    wrn = WideResNet(10, channels=channels)
    model, created = _traced(wrn)
    counts = wrn.unshared_params((8, 8, 3), 10)
    assert counts.params_unshared == sum(
        int(np.prod(v.shape)) for v in model.trainable_variables
    )
    kernels = [layer.conv.kernel for _, _, layer in created]
    assert counts.conv_params_unshared == sum(
        int(np.prod(k.shape)) for k in kernels
    )
    specs = wrn.layer_specs((8, 8, 3))
    # OIHW specs of the HWIO kernels, in construction order.
    assert [s.shape for s in specs] == [
        (k.shape[3], k.shape[2], k.shape[0], k.shape[1]) for k in kernels
    ]
    assert [s.name for s in specs] == [name for _, name, _ in created]


def test_equal_channels_across_a_stride_keep_a_shortcut():
    # Stage 2 starts with a stride: its first block needs the projection
    # even though its channels do not change.
    specs = WideResNet(10, channels=[8, 5, 5, 5]).layer_specs((8, 8, 3))
    assert [s.name for s in specs if s.name.endswith("shortcut")] == [
        "stage1_block1_shortcut",
        "stage2_block1_shortcut",
        "stage3_block1_shortcut",
    ]


def test_channels_in_a_model_and_its_config():
    wrn = WideResNet(10, channels=[16, 12, 24, 40])
    assert wrn.name == "WRN-10 (16-12-24-40)"
    assert wrn.get_config() == {"depth": 10, "channels": [16, 12, 24, 40]}
    again = WideResNet.from_config(wrn.get_config())
    assert again.layer_specs((8, 8, 3)) == wrn.layer_specs((8, 8, 3))
    model = keras_swn.SWNModel(
        members=[wrn],
        input_shape=(8, 8, 3),
        num_classes=10,
        budget=30_000,
        seed=0,
    )
    logits = model.predict(np.zeros((2, 8, 8, 3), "float32"), verbose=0)
    assert np.asarray(logits[0]).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "channels"),
        ({"width": 2, "channels": [16, 32, 64, 128]}, "channels"),
        ({"channels": [16, 32, 64]}, "channels"),
        ({"channels": [16, 0, 64, 128]}, "channels"),
        ({"channels": "16-32-64-128"}, "channels"),
        ({"width": 0}, "width"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WideResNet(10, **kwargs)
