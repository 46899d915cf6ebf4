"""Search with members of the same depth (the paper's ensembles).

During the search only member 0 and the first member of each new depth
train; a same-depth member has loss weight 0. Its kernel gradients must
still be captured (each member's own loss), it must not run in training
mode, and the whole search must finish on every backend.
"""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet
from keras_swn.search import SearchAndRefine

pytestmark = pytest.mark.backend_sensitive

MEMBERS = [(10, 2), (10, 1)]  # one depth: member 1 does not train in search


def _digits(n_train=32, n_val=16):
    (x, y), (xv, yv) = load_digits_dataset(seed=0)
    return (x[:n_train], y[:n_train]), (xv[:n_val], yv[:n_val])


def _search_model(**kwargs):
    return keras_swn.SWNModel(
        members=[WideResNet(d, w) for d, w in MEMBERS],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=250_000,
        coefficient_sharing="per_bank",
        member_loss_weights=[1.0, 0.0],
        seed=0,
        **kwargs,
    )


def test_every_member_gradient_is_captured():
    model = _search_model()
    (x, y), _ = _digits()
    grads = model.collect_kernel_gradients(x, y, batch_size=16)
    assert len(grads) == 2
    for member in grads:
        assert member
        for g in member.values():
            assert np.all(np.isfinite(g))
            assert np.abs(g).sum() > 0
    # Member 1's gradient is the gradient of its own loss: the same as in
    # a model where it trains (loss weights do not enter the capture).
    reference = _search_model()
    reference.member_loss_weights = None
    again = reference.collect_kernel_gradients(x, y, batch_size=16)
    for name, g in grads[1].items():
        np.testing.assert_allclose(g, again[1][name], rtol=1e-4, atol=1e-7)


def test_untrained_member_is_not_run_in_training():
    model = _search_model()
    model.compile(optimizer="sgd", run_eagerly=True)
    (x, y), _ = _digits()
    shared = {id(v) for v in model.bank.weights}
    frozen = [v for v in model.members[1].weights if id(v) not in shared]
    assert frozen
    before = [keras.ops.convert_to_numpy(v) for v in frozen]
    outputs = model(x[:8], training=True)
    assert outputs[1] is None and outputs[0] is not None
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(v) for v in frozen]
    for a, b in zip(before, after):  # BatchNorm statistics and head kept
        np.testing.assert_array_equal(a, b)
    # Inference still runs every member.
    assert all(o is not None for o in model(x[:8], training=False))


@pytest.mark.parametrize("sharing", ["learned", "soft"])
def test_search_finishes_with_same_depth_members(tmp_path, sharing):
    keras.utils.clear_session()
    search = SearchAndRefine(
        [WideResNet(d, w) for d, w in MEMBERS],
        (8, 8, 1),
        10,
        budget=250_000,
        batch_size=16,
        run_eagerly=True,
        seed=3,
        sharing=sharing,
        plots=False,
        directory=str(tmp_path),
        project_name="same_depth",
    )
    train, val = _digits()
    search.search(
        train, val, search_epochs=1, epochs=2, refine_after=1, verbose=0
    )
    policy = search.policy
    assert policy.num_members == 2
    # Every layer of member 1 joined a group seeded by member 0.
    assert set(policy.groups[1]) <= set(policy.groups[0])
    assert np.isfinite(search.results()["val_ensemble_accuracy"])
