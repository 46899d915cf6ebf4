"""`benchmarks/quality.py`: the plain WRN it builds, and its smoke mode.

The smoke test runs the script's `main` in `--smoke` mode on random
images written to a tiny `.npz` with the array names of the CIFAR subset
(`x`, `y`, `classes`); it does not read the shared data. It checks that
the JSON, the Markdown table and the plot are written with every row,
and that a second call with the same output skips the finished runs.
"""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from keras_swn.models import LayerFactory
from keras_swn.models import WideResNet

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the benchmark runs once, on TensorFlow (its data is tf.data)",
)


@pytest.fixture(scope="module")
def quality():
    path = os.path.join(_ROOT, "benchmarks", "quality.py")
    spec = importlib.util.spec_from_file_location("quality_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("depth,width", [(10, 1), (10, 2), (16, 2)])
def test_plain_wrn_matches_the_wide_resnet_builder(quality, depth, width):
    inputs = keras.Input((32, 32, 3))
    reference = keras.Model(
        inputs, WideResNet(depth, width)(inputs, LayerFactory(None, 0), 10)
    )
    inputs = keras.Input((32, 32, 3))
    plain = keras.Model(
        inputs,
        quality.plain_wrn(
            inputs, depth, quality.wrn_channels(width), 10, seed=0
        ),
    )

    def shapes(model):
        return sorted(tuple(v.shape) for v in model.trainable_variables)

    assert shapes(plain) == shapes(reference)
    count = quality.plain_wrn_params(depth, quality.wrn_channels(width), 3, 10)
    expected = WideResNet(depth, width).unshared_params((32, 32, 3), 10)
    assert count == expected.params_unshared
    assert count == sum(int(np.prod(v.shape)) for v in plain.weights) - sum(
        int(np.prod(v.shape)) for v in plain.non_trainable_weights
    )


def test_matched_width_is_closest_on_its_grid(quality):
    target = 53_000
    k, channels, params = quality.matched_width(16, target, 3, 10)
    assert channels == quality.wrn_channels(k)
    for other in (k - 0.01, k + 0.01):
        p = quality.plain_wrn_params(16, quality.wrn_channels(other), 3, 10)
        assert abs(p - target) >= abs(params - target)


@pytest.mark.slow
def test_smoke_mode_writes_every_row(quality, tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(
        data,
        x=rng.integers(0, 256, size=(400, 32, 32, 3), dtype=np.uint8),
        y=(np.arange(400) % 10).astype(np.uint8),
        classes=np.array([f"class_{i}" for i in range(10)]),
    )
    output = tmp_path / "out" / "quality.json"
    argv = ["--data", str(data), "--smoke", "--output", str(output)]

    results = quality.main(argv)

    assert results["errors"] == {}
    with open(output, encoding="utf-8") as f:
        written = json.load(f)
    expected = {
        ("main", m)
        for m in quality.MAIN_METHODS
        if m != "plain_narrow"  # WRN-10-1 is the full network in smoke
    } | {("ensemble", m) for m in quality.ENSEMBLE_METHODS}
    rows = {(r["network"], r["method"]): r for r in written["rows"]}
    assert set(rows) == expected
    for row in rows.values():
        assert row["seeds"] == [0]
        assert 0.0 <= row["accuracy_mean"] <= 1.0
        assert row["trainable_params"][0] > 0
    assert len(written["runs"]) == len(expected)
    assert rows[("main", "reference_init")]["template_fan_in"] == 9
    assert len(rows[("ensemble", "plain")]["member_accuracy"][0]) == 2
    swn = rows[("main", "bins")]["trainable_params"][0]
    plain = rows[("main", "plain")]["trainable_params"][0]
    assert swn < plain
    random_run = written["runs"]["main/random/b0.80/seed0"]
    search_run = written["runs"]["main/search/b0.80/seed0"]
    assert random_run["groups"] == search_run["groups"]

    table = (tmp_path / "out" / "quality.md").read_text(encoding="utf-8")
    for row in rows.values():
        assert row["label"] in table
    assert table.count("\n| WRN-") == len(expected)
    assert (tmp_path / "out" / "quality.png").stat().st_size > 0
    capsys.readouterr()

    again = quality.main(argv)

    assert "0 to run" in capsys.readouterr().out
    assert again["runs"] == written["runs"]
