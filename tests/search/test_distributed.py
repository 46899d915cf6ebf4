"""`SearchAndRefine(distribution=...)` on two logical CPU devices.

Each backend case runs in its own subprocess, because the logical devices
must be configured before the backend initialises: TensorFlow splits the
CPU into two logical devices for a `MirroredStrategy`; JAX gets two host
devices (`XLA_FLAGS`) for a `keras.distribution.DataParallel`. Each runs
the same tiny search (WRN-10-1 on the digits) on one device and under
the distribution and compares the policies, the captured similarities and
the refine result. The subprocesses set their own `KERAS_BACKEND`, so both
run from the TensorFlow suite.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_swn.search.builders import check_distribution
from keras_swn.search.builders import num_replicas

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

_SEARCH = """
import json, os, sys, tempfile
import numpy as np
import keras, keras_swn
from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet

(x, y), (x_val, y_val) = load_digits_dataset(seed=0)
x, y, x_val, y_val = x[:256], y[:256], x_val[:64], y_val[:64]


def run(distribution, name, train=None):
    search = keras_swn.search.SearchAndRefine(
        members=[WideResNet(10, 1)], input_shape=(8, 8, 1), num_classes=10,
        budget=80_000, num_bins=2, batch_size=16, plots=False, seed=0,
        directory=tempfile.mkdtemp(), project_name=name,
        distribution=distribution)
    train = (x, y) if train is None else train
    search.search(train, (x_val, y_val), search_epochs=1, epochs=2,
                  refine_after=1, verbose=0)
    result = search.search_result()
    refine = search.store.read_json("refine.json")
    model = search.get_best_models()[0]
    return {
        "policy": search.policy.to_dict(),
        "similarity": {
            str(b): np.asarray(m).tolist()
            for b, (_, m) in result.similarity.items()
        },
        "refine_vectors": refine.get("vectors_after"),
        "val_accuracy": search.results().get("val_ensemble_accuracy"),
        "params": model.count_params(),
    }


def capture_gap(distribution):
    # The largest gap between the search's kernel and coefficient gradients
    # of one model on one device and under `distribution`, same weights.
    from keras_swn.search import builders as capture
    from keras_swn.training.data import DataSource
    from keras_swn.search.builders import distribution_scope

    data = DataSource((x[:32], y[:32]), "train_data")

    def captured(distribution):
        with distribution_scope(distribution):
            model = keras_swn.SWNModel(
                members=[WideResNet(10, 1)], input_shape=(8, 8, 1),
                num_classes=10, budget=80_000, seed=0)
            model.compile(optimizer="sgd")
            kernels = capture.kernel_gradients(
                model, data, model.specs, batches=2, batch_size=16, seed=0)
            coefficients = capture.coefficient_gradients(
                model, data, batch_size=16, seed=0)
        found = [kernels[k] for k in sorted(kernels)]
        found += [coefficients[k] for k in sorted(coefficients)]
        return [np.asarray(g) for g in found]

    one, two = captured(None), captured(distribution)
    return max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
"""

_TENSORFLOW = (
    """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    + _SEARCH
    + """
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
# Batches of 16 whose halves are the same 8 digits: each replica's
# BatchNorm then sees the statistics one device sees, so one device and
# two replicas compute the same steps (up to the reduction order).
halves = [slice(8 * i, 8 * i + 8) for i in range(8)]
xb = np.concatenate([np.concatenate([x[h], x[h]]) for h in halves])
yb = np.concatenate([np.concatenate([y[h], y[h]]) for h in halves])
train = tf.data.Dataset.from_tensor_slices((xb, yb)).batch(16)
print("RESULT", json.dumps({"one": run(None, "one", train),
                            "two": run(strategy, "two", train),
                            "capture_gap": capture_gap(strategy)}))
"""
)

_JAX = (
    _SEARCH
    + """
devices = keras.distribution.list_devices()
assert len(devices) == 2, devices
distribution = keras.distribution.DataParallel(devices=devices)
print("RESULT", json.dumps({"one": run(None, "one"),
                            "two": run(distribution, "two"),
                            "capture_gap": capture_gap(distribution)}))
"""
)


def _run(script, backend, env_extra=None):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(env_extra or {}),
    }
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # ~150 s alone; far more on a loaded 2-core machine
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _assert_same_search(result, atol):
    # The capture and refine passes read the full-batch gradient under the
    # distribution: at the same weights, the one-device values.
    assert result["capture_gap"] < 1e-5, result["capture_gap"]
    one, two = result["one"], result["two"]
    print({k: (one[k], two[k]) for k in ("val_accuracy", "similarity")})
    assert abs(one["val_accuracy"] - two["val_accuracy"]) < 0.05
    assert one["policy"] == two["policy"]
    assert one["similarity"].keys() == two["similarity"].keys()
    for b in one["similarity"]:
        np.testing.assert_allclose(
            np.asarray(two["similarity"][b]),
            np.asarray(one["similarity"][b]),
            atol=atol,
        )
    assert one["refine_vectors"] == two["refine_vectors"]
    assert one["params"] == two["params"]


_ONLY_FROM_TF = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the subprocesses set their own backend; run once",
)


@pytest.mark.slow
@_ONLY_FROM_TF
def test_search_under_mirrored_strategy_matches_one_device():
    _assert_same_search(_run(_TENSORFLOW, "tensorflow"), atol=1e-3)


@pytest.mark.slow
@_ONLY_FROM_TF
def test_search_under_jax_data_parallel_matches_one_device():
    _assert_same_search(
        _run(
            _JAX,
            "jax",
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        ),
        # One SPMD program: BatchNorm sees the global batch, as on one
        # device; only the reduction order differs.
        atol=1e-3,
    )


def test_distribution_is_checked_against_the_backend():
    backend = keras.backend.backend()
    assert check_distribution(None) is None
    assert num_replicas(None) == 1
    with pytest.raises(ValueError, match="distribution"):
        check_distribution("mirrored")
    with pytest.raises(ValueError, match="distribution"):
        check_distribution(keras.distribution, backend=backend)
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        assert check_distribution(strategy) is strategy
        with pytest.raises(ValueError, match="JAX"):
            check_distribution(strategy, backend="jax")
        with pytest.raises(ValueError, match="torch"):
            check_distribution(strategy, backend="torch")


def test_distribution_is_not_part_of_the_saved_configuration(tmp_path):
    from keras_swn.models import WideResNet
    from keras_swn.search import SearchAndRefine

    kwargs = dict(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=80_000,
        plots=False,
        directory=str(tmp_path),
        project_name="p",
    )
    search = SearchAndRefine(**kwargs)
    assert search.distribution is None
    assert "distribution" not in search.config.to_dict()
    with pytest.raises(ValueError, match="distribution"):
        SearchAndRefine(**kwargs, distribution="tpu")
