"""What the search reads from a model: kernel gradients, kernels and
coefficient gradients, keyed the way `keras_swn.analysis` expects.

`SWNModel.collect_kernel_gradients` returns each member's gradients by
layer name in the Keras kernel layout; the clustering (see the algorithm page,
*Gradient capture and similarity*) wants
them by `(member, layer_id)` in the OIHW layout of the layer specs. The
refine step (*Refine*) reads every coefficient slot's gradient over one
inference-mode pass.

Under a `tf.distribute` strategy (`SearchAndRefine(distribution=...)`)
both passes run in the strategy's scope, where Keras scales every loss by
`1 / num_replicas_in_sync` (each replica's share of a global-batch mean);
the pass itself runs once on the whole batch, so the values are scaled
back by `replica_count()` to the full-batch gradient of one device. On
JAX losses are global and the factor is 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from keras import ops

from keras_swn.analysis.similarity import to_oihw
from keras_swn.models.swn_model import SWNModel
from keras_swn.models.trainers import replica_count
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.training.data import DataSource
from keras_swn.types import LayerKey

#: Which signals need the gradients, which the kernels.
_GRADIENT_SIGNALS = ("gradient", "gradient+weight")
_WEIGHT_SIGNALS = ("gradient+weight", "parameter")


def kernel_gradients(
    model: SWNModel,
    data: DataSource,
    specs: Sequence[LayerSpec],
    *,
    batches: int,
    batch_size: int,
    seed: int,
) -> dict[LayerKey, np.ndarray]:
    """dL/dkernel of every shared layer over the first `batches` batches
    of the seeded capture order, OIHW, by `(member, layer_id)`."""
    kinds = {s.key: s.kind for s in specs}
    raw = model.collect_kernel_gradients(
        **data.collect_kwargs(batch_size, seed, "capture", batches)
    )
    replicas = replica_count()
    gradients = {}
    for m, per_layer in enumerate(raw):
        keys = {
            layer.name: tuple(layer.layer_key)
            for layer in model.shared_layers(m)
        }
        for name, g in per_layer.items():
            key = keys[name]
            gradients[key] = to_oihw(g, kinds[key]) * replicas
    return gradients


def kernels(
    model: SWNModel, specs: Sequence[LayerSpec]
) -> dict[LayerKey, np.ndarray]:
    """The composed kernel of every shared layer, OIHW."""
    kinds = {s.key: s.kind for s in specs}
    found = {}
    for layer in model.shared_layers():
        key = tuple(layer.layer_key)
        found[key] = to_oihw(ops.convert_to_numpy(layer.kernel), kinds[key])
    return found


def capture(
    model: SWNModel,
    data: DataSource,
    specs: Sequence[LayerSpec],
    *,
    signal: str,
    batches: int,
    batch_size: int,
    seed: int,
) -> tuple[dict | None, dict | None]:
    """`(gradients, weights)` for the clustering `signal` (None where the
    signal does not read them)."""
    gradients = weights = None
    if signal in _GRADIENT_SIGNALS:
        gradients = kernel_gradients(
            model,
            data,
            specs,
            batches=batches,
            batch_size=batch_size,
            seed=seed,
        )
    if signal in _WEIGHT_SIGNALS:
        weights = kernels(model, specs)
    return gradients, weights


def coefficient_gradients(
    model: SWNModel, data: DataSource, *, batch_size: int, seed: int
) -> dict:
    """Every coefficient slot's gradient over one pass of the seeded
    refine order (the full-batch gradient under a strategy too)."""
    grads = model.collect_coefficient_gradients(
        **data.collect_kwargs(batch_size, seed, "refine", None)
    )
    replicas = replica_count()
    if replicas == 1:
        return grads
    return {slot: g * replicas for slot, g in grads.items()}
