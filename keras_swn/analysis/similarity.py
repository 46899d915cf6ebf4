"""Cosine similarity of layer kernels on their common top-left corner.

Implements the layer similarity (see the algorithm page, [Gradient capture
and similarity][similarity]). Every array is a
kernel (or a kernel gradient) in the OIHW layout `(out, in, kh, kw)` used by
the specification; a dense kernel is `(out, in, 1, 1)`. Two kernels of one
bin can differ in `out` and `in`: they are compared on the common top-left
corner `[:min(out_a, out_b), :min(in_a, in_b)]`, flattened.

Everything runs on the host in NumPy float64, comparisons elsewhere are
strict, and the cosine of a zero vector with anything is 0. Pure
NumPy: no Keras import.
"""

from __future__ import annotations

from typing import Any
from typing import Hashable
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.policy.layer_spec import KINDS
from keras_swn.validation import check_choice
from keras_swn.validation import invalid_argument

SIGNALS = ("gradient", "gradient+weight", "parameter")


def to_oihw(array: Any, kind: str) -> np.ndarray:
    """Convert a kernel (or its gradient) from the Keras layout to OIHW.

    Args:
        array: array-like, a Keras kernel: HWIO `(kh, kw, in, out)` for
            `kind="conv2d"`, `(in, out)` for `kind="dense"`.
        kind: str, `"conv2d"` or `"dense"`.

    Returns:
        A float64 NumPy array `(out, in, kh, kw)`; `(out, in, 1, 1)` for a
        dense kernel.

    Raises:
        ValueError: on an unknown `kind` or an array of the wrong rank.

    Examples:
        >>> to_oihw(np.zeros((3, 3, 16, 32)), "conv2d").shape
        (32, 16, 3, 3)
        >>> to_oihw(np.zeros((16, 10)), "dense").shape
        (10, 16, 1, 1)
    """
    check_choice("kind", kind, KINDS)
    a = np.asarray(array, dtype=np.float64)
    if kind == "conv2d":
        if a.ndim != 4:
            raise invalid_argument(
                "array",
                "A conv2d kernel in the Keras layout is 4D (kh, kw, in, out).",
                array,
                shown=f"array.shape={a.shape}",
            )
        return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
    if a.ndim != 2:
        raise invalid_argument(
            "array",
            "A dense kernel in the Keras layout is 2D (in, out).",
            array,
            shown=f"array.shape={a.shape}",
        )
    return np.ascontiguousarray(a.T[:, :, None, None])


def _as_kernel(array: Any, name: str) -> np.ndarray:
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 4:
        raise invalid_argument(
            name.partition("[")[0],
            "Expected an OIHW array (out, in, kh, kw).",
            array,
            shown=f"{name}.shape={a.shape}",
        )
    return a


def _crop_sizes(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    if a.shape[2:] != b.shape[2:]:
        raise ValueError(
            "Cannot compare kernels of different spatial sizes: "
            f"{a.shape} and {b.shape}. Layers of one bin share one kernel "
            "size."
        )
    return min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])


def _cropped_dot(a: np.ndarray, b: np.ndarray, o: int, i: int) -> float:
    """Dot product of `a[:o, :i]` and `b[:o, :i]`, without copies."""
    k = a.shape[2] * a.shape[3]
    if a.shape[:2] == (o, i) and b.shape[:2] == (o, i):
        return float(np.dot(a.reshape(-1), b.reshape(-1)))
    a2 = a.reshape(a.shape[0], -1)[:o, : i * k]
    b2 = b.reshape(b.shape[0], -1)[:o, : i * k]
    return float(np.einsum("ij,ij->", a2, b2))


class _CornerNorms:
    """Squared norms of every top-left corner of one kernel, in O(1) each.

    `table[o, i]` is the squared norm of `a[:o, :i]` (a 2D prefix sum over
    the per-(out, in) squared norms).
    """

    def __init__(self, a: np.ndarray) -> None:
        sq = np.einsum("oikl,oikl->oi", a, a)
        table = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.float64)
        table[1:, 1:] = sq.cumsum(axis=0).cumsum(axis=1)
        self.table = table

    def norm(self, o: int, i: int) -> float:
        return float(np.sqrt(max(self.table[o, i], 0.0)))


def _cosine_from(dot: float, na: float, nb: float) -> float:
    if not na > 0.0 or not nb > 0.0:
        return 0.0
    c = dot / (na * nb)
    return float(min(1.0, max(-1.0, c)))


