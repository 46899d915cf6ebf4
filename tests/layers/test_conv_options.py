"""`SuperWeightConv2D` options real models use: dilation, an activation,
any strides / padding, channels-last only."""

import keras
import numpy as np
import pytest

from keras_swn.layers import SuperWeightConv2D
from keras_swn.testing import run_layer_test

pytestmark = pytest.mark.backend_sensitive


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(dilation_rate=2, padding="same"),
        dict(dilation_rate=(1, 3), padding="valid"),
        dict(strides=2, padding="same", activation="relu"),
        dict(strides=(2, 1), padding="valid", activation="swish"),
        dict(kernel_size=(1, 3), padding=((0, 1), (2, 0))),
    ],
)
def test_matches_stock_conv2d(kwargs):
    kwargs = dict(kwargs)
    kernel_size = kwargs.pop("kernel_size", 3)
    layer = SuperWeightConv2D(
        5,
        kernel_size,
        use_bias=True,
        bias_initializer="random_normal",
        seed=0,
        **kwargs,
    )
    x = np.random.default_rng(0).normal(size=(2, 9, 11, 3)).astype("float32")
    y = _np(layer(x))
    padding = kwargs.pop("padding")
    if not isinstance(padding, str):
        x = np.pad(x, ((0, 0), *padding, (0, 0)))
        padding = "valid"
    stock = keras.layers.Conv2D(
        5, kernel_size, padding=padding, use_bias=True, **kwargs
    )
    stock.build(x.shape)
    stock.set_weights([_np(layer.kernel), _np(layer.bias)])
    expected = _np(stock(x))
    assert y.shape == expected.shape
    assert tuple(layer.compute_output_shape((2, 9, 11, 3))) == y.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_dilated_output_shape_and_round_trip():
    run_layer_test(
        SuperWeightConv2D,
        dict(
            filters=4,
            kernel_size=3,
            dilation_rate=2,
            activation="relu",
            use_bias=True,
            seed=0,
        ),
        (2, 9, 9, 3),
        expected_output_shape=(2, 5, 5, 4),
        mixed_precision=None,
    )


def test_refusals():
    with pytest.raises(ValueError, match=r"`data_format`.*channels_first"):
        SuperWeightConv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match=r"`dilation_rate`.*strides=2"):
        SuperWeightConv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match=r"`dilation_rate`"):
        SuperWeightConv2D(4, 3, dilation_rate=0)


def test_config_keeps_options():
    layer = SuperWeightConv2D(4, 3, dilation_rate=(2, 1), activation="relu")
    config = layer.get_config()
    assert config["dilation_rate"] == [2, 1]
    assert config["activation"] == "relu"
    again = SuperWeightConv2D.from_config(config)
    assert again.dilation_rate == (2, 1)
    assert again.activation is keras.activations.relu
