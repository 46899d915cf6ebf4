"""Train, evaluate and save an `SWNModel` with the reference recipe.

The library call behind `keras-swn train` and `keras-swn evaluate`: one
`fit` over the run with the `TrainingRecipe` (the same optimizer and
learning-rate schedule `SearchAndRefine` trains with), an evaluation on
the validation data, and the files of the run, each written atomically.
The run holds the folder's `RunLock`, refuses a folder that holds a
search or (unless `overwrite=True`) an earlier trained model, refuses a
new run in a folder that holds files keras_swn did not write (unless
`allow_existing_files=True`), and deletes the temporary files a killed
run left there (`check_train_directory`). What it writes is listed in the
folder's manifest (`keras_swn.io.run_folder`): `overwrite=True`
deletes only that.
"""

from __future__ import annotations

import os
import time
from typing import Any
from typing import Mapping
from typing import cast

import keras
import numpy as np

from keras_swn.io.run_folder import MODEL
from keras_swn.io.run_folder import TRAINING_FILES
from keras_swn.io.run_folder import check_creatable
from keras_swn.io.run_folder import check_folder_text
from keras_swn.io.store import ProjectStore
from keras_swn.training.data import DataSource
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.training.results import training_results
from keras_swn.validation import ArgumentError
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming

__all__ = [
    "TRAINING_FILES",
    "check_train_directory",
    "load_and_evaluate",
    "train_and_save",
]


def check_train_directory(
    directory: str | os.PathLike, *, overwrite: bool = False
) -> str:
    """Raise unless `train_and_save` may train into `directory`.

    The checks `train_and_save` makes before it trains, for a caller that
    wants to fail before it loads data or builds a model (`keras-swn
    train` checks `--output_dir` first): nothing is locked, written or
    deleted. A folder that does not exist yet passes.

    Args:
        directory: str, the output folder.
        overwrite: bool, whether a trained model or a search in the
            folder may be deleted (by `train_and_save`).

    Returns:
        `directory`, as a string.

    Raises:
        ValueError: an `ArgumentError` naming `directory` when it is
            empty or only whitespace, a file, holds a search
            (`state.json`) and `overwrite` is False, or holds a trained
            model (`model.keras` or `results.json`) and `overwrite` is
            False.
        FolderLockedError: (`keras_swn.io_utils.FolderLockedError`)
            naming the folder and the process, when another live run
            holds the folder's lock.
    """
    path = check_folder_text("directory", directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise invalid_argument(
            "directory", "Expected a folder, not a file.", path
        )
    if os.path.isdir(path):
        store = ProjectStore(path)
        store.lock("train").check()
        _check_contents(store, overwrite)
    return path


def _check_contents(store: ProjectStore, overwrite: bool) -> None:
    """Refuse a folder holding a search or a trained model, unless
    `overwrite`."""
    kind = store.kind()
    if kind == "search" and not overwrite:
        raise invalid_argument(
            "directory",
            f"The folder {store.project_dir} holds a search (state.json); "
            "train would mix its files into it. Use another `directory`, "
            "or overwrite=True to delete the search and train there.",
            store.project_dir,
        )
    if kind == "train" and not overwrite:
        raise invalid_argument(
            "directory",
            f"The folder holds a trained model ({MODEL}). Pass "
            "overwrite=True to replace it, or another `directory`.",
            store.project_dir,
        )


def _remove(store: ProjectStore) -> None:
    """`ProjectStore.remove`, its refusals naming `directory`."""
    try:
        store.remove(instead="`directory`")
    except ValueError as e:  # a FolderLockedError passes through
        raise ArgumentError("directory", str(e)) from None


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
    overwrite: bool = False,
    allow_existing_files: bool = False,
) -> dict[str, Any]:
    """Train `model` with `recipe`, evaluate it, and write the run's files.

    `model` (an [`SWNModel`][keras_swn.SWNModel]) is compiled with
    `recipe.optimizer()` and fit for `epochs` epochs, the learning rate set at
    the start of every epoch
    ([`TrainingRecipe.learning_rate_at`][keras_swn.search.TrainingRecipe.learning_rate_at]),
    then evaluated on `validation_data`. `directory` receives `model.keras`
    (with its optimizer), `policy.json`, `budget_report.json`, `history.json`
    (the `fit` history, with the learning rate) and `results.json`.

    The folder is checked before anything is trained or deleted
    (`check_train_directory`): a folder another run holds (its
    `keras_swn.io_utils.RunLock`) is refused, and so is one holding a
    search (`state.json`) or a trained model, unless `overwrite=True`,
    and so is a folder that holds files keras_swn did not write and no
    earlier run, unless `allow_existing_files=True`. With
    `overwrite=True` only what keras_swn wrote there is deleted (the
    entries of the folder's manifest,
    `keras_swn.io.run_folder.RunFolder.remove`; other files stay).
    The run then holds the folder's lock until it returns or raises, and
    first deletes the temporary files a killed run left there.

    Args:
        model: an uncompiled `SWNModel`.
        train_data: `(x, y)` arrays (shuffled by `fit`) or batches.
        validation_data: the same forms, or None.
        directory: str, the output folder (created).
        epochs: int >= 1.
        batch_size: int >= 1 (for arrays).
        recipe: the [`TrainingRecipe`][keras_swn.search.TrainingRecipe] (None:
            its defaults).
        verbose: passed to `fit`.
        info: extra JSON values stored first in `results.json` (e.g. what
            the data was).
        overwrite: bool; True deletes a trained model or a search in
            `directory` (what keras_swn wrote there) before training.
        allow_existing_files: bool; True trains into a folder that holds
            files keras_swn did not write (they are kept).

    Returns:
        The contents of `results.json`.

    Raises:
        ValueError: an `ArgumentError` naming a bad argument: `directory`
            when it is empty, a file, cannot be created, holds a search
            or (unless `overwrite`) a trained model, holds files
            keras_swn did not write (unless `allow_existing_files`), or
            `overwrite=True` would delete a `model.keras` or
            `results.json` keras_swn did not write.
        FolderLockedError: (`keras_swn.io_utils.FolderLockedError`)
            naming the folder and the process, when another live run
            holds the folder. Nothing is trained or deleted then.

    Examples:
        >>> import os, tempfile
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> x = np.random.default_rng(0).normal(size=(16, 8, 8, 3))
        >>> y = np.arange(16) % 10
        >>> folder = tempfile.mkdtemp()
        >>> results = keras_swn.search.train_and_save(
        ...     model, (x, y), (x, y), directory=folder, epochs=1, batch_size=8,
        ...     verbose=0)
        >>> results["epochs"], results["train_examples"], results["budget"]
        (1, 16, 60000)
        >>> [f for f in sorted(os.listdir(folder)) if f[0] != "."][:3]
        ['budget_report.json', 'history.json', 'model.keras']
    """
    with naming("epochs"):
        epochs = check_int("epochs", epochs, minimum=1)
    with naming("batch_size"):
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(overwrite, bool):
        raise invalid_argument("overwrite", "Expected a bool.", overwrite)
    recipe = TrainingRecipe() if recipe is None else recipe
    train = DataSource(train_data, "train_data")
    val = (
        None
        if validation_data is None
        else DataSource(validation_data, "validation_data")
    )
    if not isinstance(allow_existing_files, bool):
        raise invalid_argument(
            "allow_existing_files", "Expected a bool.", allow_existing_files
        )
    path = check_train_directory(directory, overwrite=overwrite)
    store = ProjectStore(path, argument="directory")
    if overwrite:
        _remove(store)  # only what keras_swn wrote, before the lock
    store.check_new_run(allow_existing_files)
    check_creatable("directory", path)
    with store.lock("train"):
        store.remove_temp_files()  # left by a killed run
        _check_contents(store, overwrite=False)  # written since the check
        store.check_new_run(allow_existing_files)
        return _fit_and_write(
            model,
            train,
            val,
            store=store,
            epochs=epochs,
            batch_size=batch_size,
            recipe=recipe,
            verbose=verbose,
            info=info,
        )


