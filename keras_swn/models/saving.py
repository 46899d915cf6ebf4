"""`SWNModel`'s saving methods: `.keras` files only, and weights checked
against the members they were saved from.

A mixin, like `keras_swn.models.capture`: it reads the model's
`member_builders` and calls `keras.Model`'s own methods.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

from keras_swn.models.model_args import MEMBERS_ATTRIBUTE
from keras_swn.models.model_args import check_keras_filepath
from keras_swn.models.model_args import member_name
from keras_swn.models.model_args import saved_member_names
from keras_swn.validation import invalid_argument


class SavingMethods:
    """`save`, `save_weights` and `load_weights` of `SWNModel`; each
    calls `keras.Model`'s, next in `SWNModel`'s MRO (hence the
    `type: ignore` on `super()`: mypy sees a mixin of `object`)."""

    member_builders: Any

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """`keras.Model.save`, to a `.keras` file.

        Args:
            filepath: str or path-like, a `.keras` file.
            *args: passed to `keras.Model.save`.
            **kwargs: passed to `keras.Model.save`.

        Returns:
            What `keras.Model.save` returns.

        Raises:
            ValueError: naming `filepath` when it is a legacy HDF5 path
                (`.h5`), which cannot hold the shared template bank.
        """
        check_keras_filepath(filepath)
        return super().save(  # type: ignore[misc]
            filepath, *args, **kwargs
        )

    def save_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """`keras.Model.save_weights`, with the member names recorded in
        the `.weights.h5` file (`load_weights` checks them).

        Args:
            filepath: str or path-like, a `.weights.h5` file.
            *args: passed to `keras.Model.save_weights`.
            **kwargs: passed to `keras.Model.save_weights`.

        Returns:
            What `keras.Model.save_weights` returns.
        """
        result = super().save_weights(  # type: ignore[misc]
            filepath, *args, **kwargs
        )
        path = os.fspath(filepath)
        if path.endswith(".weights.h5") and os.path.isfile(path):
            import h5py

            with h5py.File(path, "a") as f:
                f.attrs[MEMBERS_ATTRIBUTE] = json.dumps(self._member_names())
        return result

    def load_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """`keras.Model.load_weights`, refusing weights of other members.

        Args:
            filepath: str or path-like, a `.keras` or `.weights.h5` file.
            *args: passed to `keras.Model.load_weights`.
            **kwargs: passed to `keras.Model.load_weights`.

        Returns:
            What `keras.Model.load_weights` returns.

        Raises:
            ValueError: a `keras_swn.io_utils.DamagedFileError` naming
                `filepath` when the file is damaged or truncated; naming
                `filepath` and both member lists when the
                file was saved from a model with other members, or when
                its weights do not fit this model (e.g. another budget or
                policy).
        """
        path = os.fspath(filepath)
        mine = self._member_names()
        saved = saved_member_names(path)
        if saved is not None and saved != mine:
            raise invalid_argument(
                "filepath",
                f"The file holds the weights of an SWN model with members "
                f"{saved}; this model's members are {mine}. Load it into a "
                f"model built with members {saved}.",
                path,
            )
        try:
            return super().load_weights(  # type: ignore[misc]
                filepath, *args, **kwargs
            )
        except (OSError, zipfile.BadZipFile) as e:  # damaged or truncated
            if not os.path.isfile(path):
                raise
            from keras_swn.io.atomic import DamagedFileError

            raise DamagedFileError(
                path,
                f"is damaged or truncated ({str(e)[:200]})",
                argument="filepath",
                ways_on="Save the weights again, or load another file.",
            ) from None
        except ValueError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            if "could not be loaded" not in first and "expected" not in first:
                raise
            raise invalid_argument(
                "filepath",
                f"Its weights do not fit this model (members {mine}"
                + ("" if saved is None else ", the same as the file's")
                + "): saved with another budget, policy or bank options, "
                f"or another model? Keras: {first[:200]}",
                path,
            ) from None

    def _member_names(self) -> list[str]:
        return [member_name(b) for b in self.member_builders]
