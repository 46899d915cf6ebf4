"""Tests for `keras_swn.analysis.similarity` (swn-algorithm.md §2.3)."""

import re

import numpy as np
import pytest

from keras_swn.analysis.similarity import PairSimilarity
from keras_swn.analysis.similarity import cropped_cosine
from keras_swn.analysis.similarity import similarity_matrix
from keras_swn.analysis.similarity import to_oihw


def _raises(message):
    return pytest.raises(ValueError, match="^" + re.escape(message) + "$")


class TestToOIHW:
    def test_conv_hwio_to_oihw(self):
        rng = np.random.default_rng(0)
        hwio = rng.standard_normal((3, 5, 4, 7))
        out = to_oihw(hwio, "conv2d")
        assert out.shape == (7, 4, 3, 5)
        assert out.dtype == np.float64
        for h, w, i, o in [(0, 0, 0, 0), (2, 4, 3, 6), (1, 3, 2, 5)]:
            assert out[o, i, h, w] == hwio[h, w, i, o]

    def test_dense_in_out_to_oihw(self):
        dense = np.arange(12.0).reshape(3, 4)  # (in, out)
        out = to_oihw(dense, "dense")
        assert out.shape == (4, 3, 1, 1)
        assert out[2, 1, 0, 0] == dense[1, 2]

    def test_bad_kind(self):
        with _raises(
            "Invalid value for argument `kind`. Expected one of "
            "('conv2d', 'dense'). Received: kind='conv1d'"
        ):
            to_oihw(np.zeros((3, 3)), "conv1d")

    def test_bad_rank(self):
        with _raises(
            "Invalid value for argument `array`. A conv2d kernel in the "
            "Keras layout is 4D (kh, kw, in, out). Received: "
            "array.shape=(3, 3)"
        ):
            to_oihw(np.zeros((3, 3)), "conv2d")
        with _raises(
            "Invalid value for argument `array`. A dense kernel in the Keras "
            "layout is 2D (in, out). Received: array.shape=(3,)"
        ):
            to_oihw(np.zeros((3,)), "dense")


class TestCroppedCosine:
    def test_zero_vector_gives_zero(self):
        a = np.ones((4, 4, 3, 3))
        assert cropped_cosine(a, np.zeros((4, 4, 3, 3))) == 0.0
        assert cropped_cosine(np.zeros((2, 2, 3, 3)), a) == 0.0
        assert (
            cropped_cosine(np.zeros((2, 2, 1, 1)), np.zeros((2, 2, 1, 1)))
            == 0.0
        )

    def test_zero_crop_gives_zero(self):
        # Non-zero only outside the common corner: the crop is zero.
        a = np.zeros((4, 4, 1, 1))
        a[3, 3] = 1.0
        b = np.ones((2, 2, 1, 1))
        assert cropped_cosine(a, b) == 0.0

    def test_crops_to_common_top_left_corner(self):
        rng = np.random.default_rng(1)
        big = rng.standard_normal((8, 6, 3, 3))
        small = big[:5, :4].copy()
        # Same corner: cosine 1, whatever lies outside the corner.
        assert cropped_cosine(big, small) == pytest.approx(1.0, abs=1e-12)
        tall = rng.standard_normal((3, 9, 3, 3))
        tall[:, :6] = big[:3]
        assert cropped_cosine(big, tall) == pytest.approx(1.0, abs=1e-12)

    def test_matches_flattened_cosine(self):
        rng = np.random.default_rng(2)
        a = rng.standard_normal((6, 5, 3, 3))
        b = rng.standard_normal((4, 7, 3, 3))
        x = a[:4, :5].ravel()
        y = b[:4, :5].ravel()
        expected = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
        assert cropped_cosine(a, b) == pytest.approx(expected, abs=1e-12)
        assert cropped_cosine(b, a) == cropped_cosine(a, b)

    def test_opposite_and_clipped(self):
        a = np.full((3, 3, 1, 1), 0.1)
        assert cropped_cosine(a, -a) == -1.0
        assert -1.0 <= cropped_cosine(a, 3 * a) <= 1.0

    def test_spatial_mismatch(self):
        with _raises(
            "Cannot compare kernels of different spatial sizes: "
            "(2, 2, 3, 3) and (2, 2, 1, 1). Layers of one bin share one "
            "kernel size."
        ):
            cropped_cosine(np.ones((2, 2, 3, 3)), np.ones((2, 2, 1, 1)))


