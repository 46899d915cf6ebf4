"""`benchmarks/quality.py`: the plain WRN it builds, and its smoke mode.

The smoke test runs the script's `main` in `--smoke` mode on random
images written to a tiny `.npz` with the array names of the CIFAR subset
(`x`, `y`, `classes`); it does not read the shared data. It checks that
the JSON, the Markdown table and the plot are written with every row,
that a second call with the same output skips the finished runs, and
that `--report_only` re-renders the table from the JSON alone.
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


def _tiny_npz(path, n, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
        y=(np.arange(n) % 10).astype(np.uint8),
        classes=np.array([f"class_{i}" for i in range(10)]),
    )
    return str(path)


def test_training_batches_are_a_function_of_seed_and_epoch(quality, tmp_path):
    path = _tiny_npz(tmp_path / "tiny.npz", 300)
    split = quality.Data(path, 0, False)
    assert (len(split.y), len(split.y_val)) == (240, 60)
    data = quality.Data(path, 0, False, eval_path=path)
    assert (len(data.y), len(data.y_val)) == (300, 300)
    pixels = data.x.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(axis=0), rtol=1e-6)

    def first(seed, epoch):
        ds, order = data.train(seed, 64)
        order.assign(epoch)
        return [np.asarray(t) for t in next(iter(ds))]

    x, y = first(0, 3)
    again_x, again_y = first(0, 3)  # another row of the same seed
    np.testing.assert_array_equal(x, again_x)
    np.testing.assert_array_equal(y, again_y)
    assert x.shape == (64, 32, 32, 3)
    assert not np.array_equal(x, first(0, 4)[0])
    assert not np.array_equal(x, first(1, 3)[0])
    ds, order = data.train(0, 64)
    assert sum(len(b[1]) for b in ds) == 300  # every image once per epoch


def test_t_interval(quality):
    mean, low, high = quality.t_interval([0.01, 0.02, 0.03])
    assert mean == pytest.approx(0.02)
    # t(0.975, 2) = 4.303, standard error 0.01 / sqrt(3).
    assert high - mean == pytest.approx(4.303 * 0.01 / np.sqrt(3))
    assert mean - low == pytest.approx(high - mean)
    assert quality.t_interval([0.5])[1:] == (None, None)


@pytest.mark.slow
def test_smoke_mode_writes_every_row(quality, tmp_path, capsys):
    data = _tiny_npz(tmp_path / "tiny.npz", 400)
    extra = _tiny_npz(tmp_path / "extra.npz", 200, seed=1)
    output = tmp_path / "out" / "quality.json"
    argv = ["--data", data, "--eval_data", extra, "--smoke"]
    argv += ["--output", str(output)]

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
    assert written["settings"]["eval_data"] == extra
    assert (written["settings"]["n_train"], written["settings"]["n_val"]) == (
        256,
        64,
    )
    epochs = {m: r["epochs_total"][0] for (_, m), r in rows.items()}
    assert epochs["bins"] == epochs["plain"] == epochs["random"] == 2
    assert epochs["bins_matched"] == epochs["search"] == 3
    search_row = rows[("main", "search")]
    bins_row = rows[("main", "bins")]
    assert search_row["paired_diff"] == [
        search_row["accuracy"][0] - bins_row["accuracy"][0]
    ]
    assert "paired_diff" not in bins_row

    table = (tmp_path / "out" / "quality.md").read_text(encoding="utf-8")
    for row in rows.values():
        assert row["label"] in table
    assert table.count("\n| WRN-") == len(expected)
    assert (tmp_path / "out" / "quality.png").stat().st_size > 0
    assert (tmp_path / "out" / "quality_paired.png").stat().st_size > 0
    capsys.readouterr()

    again = quality.main(argv)

    assert "0 to run" in capsys.readouterr().out
    assert again["runs"] == written["runs"]

    md = tmp_path / "out" / "quality.md"
    before = md.read_text(encoding="utf-8")
    md.unlink()
    rendered = quality.main(["--report_only", "--output", str(output)])

    assert md.read_text(encoding="utf-8") == before
    assert rendered["runs"] == written["runs"]
