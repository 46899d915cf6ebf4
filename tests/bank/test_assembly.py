"""Tests for `keras_swn.bank.assembly`: kernels from per-level vectors."""

import functools

import numpy as np
import pytest

from keras_swn.bank.assembly import assemble
from keras_swn.policy.chains import Level

np_assemble = functools.partial(
    assemble, concatenate=np.concatenate, reshape=np.reshape
)


def random_vectors(levels, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(level.seg) for level in levels]


class TestAssemble:
    def test_assemble_3x3_negative_d_out(self):
        # Bin 1 of the README chain: (16,3) -> (64,16) -> (112,16) ->
        # (64,64) -> (112,112); the step to (64,64) drops 48 rows.
        levels = [
            Level(16, 3, ((16, 3, 3, 3),), 432),
            Level(64, 16, ((48, 16, 3, 3), (16, 13, 3, 3)), 8784),
            Level(112, 16, ((48, 16, 3, 3),), 6912),
            Level(64, 64, ((-48, 64, 3, 3), (64, 48, 3, 3)), 27648),
        ]
        v = random_vectors(levels, seed=3)
        w = np_assemble(levels, v, shape=(64, 64, 3, 3))
        e = np.zeros((64, 64, 3, 3))
        e[:16, :3] = v[0].reshape(16, 3, 3, 3)
        e[:16, 3:16] = v[1][: 16 * 13 * 9].reshape(16, 13, 3, 3)
        e[16:64, :16] = v[1][16 * 13 * 9 :].reshape(48, 16, 3, 3)
        # level 2 rows (64:112) are dropped again by level 3
        e[:, 16:64] = v[3].reshape(64, 48, 3, 3)
        np.testing.assert_array_equal(w, e)

    def test_assemble_shape_mismatch(self):
        levels = [Level(2, 2, ((2, 2, 1, 1),), 4)]
        with pytest.raises(ValueError, match=r"assembled kernel has shape"):
            np_assemble(levels, [np.zeros(4)], shape=(3, 2, 1, 1))
        with pytest.raises(ValueError, match=r"one vector per level"):
            np_assemble(levels, [])
        with pytest.raises(ValueError, match=r"`levels`"):
            np_assemble([], [])
