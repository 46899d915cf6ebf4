"""The arguments of `SWNModel`, checked: members, input shape, loss
weights and the per-member loss."""

from __future__ import annotations

import inspect
import json
import math
import os
import zipfile
from typing import Any
from typing import Mapping
from typing import Sequence

import keras
import numpy as np

from keras_swn.data_checks import check_arrays
from keras_swn.data_checks import check_data
from keras_swn.data_checks import is_arrays
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming


class _FunctionLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred)` as a `keras.losses.Loss`, so
    that it takes `sample_weight` and reduces like the built-in ones."""

    def __init__(self, fn: Any):
        name = getattr(fn, "__name__", "")
        super().__init__(name=name if name.isidentifier() else "loss")
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def resolve_loss(loss: Any) -> keras.losses.Loss:
    """The loss applied to every member's logits.

    A Keras loss name (`"sparse_categorical_crossentropy"`) becomes its
    class with `from_logits=True` where it has that option (the members
    return logits); a `Loss` instance is used as given; a function gets
    `sample_weight` and reduction through a `Loss` wrapper.
    """
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, str):
        name = "".join(p.capitalize() for p in loss.split("_"))
        cls = getattr(keras.losses, name, None)
        if isinstance(cls, type) and issubclass(cls, keras.losses.Loss):
            if "from_logits" in inspect.signature(cls).parameters:
                return cls(from_logits=True)
            return cls()
    try:
        fn = keras.losses.get(loss)
    except ValueError:
        fn = None
    if not callable(fn):
        raise invalid_argument(
            "loss",
            "Expected a Keras loss name, a `keras.losses.Loss` or a "
            "function `fn(y_true, y_pred)`.",
            loss,
        )
    return fn if isinstance(fn, keras.losses.Loss) else _FunctionLoss(fn)


def check_input_shape(input_shape: Any) -> tuple[int, ...]:
    """The shape of one input: 1 to 3 positive ints (e.g. `(32, 32, 3)`)."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if (
        not 1 <= len(shape) <= 3
        or not all(isinstance(d, (int, np.integer)) for d in shape)
        or any(isinstance(d, bool) or d < 1 for d in shape)
    ):
        raise invalid_argument(
            "input_shape",
            "Expected the shape of one input: 1 to 3 positive ints, e.g. "
            "(32, 32, 3) for images.",
            input_shape,
        )
    return tuple(int(d) for d in shape)


def check_members(members: Sequence[MemberBuilder | Mapping]) -> list:
    """The member builders (deserialised from their configs if needed)."""
    builders = [
        keras.saving.deserialize_keras_object(m)
        if isinstance(m, Mapping)
        else m
        for m in members
    ]
    if not builders or not all(isinstance(m, MemberBuilder) for m in builders):
        raise invalid_argument(
            "members",
            "Expected a non-empty list of `keras_swn.models.MemberBuilder` "
            "(e.g. WideResNet).",
            members,
        )
    return builders


def check_loss_weights(weights, count: int) -> list[float] | None:
    """`member_loss_weights`: None, or `count` finite floats >= 0."""
    if weights is None:
        return None
    expected = f"Expected {count} finite, non-negative floats, one per member."
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise invalid_argument("member_loss_weights", expected, weights)
    if (
        len(values) != count
        or any(isinstance(w, bool) for w in weights)
        or not all(math.isfinite(w) and w >= 0 for w in values)
    ):
        raise invalid_argument("member_loss_weights", expected, values)
    return values


def read_policy_file(path: str, name: str = "policy") -> SharingPolicy:
    """A `SharingPolicy` from a JSON file, with errors naming `name`.

    Args:
        path: str, the file (written by `SharingPolicy.save`).
        name: str, the argument for the messages.

    Returns:
        The `SharingPolicy`.

    Raises:
        ValueError: an `ArgumentError` naming `name` when the file cannot
            be read, is binary or does not hold a valid policy.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise invalid_argument(
            name, f"Expected a readable JSON file ({e.strerror}).", path
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_argument(
            name,
            "Expected a sharing policy as JSON text (a file written by "
            "SharingPolicy.save): this file is binary, or not UTF-8 text.",
            path,
        ) from None
    try:
        return SharingPolicy.from_json(text)
    except ValueError as e:
        raise invalid_argument(
            name, f"The file holds no valid sharing policy. {e}", path
        ) from None


def policy_argument(policy: str | os.PathLike) -> SharingPolicy:
    """`SWNModel(policy=...)` given as text: JSON, or a file's path.

    A string that starts with `{` is the policy's JSON text; any other
    string (or path) names a JSON file.

    Args:
        policy: the JSON text, or the path of a file `SharingPolicy.save`
            wrote.

    Returns:
        The `SharingPolicy`.

    Raises:
        ValueError: an `ArgumentError` naming `policy` (a file that does
            not exist, cannot be read or holds no valid policy, invalid
            JSON text).
    """
    text = os.fspath(policy)
    if isinstance(policy, str) and text.lstrip().startswith("{"):
        with naming("policy"):
            return SharingPolicy.from_json(text)
    if not os.path.isfile(text):
        raise invalid_argument(
            "policy",
            "Expected a SharingPolicy, its JSON text, or the path of a "
            "JSON file written by SharingPolicy.save: file not found.",
            text,
        )
    return read_policy_file(text)


#: The HDF5 attribute `SWNModel.save_weights` writes: the member names.
MEMBERS_ATTRIBUTE = "keras_swn_members"


def member_name(member: Any) -> str:
    """A member's name (`WRN-10-2`), from a builder or its serialized
    config; an unknown class is named by its class and config.

    Args:
        member: a `MemberBuilder` or its `serialize_keras_object` dict.

    Returns:
        str.
    """
    if isinstance(member, Mapping):
        try:
            member = keras.saving.deserialize_keras_object(dict(member))
        except Exception:  # an unregistered class: name it by its config
            config = member.get("config") or {}
            inner = ", ".join(f"{k}={v!r}" for k, v in config.items())
            return f"{member.get('class_name', '?')}({inner})"
    name = getattr(member, "name", None)
    return name if isinstance(name, str) else type(member).__name__


def saved_member_names(path: str) -> list[str] | None:
    """The members of the SWN model saved at `path`, when the file says.

    A `.keras` file has them in its `config.json`; a `.weights.h5` file
    written by `SWNModel.save_weights` in its `MEMBERS_ATTRIBUTE`.

    Args:
        path: str, a `.keras` or `.weights.h5` file.

    Returns:
        The member names, or None (another file, or one that does not
        say).
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
            members = config["config"]["members"]
            return [member_name(m) for m in members]
        if path.endswith(".h5"):
            import h5py

            with h5py.File(path, "r") as f:
                names = f.attrs.get(MEMBERS_ATTRIBUTE)
            return None if names is None else list(json.loads(names))
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return None


def check_keras_filepath(filepath: Any) -> None:
    """`SWNModel.save` writes `.keras` files only.

    Args:
        filepath: the path given to `save`.

    Raises:
        ValueError: naming `filepath` when it ends in `.h5` / `.hdf5`
            (the legacy HDF5 format, which cannot rebuild the shared
            template bank).
    """
    if not isinstance(filepath, (str, os.PathLike)):
        return
    path = os.fspath(filepath)
    if path.lower().endswith((".h5", ".hdf5")):
        stem = os.path.splitext(path)[0]
        raise invalid_argument(
            "filepath",
            "SWN models save as `.keras` files: the legacy HDF5 format "
            "cannot rebuild the shared template bank. Save to "
            f"{stem + '.keras'!r}, or the weights alone with "
            f"save_weights({stem + '.weights.h5'!r}).",
            path,
        )


def checked_fit_arguments(model: Any, args: tuple, kwargs: dict) -> dict:
    """The arguments of `SWNModel.fit`, by name, with the data checked.

    `x` and `y` (or the dataset `x`) and `validation_data` go through
    `keras_swn.data_checks.check_data`: inputs of the model's
    `input_shape`, finite, at least one example, and, with the default
    (sparse) loss, integer class ids in `[0, num_classes)`; an infinite
    `tf.data.Dataset` needs `steps_per_epoch`. A generator comes back
    wrapped so that the batches read by the check are trained on.

    Args:
        model: the `SWNModel`.
        args: the positional arguments of `fit` (after `self`).
        kwargs: its keyword arguments.

    Returns:
        Every argument by name, for `keras.Model.fit(**arguments)`.

    Raises:
        ValueError: an `ArgumentError` naming `x`, `y` or
            `validation_data`.
    """
    bound = inspect.signature(keras.Model.fit).bind(model, *args, **kwargs)
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(arguments)))  # self
    extra = arguments.pop("kwargs", None)  # a **kwargs in some Keras
    if isinstance(extra, Mapping):
        arguments.update(extra)
    checks: dict[str, Any] = dict(
        input_shape=model.input_shape_,
        num_classes=model.num_classes,
        labels=isinstance(
            model.member_loss, keras.losses.SparseCategoricalCrossentropy
        ),
    )
    x, y = arguments.get("x"), arguments.get("y")
    if hasattr(x, "shape") and y is not None and not isinstance(x, Mapping):
        if not hasattr(y, "shape") and not isinstance(y, (list, tuple)):
            raise invalid_argument(
                "y", "Expected labels, one per example.", type(y).__name__
            )
        check_arrays(x, y, "x", y_name="y", **checks)
    elif x is not None and y is None and not isinstance(x, (list, tuple)):
        arguments["x"] = check_data(
            x, "x", steps=arguments.get("steps_per_epoch"), **checks
        )
    validation = arguments.get("validation_data")
    if validation is not None:
        if isinstance(validation, list) and is_arrays(validation):
            validation = tuple(validation)
        arguments["validation_data"] = check_data(
            validation,
            "validation_data",
            steps=arguments.get("validation_steps"),
            infinite_hint="pass validation_steps",
            **checks,
        )
    return arguments
