"""`ProjectStore`: every file of a search under `directory/project_name`.

The state (`state.json`: the configuration, the run and the oracle
state), the checkpoints (`checkpoints/*.npz`: every model and optimizer
variable, keyed by variable path), and the artifacts (the policy, the
search and refine results, the budget report, the results, the final
model, the plots). Every file is written atomically
(`keras_swn.io_utils`): a file is absent or whole, never half-written, so
a search killed at any moment leaves a folder it can resume from; the
temporary files such a kill leaves are deleted when the next run starts
(`remove_temp_files`). A run holds the folder's `RunLock` (`lock`), so a
second run in the same folder fails at once instead of racing the first.

A folder is a search project when it holds `state.json`, and the result of a
`train` run
([`keras_swn.search.train_and_save`][],
`keras-swn train`) when it holds `model.keras` or `results.json` but no
`state.json` (`kind`); neither kind of run writes into the other's folder.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any
from typing import Callable
from typing import Mapping
from typing import TypeVar

import keras
import numpy as np
from keras import ops

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.io.atomic import DamagedFileError
from keras_swn.io.atomic import atomic_write
from keras_swn.io.atomic import atomic_write_json
from keras_swn.io.atomic import atomic_write_text
from keras_swn.io.changes import describe_changes
from keras_swn.io.locking import RunLock
from keras_swn.io.run_folder import CHECKPOINTS
from keras_swn.io.run_folder import DATA
from keras_swn.io.run_folder import MODEL
from keras_swn.io.run_folder import PLOTS
from keras_swn.io.run_folder import RESULTS
from keras_swn.io.run_folder import STATE
from keras_swn.io.run_folder import RunFolder
from keras_swn.io.run_folder import check_folder_text
from keras_swn.io.run_folder import check_name
from keras_swn.io.run_folder import folder_kind
from keras_swn.validation import check_format
from keras_swn.validation import invalid_argument

__all__ = [
    "CHECKPOINTS",
    "DATA",
    "MODEL",
    "PLOTS",
    "RESULTS",
    "STATE",
    "ProjectStore",
    "describe_changes",
    "project_path",
]

T = TypeVar("T")

_FORMAT = "keras_swn.SearchAndRefine"
# 3: templates held in HWIO piece order (`keras_swn.bank.layout`); the
# checkpoints of a version-2 state hold them in OIHW order.
_VERSION = 3
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
        argument: str, the argument that chose the folder (named by the
            errors about its files).
    """

    def __init__(
        self, project_dir: str | os.PathLike, argument: str = "project_name"
    ):
        self.project_dir = os.fspath(project_dir)
        self.argument = argument
        self.folder = RunFolder(self.project_dir)

    def path(self, *parts: str) -> str:
        return os.path.join(self.project_dir, *parts)

    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.path(*parts))

    def kind(self) -> str | None:
        """What the folder holds: `"search"` (a `state.json`), `"train"`
        (`model.keras` or `results.json`, no `state.json`), or None (no
        folder, or neither).

        Returns:
            `"search"`, `"train"` or None.
        """
        return folder_kind(self.project_dir)

    def ways_on(self) -> str:
        """What to do about a damaged file of this folder."""
        if self.argument == "project_name":
            return (
                "The search cannot resume from it. Pass overwrite=True or "
                "another `project_name`."
            )
        return (
            f"Write it again with overwrite=True (it deletes only what "
            f"keras_swn wrote), or use another `{self.argument}`."
        )

    def damaged(self, name: str, problem: str) -> DamagedFileError:
        """The `DamagedFileError` for file `name` of the folder; for an
        output of a finished search whose `policy.json` is intact, the
        error also says how to train that policy again."""
        ways_on = self.ways_on()
        policy = self.path("policy.json")
        if (
            self.argument == "project_name"
            and name in (MODEL, RESULTS)
            and os.path.isfile(policy)
        ):
            ways_on += (
                f" The policy the search found is intact ({policy}): "
                "`train_and_save` with an `SWNModel` of that policy (or the "
                "`train` command given that file) trains its model again."
            )
        return DamagedFileError(
            self.path(name), problem, argument=self.argument, ways_on=ways_on
        )

    def lock(self, what: str = "search") -> RunLock:
        """The folder's `RunLock` (`with store.lock(): ...`).

        Args:
            what: str, what runs, for the error message.

        Returns:
            A `RunLock`, not yet acquired.
        """
        return RunLock(self.project_dir, what)

    def remove_temp_files(self) -> list[str]:
        """Delete the temporary files of writes a killed run left in the
        folder and the folders keras_swn wrote there, and give a folder an
        earlier version wrote a manifest (`RunFolder.adopt`); call it
        while holding `lock`, before the run writes.

        Returns:
            The paths deleted.
        """
        self.folder.adopt()
        return self.folder.remove_temp_files()

    def check_new_run(self, allow_existing_files: bool = False) -> None:
        """`RunFolder.check_new_run`, naming this store's argument."""
        self.folder.check_new_run(self.argument, allow_existing_files)

    def check_not_train_result(self) -> None:
        """Refuse to start a search in the folder of a `train` result.

        Raises:
            ValueError: naming the folder, when `kind()` is `"train"`.
        """
        if self.kind() == "train":
            raise invalid_argument(
                "project_name",
                f"The project folder {self.project_dir} holds the result of "
                f"a `train` run ({MODEL} or {RESULTS}, no {STATE}), not a "
                "search; a search would mix its files into it. Pass "
                "overwrite=True or another `project_name`.",
                os.path.basename(self.project_dir),
            )

    def remove(self, instead: str = "`project_name` or `directory`") -> None:
        """Delete what keras_swn wrote in the folder (`overwrite=True`):
        `keras_swn.io.run_folder.RunFolder.remove`.

        Args:
            instead: what a refusal suggests choosing instead (the
                caller's argument names).

        Raises:
            ValueError: when the folder is a file or a link, the current
                directory or above it, or holds a `model.keras` or
                `results.json` keras_swn did not write.
            FolderLockedError: (`keras_swn.io_utils.FolderLockedError`)
                if a live run holds the folder's lock. Nothing is deleted
                then.
        """
        self.folder.remove(instead)

    # ------------------------------------------------------------------
    # state.json
    def read_state(self) -> dict | None:
        """The saved state, or None for a new project.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming
                `state.json` if it is not a state of this version.
        """
        if not self.exists(STATE):
            return None
        try:
            with open(self.path(STATE), encoding="utf-8") as f:
                state = json.load(f)
            check_format(
                state,
                format=_FORMAT,
                versions=(_VERSION,),
                what="SearchAndRefine state",
            )
            missing = sorted({"config", "run", "oracle"} - set(state))
            if missing:
                raise ValueError(f"no {missing}")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise self._damaged_state(e) from None
        return state

    def _damaged_state(self, error: BaseException) -> DamagedFileError:
        return self.damaged(
            STATE,
            "is damaged or not a state this version can resume "
            f"({type(error).__name__}: {str(error)[:300]})",
        )

    def state_part(self, build: Callable[[Any], T], value: Any) -> T:
        """`build(value)` for a part of `read_state()` (the run, the
        oracle state), its errors naming `state.json`.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming
                `state.json` when `build` refuses `value`.
        """
        try:
            return build(value)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise self._damaged_state(e) from None

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

    def check_data(self, fingerprints: Mapping[str, str | None]) -> None:
        """Record the data's fingerprints (`DataSource.fingerprint`) on
        the first run; on a resumed one, refuse other data.

        Raises:
            ValueError: naming the argument whose data differs from the
                data the project was started with.
        """
        if not self.exists(DATA):
            atomic_write_json(self.path(DATA), dict(fingerprints))
            return
        saved = self.read_json(DATA)
        for name, now in fingerprints.items():
            before = saved.get(name) if isinstance(saved, dict) else None
            if now is not None and before is not None and now != before:
                raise invalid_argument(
                    name,
                    f"The project folder {self.project_dir} holds a search "
                    "started on other data (different arrays); resuming "
                    "would train the rest of it on these. Pass the original "
                    "data, or overwrite=True or another `project_name` to "
                    "start again.",
                    now,
                    shown=f"{name} with fingerprint {now} (the project's: "
                    f"{before})",
                )

    # ------------------------------------------------------------------
    # Checkpoints: every weight and every optimizer variable, by path.
    def save_checkpoint(self, model: keras.Model, index: int) -> str:
        """Write checkpoint number `index` of `model`; returns its name."""
        name = f"checkpoint-{index:05d}.npz"
        arrays: dict[str, Any] = {}
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
        `name`; every variable must be in it, with its shape, and nothing
        else.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming the
                checkpoint when it is missing, damaged or truncated, or
                holds the variables of another model.
        """
        rel = os.path.join(CHECKPOINTS, name)
        try:
            with np.load(self.path(rel), allow_pickle=False) as data:
                saved = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise self.damaged(rel, "is missing") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise self.damaged(
                rel,
                "is damaged or truncated, not a whole checkpoint "
                f"({type(e).__name__}: {str(e)[:200]})",
            ) from None
        except AttributeError:  # np.load of a pickle-free non-archive
            raise self.damaged(rel, "is not a checkpoint archive") from None
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
            raise self.damaged(
                rel,
                "does not match the model (from another project?): missing "
                f"{missing}, unexpected {extra}",
            )
        wrong = [
            f"{k}: saved {tuple(saved[k].shape)}, model {tuple(v.shape)}"
            for k, v in targets.items()
            if tuple(saved[k].shape) != tuple(v.shape)
        ]
        if wrong:
            raise self.damaged(
                rel,
                "holds arrays of other shapes than the model's (from "
                f"another project?): {'; '.join(wrong[:3])}",
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
        """The JSON file `name` of the folder.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming the
                file when it is missing or not whole JSON.
        """
        try:
            with open(self.path(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            raise self.damaged(name, "is missing") from None
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise self.damaged(
                name, f"is damaged, not whole JSON ({str(e)[:200]})"
            ) from None

    def write_budget_report(self, report: BudgetReport) -> None:
        """`budget_report.json` and the table in `budget_report.txt`."""
        self.write_json("budget_report.json", report.to_dict())
        atomic_write_text(self.path("budget_report.txt"), f"{report}\n")

    def write_model(self, model: keras.Model, name: str = MODEL) -> str:
        """`model.save` to `name` in the project folder."""
        atomic_write(self.path(name), model.save, suffix=".keras")
        return name

    def load_model(self, name: str = MODEL) -> keras.Model:
        """The saved model, compiled for evaluation.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming the
                file when it is missing or not a readable `.keras` file
                (damaged, truncated, or another format).
        """
        path = self.path(name)
        if not os.path.isfile(path):
            raise self.damaged(name, "is missing")
        if not zipfile.is_zipfile(path):
            raise self.damaged(
                name,
                "is not a readable .keras file (damaged, truncated, or "
                "another format)",
            )
        try:
            model = keras.models.load_model(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise self.damaged(
                name,
                "could not be loaded as a keras_swn model "
                f"({type(e).__name__}: {str(e)[:200]})",
            ) from None
        model.compile()
        return model


def project_path(directory: str | os.PathLike, project_name: Any) -> str:
    """`directory/project_name`, both checked.

    Raises:
        ValueError: naming `project_name` unless it is one folder name
            inside `directory` (not empty, `.` or `..`, no separator, not
            longer than the file system takes), or naming `directory` if
            it is empty or only whitespace, or exists and is not a folder.
    """
    separators = {s for s in (os.sep, os.altsep) if s is not None}
    if (
        not isinstance(project_name, str)
        or project_name.strip() in ("", ".", "..")
        or any(sep in project_name for sep in separators)
    ):
        raise invalid_argument(
            "project_name",
            "Expected the name of one folder inside `directory` (not empty, "
            "'.', '..' or a path).",
            project_name,
        )
    directory = check_folder_text("directory", directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise invalid_argument(
            "directory", "Expected a folder, not a file.", directory
        )
    check_name("project_name", project_name, directory)
    return os.path.join(directory, project_name)
