"""Numerical equivalence of the SuperWeight layers with stock Keras layers."""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.bank.layout import to_oihw
from keras_swn.layers import SuperWeightConv2D
from keras_swn.layers import SuperWeightDense
from keras_swn.testing import run_layer_test

pytestmark = pytest.mark.backend_sensitive


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _two_layer_bank(seed=0, template_fan_in="kernel"):
    # Chain (4,3) -> (6,5): level 1 adds input columns 3:5 for the first
    # 4 rows and new rows 4:6 over all 5 inputs (swn-algorithm.md §1.4).
    specs = [
        keras_swn.LayerSpec(0, 0, "conv2d", (4, 3, 3, 3)),
        keras_swn.LayerSpec(0, 1, "conv2d", (6, 5, 3, 3)),
    ]
    policy = keras_swn.SharingPolicy(groups=[[0, 0]])
    bank = keras_swn.TemplateBank(
        specs,
        policy,
        budget=10**6,
        seed=seed,
        template_fan_in=template_fan_in,
    )
    bank.build()
    return bank


class TestComposition:
    @pytest.mark.parametrize("template_fan_in", ["kernel", "layer", 9])
    def test_kernel_equals_hand_built_concatenation(self, template_fan_in):
        bank = _two_layer_bank(template_fan_in=template_fan_in)
        # "kernel": layer 1 reads level 0 (introduced by the 4x3 shape,
        # fan-in 27) with the fixed gain sqrt(27 / 45); level 1 is its own.
        gain = np.sqrt(27 / 45) if template_fan_in == "kernel" else 1.0
        # The spec's OIHW order (the bank stores each piece HWIO).
        t0, t1 = (
            to_oihw(_np(bank.templates[(0, w)]), bank.storage_order(0, w))
            for w in (0, 1)
        )
        t0 = t0.reshape(-1, 4 * 3 * 9)
        t1 = t1.reshape(-1, 4 * 2 * 9 + 2 * 5 * 9)
        c0 = _np(bank.coefficients[(0, 0)])
        c1 = _np(bank.coefficients[(0, 1)])
        # Layer 0 owns row 0 of level 0; layer 1 owns row 1 of level 0 and
        # row 0 of level 1 (it is the only user of level 1).
        sw_small = c0[0] @ t0
        sw_big0 = gain * c0[1] @ t0
        sw_big1 = c1[0] @ t1
        expected_small = sw_small.reshape(4, 3, 3, 3)
        expected_big = np.zeros((6, 5, 3, 3), "float32")
        expected_big[:4, :3] = sw_big0.reshape(4, 3, 3, 3)
        expected_big[:4, 3:5] = sw_big1[: 4 * 2 * 9].reshape(4, 2, 3, 3)
        expected_big[4:6, :5] = sw_big1[4 * 2 * 9 :].reshape(2, 5, 3, 3)
        got_small = _np(bank.kernel((0, 0))).transpose(3, 2, 0, 1)
        got_big = _np(bank.kernel((0, 1))).transpose(3, 2, 0, 1)
        np.testing.assert_allclose(got_small, expected_small, rtol=1e-5)
        np.testing.assert_allclose(got_big, expected_big, rtol=1e-5, atol=1e-7)

    def test_every_template_entry_initialised_and_seeded(self):
        a = _two_layer_bank(seed=3, template_fan_in=9)
        b = _two_layer_bank(seed=3, template_fan_in=9)
        c = _two_layer_bank(seed=4, template_fan_in=9)
        for key in a.templates:
            va = _np(a.templates[key])
            assert np.all(np.isfinite(va)) and np.all(np.abs(va) < 10)
            np.testing.assert_array_equal(va, _np(b.templates[key]))
            assert not np.allclose(va, _np(c.templates[key]))
            # N(0, 2/9) entries (template_fan_in=9, §1.8).
        big = np.concatenate([_np(v) for v in a.templates.values()])
        assert abs(big.std() - np.sqrt(2 / 9)) < 0.05

    def test_kernel_cast_to_compute_dtype(self):
        bank = _two_layer_bank()
        assert (
            keras.backend.standardize_dtype(
                bank.kernel((0, 1), dtype="float16").dtype
            )
            == "float16"
        )
        assert bank.templates[(0, 0)].dtype == "float32"


