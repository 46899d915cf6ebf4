"""Compressing trained kernels into a template bank (`init="trained"`).

Every shared layer's kernel is assembled from one SuperWeight per width
level (see the algorithm page, *Kernel assembly*); each entry of the kernel
comes from one position of one level's SuperWeight, and some positions of
a level are cropped away for some layers. So the fit splits by bank
`(group, width)`: for every layer that reads the bank, a target vector
(the trained entries its SuperWeight must produce) and a mask (the
positions it keeps). The bank's templates `T` and the slots' coefficient
vectors `c` then minimise

    sum over layers r of
        || mask_r * (t_r - gain_r * c_owner(r) @ T_r) ||^2 / ||W_r||^2

(each layer's squared error relative to its whole trained kernel `W_r`,
so that a layer of small weights is fitted as closely as a large one:
the plain sum left some layers of a WRN-16-2 at 40% unfitted, relative
error near 1, while others were fitted to 1%) by alternating least
squares, started from a truncated SVD of the
targets: exact when a bank has at least as many templates as coefficient
owners (and the masks agree), the best rank-`K` approximation otherwise.
Hard-shared slots (one owner for several layers) fit the mean of their
layers' targets. NumPy only; the result is written into the bank's
variables.
"""

from __future__ import annotations

import weakref
from typing import Any
from typing import Mapping

import keras
import numpy as np

from keras_swn.bank import layout
from keras_swn.bank.assembly import assemble
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.bank.template_bank import use_gains
from keras_swn.types import LayerKey

#: The trained kernels (OIHW) registered so far for each bank: members
#: converted with `init="trained"` are fitted jointly, as each is built.
_TARGETS: "weakref.WeakKeyDictionary[TemplateBank, dict]" = (
    weakref.WeakKeyDictionary()
)


def oihw_kernel(layer: Any) -> np.ndarray:
    """A Keras `Conv2D` / `Dense` kernel in OIHW order, float64."""
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), "float64")
    if kernel.ndim == 2:
        kernel = kernel[:, :, None, None]
        return kernel.transpose(1, 0, 2, 3)
    return kernel.transpose(3, 2, 0, 1)


