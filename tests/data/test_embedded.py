"""Tests for `keras_swn.data.embedded` (digits and `.npz` loaders)."""

import builtins
import pathlib
import re

import numpy as np
import pytest

from keras_swn.data import embedded
from keras_swn.data import load_digits_dataset
from keras_swn.data import load_npz
from keras_swn.data import stratified_split


def make_xy(n=40, shape=(6, 6, 3), classes=4, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *shape)).astype(dtype)
    y = np.arange(n) % classes
    return x, y


class TestStratifiedSplit:
    def test_stratified_and_seeded(self):
        y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
        train, val = stratified_split(y, validation_split=0.2, seed=3)
        assert len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == len(y)
        np.testing.assert_array_equal(np.bincount(y[val]), [2, 4, 6, 8, 10])
        again = stratified_split(y, validation_split=0.2, seed=3)
        np.testing.assert_array_equal(val, again[1])
        other = stratified_split(y, validation_split=0.2, seed=4)
        assert not np.array_equal(val, other[1])

    @pytest.mark.parametrize("split", [0, 1, 1.5, -0.1, True, "0.2"])
    def test_bad_split(self, split):
        with pytest.raises(ValueError, match="`validation_split`"):
            stratified_split(np.arange(10) % 2, validation_split=split)


class TestDigits:
    def test_shapes_and_range(self):
        (x, y), (xv, yv) = load_digits_dataset()
        assert x.shape == (1438, 8, 8, 1) and xv.shape == (359, 8, 8, 1)
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
        assert set(np.unique(y)) == set(range(10)) == set(np.unique(yv))

    def test_seed_changes_split(self):
        (_, _), (a, _) = load_digits_dataset(seed=0)
        (_, _), (b, _) = load_digits_dataset(seed=0)
        (_, _), (c, _) = load_digits_dataset(seed=1)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_normalize(self):
        (x, _), _ = load_digits_dataset(normalize=True)
        np.testing.assert_allclose(x.mean(), 0.0, atol=1e-5)
        np.testing.assert_allclose(x.std(), 1.0, atol=1e-4)

    def test_no_scikit_learn_needed(self, monkeypatch):
        real_import = builtins.__import__

        def fake_import(name, *args, **kwargs):
            if name.startswith("sklearn"):
                raise ImportError("No module named 'sklearn'")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake_import)
        (x, y), (xv, yv) = load_digits_dataset()
        assert len(x) + len(xv) == 1797

    def test_vendored_arrays(self):
        images, labels = embedded.digits_arrays()
        assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
        assert labels.shape == (1797,) and labels.dtype == np.uint8
        assert images.min() == 0 and images.max() == 16
        np.testing.assert_array_equal(np.unique(labels), np.arange(10))

    def test_vendored_equal_scikit_learn(self):
        datasets = pytest.importorskip("sklearn.datasets")
        digits = datasets.load_digits()
        images, labels = embedded.digits_arrays()
        np.testing.assert_array_equal(images, digits.images)
        np.testing.assert_array_equal(labels, digits.target)
        # The loader is the old scikit-learn-based one, bit for bit.
        (x, y), (xv, yv) = load_digits_dataset(seed=3)
        reference = (digits.images.astype(np.float32) / 16.0)[..., None]
        train, val = stratified_split(digits.target, seed=3)
        np.testing.assert_array_equal(x, reference[train])
        np.testing.assert_array_equal(xv, reference[val])
        np.testing.assert_array_equal(yv, digits.target[val])

    def test_declared_as_package_data(self):
        tomllib = pytest.importorskip("tomllib")
        root = pathlib.Path(embedded.__file__).parents[2]
        pyproject = root / "pyproject.toml"
        if not pyproject.is_file():
            pytest.skip("not a source checkout")
        config = tomllib.loads(pyproject.read_text())
        package_data = config["tool"]["setuptools"]["package-data"]
        assert embedded.DIGITS_FILE in package_data["keras_swn.data"]
        assert (pathlib.Path(embedded.__file__).parent / "digits.npz").is_file()


class TestNpz:
    def test_xy_split_uint8(self, tmp_path):
        x, y = make_xy()
        path = tmp_path / "d.npz"
        np.savez(path, x=x, y=y.astype(np.uint8), classes=np.array(["a"]))
        (xt, yt), (xv, yv) = load_npz(path, validation_split=0.3, seed=1)
        assert xt.shape == (28, 6, 6, 3) and xv.shape == (12, 6, 6, 3)
        assert xt.dtype == np.float32 and yt.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(yv), [3, 3, 3, 3])
        train, val = stratified_split(y, validation_split=0.3, seed=1)
        np.testing.assert_allclose(xv, x[val] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(yt, y[train])

    def test_train_test_arrays(self, tmp_path):
        x, y = make_xy(n=12, shape=(5, 5))
        path = tmp_path / "d.npz"
        np.savez(
            path,
            x_train=x[:8],
            y_train=y[:8, None],
            x_test=x[8:].astype(np.float64) / 255.0,
            y_test=y[8:],
        )
        (xt, yt), (xv, yv) = load_npz(path)
        assert xt.shape == (8, 5, 5, 1) and xv.shape == (4, 5, 5, 1)
        np.testing.assert_allclose(xt, x[:8, ..., None] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(yv, y[8:])
        assert xv.dtype == np.float32

    def test_normalize_uses_training_statistics(self, tmp_path):
        x, y = make_xy(n=60)
        path = tmp_path / "d.npz"
        np.savez(path, x=x, y=y)
        (xt, _), (xv, _) = load_npz(path, normalize=True)
        np.testing.assert_allclose(xt.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(xt.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
        assert not np.allclose(xv.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)

    def test_missing_file(self, tmp_path):
        path = tmp_path / "nope.npz"
        with pytest.raises(ValueError, match=re.escape(f"path={str(path)!r}")):
            load_npz(path)

    def test_missing_keys(self, tmp_path):
        path = tmp_path / "d.npz"
        np.savez(path, images=np.zeros((4, 2, 2)), labels=np.zeros(4))
        with pytest.raises(
            ValueError, match=r"lacks the arrays.*with keys \['images'"
        ):
            load_npz(path)

    def test_not_an_archive(self, tmp_path):
        path = tmp_path / "d.npz"
        path.write_bytes(b"not a zip file")
        with pytest.raises(ValueError, match="Not a readable .npz archive"):
            load_npz(path)

    def test_bad_shapes(self, tmp_path):
        path = tmp_path / "d.npz"
        np.savez(path, x=np.zeros((4, 8)), y=np.zeros(4, np.int64))
        with pytest.raises(ValueError, match=r"x.shape=\(4, 8\)"):
            load_npz(path)
        np.savez(path, x=np.zeros((4, 2, 2)), y=np.zeros(5, np.int64))
        with pytest.raises(ValueError, match=r"y.shape=\(5,\)"):
            load_npz(path)
        np.savez(path, x=np.zeros((4, 2, 2)), y=np.full(4, 0.5))
        with pytest.raises(ValueError, match="integer class labels"):
            load_npz(path)


def test_describe():
    arrays = (
        (np.zeros((3, 2, 2, 1)), np.array([0, 1, 2])),
        (np.zeros((1, 2, 2, 1)), np.array([4])),
    )
    assert embedded.describe(arrays) == (
        "train 3 x (2, 2, 1), val 1 x (2, 2, 1); 5 classes"
    )
