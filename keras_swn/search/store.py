"""`ProjectStore`: every file of a search under `directory/project_name`.

The state (`state.json`: the configuration, the run and the oracle
state), the checkpoints (`checkpoints/*.npz`: every model and optimizer
variable, keyed by variable path), and the artifacts (the policy, the
search and refine results, the budget report, the results, the final
model, the plots). Every file is written atomically
(`keras_swn.io_utils`): a file is absent or whole, never half-written, so
a search killed at any moment leaves a folder it can resume from.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any
from typing import Mapping

import keras
import numpy as np
from keras import ops

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.io_utils import atomic_write
from keras_swn.io_utils import atomic_write_json
from keras_swn.io_utils import atomic_write_text
from keras_swn.validation import argument_error
from keras_swn.validation import check_format

STATE = "state.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
MODEL = "model.keras"

_FORMAT = "keras_swn.SearchAndRefine"
_VERSION = 2
#: Checkpoint entries: model weights and optimizer variables, by path.
_WEIGHT, _OPTIMIZER = "w/", "o/"


def _by_path(variables, what: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for v in variables:
        if v.path in found:
            raise ValueError(f"Two {what} variables have the path {v.path}.")
        found[v.path] = v
    return found


class ProjectStore:
    """The files of one search project.

    Args:
        project_dir: str, the project folder (created on the first write).
    """

    def __init__(self, project_dir: str | os.PathLike):
        self.project_dir = os.fspath(project_dir)

    def path(self, *parts: str) -> str:
        return os.path.join(self.project_dir, *parts)

    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.path(*parts))

    def remove(self) -> None:
        """Delete the project folder (`overwrite=True`)."""
        if os.path.isdir(self.project_dir):
            shutil.rmtree(self.project_dir)

    # ------------------------------------------------------------------
    # state.json
    def read_state(self) -> dict | None:
        """The saved state, or None for a new project.

        Raises:
            ValueError: if `state.json` is not a state of this version.
        """
        if not self.exists(STATE):
            return None
        state = self.read_json(STATE)
        try:
            check_format(
                state,
                format=_FORMAT,
                versions=(_VERSION,),
                what="SearchAndRefine state",
            )
        except ValueError as e:
            raise ValueError(
                f"{self.path(STATE)} is not a state this version can resume "
                f"({e}). Pass overwrite=True or another `project_name`."
            ) from None
        return state

    def write_state(
        self, config: Mapping, run: Mapping | None, oracle: Mapping
    ) -> None:
        """Write `state.json` (atomically, after the files it names)."""
        atomic_write_json(
            self.path(STATE),
            {
                "format": _FORMAT,
                "version": _VERSION,
                "config": dict(config),
                "run": None if run is None else dict(run),
                "oracle": dict(oracle),
            },
        )

    # ------------------------------------------------------------------
    # Checkpoints: every weight and every optimizer variable, by path.
    def save_checkpoint(self, model: keras.Model, index: int) -> str:
        """Write checkpoint number `index` of `model`; returns its name."""
        name = f"checkpoint-{index:05d}.npz"
        arrays = {}
        for path, v in _by_path(model.weights, "model").items():
            arrays[_WEIGHT + path] = np.asarray(ops.convert_to_numpy(v))
        for path, v in _by_path(model.optimizer.variables, "optimizer").items():
            arrays[_OPTIMIZER + path] = np.asarray(ops.convert_to_numpy(v))

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self.path(CHECKPOINTS, name), write, suffix=".npz")
        return name

    def load_checkpoint(self, model: keras.Model, name: str) -> None:
        """Restore `model` (and its built optimizer) from checkpoint
        `name`; every variable must be in it, and nothing else."""
        with np.load(self.path(CHECKPOINTS, name)) as data:
            saved = {k: data[k] for k in data.files}
        targets = {
            _WEIGHT + p: v for p, v in _by_path(model.weights, "model").items()
        }
        targets.update(
            {
                _OPTIMIZER + p: v
                for p, v in _by_path(
                    model.optimizer.variables, "optimizer"
                ).items()
            }
        )
        if set(saved) != set(targets):
            missing = sorted(set(targets) - set(saved))[:5]
            extra = sorted(set(saved) - set(targets))[:5]
            raise ValueError(
                f"Checkpoint {name} does not match the model: missing "
                f"{missing}, unexpected {extra}."
            )
        for key, variable in targets.items():
            variable.assign(saved[key])

    def prune_checkpoints(self, keep: str | None) -> None:
        """Delete every checkpoint but `keep` (after `write_state`)."""
        folder = self.path(CHECKPOINTS)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name != keep and name.endswith(".npz"):
                    os.remove(os.path.join(folder, name))

    # ------------------------------------------------------------------
    # Artifacts
    def write_json(self, name: str, obj: Any) -> str:
        atomic_write_json(self.path(name), obj)
        return name

    def read_json(self, name: str) -> Any:
        with open(self.path(name), encoding="utf-8") as f:
            return json.load(f)

    def write_budget_report(self, report: BudgetReport) -> None:
        """`budget_report.json` and the table in `budget_report.txt`."""
        self.write_json("budget_report.json", report.to_dict())
        atomic_write_text(self.path("budget_report.txt"), f"{report}\n")

    def write_model(self, model: keras.Model, name: str = MODEL) -> str:
        """`model.save` to `name` in the project folder."""
        atomic_write(self.path(name), model.save, suffix=".keras")
        return name

    def load_model(self, name: str = MODEL) -> keras.Model:
        """The saved model, compiled for evaluation."""
        model = keras.models.load_model(self.path(name))
        model.compile()
        return model


def project_path(directory: str | os.PathLike, project_name: Any) -> str:
    """`directory/project_name`, the project name checked."""
    if (
        not isinstance(project_name, str)
        or not project_name
        or (os.sep in project_name)
    ):
        raise argument_error(
            "project_name", "Expected a non-empty folder name.", project_name
        )
    return os.path.join(os.fspath(directory), project_name)
