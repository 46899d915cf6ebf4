"""Tests of `keras_swn.export.to_keras`."""

import keras
import numpy as np
import pytest

from keras_swn.export import to_keras
from keras_swn.layers import SuperWeightConv2D


@pytest.fixture(scope="module")
def model(model):
    """The shared two-member model (tests/conftest.py), changed here."""
    # Non-trivial BatchNorm statistics and head biases, so that copying
    # every unshared weight matters.
    rng = np.random.default_rng(0)
    for member in model.members:
        for layer in member.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = layer.get_weights()
                layer.set_weights(
                    [
                        rng.uniform(0.5, 1.5, gamma.shape),
                        rng.normal(0, 0.1, beta.shape),
                        rng.normal(0, 0.1, mean.shape),
                        rng.uniform(20.0, 40.0, var.shape),
                    ]
                )
        head = member.get_layer("head")
        head.set_weights([head.get_weights()[0], rng.normal(0, 0.1, (10,))])
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((4, 8, 8, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def logits(model, images):
    return model.predict(images, verbose=0)


@pytest.mark.backend_sensitive
class TestToKerasOutputs:
    @pytest.mark.parametrize("member", [0, 1])
    def test_same_outputs(self, model, images, logits, member):
        # `predict` (compiled where the backend compiles) on both sides;
        # eager JAX calls of a whole member are slow.
        exported = to_keras(model, member=member)
        np.testing.assert_allclose(
            exported.predict(images, verbose=0),
            logits[member],
            rtol=1e-5,
            atol=1e-5,
        )

    def test_independent_of_bank(self, model, images):
        exported = to_keras(model, member=1)
        before = exported.predict(images, verbose=0)
        saved = [keras.ops.convert_to_numpy(v) for v in model.bank.weights]
        for v in model.bank.weights:
            v.assign(np.zeros(v.shape, "float32"))
        try:
            after = exported.predict(images, verbose=0)
        finally:
            for v, s in zip(model.bank.weights, saved):
                v.assign(s)
        np.testing.assert_array_equal(before, after)


class TestToKerasStructure:
    def test_only_stock_layers_same_names(self, model):
        for i, member in enumerate(model.members):
            exported = to_keras(model, member=i)
            for layer in exported.layers:
                assert type(layer).__module__.startswith("keras."), layer
            names = [layer.name for layer in exported.layers]
            for layer in member.layers:
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                assert layer.name in names
                assert type(exported.get_layer(layer.name)).__name__ == {
                    "SuperWeightConv2D": "Conv2D",
                    "SuperWeightDense": "Dense",
                }.get(type(layer).__name__, type(layer).__name__)
            # One padding layer per explicitly padded convolution.
            padded = [
                layer.name
                for layer in member.layers
                if isinstance(layer, SuperWeightConv2D)
                and not isinstance(layer.padding, str)
            ]
            assert padded
            pads = [n for n in names if n.endswith("_pad")]
            assert pads == [f"{n}_pad" for n in padded]
            conv = exported.get_layer("stage2_block1_conv1")
            assert conv.padding == "valid" and conv.strides == (2, 2)
            assert exported.get_layer("stage2_block1_conv1_pad").padding == (
                (1, 1),
                (1, 1),
            )
            shortcut = exported.get_layer("stage2_block1_shortcut")
            assert shortcut.padding == "valid"

    def test_weights_copied_not_shared(self, model):
        exported = to_keras(model, member=0)
        bn = exported.get_layer("stage1_block1_bn1")
        source = model.members[0].get_layer("stage1_block1_bn1")
        assert bn is not source
        for a, b in zip(bn.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(a, b)
        kernel = keras.ops.convert_to_numpy(
            model.members[0].get_layer("stem").kernel
        )
        np.testing.assert_array_equal(
            exported.get_layer("stem").get_weights()[0], kernel
        )
        assert len(exported.trainable_weights) == len(
            [w for layer in exported.layers for w in layer.trainable_weights]
        )

    def test_name(self, model):
        assert to_keras(model, member=1).name == "member_1"
        assert to_keras(model, member=1, name="plain").name == "plain"

    @pytest.mark.parametrize("bad", [2, -1, "1", None])
    def test_bad_member(self, model, bad):
        with pytest.raises(
            ValueError,
            match=r"Invalid value for argument `member`\. Expected an int in "
            r"\[0, 2\)\. Received: member=" + repr(bad).replace("'", "."),
        ):
            to_keras(model, member=bad)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="SavedModel export needs the TensorFlow backend",
)
def test_saved_model_round_trip(model, images, tmp_path):
    import tensorflow as tf

    exported = to_keras(model, member=1)
    path = str(tmp_path / "member_1")
    exported.export(path, format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(path)
    got = reloaded.serve(tf.constant(images)).numpy()
    expected = keras.ops.convert_to_numpy(
        model.members[1](images, training=False)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
