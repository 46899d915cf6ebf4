"""The files of a run: atomic writes, the run lock, run folders and the store.

- `keras_swn.io.atomic`: atomic writes (a file is absent or whole) and the
  manifest of what keras_swn wrote in a folder;
- `keras_swn.io.locking`: `RunLock`, one run per folder;
- `keras_swn.io.run_folder`: which files of a folder are keras_swn's;
- `keras_swn.io.store`: `ProjectStore`, every file of a search or training run;
- `keras_swn.io.changes`: what differs between a saved configuration and a new
  one.

`keras_swn.io_utils` re-exports the names of `atomic` and `locking`.
"""
