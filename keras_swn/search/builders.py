"""The models of a search: how they are built, spread over devices, and read.

**Building.** The search-phase model, the final model built from a policy,
its refine rebuild, and their plans and budget reports (`SearchModels`). All
are `SWNModel`s built from one `SearchConfig` and compiled with the run's
`TrainingRecipe`.

**Scale-out** (`check_distribution`, `distribution_scope`).
`SearchAndRefine(distribution=...)` takes the object Keras itself uses to
spread training over devices:

- TensorFlow: a `tf.distribute.Strategy` (`MirroredStrategy`,
  `TPUStrategy`, `MultiWorkerMirroredStrategy`, ...). Every model of the
  search is built and compiled inside `strategy.scope()`, so `fit` splits
  each global batch over the replicas.
- JAX: a `keras.distribution` distribution (`DataParallel`,
  `ModelParallel`). It is the global distribution while the search runs
  (`Distribution.scope()`), so every model's variables are laid out by it
  and each train step runs as one SPMD program.

PyTorch has no Keras distribution API: there the argument must be None.
The distribution is not part of the saved configuration: a search
started on one machine resumes on another (checkpoints hold plain
values).

**Capture** (`capture`, `coefficient_gradients`): what the search reads from
a model, keyed the way `keras_swn.analysis` expects.
`SWNModel.collect_kernel_gradients` returns each member's gradients by
layer name in the Keras kernel layout; the clustering (see the algorithm page,
[Gradient capture and similarity][similarity]) wants
them by `(member, layer_id)` in the OIHW layout of the layer specs. The
refine step ([Refine][refine]) reads every coefficient slot's gradient over
one
inference-mode pass.

Under a `tf.distribute` strategy both passes run in the strategy's scope,
where Keras scales every loss by
`1 / num_replicas_in_sync` (each replica's share of a global-batch mean);
the pass itself runs once on the whole batch, so the values are scaled
back by `replica_count()` to the full-batch gradient of one device. On
JAX losses are global and the factor is 1.
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Iterator
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_swn.analysis.refine import RefineResult
from keras_swn.analysis.similarity import to_oihw
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.plan import BankPlan
from keras_swn.models.rebuild import transfer_optimizer_state
from keras_swn.models.swn_model import SWNModel
from keras_swn.models.trainers import replica_count
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search.config import SearchConfig
from keras_swn.training.data import DataSource
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.types import LayerKey
from keras_swn.validation import invalid_argument


def _has_base(value: Any, names: tuple[str, ...], package: str) -> bool:
    """Whether a class of `value`'s MRO is named one of `names` and comes
    from `package` (no import of that package needed)."""
    return any(
        cls.__name__ in names and cls.__module__.startswith(package + ".")
        for cls in type(value).__mro__
    )


def _is_tf_strategy(value: Any) -> bool:
    """Whether `value` is a `tf.distribute.Strategy`."""
    return _has_base(value, ("Strategy", "StrategyBase"), "tensorflow")


def _is_keras_distribution(value: Any) -> bool:
    """Whether `value` is a `keras.distribution` distribution (the base
    class is not public: `DataParallel`, `ModelParallel` and subclasses
    of their base)."""
    public = (
        keras.distribution.DataParallel,
        keras.distribution.ModelParallel,
    )
    return isinstance(value, public) or _has_base(
        value, ("Distribution",), "keras"
    )


def check_distribution(distribution: Any, backend: str | None = None) -> Any:
    """Validate the `distribution` argument of `SearchAndRefine`.

    Args:
        distribution: None, a `tf.distribute.Strategy` (TensorFlow) or a
            `keras.distribution` distribution such as
            `DataParallel` (JAX).
        backend: the Keras backend name, or None for the current one.

    Returns:
        `distribution`, unchanged.

    Raises:
        ValueError: an `ArgumentError` naming `distribution` when it is
            neither, or is the other backend's kind.

    Examples:
        >>> check_distribution(None) is None
        True
        >>> try:
        ...     check_distribution("mirrored", backend="tensorflow")
        ... except ValueError as e:
        ...     print(e.argument)
        distribution
    """
    if distribution is None:
        return None
    backend = backend or keras.backend.backend()
    is_strategy = _is_tf_strategy(distribution)
    is_keras = _is_keras_distribution(distribution)
    if backend == "tensorflow":
        if is_strategy:
            return distribution
        hint = (
            " keras.distribution is JAX's engine; on TensorFlow pass the "
            "strategy (e.g. tf.distribute.MirroredStrategy())."
            if is_keras
            else ""
        )
        raise invalid_argument(
            "distribution",
            "Expected None or a tf.distribute.Strategy on the TensorFlow "
            f"backend.{hint}",
            distribution,
        )
    if backend == "jax":
        if is_keras:
            return distribution
        hint = (
            " A tf.distribute strategy runs only on the TensorFlow backend; "
            "on JAX pass e.g. keras.distribution.DataParallel()."
            if is_strategy
            else ""
        )
        raise invalid_argument(
            "distribution",
            "Expected None or a keras.distribution distribution (DataParallel, "
            "ModelParallel) on the JAX "
            f"backend.{hint}",
            distribution,
        )
    raise invalid_argument(
        "distribution",
        f"The {backend!r} backend has no Keras distribution API: pass None "
        "(or run on TensorFlow with a tf.distribute strategy, or on JAX "
        "with keras.distribution.DataParallel).",
        distribution,
    )


@contextlib.contextmanager
def distribution_scope(distribution: Any) -> Iterator[None]:
    """Run the block under `distribution` (a no-op for None).

    Args:
        distribution: a value `check_distribution` accepted.

    Yields:
        None; models built inside are built for the distribution.

    Examples:
        >>> with distribution_scope(None):
        ...     pass
    """
    if distribution is None:
        yield
    else:
        with distribution.scope():
            yield


def num_replicas(distribution: Any) -> int:
    """How many devices a global batch is split over (1 for None).

    Args:
        distribution: a value `check_distribution` accepted.

    Returns:
        int: `num_replicas_in_sync` of a strategy, the data-parallel size
        of a Keras distribution's device mesh, or 1.

    Examples:
        >>> num_replicas(None)
        1
    """
    if distribution is None:
        return 1
    if hasattr(distribution, "num_replicas_in_sync"):
        return int(distribution.num_replicas_in_sync)
    mesh = getattr(distribution, "device_mesh", None)
    if mesh is None:
        return 1
    batch_dim = getattr(distribution, "batch_dim_name", None)
    names = list(mesh.axis_names)
    if batch_dim in names:
        return int(mesh.shape[names.index(batch_dim)])
    return 1


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
    batch_statistics: bool = True,
) -> dict[LayerKey, np.ndarray]:
    """dL/dkernel of every shared layer over the first `batches` batches
    of the seeded capture order, OIHW, by `(member, layer_id)`.
    `batch_statistics`: BatchNorm normalises each batch with its own
    statistics (False: the moving statistics, as the reference)."""
    kinds = {s.key: s.kind for s in specs}
    raw = model.collect_kernel_gradients(
        **data.collect_kwargs(batch_size, seed, "capture", batches),
        batch_statistics=batch_statistics,
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
    batch_statistics: bool = True,
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
            batch_statistics=batch_statistics,
        )
    if signal in _WEIGHT_SIGNALS:
        weights = kernels(model, specs)
    return gradients, weights


def coefficient_gradients(
    model: SWNModel,
    data: DataSource,
    *,
    batch_size: int,
    seed: int,
    batch_statistics: bool = True,
) -> dict:
    """Every coefficient slot's gradient over one pass of the seeded
    refine order (the full-batch gradient under a strategy too)."""
    grads = model.collect_coefficient_gradients(
        **data.collect_kwargs(batch_size, seed, "refine", None),
        batch_statistics=batch_statistics,
    )
    replicas = replica_count()
    if replicas == 1:
        return grads
    return {slot: g * replicas for slot, g in grads.items()}


def own_variables(member) -> list:
    """A member's own trainable variables (BatchNorm, head, biases)."""
    found = []
    for layer in member.layers:
        if getattr(layer, "layer_key", None) is not None:
            bias = getattr(layer, "bias", None)
            if bias is not None and getattr(bias, "trainable", False):
                found.append(bias)
            continue
        found.extend(layer.trainable_variables)
    return found


