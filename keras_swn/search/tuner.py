"""`SWNTuner`: a KerasTuner tuner whose trials are `SearchAndRefine` runs.

KerasTuner (`keras-tuner`, the `tuner` extra) is optional: this module
imports it, `keras_swn` does not. `keras_swn.search.SWNTuner` is loaded
on first access (a module `__getattr__`), so `import keras_swn` never
imports `keras_tuner`; `SWNTuner` is not in `keras_swn.search.__all__`
for the same reason (a star import would need KerasTuner).

Trial `t` runs its search in `directory/project_name/trial_<t>/search`,
which holds its state and final model: the tuner writes no checkpoint.
"""

from __future__ import annotations

import copy
import inspect
import os
from typing import Any
from typing import Callable
from typing import Mapping

import keras

from keras_swn.io.locking import FolderLockedError
from keras_swn.io.store import MODEL
from keras_swn.io.store import ProjectStore
from keras_swn.search.reporting import trial_metrics
from keras_swn.search.search_and_refine import SearchAndRefine
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming

try:
    import keras_tuner as kt
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "keras_swn.search.SWNTuner needs KerasTuner: "
        "pip install 'keras-swn[tuner]' (or keras-tuner)."
    ) from error

#: The metric the tuner maximises unless told otherwise.
OBJECTIVE = "val_ensemble_accuracy"
#: The name of the `SearchAndRefine` project folder inside a trial folder.
SEARCH_FOLDER = "search"
#: The key of `build_search`'s dict that holds `search()` arguments.
SEARCH_KWARGS = "search_kwargs"
#: `SearchAndRefine` arguments the tuner sets for every trial.
_TUNER_OWNED = ("directory", "project_name", "overwrite")
_COMPLETED = "COMPLETED"


#: The argument names of the `SearchAndRefine` constructor and `search`.
_CONSTRUCTOR = frozenset(inspect.signature(SearchAndRefine).parameters)
_RUN = frozenset(inspect.signature(SearchAndRefine.search).parameters) - {
    "self",
    "train_data",
    "validation_data",
}


def _count(name: str, value: Any) -> int:
    """`value` checked as an int >= 1, errors naming `name`."""
    with naming(name):
        return check_int(name, value, minimum=1)


def _objective(objective: Any) -> Any:
    """`objective` for the default oracle: a name, an `Objective` or a
    list of them; a name's direction is "min" for a loss, "max" for an
    accuracy."""
    if objective is None:
        return kt.Objective(OBJECTIVE, direction="max")
    if not isinstance(objective, str):
        return objective
    if objective.endswith("loss"):
        return kt.Objective(objective, direction="min")
    if objective.endswith("accuracy"):
        return kt.Objective(objective, direction="max")
    raise invalid_argument(
        "objective",
        "Expected the name of a loss or an accuracy, or a "
        f"keras_tuner.Objective({objective!r}, direction=...) for any "
        "other metric.",
        objective,
    )


