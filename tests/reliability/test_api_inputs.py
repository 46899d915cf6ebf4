"""Bad input to the Python API: a clear error naming the argument, or the
result a Keras user expects."""

import math

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn import SharingPolicy
from keras_swn import SWNModel
from keras_swn.models import WideResNet


def model(**kwargs):
    options = dict(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=80_000,
        seed=0,
    )
    return SWNModel(**{**options, **kwargs})


@pytest.mark.parametrize(
    "group", [1.5, True, 1e400, math.nan, "1", None], ids=repr
)
def test_policy_group_ids_must_be_integers(group):
    with pytest.raises(ValueError, match="argument `groups`"):
        SharingPolicy(groups=[[0, group]])


def test_policy_accepts_integral_json_numbers():
    assert SharingPolicy(groups=[[0, 1.0]]).groups == ((0, 1),)
    assert SharingPolicy(groups=[[np.int64(0), 1]]).groups == ((0, 1),)


@pytest.mark.parametrize(
    "shape", [(0, 8, 1), (8, -8, 1), (8, 8, 1.5), (), (1, 2, 3, 4), None]
)
def test_input_shape_of_positive_ints(shape):
    with pytest.raises(ValueError, match="argument `input_shape`"):
        model(input_shape=shape)


def test_wide_resnet_needs_images():
    with pytest.raises(ValueError, match="takes images"):
        model(input_shape=(8, 8))


def test_export_of_a_model_that_is_not_swn():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="argument `model`.*Sequential"):
        keras_swn.export.to_keras(plain, member=0)


def test_compile_with_a_loss_name_trains_on_logits():
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 10
    by_name, default = model(), model()
    by_name.compile("sgd", loss="sparse_categorical_crossentropy")
    default.compile("sgd")
    a = by_name.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    b = default.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert a == pytest.approx(b, rel=1e-6)  # from_logits=True, as default
    history = by_name.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_compile_with_a_loss_function_takes_sample_weight():
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    y = np.arange(8) % 10
    m = model()
    m.compile(
        "sgd",
        loss=lambda t, p: keras.losses.sparse_categorical_crossentropy(
            t, p, from_logits=True
        ),
    )
    m.fit(x, y, sample_weight=np.ones(8), epochs=1, verbose=0)


def test_compile_with_an_unknown_loss():
    with pytest.raises(ValueError, match="argument `loss`"):
        model().compile("sgd", loss="not_a_loss")