class TestConv2DEquivalence:
    @pytest.mark.parametrize(
        "strides,padding",
        [(1, "valid"), (1, "same"), (2, 1), (1, 1), (2, "valid")],
    )
    def test_matches_stock_conv2d(self, strides, padding):
        x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype("f")
        layer = SuperWeightConv2D(
            5, 3, strides=strides, padding=padding, use_bias=True, seed=1
        )
        y = _np(layer(x))
        stock_padding = padding if isinstance(padding, str) else "valid"
        stock = keras.layers.Conv2D(
            5, 3, strides=strides, padding=stock_padding, use_bias=True
        )
        xin = x
        if not isinstance(padding, str):
            xin = np.pad(
                x, [(0, 0), (padding, padding), (padding, padding), (0, 0)]
            )
        stock.build(xin.shape)
        stock.set_weights([_np(layer.kernel), _np(layer.bias)])
        np.testing.assert_allclose(y, _np(stock(xin)), rtol=1e-4, atol=1e-5)
        assert y.shape == layer.compute_output_shape(x.shape)

    def test_shared_bank_layer_matches_stock(self):
        bank = _two_layer_bank()
        layer = SuperWeightConv2D(6, 3, padding=1, bank=bank, layer_key=(0, 1))
        x = np.random.default_rng(1).normal(size=(2, 6, 6, 5)).astype("f")
        stock = keras.layers.Conv2D(6, 3, use_bias=False)
        stock.build((2, 8, 8, 5))
        stock.set_weights([_np(bank.kernel((0, 1)))])
        xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
        np.testing.assert_allclose(
            _np(layer(x)), _np(stock(xp)), rtol=1e-4, atol=1e-5
        )

    def test_config_round_trip(self):
        layer = SuperWeightConv2D(4, (3, 1), strides=2, padding=1, seed=0)
        layer.build((None, 8, 8, 2))
        clone = SuperWeightConv2D.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()

    @pytest.mark.parametrize(
        "kwargs, output_shape",
        [
            ({"filters": 4, "kernel_size": 3}, (2, 6, 6, 4)),
            (
                {
                    "filters": 5,
                    "kernel_size": (3, 1),
                    "strides": 2,
                    "padding": 1,
                    "use_bias": True,
                    "num_templates": 2,
                },
                (2, 4, 5, 5),
            ),
            ({"filters": 3, "kernel_size": 1, "padding": "same"}, (2, 8, 8, 3)),
        ],
    )
    def test_layer_contract(self, kwargs, output_shape):
        run_layer_test(
            SuperWeightConv2D,
            {**kwargs, "seed": 0},
            (2, 8, 8, 2),
            expected_output_shape=output_shape,
        )

    def test_gradients_reach_templates_and_coefficients(self):
        inputs = keras.Input((6, 6, 2))
        x = SuperWeightConv2D(4, 3, padding=1, num_templates=3, seed=0)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = SuperWeightDense(3, num_templates=2, seed=1)(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.SGD(0.5), "mse")
        before = [_np(v).copy() for v in model.trainable_variables]
        data = np.random.default_rng(0).normal(size=(8, 6, 6, 2)).astype("f")
        model.train_on_batch(data, np.ones((8, 3), "f"))
        names = [v.path for v in model.trainable_variables]
        assert any("templates" in n for n in names)
        assert any("coefficients" in n for n in names)
        for name, b, v in zip(names, before, model.trainable_variables):
            assert not np.allclose(b, _np(v)), name

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: filters=0"):
            SuperWeightConv2D(0, 3)
        with pytest.raises(ValueError, match="Received: num_templates=9"):
            SuperWeightConv2D(4, 3, num_templates=9)
        with pytest.raises(ValueError, match="Received: padding='full'"):
            SuperWeightConv2D(4, 3, padding="full")
        with pytest.raises(ValueError, match="Received: kernel_size='a'"):
            SuperWeightConv2D(4, "a")
        bank = _two_layer_bank()
        with pytest.raises(ValueError, match="layer_key"):
            SuperWeightConv2D(4, 3, bank=bank)
        with pytest.raises(ValueError, match=r"layer_key=\(0, 7\)"):
            SuperWeightConv2D(4, 3, bank=bank, layer_key=(0, 7))
        layer = SuperWeightConv2D(6, 3, bank=bank, layer_key=(0, 1))
        with pytest.raises(ValueError, match="kernel is"):
            layer(np.zeros((1, 5, 5, 2), "f"))
        with pytest.raises(AttributeError, match="build the layer|kernel"):
            SuperWeightConv2D(4, 3).kernel


class TestDenseEquivalence:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"units": 3},
            {
                "units": 4,
                "activation": "relu",
                "use_bias": False,
                "num_templates": 1,
            },
        ],
    )
    def test_layer_contract(self, kwargs):
        run_layer_test(
            SuperWeightDense,
            {**kwargs, "seed": 0},
            (2, 5),
            expected_output_shape=(2, kwargs["units"]),
        )

    def test_matches_stock_dense(self):
        x = np.random.default_rng(0).normal(size=(4, 7)).astype("f")
        layer = SuperWeightDense(3, activation="relu", seed=0)
        y = _np(layer(x))
        stock = keras.layers.Dense(3, activation="relu")
        stock.build(x.shape)
        stock.set_weights([_np(layer.kernel), _np(layer.bias)])
        np.testing.assert_allclose(y, _np(stock(x)), rtol=1e-5, atol=1e-6)
        assert tuple(layer.kernel.shape) == (7, 3)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: units=-1"):
            SuperWeightDense(-1)


class TestRunLayerTest:
    """`keras_swn.testing.run_layer_test` fails a broken layer."""

    def test_detects_a_config_that_loses_an_argument(self):
        class Forgetful(SuperWeightDense):
            def get_config(self):
                config = super().get_config()
                config["units"] = config["units"] + 1
                return config

        with pytest.raises(AssertionError, match="config round trip"):
            run_layer_test(
                Forgetful,
                {"units": 3, "seed": 0},
                (2, 5),
                expected_output_shape=(2, 3),
            )

    def test_detects_a_wrong_output_shape(self):
        with pytest.raises(AssertionError, match="output shape"):
            run_layer_test(
                SuperWeightDense,
                {"units": 3, "seed": 0},
                (2, 5),
                expected_output_shape=(2, 4),
            )
