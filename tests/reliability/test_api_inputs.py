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


class TestGradientsOfNonFiniteData:
    @pytest.fixture(scope="class")
    def swn(self):
        return model()

    def data(self, value=math.nan, count=3):
        x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
        x.reshape(-1)[:count] = value
        return x, np.arange(16) % 10

    @pytest.mark.parametrize(
        "method", ["collect_kernel_gradients", "collect_coefficient_gradients"]
    )
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_arrays(self, swn, method, value):
        x, y = self.data(value)
        with pytest.raises(
            ValueError,
            match=r"argument `x`.*x \(batch 0 of size 8\) holds 3 "
            "non-finite values",
        ):
            getattr(swn, method)(x, y, batch_size=8)

    def test_dataset_batch(self, swn):
        x, y = self.data()
        clean = x.copy()
        clean[:] = 0.5
        batches = [(clean[:8], y[:8]), (x[:8], y[:8])]
        with pytest.raises(
            ValueError, match=r"x \(batch 1 of size 8\) holds 3"
        ):
            swn.collect_coefficient_gradients(batches)

    def test_float_labels(self, swn):
        x, _ = self.data(count=0)
        y = np.full(16, np.nan)
        with pytest.raises(ValueError, match="argument `y`.*16 non-finite"):
            swn.collect_kernel_gradients(x, y)

    def test_rows_the_pass_does_not_read(self, swn):
        x, y = self.data(count=0)
        x[-1] = np.nan  # batches=1 reads the first 8 rows only
        grads = swn.collect_kernel_gradients(x, y, batch_size=8, batches=1)
        assert all(np.isfinite(g).all() for g in grads[0].values())


class TestSaveAndLoad:
    @pytest.fixture(scope="class")
    def files(self, tmp_path_factory):
        folder = tmp_path_factory.mktemp("saved")
        one = model()
        one.save_weights(folder / "one.weights.h5")
        one.save(folder / "one.keras")
        return folder

    @pytest.mark.parametrize("name", ["one.weights.h5", "one.keras"])
    def test_weights_of_other_members(self, files, name):
        two = model(
            members=[WideResNet(10, 2), WideResNet(10, 1)], budget=300_000
        )
        with pytest.raises(ValueError, match="argument `filepath`") as e:
            two.load_weights(files / name)
        message = str(e.value)
        assert "members ['WRN-10-1']" in message
        assert "members are ['WRN-10-2', 'WRN-10-1']" in message
        assert "could not be loaded" not in message

    def test_same_members_other_budget(self, files):
        other = model(budget=60_000)
        with pytest.raises(ValueError, match="do not fit this model"):
            other.load_weights(files / "one.weights.h5")

    def test_same_members_loads(self, files):
        again = model(seed=5)
        again.load_weights(files / "one.weights.h5")
        x = np.zeros((2, 8, 8, 1), "float32")
        reloaded = keras.models.load_model(files / "one.keras")
        for a, b in zip(again(x), reloaded(x)):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
            )

    @pytest.mark.parametrize("name", ["model.h5", "model.HDF5"])
    def test_legacy_h5_save_is_refused(self, tmp_path, name):
        with pytest.raises(ValueError, match=r"`filepath`.*save as `\.keras`"):
            model().save(tmp_path / name)
        assert not (tmp_path / name).exists()