def _level_targets(bank: TemplateBank, key: LayerKey, kernel: np.ndarray):
    """`[(target, mask)]` per width level of one layer: which entries of
    each level's SuperWeight end up where in `kernel`."""
    levels = bank.plan.levels_of(*key)
    segs = [
        bank.plan.banks[(bank.plan.layers[key].group, w)].seg
        for w in range(len(levels))
    ]
    starts = np.cumsum([0, *segs])
    index = assemble(
        levels,
        [np.arange(starts[w], starts[w + 1]) for w in range(len(levels))],
        concatenate=np.concatenate,
        reshape=np.reshape,
        shape=kernel.shape,
    ).ravel()
    values = kernel.ravel()
    out = []
    for w, seg in enumerate(segs):
        target = np.zeros(seg)
        mask = np.zeros(seg, bool)
        here = (index >= starts[w]) & (index < starts[w + 1])
        pos = index[here] - starts[w]
        target[pos] = values[here]
        mask[pos] = True
        out.append((target, mask))
    return out


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a^-1 b` with a small ridge (templates or coefficients no target
    constrains stay at zero)."""
    ridge = 1e-9 * max(float(np.trace(a)) / len(a), 1e-12)
    return np.linalg.solve(a + ridge * np.eye(len(a)), b)


def _fit_bank(
    targets: np.ndarray,
    masks: np.ndarray,
    gains: np.ndarray,
    windows: np.ndarray,
    owners: np.ndarray,
    n_templates: int,
    iterations: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Alternating least squares for one bank.

    Args:
        targets: `(R, seg)`, one row per layer reading the bank.
        masks: `(R, seg)` bool, the positions each row constrains.
        gains: `(R,)`, each row's fixed gain.
        windows: `(R, K)` int, the template indices each row mixes.
        owners: `(R,)` int, each row's coefficient vector (0 .. O-1).
        n_templates: int, the templates of the bank.
        iterations: int, ALS sweeps.
        weights: `(R,)`, each row's weight in the squared error (None:
            all 1).

    Returns:
        `(templates (n_templates, seg), coefficients (O, K))`.
    """
    rows, seg = targets.shape
    k = windows.shape[1]
    n_owners = int(owners.max()) + 1
    weights = np.ones(rows) if weights is None else np.asarray(weights)
    root = np.sqrt(weights)[:, None]
    scaled = np.where(masks, targets / gains[:, None], 0.0) * root
    # Start: the leading right singular vectors of the owners' weighted
    # mean targets.
    means = np.zeros((n_owners, seg))
    np.add.at(means, owners, scaled)
    means /= np.maximum(
        np.bincount(owners, weights=np.sqrt(weights), minlength=n_owners),
        1e-300,
    )[:, None]
    u, s, vt = np.linalg.svd(means @ means.T)
    basis = u.T @ means  # (O, seg), rows of decreasing energy
    templates = np.zeros((n_templates, seg))
    templates[: min(n_templates, n_owners)] = basis[:n_templates]
    coefficients = np.zeros((n_owners, k))
    codes = None
    if rows < 62:  # one int per column: its mask pattern
        codes = masks.T @ (1 << np.arange(rows, dtype=np.int64))
    for _ in range(iterations):
        # Coefficients, owner by owner.
        a = np.zeros((n_owners, k, k))
        b = np.zeros((n_owners, k))
        for r in range(rows):
            tr = templates[windows[r]] * masks[r]
            a[owners[r]] += weights[r] * gains[r] ** 2 * (tr @ tr.T)
            b[owners[r]] += weights[r] * gains[r] * (tr @ targets[r])
        for o in range(n_owners):
            coefficients[o] = _solve(a[o], b[o])
        # Templates, column block by mask pattern.
        placed = np.zeros((rows, n_templates))
        for r in range(rows):
            placed[r, windows[r]] = gains[r] * coefficients[owners[r]]
        if codes is None:
            patterns, inverse = np.unique(masks.T, axis=0, return_inverse=True)
        else:
            _, inverse = np.unique(codes, return_inverse=True)
            patterns = None
        inverse = np.asarray(inverse).ravel()
        for p in range(int(inverse.max()) + 1):
            cols = np.flatnonzero(inverse == p)
            used = masks[:, cols[0]] if patterns is None else patterns[p]
            if not used.any():
                continue
            design = placed[used] * root[used]
            templates[:, cols] = _solve(
                design.T @ design,
                design.T @ (targets[used][:, cols] * root[used]),
            )
    return templates, coefficients


def fit_bank_to_kernels(
    bank: TemplateBank,
    kernels: Mapping[LayerKey, np.ndarray],
    *,
    iterations: int = 15,
) -> dict[LayerKey, float]:
    """Fit `bank`'s templates and coefficients to trained kernels.

    Args:
        bank: a built `TemplateBank`.
        kernels: `{(member, layer_id): OIHW kernel}` of the layers to fit.
            Layers not listed keep their coefficients; templates they share
            with listed layers change.
        iterations: int, alternating least-squares sweeps per bank.

    Returns:
        `{(member, layer_id): relative error}`: `||W_fit - W|| / ||W||` of
        every listed layer's composed kernel.

    Examples:
        Kernels that a bank of the same plan can compose are fitted
        exactly (here, another seed's):

        >>> import keras
        >>> import numpy as np
        >>> import keras_swn
        >>> from keras_swn.models import WideResNet
        >>> def net(seed):
        ...     return keras_swn.SWNModel(
        ...         [WideResNet(10, 1)], (8, 8, 3), 10, budget=60_000,
        ...         seed=seed)
        >>> def oihw(model):  # composed kernels, (out, in, h, w)
        ...     return {
        ...         tuple(layer.layer_key): np.transpose(
        ...             keras.ops.convert_to_numpy(layer.kernel), (3, 2, 0, 1))
        ...         for layer in model.shared_layers()}
        >>> model, target = net(0), oihw(net(1))
        >>> errors = fit_bank_to_kernels(model.bank, target)
        >>> len(errors), max(errors.values()) < 1e-4
        (9, True)
    """
    plan = bank.plan
    per_level = {
        key: _level_targets(bank, key, kernel)
        for key, kernel in kernels.items()
    }
    for (g, w), spec in plan.banks.items():
        users = [
            key
            for key in sorted(per_level)
            if plan.layers[key].group == g and plan.layers[key].num_levels > w
        ]
        if not users:
            continue
        rows_of = bank.coefficient_rows[(g, w)]
        owner_keys = sorted({bank.policy.owner((*key, w)) for key in users})
        owner_index = {o: i for i, o in enumerate(owner_keys)}
        k, seg = spec.templates, spec.seg
        n_templates = spec.size // seg
        templates, coefficients = _fit_bank(
            np.stack([per_level[key][w][0] for key in users]),
            np.stack([per_level[key][w][1] for key in users]),
            np.array(
                [use_gains(plan, key, bank.template_fan_in)[w] for key in users]
            ),
            np.array(
                [
                    plan.layers[key].offsets[w] // seg + np.arange(k)
                    for key in users
                ]
            ),
            np.array(
                [owner_index[bank.policy.owner((*key, w))] for key in users]
            ),
            n_templates,
            iterations,
            # Relative errors: each layer weighted by its kernel's norm.
            np.array(
                [
                    1.0 / max(float(np.sum(kernels[key] ** 2)), 1e-30)
                    for key in users
                ]
            ),
        )
        order = bank.storage_order(g, w)
        values = layout.to_oihw(
            keras.ops.convert_to_numpy(bank.templates[(g, w)]), order
        ).astype("float64")
        values[: n_templates * seg] = templates.ravel()
        bank.templates[(g, w)].assign(
            layout.to_storage(values, order).astype("float32")
        )
        matrix = np.array(keras.ops.convert_to_numpy(bank.coefficients[(g, w)]))
        for owner, i in owner_index.items():
            matrix[rows_of[owner]] = coefficients[i]
        bank.coefficients[(g, w)].assign(matrix.astype("float32"))
    errors = {}
    for key, kernel in kernels.items():
        fitted = np.asarray(keras.ops.convert_to_numpy(bank.kernel_oihw(key)))
        norm = max(float(np.linalg.norm(kernel)), 1e-12)
        errors[key] = float(np.linalg.norm(fitted - kernel)) / norm
    return errors


#: The relative error of every fitted layer after the latest fit of each
#: bank, `{(member, layer_id): error}`.
_ERRORS: "weakref.WeakKeyDictionary[TemplateBank, dict]" = (
    weakref.WeakKeyDictionary()
)


def latest_errors(bank: TemplateBank, member: int) -> dict[LayerKey, float]:
    """`{(member, layer_id): relative error}` of one member's layers after
    the bank's latest fit (later members refit shared templates)."""
    return {
        key: e for key, e in _ERRORS.get(bank, {}).items() if key[0] == member
    }


def fit_member(
    bank: TemplateBank, member: int, shared: Mapping[str, Any]
) -> dict[LayerKey, float]:
    """Register one member's trained kernels and refit the bank to every
    kernel registered so far (the members converted with
    `init="trained"`, fitted jointly).

    Args:
        bank: the shared `TemplateBank`.
        member: int, the member index.
        shared: `{path: Keras layer}`, the member's shared layers of the
            trained model, in layer-id order.

    Returns:
        `{(member, layer_id): relative error}` of every fitted layer.
    """
    targets = _TARGETS.setdefault(bank, {})
    for layer_id, layer in enumerate(shared.values()):
        targets[(member, layer_id)] = oihw_kernel(layer)
    errors = fit_bank_to_kernels(bank, targets)
    _ERRORS[bank] = errors
    return errors
