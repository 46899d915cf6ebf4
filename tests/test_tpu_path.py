"""The TPU path without a TPU: XLA, distribution, mixed precision.

* `jit_compile=True` (XLA on TensorFlow; JAX always jits) trains and gives
  the step of the uncompiled model.
* `tf.distribute.MirroredStrategy` over two logical CPU devices and
  `keras.distribution.DataParallel` over two JAX CPU devices give the
  single-device result (each in a subprocess: devices must be configured
  before TensorFlow or JAX initialise).
* Mixed precision keeps templates and coefficients in float32 and composes
  kernels in the compute dtype.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_swn

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A member small enough that XLA compiles it in a second or two; the same
# class is written into the subprocess scripts below.
_TINY_NET = '''
class TinyNet(keras_swn.models.MemberBuilder):
    """Two shared 3x3 convolutions, BatchNorm, a plain classifier."""

    def __init__(self, filters=4):
        self.filters = filters

    def __call__(self, inputs, layers, num_classes):
        x = layers.conv2d(self.filters, 3, padding=1, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.ReLU(name="relu")(x)
        x = layers.conv2d(self.filters, 3, padding=1, name="conv2")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        head_init = keras.initializers.GlorotUniform(seed=layers.seed)
        return keras.layers.Dense(
            num_classes, kernel_initializer=head_init, name="head")(x)

    def get_config(self):
        return {"filters": self.filters}


def tiny_model(members=(8, 4), **kwargs):
    return keras_swn.SWNModel(
        members=[TinyNet(f) for f in members], input_shape=(8, 8, 3),
        num_classes=3, budget=1_500, seed=0, **kwargs)


def tiny_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    return x, rng.integers(0, 3, n)
'''

_NAMESPACE = {"keras": keras, "keras_swn": keras_swn, "np": np}
exec(_TINY_NET, _NAMESPACE)
TinyNet = _NAMESPACE["TinyNet"]
tiny_model = _NAMESPACE["tiny_model"]
tiny_data = _NAMESPACE["tiny_data"]


def _run_script(body, backend, env_extra=None, timeout=240):
    script = (
        "import numpy as np, keras, keras_swn\n"
        + _TINY_NET
        + textwrap.dedent(body)
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(env_extra or {}),
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=_ROOT,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def _max_rel_err(a, b):
    return max(
        float(np.abs(x - y).max() / (np.abs(y).max() + 1e-12))
        for x, y in zip(a, b)
    )


@pytest.mark.backend_sensitive
class TestJitCompile:
    def test_compiled_step_equals_uncompiled_and_learns(self):
        if keras.backend.backend() == "torch":
            pytest.skip("torch.compile is not the XLA path")
        x, y = tiny_data()
        weights = {}
        for jit in (False, True):
            model = tiny_model(members=(4,))
            model.compile(keras.optimizers.SGD(0.1), jit_compile=jit)
            model.train_on_batch(x, y)
            weights[jit] = model.get_weights()
        assert _max_rel_err(weights[True], weights[False]) < 1e-4
        history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
        losses = history.history["loss"]
        assert losses[-1] < losses[0] - 0.02, losses

    # Gradient capture under XLA: tests/models/test_gradient_capture.py
    # (TestAccumulationDuringFit, jit_compile=True, TF and JAX).


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute"
)
def test_mirrored_strategy_step_equals_single_device():
    out = _run_script(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

        def step(strategy, x, y):
            with strategy.scope():
                model = tiny_model()
                model.compile(keras.optimizers.SGD(0.1))
            model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False,
                      verbose=0)
            return [v.numpy() for v in model.trainable_variables]

        x, y = tiny_data(16)
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert mirrored.num_replicas_in_sync == 2
        two = step(mirrored, x, y)
        # BatchNorm normalises each replica's 8 images with their own
        # statistics, so the two-replica step is the mean of the plain
        # SGD steps on the two halves (same start, no momentum).
        default = tf.distribute.get_strategy()
        first = step(default, x[:8], y[:8])
        second = step(default, x[8:], y[8:])
        want = [(a + b) / 2 for a, b in zip(first, second)]
        err = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
                  for a, b in zip(two, want))
        moved = max(float(np.abs(a - b).max()) for a, b in zip(first, two))
        print("MAXERR", err, "MOVED", moved)
        """,
        "tensorflow",
    )
    parts = out.split("MAXERR")[-1].split()
    err, moved = float(parts[0]), float(parts[2])
    assert moved > 1e-4  # the step did something
    assert err < 1e-5


@pytest.mark.slow
def test_jax_data_parallel_equals_single_device():
    pytest.importorskip("jax")
    out = _run_script(
        """
        import jax
        devices = keras.distribution.list_devices("cpu")
        assert len(devices) == 2, devices

        def step(x, y):
            model = tiny_model(members=(4,))
            model.compile(keras.optimizers.SGD(0.1))
            model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False,
                      verbose=0)
            weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
            return weights, model.bank.weights[0].value.sharding

        x, y = tiny_data(16)
        one, _ = step(x, y)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices))
        two, layout = step(x, y)
        # One SPMD program over the global batch: BatchNorm sees all 16
        # images, so weights *and* moving statistics match one device.
        err = max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
                  for a, b in zip(two, one))
        print("DEVICES", len(layout.device_set), "MAXERR", err)
        """,
        "jax",
        env_extra={
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "JAX_PLATFORMS": "cpu",
        },
    )
    parts = out.split("DEVICES")[-1].split()
    assert int(parts[0]) == 2
    assert float(parts[2]) < 1e-5


@pytest.fixture
def dtype_policy():
    before = keras.config.dtype_policy()
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy(before)


@pytest.mark.backend_sensitive
@pytest.mark.parametrize(
    "policy, compute",
    [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")],
)
def test_mixed_precision_float32_templates_compute_dtype_kernels(
    dtype_policy, policy, compute
):
    dtype_policy(policy)
    model = tiny_model(members=(4,))
    assert model.bank.weights
    for v in model.bank.weights:
        assert v.dtype == "float32", v.path
    for v in model.trainable_variables:
        assert v.dtype == "float32", v.path
    layer = model.shared_layers(0)[0]
    assert layer.compute_dtype == compute
    assert keras.backend.standardize_dtype(layer.kernel.dtype) == compute
    x, _ = tiny_data(64)
    # Learnable labels (the class of the mean of channel 0), so that a
    # falling loss is a property of training, not of a badly scaled start.
    y = np.digitize(x[..., 0].mean(axis=(1, 2)), [-0.05, 0.05])
    logits = model(x[:2])
    assert keras.backend.standardize_dtype(logits[0].dtype) == compute

    before = [keras.ops.convert_to_numpy(v) for v in model.bank.weights]
    model.compile(keras.optimizers.SGD(0.1))
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    after = [keras.ops.convert_to_numpy(v) for v in model.bank.weights]
    assert all(a.dtype == np.float32 for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


def test_tiny_net_layer_specs():
    assert [s.shape for s in TinyNet(8).layer_specs((8, 8, 3))] == [
        (8, 3, 3, 3),
        (8, 8, 3, 3),
    ]
