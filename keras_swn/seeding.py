"""Seeds derived from a root seed and a variable's identity.

See the algorithm page, [Seeds and determinism][determinism].

No global random state is read: every draw comes from a NumPy generator
seeded from the root seed and the identity of what is drawn, so the order
in which layers or members are built never changes initial values, and
the same seed gives the same initial values on every backend.
"""

from __future__ import annotations

import zlib
from typing import cast

import numpy as np

from keras_swn.validation import invalid_argument


def resolve_seed(seed: int | None, name: str = "seed") -> int:
    """Return an int seed; `None` draws one from OS entropy."""
    if seed is None:
        # Drawn from OS entropy, `entropy` is an int.
        entropy = cast(int, np.random.SeedSequence().entropy)
        return int(entropy % (2**31))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise invalid_argument(name, "Expected an int or None.", seed)
    return int(seed)


def rng_for(seed: int, tag: str, *identity: int) -> np.random.Generator:
    """A generator for the object named by `tag` and integer `identity`."""
    words = [int(seed) % (2**32), zlib.crc32(tag.encode())]
    words += [int(i) % (2**32) for i in identity]
    return np.random.default_rng(np.random.SeedSequence(words))


def orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """An orthogonal matrix (gain 1): orthonormal rows if rows <= cols,
    orthonormal columns otherwise (the semantics of PyTorch's and Keras'
    orthogonal initialisers)."""
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return q if rows >= cols else q.T
