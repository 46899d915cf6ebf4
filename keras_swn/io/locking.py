"""`RunLock`: keeps two runs out of one folder.

A lock file created atomically (`O_CREAT | O_EXCL`) that holds the owner's
process id. While a `RunLock` is held, every `keras_swn.io.atomic.atomic_write`
into its folder is first recorded in the folder's manifest
(`keras_swn.io.atomic.MANIFEST_FILE`).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from keras_swn.io.atomic import _RECORDING
from keras_swn.io.atomic import _RECORDING_LOCK
from keras_swn.io.atomic import folder_error

#: The lock file of a run folder (`RunLock`).
LOCK_FILE = ".keras_swn.lock"


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


class FolderLockedError(Exception):
    """Another live process holds the `RunLock` of a folder.

    Its own type, not a `ValueError`: no argument is wrong, the folder is
    busy (wait for the other run, or use another folder).

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
            ValueError: an `ArgumentError` naming `directory` and the
                operating system's reason when the folder cannot be
                created or written.
        """
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise folder_error("directory", self.folder, e) from None
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
            except OSError as e:
                raise folder_error("directory", self.folder, e) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {socket.gethostname()} {self.what}\n")
            self._held = True
            with _RECORDING_LOCK:
                real = os.path.realpath(self.folder)
                _RECORDING[real] = _RECORDING.get(real, 0) + 1
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
            with _RECORDING_LOCK:
                real = os.path.realpath(self.folder)
                if _RECORDING.get(real, 0) > 1:
                    _RECORDING[real] -= 1
                else:
                    _RECORDING.pop(real, None)
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
