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


# ----------------------------------------------------------------------
# Constructor arguments (issue 20)


@pytest.mark.parametrize(
    "weights", [[math.nan], [math.inf], [-1.0], ["a"], [True], [1.0, 1.0]]
)
def test_member_loss_weights_finite_non_negative(weights):
    with pytest.raises(ValueError, match="argument `member_loss_weights`"):
        model(member_loss_weights=weights)


def test_input_shape_of_rank_two_is_named_at_construction():
    with pytest.raises(
        ValueError, match=r"`input_shape`.*\(height, width, channels\)"
    ) as e:
        model(input_shape=(16, 16))
    assert "input_shape=(16, 16)" in str(e.value)


class TestPolicyArgument:
    @pytest.fixture(scope="class")
    def policy(self):
        return model().policy

    def test_path_is_read_as_a_file(self, policy, tmp_path):
        path = tmp_path / "policy.json"
        policy.save(path)
        for given in (str(path), path):
            assert model(policy=given).policy == policy

    def test_json_text_and_instance(self, policy):
        assert model(policy=policy.to_json()).policy == policy
        assert model(policy=policy).policy == policy

    def test_missing_file_names_the_argument(self, tmp_path):
        missing = str(tmp_path / "nope.json")
        with pytest.raises(ValueError, match="argument `policy`.*not found"):
            model(policy=missing)

    def test_binary_file(self, tmp_path):
        path = tmp_path / "policy.json"
        path.write_bytes(b"\x89PNG\x00\xff\xfe")
        with pytest.raises(ValueError, match="`policy`.*binary") as e:
            model(policy=str(path))
        assert "codec" not in str(e.value)

    def test_file_of_invalid_json_names_the_file(self, tmp_path):
        path = tmp_path / "policy.json"
        path.write_text('{"format": ')
        with pytest.raises(ValueError, match="`policy`") as e:
            model(policy=str(path))
        assert "policy.json" in str(e.value)


# ----------------------------------------------------------------------
# SWNModel.fit: the data checks of every form (issue 20)


def digits_like(n=16, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels)).astype("float32")
    return x, np.arange(n) % 10


@pytest.fixture(scope="module")
def compiled():
    m = model()
    m.compile("sgd")
    return m


