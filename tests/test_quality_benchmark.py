"""`benchmarks/quality.py` and the modules it is built from.

`paired` (data, plain baselines), `report` (results files, statistics,
tables) and `quality_report` (the table of a results file) are imported
from `benchmarks/` as the script imports them. The smoke test runs the
script's `main` in `--smoke` mode on random images written to a tiny
`.npz` with the array names of the CIFAR subset (`x`, `y`, `classes`); it
does not read the shared data. It checks that the JSON, the Markdown
table and the plot are written with every row, that a second call with
the same output skips the finished runs, and that `--report_only`
re-renders the table from the JSON alone.
"""

import importlib
import json
import os
import sys

import keras
import numpy as np
import pytest

from keras_swn.models import LayerFactory
from keras_swn.models import WideResNet

_BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the benchmark runs once, on TensorFlow (its data is tf.data)",
)


def _module(name):
    if _BENCHMARKS not in sys.path:
        sys.path.insert(0, _BENCHMARKS)
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def quality():
    return _module("quality")


@pytest.fixture(scope="module")
def paired():
    return _module("paired")


@pytest.fixture(scope="module")
def report():
    return _module("report")


@pytest.mark.parametrize("depth,width", [(10, 1), (10, 2), (16, 2)])
def test_plain_wrn_matches_the_wide_resnet_builder(paired, depth, width):
    inputs = keras.Input((32, 32, 3))
    reference = keras.Model(
        inputs, WideResNet(depth, width)(inputs, LayerFactory(None, 0), 10)
    )
    channels = paired.wrn_channels(width)
    plain = paired.plain_wrn(depth, channels, (32, 32, 3), 10, seed=3)

    def shapes(model):
        return sorted(tuple(v.shape) for v in model.trainable_variables)

    assert shapes(plain) == shapes(reference)
    count = paired.plain_wrn_params(depth, channels, 3, 10)
    expected = WideResNet(depth, width).unshared_params((32, 32, 3), 10)
    assert count == expected.params_unshared
    assert count == paired.trainable_params(plain)
    # Convolution i starts from He-normal seeded 3 * 10_000 + i, the head
    # from the seed after the last convolution.
    convs = [
        layer
        for layer in plain.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert [c.name for c in convs[:2]] == ["stem", "stage1_block1_conv1"]
    for i, conv in enumerate(convs):
        init = keras.initializers.VarianceScaling(
            2.0, "fan_in", "untruncated_normal", seed=30_000 + i
        )
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(conv.kernel),
            keras.ops.convert_to_numpy(init(conv.kernel.shape)),
        )
    head = plain.get_layer("head").kernel
    init = keras.initializers.VarianceScaling(
        2.0, "fan_in", "untruncated_normal", seed=30_000 + len(convs)
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(head),
        keras.ops.convert_to_numpy(init(head.shape)),
    )


def test_matched_width_is_closest_on_its_grid(paired):
    target = 53_000
    k, channels, params = paired.matched_width(16, target, 3, 10)
    assert channels == paired.wrn_channels(k)
    assert params == paired.plain_wrn_params(16, channels, 3, 10)
    assert abs(params - target) < 1_000
    for other in (k - 0.01, k + 0.01):
        p = paired.plain_wrn_params(16, paired.wrn_channels(other), 3, 10)
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


def test_training_batches_are_a_function_of_seed_and_epoch(paired, tmp_path):
    path = _tiny_npz(tmp_path / "tiny.npz", 300)
    split = paired.Data(path, 0)
    assert (len(split.y), len(split.y_val)) == (240, 60)
    assert (len(paired.Data(path, 0, (50, 20)).y_val)) == 20
    data = paired.Data(path, 0, eval_path=path)
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


def test_t_interval_and_paired_difference(report):
    mean, low, high = report.t_interval([0.01, 0.02, 0.03])
    assert mean == pytest.approx(0.02)
    # t(0.975, 2) = 4.303, standard error 0.01 / sqrt(3).
    assert high - mean == pytest.approx(4.303 * 0.01 / np.sqrt(3))
    assert mean - low == pytest.approx(high - mean)
    assert report.t_interval([0.5])[1:] == (None, None)
    paired = report.paired_difference(
        [0, 1, 2], [0.5, 0.6, 0.9], [2, 0, 5], [0.7, 0.4, 0.1]
    )
    assert paired["paired_seeds"] == [0, 2]
    assert paired["paired_diff"] == pytest.approx([0.1, 0.2])
    assert paired["paired_mean"] == pytest.approx(0.15)
    assert report.paired_difference([1], [0.5], [0], [0.4]) is None


def test_results_file_refuses_other_settings(report, tmp_path):
    path = str(tmp_path / "r.json")
    assert report.read_results(path, fmt="f", version=1) is None
    report.write_json(path, {"format": "f", "version": 1, "settings": {"a": 1}})
    found = report.read_results(
        path, fmt="f", version=1, settings={"a": 1, "b": 2}, compared=["a"]
    )
    assert found["settings"] == {"a": 1}
    with pytest.raises(SystemExit, match="a: file 1, now 2"):
        report.read_results(
            path, fmt="f", version=1, settings={"a": 2}, compared=["a"]
        )
    with pytest.raises(SystemExit, match="not a quality result file"):
        report.read_results(path, fmt="f", version=2, what="quality")
    assert report.markdown_table(["a", "b"], [["1", ""], "| raw |"]) == [
        "| a | b |",
        "| --- | --- |",
        "| 1 |  |",
        "| raw |",
    ]


def test_run_pending_records_runs_and_errors(report):
    results = {"runs": {}, "errors": {}}
    writes, lines = [], []

    def run(key, job):
        if job == "bad":
            raise ValueError("no")
        return {"job": job}

    report.run_pending(
        results,
        [("a", "good"), ("b", "bad")],
        run,
        write=lambda: writes.append(len(results["runs"])),
        log=lines.append,
    )
    assert results["runs"]["a"]["job"] == "good"
    assert results["runs"]["a"]["wall_seconds"] >= 0
    assert results["errors"] == {"b": "ValueError: no"}
    assert writes == [1, 1]
    assert lines == ["1/2 a: done", "2/2 b FAILED: ValueError: no"]


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
