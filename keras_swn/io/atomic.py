"""Atomic file writes: a file is either absent, or whole (never half-written).

Every writer goes through a temporary file in the destination folder and an
`os.replace`, which is atomic on POSIX and Windows file systems. A process
killed between the two leaves its temporary file behind: a name
`.tmp-XXXXXXXX[.suffix]` (`is_temp_file`), which `remove_temp_files` deletes
when the next run starts in the folder.

While a `keras_swn.io.locking.RunLock` is held, every `atomic_write` into its
folder is first recorded in the folder's manifest (`MANIFEST_FILE`,
`read_manifest`): the list of every file and folder keras_swn wrote there, so
that `overwrite` can delete exactly those and nothing of the user's.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from typing import Any
from typing import Callable

from keras_swn.validation import ArgumentError
from keras_swn.validation import invalid_argument

#: The prefix of every temporary file of `atomic_write`.
TEMP_PREFIX = ".tmp-"
#: `TEMP_PREFIX`, the 8 random characters `tempfile.mkstemp` draws, and an
#: optional suffix (`.npz`, `.keras`, `.txt`, `.png`).
_TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}(?:\.[A-Za-z0-9]{1,10})?\Z")
#: The manifest of a run folder: what keras_swn wrote there.
MANIFEST_FILE = ".keras_swn_manifest.json"
_MANIFEST_FORMAT = "keras_swn.run_folder"
#: The folders whose `RunLock` this process holds (real path -> count):
#: `atomic_write` records what it writes inside them.
_RECORDING: dict[str, int] = {}
_RECORDING_LOCK = threading.RLock()


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], Any], *, suffix: str = ""
) -> str:
    """Call `write(tmp_path)`, then move the finished file to `path`.

    The folder is created if needed; the file gets the usual permissions
    (0666 less the umask), not `mkstemp`'s private 0600. On any error the
    temporary file is removed and `path` is left as it was.

    Args:
        path: the file to write.
        write: callable, writes the whole file at the path it is given.
        suffix: str, the temporary file's suffix (some writers pick the
            format from it, e.g. `.keras`).

    Returns:
        `path`, as a string.
    """
    path = os.fspath(path)
    _record_write(path)  # before the write: a kill leaves no unlisted file
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
    """Write `text` (UTF-8) to `path` atomically.

    Args:
        path: the file to write.
        text: str, its contents.

    Returns:
        `path`, as a string.
    """

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write, suffix=".txt")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> str:
    """Write `obj` as indented JSON to `path` atomically.

    Args:
        path: the file to write.
        obj: a JSON-serializable value.

    Returns:
        `path`, as a string.
    """
    return atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def read_manifest(folder: str | os.PathLike) -> list[str] | None:
    """The entries of `folder`'s manifest: what keras_swn wrote there.

    Each entry is a path relative to `folder`, `/`-separated; a folder
    ends with `/` (`checkpoints/`).

    Args:
        folder: the run folder.

    Returns:
        The entries, or None when the folder has no manifest.

    Raises:
        ValueError: naming the manifest when it cannot be read.
    """
    path = os.path.join(os.fspath(folder), MANIFEST_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} cannot be read ({e}).") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, str) for e in entries
    ):
        raise ValueError(f"{path} is not a keras_swn manifest.")
    return list(entries)


def write_manifest(folder: str | os.PathLike, entries: Any) -> None:
    """Write `folder`'s manifest (atomically), holding `entries`.

    Args:
        folder: the run folder (must exist).
        entries: iterable of str, relative paths (folders end with `/`).
    """
    path = os.path.join(os.fspath(folder), MANIFEST_FILE)
    text = json.dumps(
        {"format": _MANIFEST_FORMAT, "version": 1, "entries": sorted(entries)},
        indent=1,
    )
    fd, tmp = tempfile.mkstemp(dir=os.fspath(folder), prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def record_in_manifest(folder: str | os.PathLike, *paths: str) -> None:
    """Add `paths` (relative to `folder`) and their parent folders to
    `folder`'s manifest; entries whose file no longer exists are dropped.

    Args:
        folder: the run folder (must exist).
        *paths: str, relative paths (`/`-separated); a folder ends with `/`.
    """
    folder = os.fspath(folder)
    try:
        old = read_manifest(folder) or []
    except ValueError:
        old = []  # a damaged manifest: rewritten whole
    new: set[str] = set()
    for rel in paths:
        parts = rel.strip("/").split("/")
        for i in range(1, len(parts)):
            new.add("/".join(parts[:i]) + "/")
        new.add(rel)
    kept = {
        e for e in old if os.path.lexists(os.path.join(folder, e.rstrip("/")))
    }
    if not new <= kept or kept != set(old):
        write_manifest(folder, kept | new)


def _record_write(path: str) -> None:
    """Record `path` in the manifest of the locked folder holding it."""
    with _RECORDING_LOCK:
        if not _RECORDING:
            return
        real = os.path.realpath(path)
        for folder in _RECORDING:
            if real.startswith(folder + os.sep):
                rel = os.path.relpath(real, folder).replace(os.sep, "/")
                record_in_manifest(folder, rel)
                return


def is_temp_file(name: str) -> bool:
    """Whether `name` (a file name, no folder) is a temporary file of
    `atomic_write`.

    Args:
        name: str, a file name.

    Returns:
        bool.

    Examples:
        >>> is_temp_file(".tmp-a1b2c3d4.npz"), is_temp_file("model.keras")
        (True, False)
    """
    return _TEMP_NAME.match(name) is not None


def remove_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files a killed `atomic_write` left in `folder`
    and its subfolders.

    Only regular files named as `is_temp_file` says are deleted; links
    are neither followed nor deleted. Call it only while no other process
    writes in `folder` (under its `RunLock`).

    Args:
        folder: the folder (nothing happens when it does not exist).

    Returns:
        The paths deleted.
    """
    removed = []
    for root, _, files in os.walk(os.fspath(folder)):
        for name in files:
            path = os.path.join(root, name)
            if is_temp_file(name) and not os.path.islink(path):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