class TestSimilarityMatrix:
    def _grads(self):
        rng = np.random.default_rng(3)
        shapes = {
            (0, 0): (16, 3, 3, 3),
            (0, 1): (32, 16, 3, 3),
            (0, 2): (32, 32, 3, 3),
            (1, 0): (8, 3, 3, 3),
        }
        return {k: rng.standard_normal(s) for k, s in shapes.items()}

    def test_symmetric_and_matches_pairs(self):
        grads = self._grads()
        keys = sorted(grads)
        m = similarity_matrix(keys, grads)
        assert m.shape == (4, 4) and m.dtype == np.float64
        np.testing.assert_array_equal(m, m.T)
        np.testing.assert_allclose(np.diag(m), 1.0)
        for x, a in enumerate(keys):
            for y, b in enumerate(keys):
                assert m[x, y] == pytest.approx(
                    cropped_cosine(grads[a], grads[b]), abs=1e-12
                )

    def test_zero_gradient_row_is_zero(self):
        grads = self._grads()
        grads[(0, 1)] = np.zeros((32, 16, 3, 3))
        m = similarity_matrix(sorted(grads), grads)
        np.testing.assert_array_equal(m[1], 0.0)
        np.testing.assert_array_equal(m[:, 1], 0.0)

    def test_gradient_plus_weight_each_side_own_norm(self):
        rng = np.random.default_rng(4)
        g = {
            0: rng.standard_normal((6, 4, 3, 3)),
            1: rng.standard_normal((5, 6, 3, 3)),
        }
        w = {
            0: rng.standard_normal((6, 4, 3, 3)),
            1: rng.standard_normal((5, 6, 3, 3)),
        }
        cg = cropped_cosine(g[0], g[1])
        cw = cropped_cosine(w[0], w[1])
        m = similarity_matrix([0, 1], g, signal="gradient+weight", weights=w)
        assert m[0, 1] == pytest.approx((cg + cw) / 2, abs=1e-12)

        # Explicit concatenation over the common crop, each side divided
        # by its own norm.
        def side(d, k):
            v = d[k][:5, :4].ravel()
            return v / np.linalg.norm(v)

        u0 = np.concatenate([side(g, 0), side(w, 0)])
        u1 = np.concatenate([side(g, 1), side(w, 1)])
        expected = u0 @ u1 / np.linalg.norm(u0) / np.linalg.norm(u1)
        assert m[0, 1] == pytest.approx(expected, abs=1e-12)
        # Scale invariance of each side separately (the reference's bug
        # divided b's weights by a's norm).
        w_scaled = {0: w[0] * 1000.0, 1: w[1] * 0.001}
        g_scaled = {0: g[0] * 1e-6, 1: g[1]}
        m2 = similarity_matrix(
            [0, 1], g_scaled, signal="gradient+weight", weights=w_scaled
        )
        assert m2[0, 1] == pytest.approx(m[0, 1], abs=1e-12)

    def test_gradient_plus_weight_zero_side(self):
        rng = np.random.default_rng(5)
        g = {
            0: rng.standard_normal((4, 4, 1, 1)),
            1: rng.standard_normal((4, 4, 1, 1)),
        }
        w = {0: np.zeros((4, 4, 1, 1)), 1: rng.standard_normal((4, 4, 1, 1))}
        m = similarity_matrix([0, 1], g, signal="gradient+weight", weights=w)
        cg = cropped_cosine(g[0], g[1])
        assert m[0, 1] == pytest.approx(cg / np.sqrt(2.0), abs=1e-12)

    def test_parameter_signal(self):
        rng = np.random.default_rng(6)
        w = {
            0: rng.standard_normal((6, 4, 3, 3)),
            1: rng.standard_normal((5, 6, 3, 3)),
        }
        m = similarity_matrix([0, 1], None, signal="parameter", weights=w)
        assert m[0, 1] == pytest.approx(cropped_cosine(w[0], w[1]), abs=1e-12)

    def test_bad_signal(self):
        with _raises(
            "Invalid value for argument `signal`. Expected one of "
            "('gradient', 'gradient+weight', 'parameter'). Received: "
            "signal='weights'"
        ):
            similarity_matrix([0], {0: np.ones((1, 1, 1, 1))}, signal="weights")

    def test_missing_keys(self):
        grads = {(0, 0): np.ones((2, 2, 1, 1))}
        with _raises(
            "Invalid value for argument `gradients`. No entry for layers "
            "[(0, 1), (0, 2)] (signal='gradient'). Received: gradients with "
            "keys [(0, 0)]"
        ):
            similarity_matrix([(0, 0), (0, 1), (0, 2)], grads)

    def test_missing_weights(self):
        with _raises(
            "Invalid value for argument `weights`. Expected a mapping from "
            "layer key to kernel for signal='gradient+weight'. Received: "
            "weights=None"
        ):
            similarity_matrix(
                [0], {0: np.ones((1, 1, 1, 1))}, signal="gradient+weight"
            )

    def test_pair_similarity_checks_shapes(self):
        pair = PairSimilarity({(0, 0): np.ones((2, 3, 3, 3))})
        with _raises(
            "Invalid value for argument `gradients`. The entry for layer "
            "(0, 0) has shape (2, 3, 3, 3) but the layer kernel is OIHW "
            "(3, 2, 3, 3). Convert Keras kernels with `to_oihw`. Received: "
            "gradients[(0, 0)].shape=(2, 3, 3, 3)"
        ):
            pair.check_keys([(0, 0)], {(0, 0): (3, 2, 3, 3)})

    def test_pair_similarity_rejects_nan(self):
        bad = np.ones((2, 2, 1, 1))
        bad[0, 0] = np.nan
        pair = PairSimilarity({(0, 0): bad})
        with _raises(
            "Invalid value for argument `gradients`. Expected finite values. "
            "Received: gradients[(0, 0)] containing NaN or infinite values"
        ):
            pair.check_keys([(0, 0)])
