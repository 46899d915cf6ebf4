"""The order of the entries of a template bank in memory.

A composed kernel is cut from a SuperWeight, the flat vector `sum_k c_k T_k` of
one width level. The level's *pieces* (the whole base kernel for level 0; the
new output rows, or the new input columns and then the new output rows, for a
later level, see [`level_pieces`][keras_swn.bank.layout.level_pieces]) lie one
after the other in that vector, each a block of an `(out, in, kh, kw)` kernel.

The spec writes each piece in row-major OIHW order; Keras convolutions take
HWIO. Mixing templates is linear per entry, so a fixed permutation of each
template's entries gives the same permutation of every SuperWeight. The
bank therefore **stores** every template with each of its pieces in HWIO
order (`"hwio"`): composing a kernel is then a matmul, splits, reshapes
and the assembly's concatenations, with no transpose. (Transposing the
pieces at every step was most of the composition's time: the benchmarks
page, *Composition cost*.)

[`storage_order`][keras_swn.bank.layout.storage_order] gives the permutation for
one bank: `stored = oihw[order]`. It only moves entries within each full
`seg`-long template; the tail of a bank that no window reads stays where it is.
Files keep the spec's OIHW order
([`TemplateBank.save_own_variables`][keras_swn.bank.template_bank.TemplateBank.save_own_variables]
writes it), so files do not depend on the layout in memory.

No Keras import.
"""

from __future__ import annotations

import math
from typing import Any
from typing import Sequence

import numpy as np

from keras_swn.policy.chains import Level

#: A template piece: `(start, length, OIHW shape)` within a level's `seg`.
Piece = tuple[int, int, tuple[int, int, int, int]]


def _shape4(piece: Sequence[int]) -> tuple[int, int, int, int]:
    o, i, h, w = (int(p) for p in piece)
    return (o, i, h, w)


def hwio_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """`(out, in, kh, kw)` as the Keras kernel shape `(kh, kw, in, out)`."""
    o, i, h, w = _shape4(shape)
    return (h, w, i, o)


def level_pieces(level: Level, first: bool) -> list[Piece]:
    """The pieces of a level's flat SuperWeight, in `assemble`'s order.

    Level 0 (`first=True`) is one piece, the whole base kernel. A later
    level is its new output rows (one piece, when `d_out > 0`), or its
    input columns, then its new output rows if `d_out > 0` (two pieces);
    a level that only drops output rows has no piece.

    Args:
        level: a `keras_swn.policy.chains.Level`.
        first: bool, whether it is level 0 of its chain.

    Returns:
        A list of `(start, length, (out, in, kh, kw))`.

    Examples:
        >>> from keras_swn.policy.chains import Level
        >>> level_pieces(Level(6, 5, ((2, 5, 3, 3), (4, 2, 3, 3)), 162), False)
        [(0, 72, (4, 2, 3, 3)), (72, 90, (2, 5, 3, 3))]
    """
    if first or len(level.pieces) == 1:
        shape = _shape4(level.pieces[0])
        if first or shape[0] > 0:
            return [(0, math.prod(shape), shape)]
        return []
    rowshape = _shape4(level.pieces[0])
    colshape = _shape4(level.pieces[1])
    n_cols = math.prod(colshape)
    pieces: list[Piece] = [(0, n_cols, colshape)]
    if rowshape[0] > 0:
        pieces.append((n_cols, math.prod(rowshape), rowshape))
    return pieces


def segment_order(pieces: Sequence[Piece], seg: int) -> np.ndarray:
    """The permutation of one template's entries into HWIO piece order.

    `stored = oihw[order]` for the template's `seg` entries.

    Args:
        pieces: the level's
            [`level_pieces`][keras_swn.bank.layout.level_pieces].
        seg: int, one template's entries (`>=` the pieces' total; entries
            past the pieces stay in place).

    Returns:
        An int64 array of length `seg`.

    Examples:
        >>> segment_order([(0, 4, (2, 2, 1, 1))], 5).tolist()
        [0, 2, 1, 3, 4]
    """
    order = np.arange(seg)
    for start, length, (o, i, h, w) in pieces:
        block = np.arange(start, start + length).reshape(o, i, h, w)
        order[start : start + length] = block.transpose(2, 3, 1, 0).ravel()
    return order


def storage_order(size: int, seg: int, pieces: Sequence[Piece]) -> np.ndarray:
    """The permutation of a whole bank.

    [`segment_order`][keras_swn.bank.layout.segment_order] applied to each of
    its `size // seg` full templates; the tail stays in place.

    Args:
        size: int, the bank's entries.
        seg: int, one template's entries.
        pieces: the level's
            [`level_pieces`][keras_swn.bank.layout.level_pieces].

    Returns:
        An int64 array of length `size`, with `stored = oihw[order]`.
    """
    full = size // seg if seg > 0 else 0
    one = segment_order(pieces, seg)
    starts = np.arange(full, dtype=np.int64)[:, None] * seg
    body = (starts + one[None, :]).reshape(-1)
    return np.concatenate([body, np.arange(full * seg, size)])


def bank_storage_order(plan: Any, key: tuple[int, int]) -> np.ndarray:
    """`storage_order` of bank `key = (group, width)` of a `BankPlan`.

    Args:
        plan: the [`keras_swn.BankPlan`][] (any object with
            its `banks` and `chains`).
        key: `(group, width)` of the bank.

    Returns:
        An int64 array of the bank's size, with `stored = oihw[order]`.
    """
    g, w = key
    bank = plan.banks[(g, w)]
    pieces = level_pieces(plan.chains[g].levels[w], w == 0)
    return storage_order(bank.size, bank.seg, pieces)


def to_storage(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """OIHW-ordered bank values in storage order (`values[order]`)."""
    return np.asarray(values)[order]


def to_oihw(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Stored bank values back in OIHW order (the inverse of `to_storage`)."""
    values = np.asarray(values)
    out = np.empty_like(values)
    out[order] = values
    return out