class DamagedFileError(ArgumentError):
    """A file of a run (its state, a checkpoint, results, the model or its
    weights) is missing, damaged or from another run.

    The message names the file, what is wrong with it and the ways on.

    Attributes:
        path: str, the file.
        argument: str, the argument that chose the folder or file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        problem: str,
        *,
        argument: str,
        ways_on: str,
    ) -> None:
        self.path = os.fspath(path)
        super().__init__(argument, f"{self.path} {problem}. {ways_on}")


def os_reason(error: OSError) -> str:
    """The operating system's reason for `error`, as short text.

    Args:
        error: an `OSError`.

    Returns:
        str, e.g. `"Permission denied"`.

    Examples:
        >>> os_reason(PermissionError(13, "Permission denied"))
        'Permission denied'
    """
    return error.strerror or str(error) or type(error).__name__


def folder_error(argument: str, folder: str, error: OSError) -> ArgumentError:
    """The `ArgumentError` for a folder that cannot be created or written.

    Args:
        argument: str, the argument that names the folder.
        folder: str, the folder.
        error: the `OSError` raised.

    Returns:
        The error to raise.
    """
    return invalid_argument(
        argument,
        f"Cannot create or write the folder {folder}: {os_reason(error)}. "
        "Choose a folder you can write to.",
        folder,
    )


def parse_json(text: str, what: str) -> Any:
    """`json.loads(text)`, or a `ValueError` naming `what` and the text."""
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"Invalid {what} JSON ({e}). Received: text={str(text)[:200]!r}"
        ) from None


def format_rows(
    rows: list, *, right: set, rule_after_first: bool = True
) -> list[str]:
    """Fixed-width text rows: columns padded to their widest cell, the
    columns in `right` right-aligned, a rule under the first (header) row."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
        )
        if j == 0 and rule_after_first:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return lines
