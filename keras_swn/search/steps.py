"""The steps of a search: what each phase does to the models and files.

`StepRunner` runs the `Task`s that `keras_swn.search.oracle.PhaseOracle` hands
out (the trial runner of the KerasTuner shape): it builds or reuses the model a
task starts from (`SearchModels`, restored from the task's checkpoint), trains
one epoch, clusters, refines (see the algorithm page, *Search* and *Refine*) or
finishes, writes the files of the step through the `ProjectStore`, and reports
back to the oracle; `state.json` is written after every step.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from typing import Any
from typing import Callable
from typing import Sequence
from typing import cast

import keras
import numpy as np

from keras_swn.analysis.clustering import search_groups
from keras_swn.analysis.refine import refine_partition
from keras_swn.io.store import MODEL
from keras_swn.io.store import PLOTS
from keras_swn.io.store import ProjectStore
from keras_swn.models.swn_model import SWNModel
from keras_swn.models.swn_model import clone_swn_model
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search import reporting as plots
from keras_swn.search.builders import SearchModels
from keras_swn.search.builders import capture
from keras_swn.search.builders import coefficient_gradients
from keras_swn.search.config import SearchConfig
from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.search.oracle import Sharing
from keras_swn.search.oracle import Task
from keras_swn.search.oracle import model_key
from keras_swn.search.reporting import search_results
from keras_swn.search.run_config import RunConfig
from keras_swn.training.data import DataSource
from keras_swn.training.data import floats


def diverged(where: str, detail: str) -> FloatingPointError:
    """The error of a run whose training diverged (nothing of the step is
    saved: the project keeps its last good step).

    Args:
        where: str, e.g. `"search_training epoch 2"`.
        detail: str, e.g. `"loss nan"`.

    Returns:
        The `FloatingPointError` to raise.

    Examples:
        >>> str(diverged("training epoch 3", "loss nan"))  # doctest: +ELLIPSIS
        'The training diverged at training epoch 3 (loss nan); lower the ...'
    """
    return FloatingPointError(
        f"The training diverged at {where} ({detail}); lower the learning "
        "rate (`learning_rate`). Nothing of this step was saved: the "
        "project folder keeps its last good step, and a run with another "
        "learning rate starts over. Pass overwrite=True or another "
        "`project_name`."
    )


def _finite(values: Any) -> bool:
    """Whether every value (variables, arrays) is finite."""
    return all(
        bool(np.isfinite(keras.ops.convert_to_numpy(v)).all()) for v in values
    )


def _loss_text(logs: dict) -> str:
    loss = logs.get("loss")
    return "loss unknown" if loss is None else f"loss {loss:.4g}"


class EpochEnd(keras.callbacks.Callback):
    """Ends `fit` after one epoch and hands its logs to `on_epoch_end`
    (which checkpoints the epoch and records it)."""

    def __init__(self, on_epoch_end: Callable[[dict], None]):
        super().__init__()
        self.hook = on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        self.hook(floats(logs))
        self.model.stop_training = True


def fit_verbosity(verbose: int | str) -> int | str:
    """`verbose` for `fit`: `"auto"` is 1 (a progress bar) on a terminal
    and 2 (one line per epoch) otherwise; other values are kept."""
    if verbose != "auto":
        return verbose
    isatty = getattr(sys.stdout, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


@dataclasses.dataclass(kw_only=True, eq=False)
class StepRunner:
    """Runs the steps of one `SearchAndRefine.search` call.

    Args:
        config: the `SearchConfig`.
        run: the `RunConfig`.
        models: the `SearchModels` of `config`.
        store: the project's `ProjectStore`.
        oracle: the `PhaseOracle` (completed steps are reported to it).
        train: the training `DataSource`.
        val: the validation `DataSource`, or None.
        callbacks: Keras callbacks passed to every `fit`.
        verbose: passed to `fit`; 0 also silences the phase log.
        plots: bool, write the PNG plots.
    """

    config: SearchConfig
    run: RunConfig
    models: SearchModels
    store: ProjectStore
    oracle: PhaseOracle
    train: DataSource
    val: DataSource | None
    callbacks: Sequence[keras.callbacks.Callback] = ()
    verbose: int | str = 1
    plots: bool = True
    _model: SWNModel | None = dataclasses.field(default=None, init=False)
    _model_key: Any = dataclasses.field(default=None, init=False)
    _phase_started: float | None = dataclasses.field(default=None, init=False)
    _pending_log: str | None = dataclasses.field(default=None, init=False)

    def run_task(self, task: Task) -> None:
        """Run `task` (the oracle's next one); it reports itself done."""
        if task.first_of_phase or self._phase_started is None:
            self._phase_started = time.perf_counter()
        {
            Phase.SEARCH_TRAINING: self.train_epoch,
            Phase.CLUSTERING: self.cluster,
            Phase.TRAINING: self.train_epoch,
            Phase.REFINE: self.refine,
            Phase.FINISH: self.finish,
        }[task.phase](task)

    def start(self) -> None:
        """Check the initial bins fit; `"bins_hard"` starts from them."""
        initial = self.models.initial_policy()
        self.models.plan(initial)  # raises if even the bins are over budget
        if not self.config.regime.searches:
            self.oracle.start(policy=initial.to_dict())
            initial.save(self.store.path("policy.json"))
        self.save_state()
        self.log(
            f"start: members {', '.join(self.config.member_names)}; budget "
            f"{self.config.budget:,}; sharing {self.config.regime.value}; "
            f"{len(self.oracle.steps) - 1} steps; folder "
            f"{os.path.abspath(self.store.project_dir)}"
        )

    def save_state(self) -> None:
        """`state.json`, then the checkpoints it no longer names go."""
        self.store.write_state(
            self.config.to_dict(),
            self.run.to_dict(),
            self.oracle.get_state(),
        )
        self.store.prune_checkpoints(self.oracle.artifacts.checkpoint)

    def model_for(self, task: Task) -> SWNModel:
        """The model the task starts from (rebuilt after a restart)."""
        if self._model is not None and self._model_key == task.model_key:
            return self._model
        recipe = self.run.recipe
        if task.model == "search":
            model = self.models.search_model(recipe)
        else:
            # The oracle hands a final-model task the current policy.
            policy = SharingPolicy.from_dict(cast(dict, task.policy))
            model = self.models.final_model(policy, recipe)
        if task.checkpoint is not None:
            self.store.load_checkpoint(model, task.checkpoint)
        self._model, self._model_key = model, task.model_key
        return model

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"[SearchAndRefine] {text}", flush=True)

    def _elapsed(self) -> float:
        start = self._phase_started or time.perf_counter()
        return round(time.perf_counter() - start, 3)

    def _lr(self, epoch: int) -> float:
        """The rate of a training epoch: the schedule over the final
        training's epochs (search epoch `e` replays final epoch `e`)."""
        run = self.run
        return run.recipe.learning_rate_at(epoch, epochs=run.epochs)

    def _lr_used(self, epoch: int) -> float:
        """The rate the epoch just trained at, for its logs: the
        optimizer's, which a callback may have set over the schedule's
        (`train_epoch` sets `_lr` before `fit`); the schedule's exact
        value when the optimizer holds it (its variable is float32)."""
        assert self._model is not None  # the model of the epoch
        used = keras.ops.convert_to_numpy(self._model.optimizer.learning_rate)
        scheduled = self._lr(epoch)
        if np.asarray(scheduled, dtype=used.dtype) == used:
            return scheduled
        return float(used)

    # ------------------------------------------------------------------
    # The steps
    def train_epoch(self, task: Task) -> None:
        """One epoch of search or final training."""
        model = self.model_for(task)
        step = task.step
        assert step.epoch is not None  # a training step has an epoch
        search = step.phase is Phase.SEARCH_TRAINING
        batch_size = self.run.batch_size
        model.optimizer.learning_rate = self._lr(step.epoch)
        kwargs = self.train.ordered_fit_kwargs(
            batch_size,
            self.config.seed,
            "epoch",
            0 if search else 1,
            step.epoch,
        )
        if not search and self.val is not None:
            kwargs.update(self.val.validation_kwargs(batch_size))
        if self.verbose and step.epoch == 0:
            what = (
                f"members {self.config.search_members} train"
                if search
                else "all members train"
            )
            self.log(
                f"{step.phase.value}: {task.epochs} epochs ({what}); model "
                f"has {model.count_params():,} parameters"
            )
        model.fit(
            epochs=task.epochs,
            initial_epoch=step.epoch,
            callbacks=[
                EpochEnd(functools.partial(self.epoch_done, task)),
                *self.callbacks,
            ],
            verbose=self.verbose,
            **kwargs,
        )
        if self._pending_log is not None:
            self.log(self._pending_log)
            self._pending_log = None
        if self.oracle.current() == step:  # fit ran no epoch
            raise RuntimeError(f"Training step {step} did not run.")

    def epoch_done(self, task: Task, logs: dict) -> None:
        """Checkpoint the epoch `EpochEnd` ended and record it; a
        diverged epoch (a non-finite loss or weight) is not recorded."""
        assert task.step.epoch is not None  # a training step has an epoch
        assert self._model is not None  # the model of the epoch
        loss = logs.get("loss")
        if (loss is not None and not np.isfinite(loss)) or not _finite(
            self._model.variables
        ):
            detail = _loss_text(logs)
            if loss is None or np.isfinite(loss):
                detail += ", the weights hold NaN or inf after it"
            raise diverged(
                f"{task.phase.value} epoch {task.step.epoch + 1}", detail
            )
        name = self.store.save_checkpoint(self._model, self.oracle.cursor)
        summary = None
        if task.last_of_phase:
            summary = {"seconds": self._elapsed(), "last_logs": logs}
        self.oracle.complete(
            task.step,
            logs={**logs, "learning_rate": self._lr_used(task.step.epoch)},
            summary=summary,
            artifacts={"checkpoint": name},
        )
        self.save_state()
        if task.last_of_phase:
            assert summary is not None  # set above when `last_of_phase`
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in logs.items() if "accuracy" in k
            )
            trained = task.step.epoch + 1
            status = (
                f"done: {trained} epochs"
                if trained >= (task.epochs or 0)
                else f"paused after {trained} of {task.epochs} epochs for "
                "the refine step"
            )
            # Printed once `fit` returns: Keras' progress bar ends its
            # epoch line after the callbacks' `on_epoch_end`.
            self._pending_log = (
                f"{task.phase.value} {status}; {shown} "
                f"({summary['seconds']:.1f} s)"
            )

    def cluster(self, task: Task) -> None:
        """Capture, cluster under the budget, set the policy."""
        c = self.config
        model = self.model_for(task)
        gradients, weights = capture(
            model,
            self.train,
            c.specs,
            signal=c.signal,
            batches=c.capture_batches,
            batch_size=self.run.batch_size,
            seed=c.seed,
            # The reference reads the moving statistics (stale after a
            # short search; they overflow deep networks).
            batch_statistics=not c.reference_compatible,
        )
        if not _finite((gradients or {}).values()):
            raise diverged(
                f"{Phase.SEARCH_TRAINING.value} epoch {self.run.search_epochs}",
                "the captured kernel gradients hold NaN or inf",
            )
        result = search_groups(
            c.specs,
            model.policy,
            gradients,
            c.budget,
            weights=weights,
            **c.clustering_kwargs(),
        )
        if c.sharing is Sharing.SOFT:
            policy = SharingPolicy(groups=result.groups)
        else:
            assert c.chain_sort is not None  # resolved by SearchConfig
            policy = result.to_policy(c.specs, chain_sort=c.chain_sort)
        self.models.plan(policy)
        self.store.write_json("search_result.json", result.to_dict())
        if self.plots:
            plots.write_search_plots(result, self.store.path(PLOTS))
        self._model = self._model_key = None  # the search model is dropped
        summary = {
            "seconds": self._elapsed(),
            "threshold": result.threshold,
            "thresholds_tried": result.iterations,
            "need": result.need,
            "groups": result.num_groups,
            "group_share_of_budget": result.need / c.budget,
        }
        self.complete_phase(
            task,
            policy,
            summary,
            checkpoint=None,
            search_result="search_result.json",
        )
        self.log(
            f"clustering done: {result.num_groups} groups at threshold "
            f"{result.threshold:.3g} ({result.iterations} groupings tried); "
            f"one template per bank takes {result.need:,} of the budget "
            f"{c.budget:,} ({result.need / c.budget:.0%}; the rest goes to "
            f"more templates per bank) ({summary['seconds']:.1f} s)"
        )

    def refine(self, task: Task) -> None:
        """Split disagreeing shared coefficients and rebuild."""
        c = self.config
        # Resolved by SearchConfig (the reference options are never None).
        assert c.chain_sort is not None and c.clustering is not None
        model = self.model_for(task)
        grads = coefficient_gradients(
            model,
            self.train,
            batch_size=self.run.batch_size,
            seed=c.seed,
            batch_statistics=not c.reference_compatible,
        )
        if not _finite(grads.values()):
            raise diverged(
                f"{Phase.TRAINING.value} epoch {self.run.refine_after}",
                "the coefficient gradients of the refine hold NaN or inf",
            )
        result = refine_partition(
            model.policy,
            grads,
            threshold=c.refine_threshold,
            clustering=c.clustering,
            levels=layer_levels(
                c.specs, model.policy.groups, chain_sort=c.chain_sort
            ),
        )
        model = self.models.refined(model, result, self.run.recipe)
        self._model = model
        self._model_key = model_key("final", result.policy.to_dict())
        name = self.store.save_checkpoint(model, self.oracle.cursor)
        self.store.write_json("refine.json", result.to_dict())
        if self.plots:
            plots.save_figure(
                plots.plot_refine_cosines(
                    result.pair_cosines, c.refine_threshold
                ),
                self.store.path(PLOTS, "refine_cosines.png"),
            )
        summary = {
            "seconds": self._elapsed(),
            "vectors_before": result.vectors_before,
            "vectors_after": result.vectors_after,
            "pairs": sum(len(p) for p in result.pair_cosines.values()),
        }
        self.complete_phase(
            task, result.policy, summary, checkpoint=name, refine="refine.json"
        )
        self.log(
            f"refine done: {summary['pairs']} shared pairs; coefficient "
            f"vectors {result.vectors_before} -> {result.vectors_after} "
            f"({summary['seconds']:.1f} s)"
        )

    def complete_phase(
        self, task: Task, policy: SharingPolicy, summary: dict, **artifacts
    ) -> None:
        """Record a phase that set a new policy: its files, the state."""
        policy.save(self.store.path("policy.json"))
        if self.plots:
            self.plot_groups(policy)
        self.oracle.complete(
            task.step,
            summary=summary,
            artifacts={"policy": policy.to_dict(), **artifacts},
        )
        self.save_state()
        self.store.write_budget_report(self.models.budget_report(policy))

    def finish(self, task: Task) -> None:
        """Evaluate, save the final model, the results and the history."""
        model = self.model_for(task)
        run = self.run
        evaluation = None
        if self.val is not None:
            evaluation = self.val.evaluate(model, run.batch_size)
        self.store.write_model(clone_swn_model(model))
        report = model.budget_report()
        results = search_results(
            config=self.config,
            run=run.to_dict(),
            model=model,
            report=report,
            evaluation=evaluation,
            phase_log=self.oracle.phase_log,
        )
        self.store.write_json("results.json", results)
        self.store.write_json("history.json", self.oracle.history)
        self.store.write_budget_report(self.models.budget_report(model.policy))
        if self.plots:
            self.plot_groups(model.policy)
        self.oracle.complete(
            task.step,
            summary={"seconds": self._elapsed()},
            artifacts={"results": "results.json", "model": MODEL},
        )
        self.save_state()
        acc = results.get("val_ensemble_accuracy")
        self.log(
            "done: "
            + (
                f"validation ensemble accuracy {acc:.4f}; "
                if acc is not None
                else ""
            )
            + f"{results['groups']} groups; {report.trainable_total:,} "
            f"trainable parameters; model at {self.store.path(MODEL)}"
        )

    def plot_groups(self, policy: SharingPolicy) -> None:
        plots.write_group_map(
            policy,
            self.config.member_names,
            self.store.path(PLOTS, "groups.png"),
        )
