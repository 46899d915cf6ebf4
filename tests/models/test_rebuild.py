"""Refine takes effect: one variable per block, values carried over (F3)."""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.analysis import refine_partition
from keras_swn.models import WideResNet

pytestmark = pytest.mark.backend_sensitive


def _searchlike_model():
    return keras_swn.SWNModel(
        members=[WideResNet(10, 1), WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=5,
        budget=120_000,
        coefficient_sharing="per_bank",
        seed=0,
    )


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8, 8, 3)).astype("f"), rng.integers(0, 5, n)


def test_refined_model_keeps_outputs_and_optimizer_state():
    model = _searchlike_model()
    x, y = _data()
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    grads = model.collect_coefficient_gradients(x, y, batch_size=8)
    # Threshold 1.0: nothing stays together, every slot gets its vector.
    result = refine_partition(model.policy, grads, threshold=1.0)
    assert result.vectors_after > result.vectors_before
    refined = model.refined(result.policy, copies=result.copies)
    assert refined.policy == result.policy
    for a, b in zip(model.predict(x, verbose=0), refined.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(keras.ops.convert_to_numpy(refined.optimizer.iterations)) == 2
    refined.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_a_refined_block_is_one_variable_updated_by_all_members():
    model = _searchlike_model()
    x, y = _data()
    grads = model.collect_coefficient_gradients(x, y, batch_size=16)
    # Keep member 0 and member 1 of layer 0's bank together: force their
    # gradients to agree, and every other pair to disagree.
    keys = sorted(grads)
    fake = {
        k: np.eye(len(grads[k]))[0] * (1 + i)
        if k[1] == 0
        else np.sin(np.arange(len(grads[k])) + 7.0 * i)
        for i, k in enumerate(keys)
    }
    result = refine_partition(model.policy, fake, threshold=0.9)
    policy = result.policy
    assert policy.owner((1, 0, 0)) == policy.owner((0, 0, 0)) == (0, 0)
    refined = model.refined(policy, copies=result.copies, compile=False)
    g = refined.plan.layers[(0, 0)].group
    variable = refined.bank.coefficients[(g, 0)]
    row = refined.bank.coefficient_rows[(g, 0)][(0, 0)]
    # The block's one row moves by -lr * (sum of both members' gradients).
    per_member = refined.collect_coefficient_gradients(
        x, y, batch_size=16, training=True
    )
    lr = 1e-3
    refined.compile(keras.optimizers.SGD(lr))
    before = keras.ops.convert_to_numpy(variable)[row].copy()
    refined.train_on_batch(x, y)
    after = keras.ops.convert_to_numpy(variable)[row]
    readers = [
        s for s in per_member if s[2] == 0 and refined.policy.owner(s) == (0, 0)
    ]
    assert {s[0] for s in readers} == {0, 1}
    # Per-member entries are already summed over each member's uses.
    expected = sum(
        per_member[(m, min(l for mm, l, w in readers if mm == m), 0)]
        for m in (0, 1)
    )
    np.testing.assert_allclose(
        (before - after) / lr,
        expected,
        rtol=2e-3,
        atol=1e-3 * np.abs(expected).max(),
    )
