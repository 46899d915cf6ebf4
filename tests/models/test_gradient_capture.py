"""Captured kernel gradients equal dL/dW computed by a stock Keras model."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.backend_sensitive


def _stock_member(model, member):
    """Member `member` rebuilt from stock Keras layers, weights copied."""
    builder = model.member_builders[member]
    # float64, so that one SGD step resolves the gradient to ~1e-10.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        _, stock = builder._trace(model.input_shape_, model.num_classes)
    finally:
        keras.config.set_dtype_policy(policy)
    swn = model.members[member]
    for layer in swn.layers:
        if getattr(layer, "layer_key", None) is not None:
            target = stock.get_layer(layer.name).conv
            target.set_weights([keras.ops.convert_to_numpy(layer.kernel)])
        elif layer.weights:
            stock.get_layer(layer.name).set_weights(layer.get_weights())
    return stock


def _stock_kernel_gradients(model, member, x, y, lr=1e-6):
    """dL/dW of the stock member, read off one plain SGD step."""
    stock = _stock_member(model, member)
    stock.compile(
        keras.optimizers.SGD(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    convs = {l.name: l.conv for l in stock.layers if hasattr(l, "conv")}
    before = {n: keras.ops.convert_to_numpy(c.kernel) for n, c in convs.items()}
    stock.train_on_batch(x, y)
    return {
        n: (before[n] - keras.ops.convert_to_numpy(c.kernel)) / lr
        for n, c in convs.items()
    }


def _assert_grads_close(got, want, rtol=1e-4):
    assert set(got) == set(want)
    for name in want:
        scale = np.abs(want[name]).max() + 1e-12
        err = np.abs(got[name] - want[name]).max() / scale
        assert err < rtol, (name, err)


@pytest.fixture
def float64_enabled():
    """JAX computes in float32 unless x64 is switched on."""
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


class TestCollectKernelGradients:
    def test_equals_stock_dl_dw(self, float64_enabled, make_model, make_data):
        model = make_model()
        x, y = make_data(16)
        # training=True so that BatchNorm matches a stock train step.
        got = model.collect_kernel_gradients(x, y, batch_size=16, training=True)
        for member in range(2):
            want = _stock_kernel_gradients(model, member, x, y)
            _assert_grads_close(got[member], want)

    def test_sums_over_batches(self, make_model, make_data):
        model = make_model()
        x, y = make_data(32)
        both = model.collect_kernel_gradients(x, y, batch_size=16, batches=2)
        one = model.collect_kernel_gradients(x[:16], y[:16], batch_size=16)
        two = model.collect_kernel_gradients(x[16:], y[16:], batch_size=16)
        for name, g in both[0].items():
            np.testing.assert_allclose(
                g, one[0][name] + two[0][name], rtol=1e-4, atol=1e-6
            )

    def test_coefficient_gradients_are_per_member(self, make_model, make_data):
        model = make_model(coefficient_sharing="per_bank")
        x, y = make_data(16)
        grads = model.collect_coefficient_gradients(x, y, batch_size=16)
        assert set(grads) == {
            (m, l, w)
            for (m, l), r in model.plan.layers.items()
            for w in range(r.num_levels)
        }
        # Member 1 hard-shares member 0's vectors but keeps its own entry.
        m0 = grads[(0, 0, 0)]
        m1 = grads[(1, 0, 0)]
        assert (
            m0.shape
            == m1.shape
            == (
                model.plan.banks[
                    (model.plan.layers[(0, 0)].group, 0)
                ].templates,
            )
        )
        assert not np.allclose(m0, m1)
        # A member's entry is the sum over its layers reading the vector,
        # so two layers of member 0 in one bank carry the same entry.
        g = model.plan.layers[(0, 1)].group
        same = [
            l
            for (m, l), r in model.plan.layers.items()
            if m == 0 and r.group == g
        ]
        assert len(same) > 1
        np.testing.assert_allclose(
            grads[(0, same[0], 0)], grads[(0, same[1], 0)]
        )


class TestBatchStatistics:
    """Inference-mode capture reads each batch's own BatchNorm statistics
    (the default), not moving statistics that lag the weights."""

    @staticmethod
    def _set_batch_statistics(model, x):
        """Every BatchNorm's moving statistics set, by hand, to the mean
        and (biased) variance of its input on `x` in a training pass."""
        for member in model.members:
            norms = [
                l
                for l in member.layers
                if isinstance(l, keras.layers.BatchNormalization)
            ]
            assert norms
            inputs = keras.Model(member.inputs, [l.input for l in norms])
            for layer, a in zip(norms, inputs(x, training=True)):
                a = keras.ops.convert_to_numpy(a).astype("float64")
                layer.moving_mean.assign(a.mean(axis=(0, 1, 2)))
                layer.moving_variance.assign(a.var(axis=(0, 1, 2)))

    def test_equals_moving_statistics_set_to_the_batch(
        self, make_model, make_data
    ):
        # Member 1 does not train (loss weight 0): it gets its batch
        # statistics too.
        model = make_model(member_loss_weights=[1.0, 0.0])
        x, y = make_data(16)
        x = 20.0 * x + 3.0  # far from the initial moving statistics
        before = [keras.ops.convert_to_numpy(v) for v in model.variables]
        got = model.collect_kernel_gradients(x, y, batch_size=16)
        coefficients = model.collect_coefficient_gradients(x, y, batch_size=16)
        for a, v in zip(before, model.variables):  # nothing changed
            np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))
        stale = model.collect_kernel_gradients(
            x, y, batch_size=16, batch_statistics=False
        )
        self._set_batch_statistics(model, x)
        want = model.collect_kernel_gradients(
            x, y, batch_size=16, batch_statistics=False
        )
        want_coefficients = model.collect_coefficient_gradients(
            x, y, batch_size=16, batch_statistics=False
        )
        for member in range(2):
            _assert_grads_close(got[member], want[member], rtol=1e-3)
            # The test can fail: the moving statistics give other values.
            err = max(
                np.abs(stale[member][n] - g).max() / np.abs(g).max()
                for n, g in got[member].items()
            )
            assert err > 0.1
        for slot, g in want_coefficients.items():
            np.testing.assert_allclose(
                coefficients[slot], g, rtol=1e-3, atol=1e-3 * np.abs(g).max()
            )


class TestAccumulationDuringFit:
    @pytest.mark.parametrize("jit_compile", [False, True])
    def test_accumulators_equal_captured_gradients(
        self, jit_compile, make_model, make_data
    ):
        if jit_compile and keras.backend.backend() == "torch":
            pytest.skip("torch.compile is not the XLA path")
        if not jit_compile and keras.backend.backend() == "jax":
            pytest.skip("JAX runs its train step under jit; eager is slow")
        model = make_model(capture_kernel_gradients=True)
        x, y = make_data(32)
        model.compile(keras.optimizers.SGD(0.0), jit_compile=jit_compile)
        model.start_kernel_gradient_capture()
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        model.stop_kernel_gradient_capture()
        got = model.accumulated_kernel_gradients()
        want = model.collect_kernel_gradients(
            x, y, batch_size=16, batches=None, training=True
        )
        for member in range(2):
            _assert_grads_close(got[member], want[member], rtol=1e-4)

    def test_callback_captures_chosen_epochs_only(self, make_model, make_data):
        from keras_swn.callbacks import KernelGradientCapture

        model = make_model(capture_kernel_gradients=True)
        x, y = make_data(32)
        model.compile(keras.optimizers.SGD(0.01))
        capture = KernelGradientCapture(epochs=[1])
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[capture])
        assert sorted(capture.gradients) == [1]
        assert np.abs(capture.gradients[1][0]["stem"]).sum() > 0
        assert not model._capture_on

    def test_without_accumulators_raises(self, make_model):
        with pytest.raises(ValueError, match="capture_kernel_gradients=True"):
            make_model().start_kernel_gradient_capture()


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute"
)
def test_mirrored_strategy_gives_single_device_sums():
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, keras_swn
        from keras_swn.models import WideResNet
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
        y = rng.integers(0, 5, 32)
        def run(strategy, batch_size):
            with strategy.scope():
                m = keras_swn.SWNModel(
                    members=[WideResNet(10, 1)], input_shape=(8, 8, 3),
                    num_classes=5, budget=100_000, seed=0,
                    capture_kernel_gradients=True)
                m.compile(keras.optimizers.SGD(0.0))
            m.start_kernel_gradient_capture()
            m.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False,
                  verbose=0)
            return m.accumulated_kernel_gradients()[0]
        # BatchNorm statistics are per replica, so 2 replicas x 8 images
        # match one device on batches of 8; each replica's loss is scaled
        # by 1/2 (the global-batch mean), hence the factor 2.
        two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 16)
        two = {k: 2 * v for k, v in two.items()}
        one = run(tf.distribute.get_strategy(), 8)
        err = max(np.abs(two[k] - one[k]).max() / np.abs(one[k]).max()
                  for k in one)
        print("MAXERR", err)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    err = float(out.stdout.split("MAXERR")[-1])
    assert err < 1e-4


def test_accumulators_are_unscaled_under_loss_scaling(make_model, make_data):
    """mixed_float16 wraps the optimizer in a LossScaleOptimizer; the
    accumulated kernel gradients must not carry its scale."""
    x, y = make_data(16)
    results = []
    for policy in ("float32", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        try:
            model = make_model(capture_kernel_gradients=True)
            model.compile(keras.optimizers.SGD(0.0))
            model.start_kernel_gradient_capture()
            model.fit(x, y, batch_size=16, epochs=1, verbose=0)
            results.append(model.accumulated_kernel_gradients()[0])
        finally:
            keras.config.set_dtype_policy("float32")
    for name, g in results[0].items():
        # float16 compute: equal to a few percent, and not 2**15 times off.
        err = np.linalg.norm(results[1][name] - g) / np.linalg.norm(g)
        assert err < 0.1, (name, err)