def cropped_cosine(a: Any, b: Any) -> float:
    """Cosine of two kernels on their common top-left corner.

    Both arrays are cropped to `[:min(out_a, out_b), :min(in_a, in_b)]`,
    flattened and compared in float64. The result is clipped to
    `[-1, 1]`; it is 0.0 when either crop is all zeros.

    Args:
        a: array-like, OIHW `(out, in, kh, kw)`.
        b: array-like, OIHW, with the same `kh, kw` as `a`.

    Returns:
        float, the cosine.

    Raises:
        ValueError: if an array is not 4D or the spatial sizes differ.

    Examples:
        >>> a = np.ones((4, 2, 1, 1)); b = np.ones((2, 3, 1, 1))
        >>> cropped_cosine(a, b)
        1.0
        >>> cropped_cosine(a, np.zeros((2, 2, 1, 1)))
        0.0
    """
    a = _as_kernel(a, "a")
    b = _as_kernel(b, "b")
    o, i = _crop_sizes(a, b)
    dot = _cropped_dot(a, b, o, i)
    na = float(np.linalg.norm(a[:o, :i]))
    nb = float(np.linalg.norm(b[:o, :i]))
    return _cosine_from(dot, na, nb)


class PairSimilarity:
    """Cached pairwise layer similarity for one signal.

    Converts each needed array to float64 once, keeps a prefix-sum table of
    its corner norms, and returns the similarity of any two layers. Used by
    `similarity_matrix` and by the search, which needs each pair once per
    search, not once per threshold.

    Signals:
        - `"gradient"`: cosine of the cropped gradients (the reference).
        - `"gradient+weight"`: cosine of `[g/||g|| ; W/||W||]` over the same
          crop, each side normalised by its own norm (a fix of the reference; a
          zero side contributes a zero block).
        - `"parameter"`: cosine of the cropped weights (an SSN-style
          baseline; `gradients` may be `None`).

    Args:
        gradients: mapping `key -> OIHW gradient`, or `None` for
            `signal="parameter"`.
        signal: str, one of `SIGNALS`.
        weights: mapping `key -> OIHW kernel`; needed unless
            `signal="gradient"`.
    """

    def __init__(
        self,
        gradients: Mapping[Hashable, Any] | None,
        *,
        signal: str = "gradient",
        weights: Mapping[Hashable, Any] | None = None,
    ) -> None:
        check_choice("signal", signal, SIGNALS)
        if signal != "parameter" and gradients is None:
            raise invalid_argument(
                "gradients",
                "Expected a mapping from layer key to gradient for "
                f"signal={signal!r}.",
                gradients,
            )
        if signal != "gradient" and weights is None:
            raise invalid_argument(
                "weights",
                "Expected a mapping from layer key to kernel for "
                f"signal={signal!r}.",
                weights,
            )
        self.signal = signal
        self._sources: list[tuple[str, Mapping[Hashable, Any]]] = []
        if signal in ("gradient", "gradient+weight"):
            self._sources.append(("gradients", gradients))  # type: ignore
        if signal in ("gradient+weight", "parameter"):
            self._sources.append(("weights", weights))  # type: ignore
        self._arrays: list[dict[Hashable, np.ndarray]] = [
            {} for _ in self._sources
        ]
        self._norms: list[dict[Hashable, _CornerNorms]] = [
            {} for _ in self._sources
        ]

    def check_keys(
        self,
        keys: Sequence[Hashable],
        shapes: Mapping[Any, tuple[int, ...]] | None = None,
    ) -> None:
        """Raise a `ValueError` naming the keys that have no array.

        With `shapes`, also check every array against its expected OIHW
        shape and that every value is finite.
        """
        for (name, source), arrays in zip(self._sources, self._arrays):
            missing = [k for k in keys if k not in source]
            if missing:
                raise invalid_argument(
                    name,
                    f"No entry for layers {missing} (signal={self.signal!r}).",
                    source,
                    shown=f"{name} with keys {sorted(source, key=repr)[:20]}",
                )
            for k in keys:
                a = self._get(name, source, arrays, k)
                if shapes is not None and tuple(a.shape) != tuple(shapes[k]):
                    raise invalid_argument(
                        name,
                        f"The entry for layer {k} has shape "
                        f"{tuple(a.shape)} but the layer kernel is OIHW "
                        f"{tuple(shapes[k])}. Convert Keras kernels with "
                        "`to_oihw`.",
                        source,
                        shown=f"{name}[{k}].shape={tuple(a.shape)}",
                    )
                if not np.all(np.isfinite(a)):
                    raise invalid_argument(
                        name,
                        "Expected finite values.",
                        source,
                        shown=f"{name}[{k}] containing NaN or infinite values",
                    )

    @staticmethod
    def _get(
        name: str,
        source: Mapping[Hashable, Any],
        arrays: dict[Hashable, np.ndarray],
        key: Hashable,
    ) -> np.ndarray:
        a = arrays.get(key)
        if a is None:
            if key not in source:
                raise invalid_argument(
                    name,
                    f"No entry for layers {[key]}.",
                    source,
                    shown=f"{name} with keys {sorted(source, key=repr)[:20]}",
                )
            a = _as_kernel(source[key], f"{name}[{key}]")
            arrays[key] = a
        return a

    def _cosine_on(self, s: int, a_key: Hashable, b_key: Hashable) -> float:
        name, source = self._sources[s]
        arrays, norms = self._arrays[s], self._norms[s]
        a = self._get(name, source, arrays, a_key)
        b = self._get(name, source, arrays, b_key)
        o, i = _crop_sizes(a, b)
        for key, arr in ((a_key, a), (b_key, b)):
            if key not in norms:
                norms[key] = _CornerNorms(arr)
        na = norms[a_key].norm(o, i)
        nb = norms[b_key].norm(o, i)
        if not na > 0.0 or not nb > 0.0:
            return 0.0
        return _cosine_from(_cropped_dot(a, b, o, i), na, nb)

    def __call__(self, a_key: Hashable, b_key: Hashable) -> float:
        """The similarity of layers `a_key` and `b_key`."""
        if self.signal != "gradient+weight":
            return self._cosine_on(0, a_key, b_key)
        # [g/|g| ; W/|W|] on each side: the dot product is the sum of the
        # two cosines; each side's squared norm counts its non-zero blocks.
        total = 0.0
        count_a = count_b = 0
        for s in range(2):
            name, source = self._sources[s]
            a = self._get(name, source, self._arrays[s], a_key)
            b = self._get(name, source, self._arrays[s], b_key)
            o, i = _crop_sizes(a, b)
            for key, arr in ((a_key, a), (b_key, b)):
                if key not in self._norms[s]:
                    self._norms[s][key] = _CornerNorms(arr)
            count_a += self._norms[s][a_key].norm(o, i) > 0.0
            count_b += self._norms[s][b_key].norm(o, i) > 0.0
            total += self._cosine_on(s, a_key, b_key)
        if count_a == 0 or count_b == 0:
            return 0.0
        c = total / float(np.sqrt(count_a * count_b))
        return float(min(1.0, max(-1.0, c)))

    def matrix(
        self,
        row_keys: Sequence[Hashable],
        column_keys: Sequence[Hashable] | None = None,
    ) -> np.ndarray:
        """Similarities of `row_keys` x `column_keys` (square by default).

        A square matrix is exactly symmetric (each pair is computed once)
        with ones on the diagonal for non-zero layers.
        """
        rows = list(row_keys)
        if column_keys is None:
            n = len(rows)
            out = np.zeros((n, n), dtype=np.float64)
            for x in range(n):
                out[x, x] = self(rows[x], rows[x])
                for y in range(x + 1, n):
                    out[x, y] = out[y, x] = self(rows[x], rows[y])
            return out
        cols = list(column_keys)
        out = np.zeros((len(rows), len(cols)), dtype=np.float64)
        for x, a in enumerate(rows):
            for y, b in enumerate(cols):
                out[x, y] = self(a, b)
        return out


