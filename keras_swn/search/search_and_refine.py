"""`SearchAndRefine`: the SWN pipeline as a KerasTuner-shaped search object.

The runner half of KerasTuner's Oracle/Tuner split: the constructor validates
the options into a `SearchConfig` and resumes the project folder
(`ProjectStore`); `search` validates its arguments into a `RunConfig` and asks
the `PhaseOracle` for one `Task` after another, which a `StepRunner`
(`keras_swn.search.steps`) runs; the rest is the KerasTuner surface (`results`,
`get_best_models`, ...).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any
from typing import Sequence

import keras

from keras_swn.callbacks import StopOnNonFiniteLoss
from keras_swn.io.run_folder import check_creatable
from keras_swn.io.store import ProjectStore
from keras_swn.io.store import describe_changes
from keras_swn.io.store import project_path
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.search.builders import SearchModels
from keras_swn.search.builders import check_distribution
from keras_swn.search.builders import distribution_scope
from keras_swn.search.config import SearchConfig
from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.search.reporting import SearchReports
from keras_swn.search.run_config import RunConfig
from keras_swn.search.steps import StepRunner
from keras_swn.search.steps import fit_verbosity
from keras_swn.training.data import DataSource
from keras_swn.validation import invalid_argument

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}
#: The options read as attributes (`search.budget`, `search.sharing`...).
_OPTIONS = _CONFIG_FIELDS | {"specs", "search_members"}


class SearchAndRefine(SearchReports):
    """Search SuperWeight clusters under a budget, train, refine: resumably.

    The whole SWN pipeline (see the algorithm page, [The pipeline][pipeline])
    behind the surface of a KerasTuner tuner:

    1. **Search training** ([Search training][search-training]): a model
       whose groups are the initial bins, one coefficient vector per bank
       hard-shared by every layer, trained for `search_epochs` on member 0
       and the first member of each new depth (the others keep their
       BatchNorm and head at their initial values).
    2. **Clustering** ([Clustering][clustering]): each shared layer's
       dL/dkernel on one
       batch (`capture_batches`) with BatchNorm in inference mode;
       member 0's layers clustered per bin by cosine similarity, the
       threshold lowered until the groups fit `budget`; the other members
       attached. The search model is then thrown away.
    3. **Final training** ([Final training][final-training]): an
       [`SWNModel`][keras_swn.SWNModel] built afresh from the learned policy,
       trained for `epochs`.
    4. **Refine** ([Refine][refine]) after `refine_after` epochs: one
       inference-mode
       pass accumulates every coefficient slot's gradient; hard-shared
       vectors whose users disagree (cosine <= `refine_threshold`) are
       split; the model is rebuilt with its trained values and training
       goes on.

    Training uses the reference's recipe
    ([`keras_swn.search.TrainingRecipe`][]:
    [`ReferenceSGD`][keras_swn.search.ReferenceSGD], SGD with Nesterov momentum
    0.9 and coupled L2 weight decay on everything but the coefficients), the
    learning rate set at the start of every epoch by a schedule that fits the
    run (see `search`).

    **The budget is checked before any training.** The constructor raises
    a `ValueError` naming `budget` when even the least-demanding grouping
    the search can return needs more template parameters than `budget`.
    With `budget_check="exact"` (the default) the grouping the threshold
    loop returns always fits the plan built from it: with the default
    `clustering`, a search that starts never fails on the budget after its
    training. With `"proxy"` (selected by `reference_compatible=True`) the
    loop can stop at a grouping whose exact plan is over budget, which is
    then reported only after the search training.

    **Sharing regimes** (*Sharing regimes*), named by `sharing`: `"learned"`
    (search; member 0 soft, students hard-shared with their matched layer;
    refine), `"learned_no_refine"`, `"bins_hard"` (no search: initial bins,
    every bank one hard-shared vector; refine) and `"soft"` (search; every layer
    its own coefficients; no refine).

    **State and resume.** After every epoch and every phase the state is written
    under `directory/project_name` ([`keras_swn.io.store`][]):
    the model and optimizer variables (`checkpoints/*.npz`), the policy, the
    search and refine results, and `state.json` (the configuration, the run and
    the [`PhaseOracle`][keras_swn.search.oracle.PhaseOracle] state), written
    last and atomically. A new `SearchAndRefine` with the same arguments and
    `overwrite=False` resumes from the last completed epoch or phase. Data order
    is a pure function of `seed` and the epoch (arrays are shuffled by the
    search, not by `fit`), so on TensorFlow (CPU) a resumed search ends with the
    same policy and bit-identical weights as an uninterrupted one. On JAX and
    PyTorch the policy and the state restored at each checkpoint are identical
    as well; later weights agree to float tolerance wherever the backend's
    kernels are not bitwise deterministic. With a `tf.data.Dataset` or other
    iterable, resuming is exact only if the dataset yields the same batches
    every time it is iterated. While `search` runs it holds the folder's lock
    (`keras_swn.io_utils.RunLock`): a second search (or `keras-swn train`) in
    the same folder fails at once, naming the folder and the process that holds
    it; a lock left by a killed run is taken over, and the temporary files of
    its interrupted writes are deleted. A folder that holds the result of a
    `train` run is refused unless `overwrite=True`. Every file the search writes
    is listed in the folder's manifest (`keras_swn.io.run_folder`), and
    `overwrite=True` deletes only
    those: files of the user's in the folder stay. A new search in a
    folder that holds files keras_swn did not write is refused unless
    `allow_existing_files=True`. A missing or damaged file of the state
    (`state.json`, a checkpoint, the results, the model) raises a
    `keras_swn.io_utils.DamagedFileError` naming it.

    Files: `policy.json`, `search_result.json`, `refine.json`,
    `budget_report.json` / `.txt`, `results.json`, `history.json`,
    `model.keras` (the final model; `get_best_models`), and
    `plots/*.png` (similarity heatmap per bin with the clusters boxed,
    layer -> group map, refine cosine histogram).

    **Distributed.** `distribution` takes what Keras takes for scale-out:
    a `tf.distribute.Strategy` on TensorFlow (every model of the search is
    built and compiled in its scope) or a `keras.distribution`
    distribution on JAX (`DataParallel`; the global distribution while
    `search` and `get_best_models` run). Every phase runs under it; the
    gradient capture and the refine pass read the full-batch gradient, as
    on one device. It is not part of the saved configuration, so a
    project resumes on other hardware.

    **Arguments.** Every argument but the eight below is a search option
    (`members`, `input_shape`, `num_classes`, `budget`, `seed`, `num_bins`,
    `sharing`, ...), validated once into the `config` attribute, a
    [`keras_swn.search.SearchConfig`][], which
    documents each (and which options `reference_compatible=True` selects); the
    options also read as attributes (`search.budget`, `search.sharing`).

    Args:
        directory: str, the parent folder of the project folder.
        project_name: str, the project folder name.
        overwrite: bool; True deletes what keras_swn wrote in the
            project folder first, False resumes it (its configuration
            must match).
        allow_existing_files: bool; True starts a search in a folder that
            holds files keras_swn did not write (they are kept).
        plots: bool, write the PNG plots.
        jit_compile: passed to `compile` (`"auto"`).
        run_eagerly: passed to `compile` (False).
        distribution: None, a `tf.distribute.Strategy` (TensorFlow) or a
            `keras.distribution` distribution (JAX); see *Distributed*.

    Examples:
        >>> (x, y), (x_val, y_val) = (
        ...     keras_swn.data.load_digits_dataset(seed=0))
        >>> import tempfile
        >>> search = keras_swn.search.SearchAndRefine(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=80_000,
        ...     directory=tempfile.mkdtemp(), project_name="digits",
        ...     sharing="learned_no_refine", batch_size=32, plots=False,
        ...     run_eagerly=True)
        >>> search.search((x[:64], y[:64]), (x_val[:32], y_val[:32]),
        ...               search_epochs=1, epochs=1, verbose=0)
        >>> search.policy.num_members
        1

        A stock KerasTuner tuner can drive it over budgets, thresholds or
        bins: override `run_trial` and return the metric (see
        `tests/search/test_search_and_refine.py`).
    """

    def __init__(
        self,
        members: Sequence[MemberBuilder],
        input_shape: Sequence[int],
        num_classes: int,
        *,
        budget: int,
        directory: str | os.PathLike = ".",
        project_name: str = "search_and_refine",
        overwrite: bool = False,
        allow_existing_files: bool = False,
        seed: int = 0,
        num_bins: int = 4,
        threshold_schedule: str | None = None,
        group_share: float = 0.5,
        threshold_start: float = 0.1,
        threshold_decrement: float = 0.05,
        clustering: str | None = None,
        signal: str = "gradient",
        capture_batches: int = 1,
        batch_size: int = 128,
        refine_threshold: float = 0.9,
        coefficient_threshold: float | None = None,
        budget_check: str | None = None,
        chain_sort: str | None = None,
        template_fan_in: int | str | None = None,
        bank_size: int = 8,
        on_over_budget: str = "raise",
        sharing: str = "learned",
        reference_compatible: bool = False,
        plots: bool = True,
        jit_compile: bool | str = "auto",
        run_eagerly: bool = False,
        distribution: Any = None,
    ):
        options = {k: v for k, v in locals().items() if k in _CONFIG_FIELDS}
        for name, flag in (
            ("overwrite", overwrite),
            ("allow_existing_files", allow_existing_files),
        ):
            if not isinstance(flag, bool):
                raise invalid_argument(name, "Expected a bool.", flag)
        if jit_compile not in (True, False, "auto"):
            raise invalid_argument(
                "jit_compile", "Expected True, False or 'auto'.", jit_compile
            )
        self.distribution = check_distribution(distribution)
        self.project_dir = project_path(directory, project_name)
        self.config = SearchConfig(**options)
        self.directory = os.fspath(directory)
        self.project_name = project_name
        self.plots = bool(plots)
        if self.plots and importlib.util.find_spec("matplotlib") is None:
            raise invalid_argument(
                "plots",
                "The plots need matplotlib: install it (pip install "
                "matplotlib) or pass plots=False.",
                plots,
            )
        self.models = SearchModels(
            self.config, jit_compile=jit_compile, run_eagerly=bool(run_eagerly)
        )
        self.store = ProjectStore(self.project_dir)
        self.oracle: PhaseOracle | None = None
        self.run_config: RunConfig | None = None
        if overwrite:  # only what keras_swn wrote; refuses a live run's
            self.store.remove()
        else:
            self.store.check_not_train_result()
        self.allow_existing_files = allow_existing_files
        self.store.check_new_run(allow_existing_files)
        self._load_state()

    def _load_state(self) -> None:
        """Resume from `state.json`, if there is one (its configuration
        must be this one's)."""
        state = self.store.read_state()
        if state is not None:
            saved, now = state["config"], self.config.to_dict()
            if saved != now:
                raise ValueError(
                    f"The project folder {self.project_dir} holds a search "
                    "with another configuration "
                    f"({describe_changes(saved, now)}). Pass overwrite=True "
                    "or another `project_name`."
                )
            # A hand-edited run or oracle state names state.json.
            self.run_config = self.store.state_part(
                RunConfig.from_dict, state["run"]
            )
            self.oracle = self.store.state_part(
                PhaseOracle.from_state, state["oracle"]
            )

    def __getattr__(self, name: str) -> Any:
        # The validated options, read from `config` (`search.budget`).
        if name in _OPTIONS and "config" in self.__dict__:
            return getattr(self.config, name)
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    # ------------------------------------------------------------------
    # The search loop
    def search(
        self,
        train_data: Any,
        validation_data: Any = None,
        *,
        search_epochs: int | None = None,
        epochs: int = 200,
        refine_after: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 0.1,
        schedule: str | None = None,
        milestones: Sequence[int] | Sequence[float] | None = None,
        gamma: float | None = None,
        weight_decay: float = 5e-4,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        verbose: int | str = "auto",
    ) -> None:
        """Run (or resume) the pipeline; files go to the project folder.

        **Learning-rate schedule.** The rate is set at the start of every
        epoch by a schedule over the final training's `epochs`, one
        schedule across the refine step and the rebuild that follows it.
        By default the step schedule multiplies the rate by `gamma` at
        0.3, 0.6 and 0.8 of `epochs`, the reference's epochs 60, 120 and
        160 of 200 scaled to the run. `schedule="cosine"` lowers the rate
        from `learning_rate` towards 0 over `epochs` instead. The search
        training replays the first epochs of the same schedule (search
        epoch `e` trains at the rate of final epoch `e`), as the reference
        does. With `reference_compatible=True` the defaults are the
        reference's: the step schedule at the absolute epochs (60, 120,
        160), and the refine step after 10 epochs.

        Args:
            train_data: `(x, y)` NumPy arrays (shuffled per epoch by the
                search, from `seed`), or a `tf.data.Dataset` / iterable of
                `(x, y)` batches (used as given).
            validation_data: the same forms, or None. Evaluated after every
                final-training epoch and at the end (`results()`).
            search_epochs: int >= 0, or None: 5% of `epochs`, rounded
                up (1 for up to 20 epochs, 10 of 200), for the regimes
                that search; 20 (the paper's) with
                `reference_compatible=True`; 0 for `sharing="bins_hard"`,
                which must have 0.
            epochs: int >= 1, final-training epochs (the paper: 200).
            refine_after: int, final-training epochs before the refine
                step, or None: 5% of `epochs`, rounded up (10 of 200), and
                10 with `reference_compatible=True`. Ignored by the
                regimes that do not refine.
            batch_size: int or None (the constructor's `batch_size`).
            learning_rate: float > 0, the initial learning rate (0.1).
            schedule: `"step"` or `"cosine"`, or None: `"step"` (the only
                one reference mode allows).
            milestones: the step schedule's epochs or fractions of `epochs`, or
                None: (0.3, 0.6, 0.8), or (60, 120, 160) in reference mode (see
                [`keras_swn.search.TrainingRecipe`][]).
            gamma: float > 0, the step schedule's factor, or None: 0.2.
            weight_decay: float >= 0, the coupled L2 decay (5e-4).
            callbacks: Keras callbacks passed to every `fit` call (one call per
                epoch;
                [`SearchAndRefine.phase`][keras_swn.search.SearchAndRefine.phase]
                tells the phase).
            verbose: passed to `fit` (1: progress bars, 2: one line per
                epoch); 0 also silences the phase log. `"auto"`: 1 when
                standard output is a terminal, 2 otherwise (logs and
                notebooks' captured output get no control characters).

        Raises:
            ValueError: on invalid arguments (an `ArgumentError` naming
                the argument), on a resumed project whose run arguments
                differ, and when the budget cannot be met (only possible
                after the search training with `budget_check="proxy"` or
                `clustering="reference"`).
            FolderLockedError: (`keras_swn.io_utils.FolderLockedError`)
                when another run holds the project folder, naming the
                folder and the holder's process id.
        """
        run = RunConfig.create(
            self.config,
            search_epochs=search_epochs,
            epochs=epochs,
            refine_after=refine_after,
            batch_size=batch_size,
            learning_rate=learning_rate,
            schedule=schedule,
            milestones=milestones,
            gamma=gamma,
            weight_decay=weight_decay,
        )
        checks: dict[str, Any] = dict(
            input_shape=self.config.input_shape,
            num_classes=self.config.num_classes,
        )
        train = DataSource(train_data, "train_data", **checks)
        val = (
            None
            if validation_data is None
            else DataSource(validation_data, "validation_data", **checks)
        )
        self._check_run(run)  # before the lock creates the folder
        check_creatable("directory", self.project_dir)
        # One run at a time in the folder: a second fails at once.
        with self.store.lock("search"):
            self.store.check_not_train_result()
            self.store.check_new_run(self.allow_existing_files)
            self.store.remove_temp_files()  # left by a killed run
            self._load_state()  # what the last run wrote, under the lock
            self._check_run(run)
            self._run(run, train, val, callbacks, fit_verbosity(verbose))

    def _check_run(self, run: RunConfig) -> None:
        """Refuse run arguments other than those of the saved run."""
        if self.oracle is not None and self.run_config is not None:
            saved, now = self.run_config.to_dict(), run.to_dict()
            if saved != now:
                raise ValueError(
                    f"The project folder {self.project_dir} holds a search "
                    "run with other arguments "
                    f"({describe_changes(saved, now)}). Pass overwrite=True "
                    "to the constructor or use another `project_name`."
                )

    def _run(
        self,
        run: RunConfig,
        train: DataSource,
        val: DataSource | None,
        callbacks: Sequence[keras.callbacks.Callback] | None,
        verbose: int | str,
    ) -> None:
        """The search loop, holding the folder's lock."""
        if self.oracle is None or self.run_config is None:
            self.oracle = PhaseOracle(
                self.config.sharing,
                search_epochs=run.search_epochs,
                epochs=run.epochs,
                refine_after=run.refine_after,
            )
        self.run_config = run
        self.store.check_data(
            {
                "train_data": train.fingerprint(),
                "validation_data": None if val is None else val.fingerprint(),
            }
        )
        steps = StepRunner(
            config=self.config,
            run=run,
            models=self.models,
            store=self.store,
            oracle=self.oracle,
            train=train,
            val=val,
            callbacks=[*(callbacks or ()), StopOnNonFiniteLoss()],
            verbose=verbose,
            plots=self.plots,
        )
        with distribution_scope(self.distribution):
            if self.oracle.fresh:
                steps.start()
            if self.oracle.cursor > 0 or self.oracle.done:
                steps.log(f"resuming at {self.oracle.current()}")
            while (task := self.oracle.next_task()) is not None:
                steps.run_task(task)

    @property
    def phase(self) -> Phase | None:
        """The phase running now (or next), None before `search`."""
        return None if self.oracle is None else self.oracle.phase
