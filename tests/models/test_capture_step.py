"""The capturing `train_step` takes Keras' own step.

While kernel-gradient capture is on, `SWNModel.train_step` is the
backend's capturing step (`keras_swn.models.trainers`), which restates
Keras' step (loss, loss tracking, scaling, `apply_gradients`) around the
zero probes. With a real learning rate, a few `fit` steps with capture on
must leave the same weights and log the same values as the same steps
with capture off (Keras' own `train_step`).
"""

import keras
import numpy as np
import pytest

from keras_swn.models import WideResNet
from keras_swn.models.swn_model import SWNModel

STEPS, BATCH, EPOCHS = 3, 8, 2


def _model(**kwargs):
    return SWNModel(
        members=[WideResNet(10, 1), WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=4,
        budget=120_000,
        seed=0,
        capture_kernel_gradients=True,
        **kwargs,
    )


def _fit(capture, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, STEPS * BATCH)
    model = _model(**kwargs)
    model.compile(keras.optimizers.SGD(0.1))
    if capture:
        model.start_kernel_gradient_capture()
    history = model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0
    )
    gradients = model.accumulated_kernel_gradients()
    weights = {
        v.path: keras.ops.convert_to_numpy(v)
        for v in model.variables
        if "kernel_gradient" not in v.path
    }
    return history.history, weights, gradients


@pytest.mark.backend_sensitive
@pytest.mark.parametrize(
    "options",
    [{}, {"weight_decay": 1e-3, "member_loss_weights": [1.0, 0.0]}],
    ids=["plain", "decay_and_frozen_member"],
)
def test_capture_on_takes_the_keras_step(options):
    logs_off, weights_off, captured_off = _fit(False, **options)
    logs_on, weights_on, captured_on = _fit(True, **options)
    # The capturing step ran: its accumulators hold non-zero gradients;
    # Keras' step left them at zero.
    assert all(
        not np.any(g) for member in captured_off for g in member.values()
    )
    assert any(np.any(g) for member in captured_on for g in member.values())
    assert sorted(logs_on) == sorted(logs_off)
    assert "loss" in logs_on and len(logs_on["loss"]) == EPOCHS
    for name in logs_off:
        np.testing.assert_allclose(
            logs_on[name], logs_off[name], rtol=1e-5, atol=1e-5, err_msg=name
        )
    assert sorted(weights_on) == sorted(weights_off)
    # The optimizer's iteration counter, slots and every model variable.
    moved = 0
    for path, value in weights_off.items():
        np.testing.assert_allclose(
            weights_on[path], value, rtol=1e-5, atol=1e-5, err_msg=path
        )
        moved += "templates" in path
    assert moved > 0
    # SGD(0.1) moved the weights: the test compares trained values.
    fresh = _model(**options)
    start = {v.path: keras.ops.convert_to_numpy(v) for v in fresh.variables}
    changed = [
        p
        for p, v in weights_off.items()
        if p in start and not np.allclose(v, start[p], atol=1e-4)
    ]
    assert any("templates" in p for p in changed)
    assert any("coefficients" in p for p in changed)
