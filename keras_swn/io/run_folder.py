"""Run folders: which files keras_swn wrote there, and which it may delete.

A run of `SearchAndRefine` or `train_and_save` (`keras-swn search` /
`train`) writes into one folder. Every file it writes while it holds the
folder's `keras_swn.io_utils.RunLock` is recorded first in the folder's
manifest (`keras_swn.io_utils.MANIFEST_FILE`). `RunFolder` reads it:

- `owned`: what keras_swn wrote (the manifest's entries; for a folder
  written by a version without a manifest, the names it writes,
  `SEARCH_FILES` / `TRAINING_FILES`, `checkpoints/*.npz`, `plots/*.png`);
- `foreign`: everything else at the top of the folder, the user's. A new
  run is refused in a folder that holds such files and no earlier run
  (`check_new_run`), unless the caller allows it;
- `remove` (`overwrite=True`): deletes only what keras_swn wrote, never
  through a link, never the folder itself while anything else is left in
  it, never the current directory or a folder above it.

`check_folder_text`, `check_name` and `check_creatable` check a folder
argument before a run: not empty, a name the file system takes, a folder
that can be created.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Iterable

from keras_swn.io.atomic import MANIFEST_FILE
from keras_swn.io.atomic import folder_error
from keras_swn.io.atomic import is_temp_file
from keras_swn.io.atomic import read_manifest
from keras_swn.io.atomic import write_manifest
from keras_swn.io.locking import LOCK_FILE
from keras_swn.io.locking import RunLock
from keras_swn.validation import invalid_argument

STATE = "state.json"
DATA = "data.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
MODEL = "model.keras"
RESULTS = "results.json"

#: The files `train_and_save` writes.
TRAINING_FILES = (
    MODEL,
    "policy.json",
    "budget_report.json",
    "history.json",
    RESULTS,
)
#: The files `SearchAndRefine` writes at the top of its folder.
SEARCH_FILES = (
    STATE,
    DATA,
    "policy.json",
    "search_result.json",
    "refine.json",
    "budget_report.json",
    "budget_report.txt",
    RESULTS,
    "history.json",
    MODEL,
)
#: The folders `SearchAndRefine` writes, and the suffix of their files.
SEARCH_FOLDERS = {CHECKPOINTS: ".npz", PLOTS: ".png"}
#: Every name a run writes at the top of its folder.
_WRITTEN = frozenset((*SEARCH_FILES, *TRAINING_FILES, *SEARCH_FOLDERS))
#: Files of keras_swn in every run folder (never the user's).
_BOOKKEEPING = (LOCK_FILE, MANIFEST_FILE)
#: How many foreign file names a refusal spells out.
_SHOWN = 4


def written_by_train(folder: str) -> bool:
    """Whether the `results.json` or `model.keras` in `folder` was
    written by `train_and_save` (a `keras_swn_version` in the results, an
    `SWNModel` in the model file)."""
    try:
        with open(os.path.join(folder, RESULTS), encoding="utf-8") as f:
            results = json.load(f)
        if isinstance(results, dict) and "keras_swn_version" in results:
            return True
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    try:
        with zipfile.ZipFile(os.path.join(folder, MODEL)) as archive:
            config = json.loads(archive.read("config.json"))
        return isinstance(config, dict) and "SWNModel" in str(
            config.get("class_name", "")
        )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def folder_kind(folder: str) -> str | None:
    """`"search"` (a `state.json`), `"train"` (`model.keras` or
    `results.json`, no `state.json`), or None."""
    if os.path.exists(os.path.join(folder, STATE)):
        return "search"
    if os.path.isdir(folder) and any(
        os.path.exists(os.path.join(folder, n)) for n in (MODEL, RESULTS)
    ):
        return "train"
    return None


def check_folder_text(argument: str, value: object) -> str:
    """`value` as a path, refused when empty or only whitespace (what an
    unset shell variable gives: the current directory).

    Args:
        argument: str, the argument's name.
        value: a str or path-like.

    Returns:
        The path, as a string.

    Raises:
        ValueError: an `ArgumentError` naming `argument`.

    Examples:
        >>> check_folder_text("directory", "runs")
        'runs'
    """
    try:
        path = os.fspath(value)  # type: ignore[call-overload]
    except TypeError:
        raise invalid_argument(
            argument, "Expected a folder path (a str).", value
        ) from None
    if not isinstance(path, str) or not path.strip():
        raise invalid_argument(
            argument,
            "Expected a folder path, not an empty one (an unset variable?): "
            "an empty path would make the current directory the run folder.",
            value,
        )
    return path


def check_name(argument: str, name: str, parent: str) -> None:
    """Refuse a folder name longer than the file system takes.

    Args:
        argument: str, the argument's name.
        name: str, one folder name.
        parent: str, the folder it goes in (its file system's limit).

    Raises:
        ValueError: an `ArgumentError` naming `argument`.
    """
    limit = 255
    existing = os.path.abspath(parent or ".")
    while not os.path.isdir(existing) and existing != os.path.dirname(existing):
        existing = os.path.dirname(existing)
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        pass
    if len(os.fsencode(name)) > limit:
        raise invalid_argument(
            argument,
            f"The name is too long ({len(os.fsencode(name))} bytes; this "
            f"file system takes at most {limit}). Choose a shorter name.",
            name,
        )


def check_creatable(argument: str, folder: str) -> None:
    """Refuse a folder that cannot be created or written, before a run.

    A folder that does not exist is created and deleted again (with the
    folders above it that did not exist), which tries exactly what the
    run will do; nothing is left behind.

    Args:
        argument: str, the argument's name.
        folder: str, the run folder.

    Raises:
        ValueError: an `ArgumentError` naming `argument`, the folder and
            the operating system's reason.
    """
    path = os.path.abspath(folder)
    for part in filter(None, path.split(os.sep)):
        check_name(argument, part, os.path.dirname(path))
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise folder_error(
                argument, folder, PermissionError(13, "Permission denied")
            )
        return
    missing = []
    top = path
    while not os.path.exists(top) and top != os.path.dirname(top):
        missing.append(top)
        top = os.path.dirname(top)
    try:
        os.makedirs(path)
    except OSError as e:
        raise folder_error(argument, folder, e) from None
    for made in missing:  # deepest first
        try:
            os.rmdir(made)
        except OSError:
            break


def _inside(real_folder: str, rel: str) -> str | None:
    """The path of `rel` in the folder, or None when a link on the way
    leads elsewhere (links are never followed)."""
    path = os.path.join(real_folder, *rel.strip("/").split("/"))
    if os.path.realpath(path) != path:
        return None
    return path


class RunFolder:
    """The files of one run folder: keras_swn's and the user's.

    Args:
        folder: str, the run folder (it may not exist).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = os.fspath(folder)

    def manifest(self) -> list[str] | None:
        """The manifest's entries; None without one (or when damaged:
        then the names keras_swn writes count)."""
        try:
            return read_manifest(self.folder)
        except ValueError:
            return None

    def _legacy(self) -> set[str]:
        """What keras_swn wrote in a folder without a manifest: the names
        its runs write, in a folder whose kind says a run wrote it."""
        kind = folder_kind(self.folder)
        if kind == "train":
            if not written_by_train(self.folder):
                return set()
            names: Iterable[str] = TRAINING_FILES
        elif kind == "search":
            names = SEARCH_FILES
        else:
            return set()
        found = {n for n in names if os.path.isfile(self.path(n))}
        if kind == "search":
            for sub, suffix in SEARCH_FOLDERS.items():
                if os.path.isdir(self.path(sub)):
                    found.add(sub + "/")
                    found.update(
                        f"{sub}/{n}"
                        for n in os.listdir(self.path(sub))
                        if n.endswith(suffix)
                    )
        return found

    def path(self, *parts: str) -> str:
        return os.path.join(self.folder, *parts)

    def owned(self) -> set[str]:
        """The entries keras_swn wrote that exist (files, folders with a
        trailing `/`), relative to the folder, `/`-separated."""
        entries = self.manifest()
        if entries is None:
            return self._legacy()
        return {e for e in entries if os.path.lexists(self.path(e.rstrip("/")))}

    def is_run_folder(self) -> bool:
        """Whether a run of keras_swn wrote here (a manifest, or the files
        of a version without one)."""
        return self.manifest() is not None or bool(self._legacy())

    def foreign(self) -> list[str]:
        """The entries at the top of the folder keras_swn did not write
        (folders with a trailing `/`), sorted."""
        if not os.path.isdir(self.folder):
            return []
        ours = {e.strip("/").split("/")[0] for e in self.owned()}
        found = []
        for name in sorted(os.listdir(self.folder)):
            if name in ours or name in _BOOKKEEPING or is_temp_file(name):
                continue
            found.append(name + ("/" if os.path.isdir(self.path(name)) else ""))
        return found

    def check_new_run(
        self, argument: str, allow_existing_files: bool = False
    ) -> None:
        """Refuse to start a run in a folder that holds files keras_swn
        did not write and no earlier run, unless `allow_existing_files`.

        A file or folder of the user's named as one a run writes
        (`results.json`, `checkpoints/`...) is refused even then: the run
        would replace it.

        Raises:
            ValueError: an `ArgumentError` naming `argument`, up to four
                of the files, and the ways on.
        """
        found = self.foreign()
        clash = [f for f in found if f.rstrip("/") in _WRITTEN]
        if clash:
            raise invalid_argument(
                argument,
                f"The folder {self.folder} holds {', '.join(clash)}, which "
                "keras_swn did not write but a run writes there: the run "
                "would replace them. Move them, or use another folder.",
                self.folder,
            )
        if allow_existing_files or self.is_run_folder() or not found:
            return
        shown = ", ".join(found[:_SHOWN])
        if len(found) > _SHOWN:
            shown += f" and {len(found) - _SHOWN} more"
        raise invalid_argument(
            argument,
            f"The folder {self.folder} already holds files keras_swn did not "
            f"write ({shown}); a run there would mix its files with them. "
            "Use another folder (a new or empty one), or pass "
            "allow_existing_files=True to run there anyway (keras_swn never "
            "deletes files it did not write).",
            self.folder,
        )

    def adopt(self) -> None:
        """Give a folder written without a manifest (by an earlier
        version) one that lists its files, before a run writes more."""
        if self.manifest() is None and os.path.isdir(self.folder):
            legacy = self._legacy()
            if legacy:
                write_manifest(self.folder, legacy)

    def remove_temp_files(self) -> list[str]:
        """Delete the temporary files a killed write left at the top of
        the folder and in the folders keras_swn wrote; call it holding
        the folder's lock.

        Returns:
            The paths deleted.
        """
        removed = []
        real = os.path.realpath(self.folder)
        subs = [""] + [e for e in self.owned() if e.endswith("/")]
        for sub in subs:
            where = _inside(real, sub) if sub else real
            if where is None or not os.path.isdir(where):
                continue
            for name in os.listdir(where):
                path = os.path.join(where, name)
                if is_temp_file(name) and os.path.isfile(path):
                    if not os.path.islink(path):
                        os.remove(path)
                        removed.append(path)
        return removed

    def check_not_current(self, instead: str) -> None:
        """Refuse to delete in the current directory or a folder above it.

        Raises:
            ValueError: naming the folder.
        """
        real = os.path.realpath(self.folder)
        cwd = os.path.realpath(os.getcwd())
        if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"overwrite=True would delete files in {self.folder}, the "
                "current directory or a folder above it; nothing was "
                f"deleted. Use another {instead}."
            )

    def remove(self, instead: str) -> None:
        """Delete what keras_swn wrote in the folder (`overwrite=True`).

        Files and folders the manifest lists (or, in a folder an earlier
        version wrote, the names it writes) go; nothing else, nothing
        through a link. The folder goes too when nothing else is left in
        it; otherwise it keeps a manifest of what is left of keras_swn's
        (a folder holding a file of the user's, a link): it stays a run
        folder.

        Args:
            instead: what a refusal suggests choosing instead.

        Raises:
            ValueError: when the folder is a file or a link, is the
                current directory or above it, or holds a `model.keras` /
                `results.json` keras_swn did not write (a folder without
                a manifest).
            FolderLockedError: (`keras_swn.io.locking.FolderLockedError`)
                when a live run holds it. Nothing is deleted then.
        """
        folder = self.folder
        if not os.path.lexists(folder):
            return
        if os.path.islink(folder) or not os.path.isdir(folder):
            raise ValueError(
                f"overwrite=True would delete {folder}, which is not a run "
                "folder (a file or a link); nothing was deleted. Use "
                f"another {instead}."
            )
        self.check_not_current(instead)
        RunLock(folder).check()
        manifest = self.manifest()
        owned = self.owned()
        if (
            manifest is None
            and folder_kind(folder) == "train"
            and not written_by_train(folder)
        ):
            raise ValueError(
                f"overwrite=True would delete {MODEL} and {RESULTS} in "
                f"{folder}, which keras_swn did not write (not an SWN "
                "model, no keras_swn_version in the results); nothing "
                f"was deleted. Use another {instead}."
            )
        if manifest is None and not owned:
            return  # nothing of keras_swn's here
        real = os.path.realpath(folder)
        self.remove_temp_files()
        ordered = sorted(owned, key=lambda e: (-e.count("/"), e))
        for entry in (e for e in ordered if not e.endswith("/")):
            path = _inside(real, entry)
            if path is not None and os.path.isfile(path):
                os.remove(path)
        for entry in (e for e in ordered if e.endswith("/")):
            path = _inside(real, entry)
            if path is not None and os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # holds something else: kept
        rest = [n for n in os.listdir(folder) if n not in _BOOKKEEPING]
        if rest:  # still a run folder: what is left of keras_swn's stays
            left = [e for e in owned if os.path.lexists(self.path(e))]
            write_manifest(folder, left)
            return
        for name in _BOOKKEEPING:
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:
                pass
        os.rmdir(folder)
