"""Assembly: one OIHW kernel from the SuperWeights of its width levels.

Generic over the array library: `assemble` is called with `numpy` in tests
and with `keras.ops` by the template bank. No Keras import.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Callable
from typing import Sequence

from keras_swn.policy.chains import Level
from keras_swn.validation import invalid_argument


def _numel(piece: Sequence[int]) -> int:
    return int(math.prod(piece))


def assemble(
    levels: Sequence[Level],
    vectors: Sequence[Any],
    *,
    concatenate: Callable[..., Any],
    reshape: Callable[[Any, tuple[int, ...]], Any],
    shape: Sequence[int] | None = None,
) -> Any:
    """Assemble one OIHW kernel from its per-level SuperWeights.

    Generic over the array library: only Python slicing and the two given
    callables are used (`concatenate(list, axis=...)`, `reshape(x, shape)`),
    every shape is a Python int, so the recipe traces under XLA.

    Flat layout of a two-piece increment: the input-column block first,
    then the new output rows, each row-major OIHW.

    Args:
        levels: the layer's levels, level 0 first (a prefix of its group's
            chain; see `BankPlan.levels_of`).
        vectors: one flat vector of length `level.seg` per level.
        concatenate: e.g. `numpy.concatenate` or `keras.ops.concatenate`.
        reshape: e.g. `numpy.reshape` or `keras.ops.reshape`.
        shape: optional, the layer's OIHW shape; checked against the result.

    Returns:
        The kernel, OIHW.

    Raises:
        ValueError: if `levels` is empty, `vectors` has another length, or
            the assembled shape differs from `shape`.

    Examples:
        >>> import numpy as np
        >>> lv = [Level(2, 2, ((2, 2, 1, 1),), 4),
        ...       Level(3, 2, ((1, 2, 1, 1),), 2)]
        >>> w = assemble(lv, [np.arange(4.0), np.arange(4.0, 6.0)],
        ...              concatenate=np.concatenate, reshape=np.reshape)
        >>> w[:, :, 0, 0].tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    if not levels:
        raise invalid_argument(
            "levels", "Expected at least one level.", levels, shown="levels=[]"
        )
    if len(vectors) != len(levels):
        raise invalid_argument(
            "vectors",
            f"Expected one vector per level ({len(levels)}).",
            vectors,
            shown=f"{len(vectors)} vectors",
        )
    W = None
    cur_out = cur_in = 0
    kh = kw = 1
    for level, v in zip(levels, vectors):
        if W is None or len(level.pieces) == 1:
            d_out, p_in, kh, kw = (int(p) for p in level.pieces[0])
            if W is None:
                W = reshape(v, (d_out, p_in, kh, kw))
                cur_out, cur_in = d_out, p_in
                continue
            if p_in < cur_in:
                W = W[:, :p_in]
            cur_in = p_in
            if d_out > 0:
                rows = reshape(v, (d_out, p_in, kh, kw))
                W = concatenate([W, rows], axis=0)
            elif d_out < 0:
                W = W[:d_out]
            cur_out += d_out
        else:
            rowshape = tuple(int(p) for p in level.pieces[0])
            colshape = tuple(int(p) for p in level.pieces[1])
            d_out, kh, kw = rowshape[0], rowshape[2], rowshape[3]
            n_cols = _numel(colshape)
            cols = reshape(v[:n_cols] if d_out > 0 else v, colshape)
            if d_out > 0:
                rows = reshape(v[n_cols:], rowshape)
                W = concatenate([concatenate([W, cols], axis=1), rows], axis=0)
            elif d_out < 0:
                W = concatenate([W[:d_out], cols], axis=1)
            else:
                W = concatenate([W, cols], axis=1)
            cur_out += d_out
            cur_in += colshape[1]
        if (cur_out, cur_in) != (level.out, level.in_):
            raise ValueError(
                f"Inconsistent level {level}: assembling it gives "
                f"(out, in)={(cur_out, cur_in)}, expected "
                f"{(level.out, level.in_)}."
            )
    final = (cur_out, cur_in, kh, kw)
    if shape is not None and tuple(int(s) for s in shape) != final:
        raise ValueError(
            f"The assembled kernel has shape {final}, but the layer's shape "
            f"is {tuple(shape)}. Received: shape={tuple(shape)}"
        )
    return W