def _fit_and_write(
    model: keras.Model,
    train: DataSource,
    val: DataSource | None,
    *,
    store: ProjectStore,
    epochs: int,
    batch_size: int,
    recipe: TrainingRecipe,
    verbose: int | str,
    info: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The run of `train_and_save` in its checked, locked folder."""
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
        path: a `.keras` file, or a folder holding `model.keras` (the output of
            [`SearchAndRefine`][keras_swn.search.SearchAndRefine] or
            [`train_and_save`][keras_swn.search.train_and_save]).
        validation_data: `(x, y)` arrays or batches.
        batch_size: int, the batch size for arrays.

    Returns:
        `(model, evaluation)`: the model compiled for evaluation, and its
        logs as floats.

    Raises:
        ValueError: an `ArgumentError` naming `path` when there is no
            model there or it takes inputs of another shape (a
            `keras_swn.io_utils.DamagedFileError` when the file is
            damaged or truncated).

    Examples:
        >>> import os, tempfile
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
        >>> model.save(path)
        >>> x, y = np.zeros((4, 8, 8, 3)), np.array([0, 1, 2, 3])
        >>> loaded, logs = keras_swn.search.load_and_evaluate(path, (x, y))
        >>> loaded.budget, sorted(logs)
        (60000, ['ensemble_accuracy', 'loss', 'member_0_accuracy'])
    """
    file = os.fspath(path)
    if os.path.isdir(file):
        file = os.path.join(file, MODEL)
    if not os.path.isfile(file):
        raise invalid_argument(
            "path",
            "Expected a folder holding model.keras, or a .keras file.",
            os.fspath(path),
        )
    store = ProjectStore(os.path.dirname(os.path.abspath(file)), "path")
    model = store.load_model(os.path.basename(file))  # names `path`
    data = DataSource(
        validation_data,
        "validation_data",
        num_classes=getattr(model, "num_classes", None),
    )
    shape = tuple(getattr(model, "input_shape_", ()))
    x = cast(np.ndarray, data.x)  # read only when `data.arrays`
    if data.arrays and shape and shape != tuple(x.shape[1:]):
        raise invalid_argument(
            "path",
            f"The model takes inputs of shape {shape}; the data has "
            f"{tuple(x.shape[1:])}.",
            os.fspath(path),
        )
    return model, data.evaluate(model, batch_size)
