"""CIFAR pipelines: §5 augmentation, seeding, normalisation, TFDS (mocked)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_swn import data


def _images(n=6, size=32, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


class TestConstants:
    def test_normalisation_constants_are_the_reference_values(self):
        np.testing.assert_allclose(
            np.array(data.CIFAR10_MEAN) * 255, [125.3, 123.0, 113.9]
        )
        np.testing.assert_allclose(
            np.array(data.CIFAR10_STD) * 255, [63.0, 62.1, 66.7]
        )
        np.testing.assert_allclose(
            np.array(data.CIFAR100_MEAN) * 255, [129.3, 124.1, 112.4]
        )
        np.testing.assert_allclose(
            np.array(data.CIFAR100_STD) * 255, [68.2, 65.4, 70.4]
        )
        assert data.NORMALIZATION["cifar10"] == (
            data.CIFAR10_MEAN,
            data.CIFAR10_STD,
        )


class TestMakeDataset:
    def test_training_batches(self):
        x, y = _images(10), np.arange(10) % 3
        ds = data.make_dataset(x, y, batch_size=4, seed=0)
        shapes = [(tuple(a.shape), tuple(b.shape)) for a, b in ds]
        assert shapes == [
            ((4, 32, 32, 3), (4,)),
            ((4, 32, 32, 3), (4,)),
            ((2, 32, 32, 3), (2,)),
        ]
        a, b = next(iter(ds))
        assert a.dtype == tf.float32 and b.dtype == tf.int32
        dropped = data.make_dataset(x, y, batch_size=4, drop_remainder=True)
        assert len(list(dropped)) == 2

    def test_test_split_is_normalisation_only(self):
        x, y = _images(5), np.arange(5)
        got, labels = _epoch(
            data.make_dataset(x, y, batch_size=2, training=False)
        )
        mean = np.array(data.CIFAR10_MEAN, np.float32)
        std = np.array(data.CIFAR10_STD, np.float32)
        want = (x.astype(np.float32) / 255.0 - mean) / std
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(labels, y)

    def test_float_images_in_unit_range_match_uint8(self):
        x = _images(3)
        as_float = x.astype(np.float32) / 255.0
        a, _ = _epoch(data.make_dataset(x, [0, 1, 2], training=False))
        b, _ = _epoch(data.make_dataset(as_float, [0, 1, 2], training=False))
        np.testing.assert_allclose(a, b, atol=1e-5)

    def test_same_seed_same_stream_other_epochs_differ(self):
        x, y = _images(8), np.arange(8)
        first = data.make_dataset(x, y, batch_size=8, seed=3)
        second = data.make_dataset(x, y, batch_size=8, seed=3)
        other = data.make_dataset(x, y, batch_size=8, seed=4)
        e1, l1 = _epoch(first)
        e2, l2 = _epoch(second)
        np.testing.assert_array_equal(e1, e2)
        np.testing.assert_array_equal(l1, l2)
        assert sorted(l1.tolist()) == list(range(8))
        assert not np.array_equal(e1, _epoch(other)[0])
        # A new epoch draws new crops, flips, cutouts and order.
        assert not np.array_equal(e1, _epoch(first)[0])

    def test_custom_normalisation_and_bad_arguments(self):
        x = np.full((2, 8, 8, 1), 0.5, np.float32)
        got, _ = _epoch(
            data.make_dataset(
                x, [0, 1], training=False, normalization=([0.25], [0.5])
            )
        )
        np.testing.assert_allclose(got, 0.5)
        with pytest.raises(ValueError, match="3 channels but the images"):
            data.make_dataset(x, [0, 1], normalization="cifar10")
        with pytest.raises(ValueError, match="normalization='svhn'"):
            data.make_dataset(x, [0, 1], normalization="svhn")
        with pytest.raises(ValueError, match=r"y.shape=\(3,\)"):
            data.make_dataset(x, [0, 1, 2], normalization=None)
        with pytest.raises(ValueError, match="batch_size=0"):
            data.make_dataset(x, [0, 1], batch_size=0, normalization=None)

    @pytest.mark.backend_sensitive
    def test_fit_accepts_the_pipeline(self):
        x, y = _images(8, size=8), np.arange(8) % 2
        ds = data.make_dataset(x, y, batch_size=4, cutout=4, seed=0)
        model = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(2, 3),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(2),
            ]
        )
        model.compile(
            "sgd",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = model.fit(ds, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))


class TestAugmentImage:
    def test_cutout_zeroes_a_clipped_16x16_square_after_normalising(self):
        # A constant image: crop and flip change nothing, so every zero
        # comes from Cutout, and everything else is the normalised value.
        image = np.full((32, 32, 3), 200, np.uint8)
        mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
        inside = (200 / 255 - np.array(mean)) / np.array(std)
        sizes = set()
        for s in range(40):
            out = data.augment_image(
                image, [s, 7], mean=mean, std=std, padding=0
            ).numpy()
            zero = np.all(out == 0, axis=-1)
            rows = np.flatnonzero(zero.any(axis=1))
            cols = np.flatnonzero(zero.any(axis=0))
            # One axis-aligned rectangle, 8 to 16 pixels per side.
            assert zero.sum() == len(rows) * len(cols)
            assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
            assert 8 <= len(rows) <= 16 and 8 <= len(cols) <= 16
            # Clipped only at the border.
            if len(rows) < 16:
                assert rows[0] == 0 or rows[-1] == 31
            if len(cols) < 16:
                assert cols[0] == 0 or cols[-1] == 31
            np.testing.assert_allclose(
                out[~zero], np.tile(inside, ((~zero).sum(), 1)), rtol=1e-5
            )
            sizes.add((len(rows), len(cols)))
        assert (16, 16) in sizes
        assert any(r < 16 or c < 16 for r, c in sizes)

    def test_crop_is_a_window_of_the_zero_padded_image(self):
        image = np.arange(32 * 32 * 3, dtype=np.float32).reshape(32, 32, 3)
        image /= image.max()
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        offsets = set()
        for s in range(20):
            out = data.augment_image(
                image, [s, 0], mean=None, std=None, cutout=0
            ).numpy()
            found = [
                (dy, dx, flip)
                for dy in range(9)
                for dx in range(9)
                for flip in (False, True)
                if np.array_equal(
                    out,
                    (
                        padded[dy : dy + 32, dx : dx + 32][:, ::-1]
                        if flip
                        else padded[dy : dy + 32, dx : dx + 32]
                    ),
                )
            ]
            assert len(found) == 1, s
            offsets.add(found[0])
        assert len(offsets) > 5
        assert {f for _, _, f in offsets} == {False, True}

    def test_same_seed_same_image(self):
        image = _images(1)[0]
        kwargs = dict(mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD)
        a = data.augment_image(image, [1, 2], **kwargs).numpy()
        b = data.augment_image(image, [1, 2], **kwargs).numpy()
        c = data.augment_image(image, [2, 2], **kwargs).numpy()
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


class TestLoadCifar:
    @pytest.mark.parametrize("name", ["cifar10", "cifar100"])
    def test_mock_train_and_test_splits(self, name, tmp_path):
        with tfds.testing.mock_data(num_examples=6):
            train = data.load_cifar(
                name, batch_size=4, data_dir=tmp_path, seed=1
            )
            test = data.load_cifar(
                name, split="test", batch_size=4, data_dir=tmp_path
            )
            raw = tfds.load(
                name, split="test", as_supervised=True, data_dir=tmp_path
            )
        x, y = _epoch(train)
        assert x.shape == (6, 32, 32, 3) and x.dtype == np.float32
        assert y.dtype == np.int32
        raw_x = np.stack([a for a, _ in raw.as_numpy_iterator()])
        raw_y = np.array([b for _, b in raw.as_numpy_iterator()])
        got_x, got_y = _epoch(test)
        mean, std = data.NORMALIZATION[name]
        want = (raw_x / 255.0 - np.array(mean)) / np.array(std)
        np.testing.assert_allclose(got_x, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got_y, raw_y)
        # Training split: augmented, so not the normalised raw images.
        assert np.any(x == 0)

    def test_missing_data_without_download_fails_at_once(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="download=False"):
            data.load_cifar("cifar10", data_dir=tmp_path)

    def test_bad_name(self):
        with pytest.raises(ValueError, match="name='mnist'"):
            data.load_cifar("mnist")