class TestFitData:
    def test_empty_arrays(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match="argument `x`.*empty"):
            compiled.fit(x[:0], y[:0], verbose=0)

    def test_channels_first_is_named(self, compiled):
        x, y = digits_like()
        with pytest.raises(
            ValueError, match=r"`x`.*channels-first.*transpose\(0, 2, 3, 1\)"
        ) as e:
            compiled.fit(x.transpose(0, 3, 1, 2), y, verbose=0)
        assert "(16, 1, 8, 8)" in str(e.value)

    def test_wrong_image_size(self, compiled):
        x, y = digits_like(size=6)
        with pytest.raises(ValueError, match=r"\(8, 8, 1\).*\(16, 6, 6, 1\)"):
            compiled.fit(x, y, verbose=0)

    def test_string_labels(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match="argument `y`.*not strings"):
            compiled.fit(x, y.astype(str), verbose=0)

    def test_label_out_of_range(self, compiled):
        x, y = digits_like()
        y[3] = 10
        with pytest.raises(ValueError, match=r"`y`.*\[0, 10\).*0 to 10"):
            compiled.fit(x, y, verbose=0)

    def test_nan_pixel(self, compiled):
        x, y = digits_like()
        x[2, 1, 1, 0] = np.nan
        with pytest.raises(ValueError, match="`x`.*1 non-finite"):
            compiled.fit(x, y, verbose=0)

    def test_positional_arguments_still_work(self, compiled):
        x, y = digits_like()
        history = compiled.fit(x, y, 8, 1, 0)
        assert len(history.history["loss"]) == 1

    def test_validation_data_is_checked(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match="`validation_data`.*3 to 12"):
            compiled.fit(x, y, validation_data=(x, y + 3), verbose=0)

    def test_generator_is_peeked_without_losing_a_batch(self, compiled):
        x, y = digits_like(n=32)
        seen = []

        def batches():
            for s in range(0, 32, 8):
                seen.append(s)
                yield x[s : s + 8], y[s : s + 8]

        history = compiled.fit(batches(), steps_per_epoch=4, verbose=0)
        assert seen == [0, 8, 16, 24]
        assert len(history.history["loss"]) == 1

    def test_generator_with_a_string_label(self, compiled):
        x, y = digits_like()

        def batches():
            yield x[:8], y[:8].astype(str)

        with pytest.raises(ValueError, match="`x`.*not strings"):
            compiled.fit(batches(), verbose=0)

    def test_empty_generator(self, compiled):
        with pytest.raises(ValueError, match="`x`.*empty"):
            compiled.fit(iter(()), verbose=0)

    def test_py_dataset_with_channels_first(self, compiled):
        x, y = digits_like()

        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                s = slice(8 * i, 8 * i + 8)
                return x[s].transpose(0, 3, 1, 2), y[s]

        with pytest.raises(ValueError, match="`x`.*channels-first.*batch 0"):
            compiled.fit(Batches(), verbose=0)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.data is TF-only"
)
class TestFitDataset:
    def dataset(self, x, y, batch=8):
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y))
        return data if batch is None else data.batch(batch)

    def test_label_out_of_range(self, compiled):
        x, y = digits_like()
        y[9] = 10
        with pytest.raises(ValueError, match=r"`x`.*batch 1: labels from"):
            compiled.fit(self.dataset(x, y), verbose=0)

    def test_string_labels(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match="`x`.*not strings"):
            compiled.fit(self.dataset(x, y.astype(str)), verbose=0)

    def test_unbatched(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match=r"`x`.*unbatched.*\.batch"):
            compiled.fit(self.dataset(x, y, batch=None), verbose=0)

    def test_six_by_six_images(self, compiled):
        x, y = digits_like(size=6)
        with pytest.raises(ValueError, match=r"\(8, 8, 1\).*\(8, 6, 6, 1\)"):
            compiled.fit(self.dataset(x, y), verbose=0)

    def test_empty(self, compiled):
        x, y = digits_like()
        with pytest.raises(ValueError, match="`x`.*empty"):
            compiled.fit(self.dataset(x, y).take(0), verbose=0)

    def test_infinite_needs_steps_per_epoch(self, compiled):
        x, y = digits_like()
        data = self.dataset(x, y).repeat()
        with pytest.raises(ValueError, match="`x`.*steps_per_epoch"):
            compiled.fit(data, verbose=0)
        history = compiled.fit(data, steps_per_epoch=2, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    def test_nan_in_the_second_batch(self, compiled):
        x, y = digits_like()
        x[12, 0, 0, 0] = np.inf
        with pytest.raises(ValueError, match="`x`.*batch 1: 1 non-finite"):
            compiled.fit(self.dataset(x, y), verbose=0)


# ----------------------------------------------------------------------
# MirroredStrategy with a cross-replica step in the forward pass (issue 20)

_SYNC_BN_STEP = '''
import os
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
import keras_swn


class SyncNet(keras_swn.models.MemberBuilder):
    """conv, synchronized BatchNorm, conv: the second conv's kernel is
    read after the replicas meet in the BatchNorm."""

    def __call__(self, inputs, layers, num_classes):
        x = layers.conv2d(8, 3, padding=1, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(synchronized=True)(x)
        x = keras.layers.ReLU()(x)
        x = layers.conv2d(8, 3, padding=1, name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.layers.Dense(num_classes)(x)

    def get_config(self):
        return {}


rng = np.random.default_rng(0)
x = rng.random((16, 8, 8, 1)).astype("float32")
y = np.arange(16) % 10


def step(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras_swn.SWNModel(members=[SyncNet()], input_shape=(8, 8, 1),
                                   num_classes=10, budget=2_000, seed=0)
        model.compile(keras.optimizers.SGD(0.1))
    before = [v.numpy() for v in model.trainable_variables]
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return [v.numpy() - b for v, b in zip(model.trainable_variables, before)]


one = step(tf.distribute.get_strategy())
two = step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
err = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
moved = min(float(np.abs(b).max()) for b in two)
print("MAXERR", err, "MINMOVED", moved)
'''


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute"
)
def test_mirrored_step_with_synchronized_batchnorm_equals_one_device():
    """Every variable gets its gradient on every replica: the composed
    kernels are per replica thread (they were shared, and the kernels
    read after the BatchNorm's all-reduce got no gradient)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", _SYNC_BN_STEP],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    parts = out.stdout.split("MAXERR")[-1].split()
    err, moved = float(parts[0]), float(parts[2])
    assert moved > 1e-4  # every variable (conv2's bank too) was updated
    assert err < 1e-5
