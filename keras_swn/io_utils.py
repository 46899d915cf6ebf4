"""Atomic file writes and the run lock (re-exported).

The names of `keras_swn.io.atomic` (atomic writes, the run manifest, the
errors of a run's files) and `keras_swn.io.locking` (`RunLock`), importable
from here as before.
"""

from keras_swn.io.atomic import MANIFEST_FILE
from keras_swn.io.atomic import TEMP_PREFIX
from keras_swn.io.atomic import DamagedFileError
from keras_swn.io.atomic import atomic_write
from keras_swn.io.atomic import atomic_write_json
from keras_swn.io.atomic import atomic_write_text
from keras_swn.io.atomic import folder_error
from keras_swn.io.atomic import format_rows
from keras_swn.io.atomic import is_temp_file
from keras_swn.io.atomic import os_reason
from keras_swn.io.atomic import parse_json
from keras_swn.io.atomic import read_manifest
from keras_swn.io.atomic import record_in_manifest
from keras_swn.io.atomic import remove_temp_files
from keras_swn.io.atomic import write_manifest
from keras_swn.io.locking import LOCK_FILE
from keras_swn.io.locking import FolderLockedError
from keras_swn.io.locking import RunLock

__all__ = [
    "DamagedFileError",
    "FolderLockedError",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "RunLock",
    "TEMP_PREFIX",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "folder_error",
    "format_rows",
    "is_temp_file",
    "os_reason",
    "parse_json",
    "read_manifest",
    "record_in_manifest",
    "remove_temp_files",
    "write_manifest",
]
