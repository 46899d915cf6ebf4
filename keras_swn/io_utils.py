"""Atomic file writes: a file is either absent, or whole (never half-written).

Every writer goes through a temporary file in the destination folder and an
`os.replace`, which is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any
from typing import Callable


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], Any], *, suffix: str = ""
) -> str:
    """Call `write(tmp_path)`, then move the finished file to `path`.

    The folder is created if needed; the file gets the usual permissions
    (0666 less the umask), not `mkstemp`'s private 0600. On any error the
    temporary file is removed and `path` is left as it was.

    Returns:
        `path`, as a string.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
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
    """Write `text` (UTF-8) to `path` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write, suffix=".txt")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> str:
    """Write `obj` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


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
