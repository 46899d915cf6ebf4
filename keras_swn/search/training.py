"""Train, evaluate and save an `SWNModel` with the reference recipe.

The library call behind `keras-swn train` and `keras-swn evaluate`: one
`fit` over the run with the `TrainingRecipe` (the same optimizer and
learning-rate schedule `SearchAndRefine` trains with), an evaluation on
the validation data, and the files of the run, each written atomically.
"""

from __future__ import annotations

import os
import time
from typing import Any
from typing import Mapping
from typing import cast

import keras
import numpy as np

from keras_swn.search.data import DataSource
from keras_swn.search.recipe import TrainingRecipe
from keras_swn.search.results import training_results
from keras_swn.search.store import MODEL
from keras_swn.search.store import ProjectStore
from keras_swn.validation import argument_error
from keras_swn.validation import check_int
from keras_swn.validation import naming

#: The files `train_and_save` writes.
TRAINING_FILES = (
    MODEL,
    "policy.json",
    "budget_report.json",
    "history.json",
    "results.json",
)


def train_and_save(
    model: keras.Model,
    train_data: Any,
    validation_data: Any = None,
    *,
    directory: str | os.PathLike,
    epochs: int,
    batch_size: int = 128,
    recipe: TrainingRecipe | None = None,
    verbose: int | str = 1,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `model` with `recipe`, evaluate it, and write the run's files.

    `model` (an `SWNModel`) is compiled with `recipe.optimizer()` and fit
    for `epochs` epochs, the learning rate set at the start of every epoch
    (`TrainingRecipe.learning_rate_at`), then evaluated on
    `validation_data`. `directory` receives `model.keras` (with its
    optimizer), `policy.json`, `budget_report.json`, `history.json` (the
    `fit` history, with the learning rate) and `results.json`.

    Args:
        model: an uncompiled `SWNModel`.
        train_data: `(x, y)` arrays (shuffled by `fit`) or batches.
        validation_data: the same forms, or None.
        directory: str, the output folder (created).
        epochs: int >= 1.
        batch_size: int >= 1 (for arrays).
        recipe: the `TrainingRecipe` (None: its defaults).
        verbose: passed to `fit`.
        info: extra JSON values stored first in `results.json` (e.g. what
            the data was).

    Returns:
        The contents of `results.json`.

    Raises:
        ValueError: an `ArgumentError` naming a bad argument.
    """
    with naming("epochs"):
        epochs = check_int("epochs", epochs, minimum=1)
    with naming("batch_size"):
        batch_size = check_int("batch_size", batch_size, minimum=1)
    recipe = TrainingRecipe() if recipe is None else recipe
    train = DataSource(train_data, "train_data")
    val = (
        None
        if validation_data is None
        else DataSource(validation_data, "validation_data")
    )
    recipe.compile(model)
    kwargs = train.fit_kwargs(batch_size)
    if val is not None:
        kwargs.update(val.validation_kwargs(batch_size))
    start = time.perf_counter()
    history = model.fit(
        epochs=epochs,
        callbacks=[recipe.scheduler(epochs)],
        verbose=verbose,
        **kwargs,
    )
    seconds = time.perf_counter() - start
    evaluation = None if val is None else val.evaluate(model, batch_size)
    results = {
        **dict(info or {}),
        **training_results(
            model=model,
            train_examples=train.num_examples,
            val_examples=None if val is None else val.num_examples,
            epochs=epochs,
            batch_size=batch_size,
            recipe=recipe,
            evaluation=evaluation,
            train_seconds=seconds,
        ),
    }
    store = ProjectStore(directory)
    store.write_model(model)
    store.write_json("policy.json", model.policy.to_dict())
    store.write_json("budget_report.json", model.budget_report().to_dict())
    store.write_json(
        "history.json",
        {k: [float(v) for v in vs] for k, vs in history.history.items()},
    )
    store.write_json("results.json", results)
    return results


def load_and_evaluate(
    path: str | os.PathLike,
    validation_data: Any,
    *,
    batch_size: int = 128,
) -> tuple[keras.Model, dict[str, float]]:
    """Reload a saved model and evaluate it.

    Args:
        path: a `.keras` file, or a folder holding `model.keras` (the
            output of `SearchAndRefine` or `train_and_save`).
        validation_data: `(x, y)` arrays or batches.
        batch_size: int, the batch size for arrays.

    Returns:
        `(model, evaluation)`: the model compiled for evaluation, and its
        logs as floats.

    Raises:
        ValueError: an `ArgumentError` naming `path` when there is no
            model there or it takes inputs of another shape.
    """
    file = os.fspath(path)
    if os.path.isdir(file):
        file = os.path.join(file, MODEL)
    if not os.path.isfile(file):
        raise argument_error(
            "path",
            "Expected a folder holding model.keras, or a .keras file.",
            os.fspath(path),
        )
    store = ProjectStore(os.path.dirname(os.path.abspath(file)))
    try:
        model = store.load_model(os.path.basename(file))
    except ValueError as e:
        raise argument_error("path", str(e), os.fspath(path)) from None
    data = DataSource(
        validation_data,
        "validation_data",
        num_classes=getattr(model, "num_classes", None),
    )
    shape = tuple(getattr(model, "input_shape_", ()))
    x = cast(np.ndarray, data.x)  # read only when `data.arrays`
    if data.arrays and shape and shape != tuple(x.shape[1:]):
        raise argument_error(
            "path",
            f"The model takes inputs of shape {shape}; the data has "
            f"{tuple(x.shape[1:])}.",
            os.fspath(path),
        )
    return model, data.evaluate(model, batch_size)
