"""The scale-out engine of a search: what Keras takes on each backend.

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
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Iterator

import keras

from keras_swn.validation import argument_error


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
        raise argument_error(
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
        raise argument_error(
            "distribution",
            "Expected None or a keras.distribution distribution (DataParallel, "
            "ModelParallel) on the JAX "
            f"backend.{hint}",
            distribution,
        )
    raise argument_error(
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