def similarity_matrix(
    keys: Sequence[Hashable],
    gradients: Mapping[Hashable, Any] | None,
    *,
    signal: str = "gradient",
    weights: Mapping[Hashable, Any] | None = None,
) -> np.ndarray:
    """Pairwise similarity of layers, cropped to common corners.

    Entry `[x, y]` compares `keys[x]` and `keys[y]` on the common top-left
    corner of their OIHW arrays (see
    [`cropped_cosine`][keras_swn.analysis.cropped_cosine]). The matrix is
    symmetric, float64, with values in `[-1, 1]`; a layer whose array is all
    zeros has similarity 0 with everything, itself included.

    Args:
        keys: layer keys, usually `(member, layer_id)`, in the row order
            wanted.
        gradients: mapping `key -> OIHW gradient` (convert Keras layouts
            with `to_oihw`). May be `None` for `signal="parameter"`.
        signal: `"gradient"` (default, the reference), `"gradient+weight"`
            (cosine of `[g/||g|| ; W/||W||]`, each side normalised by its
            own norm) or `"parameter"` (cosine of the cropped weights, an
            SSN-style baseline).
        weights: mapping `key -> OIHW kernel`; required unless
            `signal="gradient"`.

    Returns:
        A `(len(keys), len(keys))` float64 array.

    Raises:
        ValueError: on an unknown `signal`, a missing mapping, a key
            without an array, non-4D arrays, or different kernel sizes.

    Examples:
        >>> g = {0: np.ones((2, 2, 1, 1)), 1: -np.ones((3, 2, 1, 1))}
        >>> similarity_matrix([0, 1], g).tolist()
        [[1.0, -1.0], [-1.0, 1.0]]
    """
    sim = PairSimilarity(gradients, signal=signal, weights=weights)
    keys = list(keys)
    sim.check_keys(keys)
    return sim.matrix(keys)
