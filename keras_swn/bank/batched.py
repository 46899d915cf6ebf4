"""Batched composition: the one way `TemplateBank` composes kernels.

A layer's kernel is, per width level, the `(1 x K) . (K x seg)` product of
its coefficient row with its templates, cut into pieces and assembled
(`keras_swn.bank.assembly`). `BatchedComposer` computes the kernels of any
set of layers with few ops: per bank (and template window) **one** matmul
of the coefficient rows those layers read with the templates, the
SuperWeight of a row read by several slots (hard-shared coefficients, the
same gain) computed once, and every layer's kernel cut from the results by
static splits and assembled directly in Keras layout (HWIO; `(in, out)`
for dense). The kernel of one layer alone is the same pass over its own
rows only (`own_rows=True`; the tests keep a layer-by-layer composition
as their oracle).

The bank stores every template with its pieces already in HWIO order
(`keras_swn.bank.layout`), so no transpose is needed: every entry is the
same dot product of the same numbers as in the per-layer path. Every shape
and index is a Python int fixed at construction, so the pass compiles
under XLA.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable
from typing import Collection
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.bank.layout import hwio_shape
from keras_swn.bank.layout import level_pieces
from keras_swn.policy.chains import Level
from keras_swn.types import BankKey
from keras_swn.types import LayerKey


def assemble_keras(
    levels: Sequence[Level],
    parts: Sequence[Sequence[Any]],
    *,
    concatenate: Callable[..., Any],
) -> Any:
    """`keras_swn.bank.assembly.assemble`, in HWIO layout.

    Args:
        levels: the layer's levels, level 0 first.
        parts: per level, its `level_pieces` as HWIO arrays.
        concatenate: e.g. `numpy.concatenate` or `keras.ops.concatenate`.

    Returns:
        The kernel, HWIO: `assemble(...)` transposed by `(2, 3, 1, 0)`.
    """
    W: Any = None
    cur_in = 0
    for level, arrays in zip(levels, parts):
        if W is None or len(level.pieces) == 1:
            d_out, p_in = int(level.pieces[0][0]), int(level.pieces[0][1])
            if W is None:
                W, cur_in = arrays[0], p_in
                continue
            if p_in < cur_in:
                W = W[:, :, :p_in, :]
            cur_in = p_in
            if d_out > 0:
                W = concatenate([W, arrays[0]], axis=3)
            elif d_out < 0:
                W = W[:, :, :, :d_out]
        else:
            d_out = int(level.pieces[0][0])
            cols = arrays[0]
            if d_out > 0:
                W = concatenate([concatenate([W, cols], axis=2), arrays[1]], 3)
            elif d_out < 0:
                W = concatenate([W[:, :, :, :d_out], cols], axis=2)
            else:
                W = concatenate([W, cols], axis=2)
            cur_in += int(level.pieces[1][1])
    return W


#: The default `BatchedComposer(row_matmul_min_seg=...)`: 2 MiB of float32
#: per row. At 65,536 the extra ops made WRN-16-4 steps slower at batch 2
#: (TensorFlow 1.13, JAX 1.14 against 1.00 and 1.02) while its composition
#: alone measured faster; above this, WRN-28-10's widest banks qualify and
#: WRN-16-4's (at most 294,912 entries per template) do not.
ROW_MATMUL_MIN_SEG = 524_288


@dataclasses.dataclass(frozen=True)
class _Window:
    """The slots of one bank that read one template window."""

    bank: BankKey
    offset: int
    slots: tuple[tuple[LayerKey, int, float], ...]  # (key, owner row, gain)
    unique: tuple[tuple[int, float], ...]  # distinct (owner row, gain)
    unique_of: tuple[int, ...]  # per slot, its row in `unique`


class BatchedComposer:
    """The static recipe of a batched composition over a `BankPlan`.

    Args:
        plan: the `BankPlan`.
        rows: `{(group, width): {owner (member, layer_id): row}}`.
        gains: `{(member, layer_id): per-level gain}` (`use_gains`).
        owner: `slot -> owner (member, layer_id)` (the policy's).
        row_matmul_min_seg: int or None. A window whose templates are at
            least this long (`seg`) computes each of its rows with its own
            `(1 x K) . (K x seg)` matmul instead of one matmul whose result
            is then split into rows: for large kernels, copying the rows
            out (and concatenating their gradients) costs more than the
            extra matmuls (WRN-28-10 at 9,000,000: a training step at
            batch 2 went from 1.22x to 1.1x the plain network's on
            TensorFlow and JAX; see `ROW_MATMUL_MIN_SEG` and
            `benchmarks/compose_time.py`). None: always one matmul per
            window.
    """

    def __init__(
        self,
        plan: Any,
        rows: Mapping[BankKey, Mapping[LayerKey, int]],
        gains: Mapping[LayerKey, Sequence[float]],
        owner: Callable[[tuple[int, int, int]], Any],
        row_matmul_min_seg: int | None = ROW_MATMUL_MIN_SEG,
    ):
        self.plan = plan
        self.row_matmul_min_seg = row_matmul_min_seg
        by_window: dict[tuple[BankKey, int], list] = {}
        for key, recipe in sorted(plan.layers.items()):
            for w in range(recipe.num_levels):
                bank = (recipe.group, w)
                own = tuple(owner((key[0], key[1], w)))
                slot = (key, rows[bank][own], float(gains[key][w]))
                by_window.setdefault((bank, recipe.offsets[w]), []).append(slot)
        self.windows: list[_Window] = []
        # (key, width) -> (window index, slot index in the window).
        self.slot_of: dict[tuple[LayerKey, int], tuple[int, int]] = {}
        for (bank, offset), slots in sorted(by_window.items()):
            unique: dict[tuple[int, float], int] = {}
            unique_of = []
            for i, (key, row, gain) in enumerate(slots):
                unique_of.append(unique.setdefault((row, gain), len(unique)))
                self.slot_of[(key, bank[1])] = (len(self.windows), i)
            self.windows.append(
                _Window(
                    bank, offset, tuple(slots), tuple(unique), tuple(unique_of)
                )
            )
        self.pieces = {
            (g, w): level_pieces(level, w == 0)
            for g, chain in plan.chains.items()
            for w, level in enumerate(chain.levels)
        }

    # ------------------------------------------------------------------
    # Slices are taken with `split` (its gradient is one concatenation;
    # a strided slice's gradient is a full-size zero tensor per slice).
    def _split_columns(self, ops: Any, x: Any, bank: BankKey) -> list:
        """`x (n, seg)` cut into its pieces' columns (a remainder the
        pieces do not read is dropped)."""
        lengths = [length for _, length, _ in self.pieces[bank]]
        if sum(lengths) == int(x.shape[1]) and len(lengths) == 1:
            return [x]
        points = list(np.cumsum(lengths))
        if points[-1] == int(x.shape[1]):
            points = points[:-1]
        return ops.split(x, [int(p) for p in points], axis=1)[: len(lengths)]

    def _row_by_row(self, seg: int) -> bool:
        limit = self.row_matmul_min_seg
        return limit is not None and seg >= limit

    def window_templates(self, ops: Any, variable: Any, win: _Window) -> Any:
        """The `(K, seg)` templates a window reads from its bank's flat
        template variable."""
        spec = self.plan.banks[win.bank]
        k, seg = spec.templates, spec.seg
        if win.offset != 0 or k * seg != spec.size:
            variable = variable[win.offset : win.offset + k * seg]
        return ops.reshape(variable, (k, seg))

    def _window_rows(
        self,
        ops: Any,
        bank_layer: Any,
        win: _Window,
        probe,
        wanted: Collection[int] | None = None,
    ):
        """The coefficient rows of a window (gains folded in) and, per
        slot, its row. With coefficient probes, one row per slot. `wanted`:
        the slots (indices in the window) to compute; None: all."""
        coefficients = bank_layer.coefficients[win.bank]
        k = int(coefficients.shape[1])
        chosen = range(len(win.slots)) if wanted is None else sorted(wanted)
        found = {i: probe(win.slots[i][0], win.bank[1]) for i in chosen}
        probes = [found[i] for i in chosen]
        index: Any
        if any(p is not None for p in probes):
            owners = [win.slots[i][1] for i in chosen]
            gains = [win.slots[i][2] for i in chosen]
            index = {i: j for j, i in enumerate(chosen)}
        else:
            probes = []
            if wanted is None:
                unique, index = list(win.unique), list(win.unique_of)
            else:
                rows: dict[tuple[int, float], int] = {}
                index = {
                    i: rows.setdefault(win.slots[i][1:], len(rows))
                    for i in chosen
                }
                unique = list(rows)
            owners = [row for row, _ in unique]
            gains = [gain for _, gain in unique]
        if owners == list(range(int(coefficients.shape[0]))):
            matrix = ops.convert_to_tensor(coefficients)
        elif len(owners) == 1:
            matrix = coefficients[owners[0] : owners[0] + 1]
        else:
            matrix = ops.take(coefficients, np.asarray(owners, "int32"), 0)
        if probes:
            zeros = ops.zeros((k,), "float32")
            matrix = matrix + ops.stack(
                [zeros if p is None else ops.reshape(p, (k,)) for p in probes]
            )
        if any(g != 1.0 for g in gains):
            column = np.asarray(gains, "float32").reshape(-1, 1)
            matrix = matrix * ops.convert_to_tensor(column)
        return matrix, index

    def superweights(
        self,
        ops: Any,
        bank_layer: Any,
        windows: Mapping[int, Collection[int] | None],
        probe,
    ) -> dict[int, tuple[list, Any]]:
        """Per window (`{window: the slots to compute, None for all}`):
        `(per piece, the list of its rows, each a flat HWIO vector; the row
        of each slot)`."""
        out = {}
        for i in sorted(windows):
            win = self.windows[i]
            templates = self.window_templates(
                ops, bank_layer.templates[win.bank], win
            )
            matrix, index = self._window_rows(
                ops, bank_layer, win, probe, windows[i]
            )
            n = int(matrix.shape[0])
            if n > 1 and self._row_by_row(int(templates.shape[1])):
                # One matmul per row: no copy of the rows out of one result
                # (and no concatenation of their gradients).
                per_row = [
                    self._split_columns(
                        ops, ops.matmul(matrix[j : j + 1], templates), win.bank
                    )
                    for j in range(n)
                ]
                rows = [list(p) for p in zip(*per_row)]
            else:
                pieces = self._split_columns(
                    ops, ops.matmul(matrix, templates), win.bank
                )
                rows = [
                    [p] if n == 1 else ops.split(p, n, axis=0) for p in pieces
                ]
            out[i] = (rows, index)
        return out

    def compose(
        self,
        ops: Any,
        bank_layer: Any,
        keys: Collection[LayerKey],
        probe: Callable[[LayerKey, int], Any],
        own_rows: bool = False,
    ) -> dict[LayerKey, Any]:
        """The float32 Keras-layout kernel of every layer in `keys`.

        The one composition path of `TemplateBank`: its batched pass
        (`compose_all`) and its kernel of one layer alone (`keys` of one
        layer) both come from here.

        Args:
            ops: `keras.ops`.
            bank_layer: the built `TemplateBank` (its variables).
            keys: the layers to compose.
            probe: `(key, width) -> coefficient probe or None`.
            own_rows: bool. False (the batched pass): every window read
                computes all of its distinct rows, whoever reads them, so
                a forward pass gives the same numbers whichever members
                run. True (one layer alone): only the rows `keys` read.
        """
        needed: dict[int, set[int]] = {}
        for key in keys:
            for w in range(self.plan.layers[key].num_levels):
                win, slot = self.slot_of[(key, w)]
                needed.setdefault(win, set()).add(slot)
        windows = {
            i: (
                slots
                if own_rows and len(slots) < len(self.windows[i].slots)
                else None
            )
            for i, slots in needed.items()
        }
        results = self.superweights(ops, bank_layer, windows, probe)
        kernels = {}
        for key in keys:
            recipe = self.plan.layers[key]
            levels = self.plan.chains[recipe.group].levels[: recipe.num_levels]
            parts = []
            for w in range(recipe.num_levels):
                win, slot = self.slot_of[(key, w)]
                rows, index = results[win]
                shapes = [
                    hwio_shape(shape)
                    for _, _, shape in self.pieces[(recipe.group, w)]
                ]
                parts.append(
                    [
                        ops.reshape(piece_rows[index[slot]], shape)
                        for piece_rows, shape in zip(rows, shapes)
                    ]
                )
            kernel = assemble_keras(levels, parts, concatenate=ops.concatenate)
            if recipe.kind == "dense":
                out, inp = int(recipe.shape[0]), int(recipe.shape[1])
                kernel = ops.reshape(kernel, (inp, out))
            kernels[key] = kernel
        return kernels