class SWNTuner(kt.Tuner):
    """A KerasTuner tuner whose trials are `SearchAndRefine` runs.

    Each trial builds a
    [`keras_swn.search.SearchAndRefine`][] from
    the trial's hyperparameters and runs it (search, final training, refine) in
    the trial's own folder, `directory/project_name/trial_<id>/search`
    (`search_dir`). The trial reports the metrics of `trial_metrics`
    (`val_ensemble_accuracy`, `val_loss`, `groups`, `trainable_total`,
    ...) and the oracle scores it on `objective`.

    **The hypermodel is `build_search(hp) -> dict`**, the keyword
    arguments of `SearchAndRefine` (`members`, `input_shape`,
    `num_classes`, `budget` and any search option) with the values drawn
    from `hp`, rather than a function that builds a `SearchAndRefine`:

    - the tuner, not the user, decides where a trial's search lives and
      whether it resumes, so `directory`, `project_name` and `overwrite`
      cannot be set wrongly (they are refused in the dict);
    - KerasTuner calls the hypermodel at construction to learn the search
      space; building a dict has no side effect, whereas building a
      `SearchAndRefine` would check the budget and could touch folders.

    The optional key `"search_kwargs"` of the dict holds arguments of
    [`SearchAndRefine.search`][keras_swn.search.SearchAndRefine.search] drawn
    from `hp` (`learning_rate`, `refine_after`, ...); they override those given
    to `search`.

    **Resume.** Every trial's search saves its state after each epoch and
    phase. A new `SWNTuner` on the same `directory` and `project_name`
    with `overwrite=False` reloads the oracle: finished trials are not
    run again, and a trial that was interrupted is run again with the
    same hyperparameters in the same folder, where its search resumes
    from its last saved epoch or phase.

    **Inherited from KerasTuner** as they are: `search_space_summary`,
    `get_best_hyperparameters` (the best trials' `HyperParameters`;
    `tuner.hypermodel.build(hp)` gives back their search arguments) and
    `oracle` (`oracle.get_best_trials`, every trial's `metrics`).

    **Failures.** A `build_search` that returns something other than a
    dict of `SearchAndRefine` arguments stops the tuning (a KerasTuner
    fatal error). A combination that the `SearchAndRefine` constructor
    refuses (for example a budget too small for the members) fails only
    its trial, before any training; `trial.message` holds the reason.

    Args:
        build_search: callable `hp -> dict` of `SearchAndRefine` keyword
            arguments (see above), or a `keras_tuner.HyperModel` whose
            `build(hp)` returns that dict.
        oracle: a `keras_tuner.Oracle` (e.g.
            `keras_tuner.oracles.RandomSearchOracle(objective=...,
            max_trials=...)`), or None: a `GridSearchOracle` over
            `objective` and `max_trials`.
        objective: for the default oracle: None (maximise
            `val_ensemble_accuracy`), a metric name (a name ending in
            `loss` is minimised, one ending in `accuracy` maximised), or a
            `keras_tuner.Objective`. Must be None with `oracle`.
        max_trials: int or None, for the default oracle (None: the whole
            grid). Must be None with `oracle`.
        directory: str, the parent folder of the tuning project.
        project_name: str, the tuning project folder name.
        overwrite: bool; True deletes the tuning project folder first,
            False resumes it.

    Raises:
        ValueError: naming the argument: `build_search` neither callable
            nor a `HyperModel`, `oracle` not a `keras_tuner.Oracle`,
            `objective` or `max_trials` given together with `oracle`, an
            `objective` name whose direction is unknown, `max_trials` not
            an int >= 1, or `overwrite` not a bool.

    Examples:
        >>> import tempfile
        >>> from keras_swn.models import WideResNet
        >>> (x, y), (x_val, y_val) = (
        ...     keras_swn.data.load_digits_dataset(seed=0))
        >>> def build_search(hp):
        ...     return dict(
        ...         members=[WideResNet(10, 1)], input_shape=(8, 8, 1),
        ...         num_classes=10,
        ...         budget=hp.Choice("budget", [60_000, 80_000]),
        ...         sharing="learned_no_refine", batch_size=32, plots=False,
        ...         run_eagerly=True)
        >>> tuner = keras_swn.search.SWNTuner(
        ...     build_search, max_trials=1, directory=tempfile.mkdtemp(),
        ...     project_name="tuning")
        >>> tuner.search((x[:64], y[:64]), (x_val[:32], y_val[:32]),
        ...              search_epochs=1, epochs=1, verbose=0)
        >>> tuner.get_best_hyperparameters()[0].get("budget")
        60000
        >>> model = tuner.get_best_models()[0]
        >>> model.num_members
        1
    """

    def __init__(
        self,
        build_search: Callable[[Any], Mapping[str, Any]] | Any,
        *,
        oracle: Any = None,
        objective: Any = None,
        max_trials: int | None = None,
        directory: str | os.PathLike = ".",
        project_name: str = "swn_tuning",
        overwrite: bool = False,
    ):
        if not (
            callable(build_search) or isinstance(build_search, kt.HyperModel)
        ):
            raise invalid_argument(
                "build_search",
                "Expected a callable hp -> dict of SearchAndRefine "
                "arguments, or a keras_tuner.HyperModel.",
                build_search,
            )
        if not isinstance(overwrite, bool):
            raise invalid_argument("overwrite", "Expected a bool.", overwrite)
        if oracle is None:
            if max_trials is not None:
                max_trials = _count("max_trials", max_trials)
            oracle = kt.oracles.GridSearchOracle(
                objective=_objective(objective), max_trials=max_trials
            )
        elif objective is not None or max_trials is not None:
            name = "objective" if objective is not None else "max_trials"
            raise invalid_argument(
                name,
                "Expected None when `oracle` is given: set it on the oracle.",
                objective if name == "objective" else max_trials,
            )
        elif not isinstance(oracle, kt.Oracle):
            raise invalid_argument(
                "oracle", "Expected a keras_tuner.Oracle.", oracle
            )
        super().__init__(
            oracle=oracle,
            hypermodel=build_search,
            directory=os.fspath(directory),
            project_name=project_name,
            overwrite=overwrite,
        )

    # ------------------------------------------------------------------
    # Folders and the search of a trial
    def search_dir(self, trial_id: str) -> str:
        """The `SearchAndRefine` project folder of a trial.

        Args:
            trial_id: str, the trial's id (`trial.trial_id`).

        Returns:
            str, `directory/project_name/trial_<trial_id>/search`.
        """
        return os.path.join(self.get_trial_dir(trial_id), SEARCH_FOLDER)

    def _options(self, hp: Any) -> tuple[dict, dict]:
        """`build_search(hp)`, checked: (constructor, search) arguments."""
        options = self.hypermodel.build(hp)
        if not isinstance(options, Mapping):
            raise kt.errors.FatalTypeError(
                "`build_search(hp)` must return a dict of SearchAndRefine "
                f"arguments. Received: {options!r} of type "
                f"{type(options).__name__}"
            )
        options = dict(options)
        run = options.pop(SEARCH_KWARGS, None) or {}
        problems = []
        owned = sorted(set(options) & set(_TUNER_OWNED))
        if owned:
            problems.append(
                f"{owned} are set by the tuner (each trial's search lives "
                "in its trial folder)"
            )
        unknown = sorted(set(options) - _CONSTRUCTOR)
        if unknown:
            problems.append(f"{unknown} are not SearchAndRefine arguments")
        if not isinstance(run, Mapping):
            problems.append(f"{SEARCH_KWARGS!r} must be a dict")
        elif sorted(set(run) - _RUN):
            problems.append(
                f"{sorted(set(run) - _RUN)} in {SEARCH_KWARGS!r} are not "
                "arguments of SearchAndRefine.search"
            )
        if problems:
            raise kt.errors.FatalValueError(
                "`build_search(hp)` returned arguments SWNTuner cannot "
                f"pass on: {'; '.join(problems)}. Received: {sorted(options)}"
            )
        return options, dict(run)

    def get_trial_search(self, trial: Any) -> SearchAndRefine:
        """The `SearchAndRefine` of a trial, resumed from its folder.

        Nothing is trained: the search reloads the trial's state, so its
        `policy`, `results()`, `budget_report()` and `get_best_models()`
        are those of the trial (once it has finished).

        Args:
            trial: a `keras_tuner.engine.trial.Trial` of this tuner.

        Returns:
            The trial's [`SearchAndRefine`][keras_swn.search.SearchAndRefine].

        Raises:
            ValueError: if the `SearchAndRefine` constructor refuses the
                trial's arguments.
        """
        options, _ = self._options(trial.hyperparameters)
        return self._search_of(trial, options)

    def _search_of(self, trial: Any, options: Mapping) -> SearchAndRefine:
        return SearchAndRefine(
            **options,
            directory=self.get_trial_dir(trial.trial_id),
            project_name=SEARCH_FOLDER,
            overwrite=False,
        )

    # ------------------------------------------------------------------
    # Running trials
    def search(
        self,
        train_data: Any,
        validation_data: Any = None,
        **search_kwargs: Any,
    ) -> None:
        """Run (or resume) the trials until the oracle stops.

        Args:
            train_data: the training data of every trial, in any form
                [`SearchAndRefine.search`][keras_swn.search.SearchAndRefine.search]
                takes.
            validation_data: the data the trials are evaluated (and
                scored) on. Required unless the objective is a metric
                that needs none (`groups`, `trainable_total`, ...).
            **search_kwargs: arguments of `SearchAndRefine.search` for
                every trial (`search_epochs`, `epochs`, `refine_after`,
                `callbacks`, `verbose`, ...). `callbacks` are copied for
                each trial. `verbose=0` also silences KerasTuner's trial
                log.

        Raises:
            ValueError: naming an argument that `SearchAndRefine.search`
                does not take, or `validation_data` when it is None and
                the objective is a validation metric.
        """
        unknown = sorted(set(search_kwargs) - _RUN)
        if unknown:
            raise invalid_argument(
                unknown[0],
                "Expected an argument of SearchAndRefine.search "
                f"({', '.join(sorted(_RUN))}).",
                search_kwargs[unknown[0]],
            )
        names = getattr(self.oracle.objective, "name_to_direction", None)
        names = names or {self.oracle.objective.name: None}
        if validation_data is None and any(n.startswith("val_") for n in names):
            raise invalid_argument(
                "validation_data",
                f"Expected data: the objective {sorted(names)} is a "
                "validation metric.",
                validation_data,
            )
        super().search(train_data, validation_data, **search_kwargs)

    def run_trial(
        self,
        trial: Any,
        train_data: Any,
        validation_data: Any = None,
        **search_kwargs: Any,
    ) -> dict[str, float]:
        """Run one trial's `SearchAndRefine` (or resume it) in its folder.

        Args:
            trial: the `keras_tuner.engine.trial.Trial` to run.
            train_data: passed to
                [`SearchAndRefine.search`][keras_swn.search.SearchAndRefine.search].
            validation_data: passed to `SearchAndRefine.search`.
            **search_kwargs: passed to `SearchAndRefine.search`; the
                `"search_kwargs"` of `build_search`'s dict override them.

        Returns:
            dict, the trial's metrics (`trial_metrics`).

        Raises:
            keras_tuner.errors.FailedTrialError: if the
                [`SearchAndRefine`][keras_swn.search.SearchAndRefine]
                constructor refuses the trial's arguments (no training was
                spent; the trial is not retried).
        """
        options, run = self._options(trial.hyperparameters)
        run = {**search_kwargs, **run}
        if run.get("callbacks"):
            try:
                run["callbacks"] = copy.deepcopy(list(run["callbacks"]))
            except Exception as error:
                raise kt.errors.FatalValueError(
                    "The callbacks of SWNTuner.search are copied for each "
                    f"trial, and these cannot be: {error}"
                ) from error
        # A fresh Keras session per trial, as KerasTuner does: the same
        # layer names whether a trial runs first or resumes later.
        keras.backend.clear_session()
        try:
            search = self._search_of(trial, options)
        except (ValueError, FolderLockedError) as error:
            raise kt.errors.FailedTrialError(str(error)) from error
        search.search(train_data, validation_data, **run)
        return trial_metrics(search.results())

    # ------------------------------------------------------------------
    # Models
    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        """Do nothing: a trial's search saves its own model and state.

        Args:
            trial_id: str, the trial's id.
            model: the model (ignored).
            step: int (ignored).
        """

    def load_model(self, trial: Any) -> keras.Model:
        """The final model of a finished trial (its search's `model.keras`).

        Args:
            trial: a `keras_tuner.engine.trial.Trial` of this tuner.

        Returns:
            The trial's [`SWNModel`][keras_swn.SWNModel], reloaded and compiled
            for evaluation.

        Raises:
            ValueError: if the trial's search has not finished.
        """
        store = ProjectStore(self.search_dir(trial.trial_id))
        if not store.exists(MODEL):
            raise ValueError(
                f"Trial {trial.trial_id} (status {trial.status}) has no "
                f"final model: {store.path(MODEL)} does not exist. Run "
                "`search` until the trial completes."
            )
        return store.load_model(MODEL)

    def get_best_models(self, num_models: int = 1) -> list[keras.Model]:
        """The final models of the best completed trials, best first.

        Args:
            num_models: int >= 1, how many models at most.

        Returns:
            list of [`SWNModel`][keras_swn.SWNModel]s, reloaded and compiled for
            evaluation: one per completed trial among the `num_models` best
            (fewer if fewer trials completed).
        """
        trials = self.oracle.get_best_trials(_count("num_models", num_models))
        return [self.load_model(t) for t in trials if t.status == _COMPLETED]

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best trials.

        Their hyperparameters, score, groups and parameters, and each trial's
        search folder.

        Args:
            num_trials: int >= 1, how many trials at most.
        """
        num_trials = _count("num_trials", num_trials)
        print("Results summary")
        print(f"Results in {self.project_dir}")
        print(f"Showing {num_trials} best trials")
        print(self.oracle.objective)
        for trial in self.oracle.get_best_trials(num_trials):
            print()
            trial.summary()
            if trial.status == _COMPLETED and trial.metrics.exists("groups"):
                n = {
                    k: int(trial.metrics.get_last_value(k))
                    for k in ("groups", "bank_total", "trainable_total")
                }
                print(
                    f"Groups: {n['groups']}; templates {n['bank_total']:,}; "
                    f"trainable {n['trainable_total']:,}"
                )
            print(f"Search folder: {self.search_dir(trial.trial_id)}")