class SearchModels:
    """Builds and compiles the models of one search.

    Args:
        config: the `SearchConfig`.
        jit_compile: passed to `compile`.
        run_eagerly: passed to `compile`.
    """

    def __init__(
        self,
        config: SearchConfig,
        *,
        jit_compile: bool | str = "auto",
        run_eagerly: bool = False,
    ):
        self.config = config
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly

    def model_kwargs(self) -> dict:
        """The `SWNModel` arguments every model of the search shares."""
        return self.config.model_kwargs()

    def compile(self, model: SWNModel, recipe: TrainingRecipe) -> None:
        recipe.compile(
            model,
            jit_compile=self.jit_compile,
            run_eagerly=self.run_eagerly,
        )

    @property
    def search_coefficients(self) -> str:
        """The coefficient regime of the search model: one vector per bank
        for `signal="gradient"` (the reference); one per layer when the
        similarity reads weights (`"gradient+weight"`, `"parameter"`), as
        the reference's concat option does, since with hard-shared vectors
        every layer of a bin has the same weights in its top-left corner
        and a weight similarity would compare a kernel with itself."""
        if self.config.signal == "gradient":
            return "per_bank"
        return "per_layer"

    def search_model(self, recipe: TrainingRecipe) -> SWNModel:
        """The search-phase model: the initial bins, coefficients as
        `search_coefficients`; only `config.search_members` train
        (the others' own variables are frozen and not decayed)."""
        weights = [
            1.0 if m in self.config.search_members else 0.0
            for m in range(len(self.config.members))
        ]
        model = SWNModel(
            coefficient_sharing=self.search_coefficients,
            member_loss_weights=weights,
            name="search_phase_model",
            **self.model_kwargs(),
        )
        for m, w in enumerate(weights):
            if w == 0.0:  # not run in training: no gradient, no update
                for v in own_variables(model.members[m]):
                    v.trainable = False
        self.compile(model, recipe)
        return model

    def final_model(
        self, policy: SharingPolicy, recipe: TrainingRecipe
    ) -> SWNModel:
        """An `SWNModel` built afresh from `policy`."""
        model = SWNModel(policy=policy, **self.model_kwargs())
        self.compile(model, recipe)
        return model

    def refined(
        self, model: SWNModel, result: RefineResult, recipe: TrainingRecipe
    ) -> SWNModel:
        """`model` rebuilt with the refined policy and its trained values
        (refine), optimizer state and current learning rate carried over;
        `model` itself when the refine split nothing."""
        if not result.copies:
            return model
        new = model.refined(result.policy, copies=result.copies, compile=False)
        self.compile(new, recipe)
        transfer_optimizer_state(model, new)
        new.optimizer.learning_rate = float(
            ops.convert_to_numpy(model.optimizer.learning_rate)
        )
        return new

    def plan(self, policy: SharingPolicy) -> BankPlan:
        """The `BankPlan` of `policy` (raises when over budget, unless
        `on_over_budget="report"`)."""
        c = self.config
        return BankPlan.create(
            c.specs,
            policy,
            c.budget,
            bank_size=c.bank_size,
            chain_sort=c.chain_sort,
            on_over_budget=c.on_over_budget,
        )

    def initial_policy(self) -> SharingPolicy:
        """The search-phase policy: the initial bins, coefficients as
        `search_coefficients`."""
        c = self.config
        assert c.chain_sort is not None  # resolved by SearchConfig
        return SharingPolicy.from_bins(
            c.specs,
            c.num_bins,
            coefficients=self.search_coefficients,
            chain_sort=c.chain_sort,
        )

    def budget_report(self, policy: SharingPolicy) -> BudgetReport:
        """The `BudgetReport` of `policy` over the members."""
        c = self.config
        return BudgetReport.create(
            self.plan(policy),
            [
                b.unshared_params(c.input_shape, c.num_classes)
                for b in c.members
            ],
        )
