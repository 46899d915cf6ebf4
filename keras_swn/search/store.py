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

A folder is a search project when it holds `state.json`, and the result
of a `train` run (`keras_swn.search.train_and_save`, `keras-swn train`)
when it holds `model.keras` or `results.json` but no `state.json`
(`kind`); neither kind of run writes into the other's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from typing import Any
from typing import Mapping

import keras
import numpy as np
from keras import ops

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.io_utils import LOCK_FILE
from keras_swn.io_utils import RunLock
from keras_swn.io_utils import atomic_write
from keras_swn.io_utils import atomic_write_json
from keras_swn.io_utils import atomic_write_text
from keras_swn.io_utils import is_temp_file
from keras_swn.io_utils import remove_temp_files
from keras_swn.validation import argument_error
from keras_swn.validation import check_format

STATE = "state.json"
DATA = "data.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
MODEL = "model.keras"
RESULTS = "results.json"

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
    """

    def __init__(self, project_dir: str | os.PathLike):
        self.project_dir = os.fspath(project_dir)

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
        if self.exists(STATE):
            return "search"
        if os.path.isdir(self.project_dir) and (
            self.exists(MODEL) or self.exists(RESULTS)
        ):
            return "train"
        return None

    def _written_by_train(self) -> bool:
        """Whether the folder's `results.json` or `model.keras` was
        written by `train_and_save` (a `keras_swn_version` in the results,
        an `SWNModel` in the model file)."""
        try:
            results = self.read_json(RESULTS)
            if isinstance(results, dict) and "keras_swn_version" in results:
                return True
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        try:
            with zipfile.ZipFile(self.path(MODEL)) as archive:
                config = json.loads(archive.read("config.json"))
            return isinstance(config, dict) and "SWNModel" in str(
                config.get("class_name", "")
            )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return False

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
        folder tree (`keras_swn.io_utils.remove_temp_files`); call it
        while holding `lock`.

        Returns:
            The paths deleted.
        """
        return remove_temp_files(self.project_dir)

    def check_not_train_result(self) -> None:
        """Refuse to start a search in the folder of a `train` result.

        Raises:
            ValueError: naming the folder, when `kind()` is `"train"`.
        """
        if self.kind() == "train":
            raise argument_error(
                "project_name",
                f"The project folder {self.project_dir} holds the result of "
                f"a `train` run ({MODEL} or {RESULTS}, no {STATE}), not a "
                "search; a search would mix its files into it. Pass "
                "overwrite=True or another `project_name`.",
                os.path.basename(self.project_dir),
            )

    def remove(self, instead: str = "`project_name` or `directory`") -> None:
        """Delete what this library wrote in the folder (`overwrite=True`).

        A search project (it holds `state.json`) or a folder that holds
        nothing but this library's lock and temporary files is deleted
        whole. From the result of a `train` run (its `results.json`
        names a `keras_swn_version`, or its `model.keras` holds an
        `SWNModel`) only the files `train` writes are deleted
        (`keras_swn.search.training.TRAINING_FILES`), and the folder when
        nothing else is left. Anything else is left alone.

        Args:
            instead: what a refusal suggests choosing instead (the
                caller's argument names).

        Raises:
            ValueError: if the folder exists, is not empty and is neither
                kind (or its model and results were not written by this
                library), or is not a folder;
                `keras_swn.io_utils.FolderLockedError` if a live run
                holds the folder's lock. Nothing is deleted then.
        """
        folder = self.project_dir
        if not os.path.lexists(folder):
            return
        if os.path.islink(folder) or not os.path.isdir(folder):
            raise ValueError(
                f"overwrite=True would delete {folder}, which is not a "
                "search project folder (a file or a link); nothing was "
                f"deleted. Use another {instead}."
            )
        self.lock().check()
        entries = [
            e
            for e in os.listdir(folder)
            if e != LOCK_FILE and not is_temp_file(e)
        ]
        kind = self.kind()
        if kind == "train":
            from keras_swn.search.training import TRAINING_FILES

            if not self._written_by_train():
                raise ValueError(
                    f"overwrite=True would delete {MODEL} and {RESULTS} in "
                    f"{folder}, which keras_swn did not write (not an SWN "
                    "model, no keras_swn_version in the results); nothing "
                    f"was deleted. Use another {instead}."
                )
            for name in TRAINING_FILES:
                if os.path.isfile(self.path(name)):
                    os.remove(self.path(name))
            self.remove_temp_files()
            if not set(entries) - set(TRAINING_FILES):
                shutil.rmtree(folder)
            return
        if entries and kind is None:
            raise ValueError(
                f"overwrite=True would delete {folder}, which holds no "
                f"{STATE} (not a search project folder); nothing was "
                f"deleted. Use another {instead}."
            )
        shutil.rmtree(folder)

    # ------------------------------------------------------------------
    # state.json
    def read_state(self) -> dict | None:
        """The saved state, or None for a new project.

        Raises:
            ValueError: if `state.json` is not a state of this version.
        """
        if not self.exists(STATE):
            return None
        try:
            state = self.read_json(STATE)
            check_format(
                state,
                format=_FORMAT,
                versions=(_VERSION,),
                what="SearchAndRefine state",
            )
            missing = sorted({"config", "run", "oracle"} - set(state))
            if missing:
                raise ValueError(f"no {missing}")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(
                f"{self.path(STATE)} is damaged or not a state this version "
                f"can resume ({e}). Pass overwrite=True (CLI: --overwrite) "
                "to start the search again, or another `project_name`."
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
        try:
            saved = self.read_json(DATA)
        except ValueError as e:
            raise ValueError(
                f"{self.path(DATA)} is damaged ({e}). Pass overwrite=True "
                "(CLI: --overwrite) to start the search again."
            ) from None
        for name, now in fingerprints.items():
            before = saved.get(name) if isinstance(saved, dict) else None
            if now is not None and before is not None and now != before:
                raise ValueError(
                    f"Invalid value for argument `{name}`: the project folder "
                    f"{self.project_dir} holds a search started on other "
                    "data (different arrays); resuming would train the rest "
                    "of it on these. Pass the original data, or "
                    "overwrite=True (CLI: --overwrite) or another "
                    "`project_name` to start again."
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
        """The saved model, compiled for evaluation.

        Raises:
            ValueError: naming the file when it is not a readable `.keras`
                file (damaged, truncated, or another format).
        """
        path = self.path(name)
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is not a readable .keras file (damaged, truncated, "
                "or another format). Received: path=" + repr(path)
            )
        try:
            model = keras.models.load_model(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise ValueError(
                f"{path} could not be loaded as a keras_swn model ({e}). "
                f"Received: path={path!r}"
            ) from None
        model.compile()
        return model


def _short(value: Any, limit: int = 100) -> str:
    """`value` as short text: a serialized Keras object by its `name`
    (a member: `WRN-10-2`) or as `Class(key=value, ...)`, a list of them
    cut between items, anything else longer than `limit` cut at a comma
    or space, with `...`."""
    if (
        isinstance(value, dict)
        and "class_name" in value
        and isinstance(value.get("config"), dict)
    ):
        try:
            name = getattr(
                keras.saving.deserialize_keras_object(value), "name", None
            )
        except Exception:  # an unregistered class: its config instead
            name = None
        if isinstance(name, str):
            return name
        inner = ", ".join(f"{k}={v!r}" for k, v in value["config"].items())
        text = f"{value['class_name']}({inner})"
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [_short(v, limit) for v in value]
        shown: list[str] = []
        for item in items:
            if shown and len(", ".join([*shown, item])) > limit - 20:
                break
            shown.append(item)
        rest = len(items) - len(shown)
        tail = f", ... {rest} more" if rest else ""
        return "[" + ", ".join(shown) + tail + "]"
    else:
        text = repr(value)
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    for mark in (", ", " "):
        at = cut.rfind(mark)
        if at > limit // 2:
            cut = cut[:at]
            break
    return cut + "..."


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `{dotted.key: value}` (serialized Keras objects and
    other values are leaves)."""
    if not isinstance(value, dict) or "class_name" in value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def describe_changes(saved: Mapping, now: Mapping, *, max_keys: int = 6) -> str:
    """The keys whose values differ, as `key: saved X, now Y` text.

    Nested dicts are compared key by key (`recipe.gamma`); each value is
    shortened cleanly (`_short`), and past `max_keys` keys the rest are
    counted.

    Args:
        saved: the saved configuration (a JSON dict).
        now: the configuration of this call.
        max_keys: int, how many differing keys to spell out.

    Returns:
        str; empty when nothing differs.

    Examples:
        >>> describe_changes({"budget": 1, "seed": 0}, {"budget": 2, "seed": 0})
        'budget: saved 1, now 2'
    """
    old, new = _flatten(dict(saved)), _flatten(dict(now))
    missing = object()
    keys = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k, missing) != new.get(k, missing)
    )

    def show(flat: dict, key: str) -> str:
        return _short(flat[key]) if key in flat else "(not set)"

    parts = [
        f"{k}: saved {show(old, k)}, now {show(new, k)}"
        for k in keys[:max_keys]
    ]
    if len(keys) > max_keys:
        parts.append(f"and {len(keys) - max_keys} more")
    return "; ".join(parts)


def project_path(directory: str | os.PathLike, project_name: Any) -> str:
    """`directory/project_name`, both checked.

    Raises:
        ValueError: naming `project_name` unless it is one folder name
            inside `directory` (not `.` or `..`, no separator), or naming
            `directory` if it exists and is not a folder.
    """
    separators = {s for s in (os.sep, os.altsep) if s is not None}
    if (
        not isinstance(project_name, str)
        or project_name.strip() in ("", ".", "..")
        or any(sep in project_name for sep in separators)
    ):
        raise argument_error(
            "project_name",
            "Expected the name of one folder inside `directory` (not '.', "
            "'..' or a path).",
            project_name,
        )
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise argument_error(
            "directory", "Expected a folder, not a file.", directory
        )
    return os.path.join(directory, project_name)
