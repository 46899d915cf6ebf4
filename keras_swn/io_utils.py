"""Atomic file writes: a file is either absent, or whole (never half-written).

Every writer goes through a temporary file in the destination folder and an
`os.replace`, which is atomic on POSIX and Windows file systems. A process
killed between the two leaves its temporary file behind: a name
`.tmp-XXXXXXXX[.suffix]` (`is_temp_file`), which `remove_temp_files` deletes
when the next run starts in the folder.

`RunLock` keeps two runs out of one folder: a lock file created atomically
(`O_CREAT | O_EXCL`) that holds the owner's process id.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from typing import Any
from typing import Callable

#: The prefix of every temporary file of `atomic_write`.
TEMP_PREFIX = ".tmp-"
#: `TEMP_PREFIX`, the 8 random characters `tempfile.mkstemp` draws, and an
#: optional suffix (`.npz`, `.keras`, `.txt`, `.png`).
_TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}(?:\.[A-Za-z0-9]{1,10})?\Z")
#: The lock file of a run folder (`RunLock`).
LOCK_FILE = ".keras_swn.lock"


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


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (True when unknown)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process
    return True


class FolderLockedError(ValueError):
    """Another live process holds the `RunLock` of a folder.

    Attributes:
        folder: str, the locked folder.
        pid: int, the holder's process id.
    """

    def __init__(self, message: str, folder: str, pid: int) -> None:
        super().__init__(message)
        self.folder = folder
        self.pid = pid


class RunLock:
    """A lock that keeps two runs out of one folder.

    `acquire` creates `folder/.keras_swn.lock` atomically (`O_CREAT |
    O_EXCL`) holding `pid host what`. When the file exists, its holder is
    checked: a process on this host that is no longer alive, or a file
    that cannot be read (after a second's grace for one being written),
    is a stale lock (a killed run) and is taken over; a live holder
    (this process included, or a process on another host, which cannot
    be checked) raises `FolderLockedError`. `release`
    deletes the file. Use it as a context manager, which releases on any
    exit, exceptions included.

    Args:
        folder: the folder to lock (created by `acquire`).
        what: str, what runs there (one word, e.g. "search"), written
            into the lock for the error message of a second run.

    Examples:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with RunLock(folder):
        ...     os.path.exists(os.path.join(folder, LOCK_FILE))
        True
        >>> os.path.exists(os.path.join(folder, LOCK_FILE))
        False
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run") -> None:
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.what = what
        self._held = False

    def holder(self) -> tuple[int, str] | None:
        """`(pid, host)` of a live holder of the lock, or None.

        Returns:
            None when the folder is not locked, or only by a stale lock.
        """
        found = self._read()
        if found is None:
            return None
        pid, host, _ = found
        if host == socket.gethostname() and not _process_alive(pid):
            return None
        return pid, host

    def _read(self) -> tuple[int, str, str] | None:
        """`(pid, host, what)` of the lock file; None when there is none
        or it cannot be read (stale: written by a killed run)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                fields = f.read().split(maxsplit=2)
            pid = int(fields[0])
            host = fields[1]
        except (OSError, ValueError, UnicodeDecodeError, IndexError):
            return None
        what = fields[2].strip() if len(fields) > 2 else "run"
        return pid, host, what or "run"

    def check(self) -> None:
        """Raise unless the folder is free (unlocked, or only stale-locked).

        Raises:
            FolderLockedError: naming the folder and the holder's pid.
        """
        holder = self.holder()
        found = self._read()
        if holder is not None and found is not None:
            pid, host, what = found
            where = "" if host == socket.gethostname() else f" on {host}"
            raise FolderLockedError(
                f"The folder {self.folder} is in use by another {what} "
                f"(process {pid}{where}); two runs in one folder would "
                "overwrite each other's files. Wait for it to finish, or "
                "use another folder. If no such process runs, delete "
                f"{self.path}.",
                self.folder,
                pid,
            )

    def acquire(self) -> None:
        """Take the lock (creating the folder), or raise at once.

        Raises:
            FolderLockedError: when a live process holds it.
        """
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(
                    self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644
                )
            except FileExistsError:
                self._wait_for_contents()
                self.check()  # raises for a live holder
                try:  # stale: take it over
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {socket.gethostname()} {self.what}\n")
            self._held = True
            return
        self.check()
        raise FolderLockedError(
            f"Could not lock the folder {self.folder}: {self.path} keeps "
            "reappearing (another run starting?).",
            self.folder,
            -1,
        )

    def _wait_for_contents(self, grace: float = 1.0) -> None:
        """Give a lock file created a moment ago (still empty: its
        creator is writing it) up to `grace` seconds to be written, so
        that it is not taken for a stale one."""
        deadline = time.monotonic() + grace
        while self._read() is None and time.monotonic() < deadline:
            try:
                age = time.time() - os.path.getmtime(self.path)
            except OSError:
                return
            if age > grace:
                return
            time.sleep(0.05)

    def release(self) -> None:
        """Delete the lock file, if this object holds it (and it still
        names this process)."""
        if self._held:
            self._held = False
            found = self._read()
            if found is not None and found[0] != os.getpid():
                return  # taken over meanwhile: not ours to delete
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "RunLock":
        if not self._held:  # `with lock:` after `lock.acquire()`
            self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


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
