"""Argument checks with one error type and one format.

A bad argument raises an `ArgumentError` (a `ValueError`) made by
`invalid_argument`, directly or through the checks below; its message
names the argument and ends with the value received:

    Invalid value for argument `x`. Expected .... Received: x=...

and its attributes `argument`, `expected` and `received` hold the parts
(the command line builds its flag messages from them). No other module
writes that message by hand (`tests/test_errors.py`).

Each check returns the value normalised (a Python `int` or `float`, or the
value itself), so a caller can check and store in one line.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any
from typing import Callable
from typing import Iterator
from typing import Mapping
from typing import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def invalid_argument(
    name: str, expected: str, value: Any, *, shown: str | None = None
) -> ArgumentError:
    """The house error for a bad argument (returned, not raised).

    An `ArgumentError` (a `ValueError`) that names `name`, says what is
    accepted and shows the value received. The only way the library
    writes "Invalid value for argument" (a test keeps it so).

    Args:
        name: str, the argument's name.
        expected: str, one or more sentences saying what is accepted (or
            what is wrong and what to do).
        value: the value received (the error's `received`).
        shown: str or None, the value as the message shows it, when its
            `repr` would not help (a shape, a count, a file's keys);
            by default `name=repr(value)`.

    Returns:
        An `ArgumentError` to raise.

    Examples:
        >>> error = invalid_argument("k", "Expected an int.", "2")
        >>> str(error)
        "Invalid value for argument `k`. Expected an int. Received: k='2'"
        >>> error.argument, error.expected, error.received
        ('k', 'Expected an int.', '2')
        >>> str(invalid_argument("x", "Expected 2D.", None,
        ...                      shown="x.shape=(3,)"))
        'Invalid value for argument `x`. Expected 2D. Received: x.shape=(3,)'
    """
    if shown is None:
        shown = f"{name}={value!r}"
    return ArgumentError(
        name,
        f"Invalid value for argument `{name}`. {expected} Received: {shown}",
        expected=expected,
        received=value,
    )


def check_choice(name: str, value: T, choices: Sequence[Any]) -> T:
    """Check that `value` is one of `choices`, of the same type.

    `9.0` is not the choice `9`, and `True` is not `1`; a subclass of a
    choice's type (a `str` enum) is accepted.

    Args:
        name: str, the argument's name.
        value: the value received.
        choices: the accepted values.

    Returns:
        `value`.

    Raises:
        ValueError: if `value` is not one of `choices`.

    Examples:
        >>> check_choice("mode", "fast", ("fast", "exact"))
        'fast'
        >>> check_choice("fan_in", 9.0, ("layer", 9))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... `fan_in`. Expected one of ...
    """
    for choice in choices:
        if isinstance(value, type(choice)) and value == choice:
            if isinstance(choice, bool) or not isinstance(value, bool):
                return value
    raise invalid_argument(name, f"Expected one of {tuple(choices)}.", value)


def _int_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum == 1:
        return "a strictly positive integer"
    if minimum == 0:
        return "a non-negative integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Check that `value` is an integer (not a bool) within bounds.

    Args:
        name: str, the argument's name.
        value: the value received; a Python or NumPy integer.
        minimum: int or `None`, the smallest accepted value.
        maximum: int or `None`, the largest accepted value.

    Returns:
        `value` as a Python `int`.

    Raises:
        ValueError: on a non-integer (floats and bools included) or a
            value out of bounds.

    Examples:
        >>> check_int("budget", 10, minimum=1)
        10
        >>> check_int("k", 9, minimum=1, maximum=8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... `k`. Expected an integer in...
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise invalid_argument(
            name, f"Expected {_int_text(minimum, maximum)}.", value
        )
    number = int(value)
    if (minimum is not None and number < minimum) or (
        maximum is not None and number > maximum
    ):
        raise invalid_argument(
            name, f"Expected {_int_text(minimum, maximum)}.", number
        )
    return number


def check_real(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
) -> float:
    """Check that `value` is a finite real number (not a bool).

    Args:
        name: str, the argument's name.
        value: the value received; a Python or NumPy number.
        positive: bool, also require `value > 0`.
        nonnegative: bool, also require `value >= 0`.

    Returns:
        `value` as a Python `float`.

    Raises:
        ValueError: on a non-number, NaN or infinity, or (with
            `positive=True`) a value <= 0, or (with `nonnegative=True`) a
            value < 0.

    Examples:
        >>> check_real("threshold", 1)
        1.0
        >>> check_real("decay", -1e-4, nonnegative=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... `decay`. Expected a finite ...
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or (positive and not float(value) > 0)
        or (nonnegative and not float(value) >= 0)
    ):
        what = "a finite real number"
        if positive:
            what = "a finite number > 0"
        elif nonnegative:
            what = "a finite number >= 0"
        raise invalid_argument(name, f"Expected {what}.", value)
    return float(value)


def check_instance(name: str, value: T, cls: type) -> T:
    """Check that `value` is an instance of `cls`.

    Returns:
        `value`.

    Raises:
        ValueError: naming `cls`, if `value` is not an instance of it.
    """
    if not isinstance(value, cls):
        raise invalid_argument(name, f"Expected a {cls.__name__}.", value)
    return value


def check_format(
    data: Any, *, format: str, versions: Sequence[int], what: str
) -> int:
    """Check the `"format"` and `"version"` of a versioned JSON object.

    Args:
        data: the parsed JSON.
        format: str, the expected `"format"` value.
        versions: the `"version"` values this reader understands.
        what: str, what the object is, for the message (e.g. `"sharing
            policy"`).

    Returns:
        The version, an `int`.

    Raises:
        ValueError: if `data` is not a JSON object with that format, or its
            version is not one of `versions`.

    Examples:
        >>> check_format({"format": "f", "version": 1}, format="f",
        ...              versions=(1, 2), what="thing")
        1
        >>> check_format({"format": "f", "version": 3}, format="f",
        ...              versions=(1,), what="x")
        Traceback (most recent call last):
        ...
        ValueError: Unsupported x version. Expected 1. Received: version=3
    """
    if not isinstance(data, Mapping) or data.get("format") != format:
        raise ValueError(
            f"Invalid {what}: expected a JSON object with "
            f'"format": "{format}". Received: {str(data)[:200]}'
        )
    version = data.get("version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version not in versions
    ):
        expected = (
            str(versions[0])
            if len(versions) == 1
            else f"one of {tuple(versions)}"
        )
        raise ValueError(
            f"Unsupported {what} version. Expected {expected}. "
            f"Received: version={version!r}"
        )
    return version


class ArgumentError(ValueError):
    """A `ValueError` that names the argument it is about.

    The message is the library's message, unchanged; `argument` lets a
    caller (the command line) say which of its own inputs to fix without
    reading the message. `invalid_argument` makes the house one, whose
    message and attributes say what was expected and what was received.

    Attributes:
        argument: str, the name of the argument.
        expected: str or None, what is accepted (None when the message
            says it in its own words).
        received: the value received (None when not recorded).
    """

    def __init__(
        self,
        argument: str,
        message: str,
        *,
        expected: str | None = None,
        received: Any = None,
    ) -> None:
        super().__init__(message)
        self.argument = argument
        self.expected = expected
        self.received = received


def argument_of(error: BaseException) -> str | None:
    """The argument an `ArgumentError` names; `None` for other errors."""
    return getattr(error, "argument", None)


@contextlib.contextmanager
def naming(argument: str) -> Iterator[None]:
    """Let a `ValueError` raised inside name `argument`.

    A plain `ValueError` becomes an `ArgumentError` with the same message;
    an `ArgumentError` keeps the argument it already names.

    Examples:
        >>> try:
        ...     with naming("k"):
        ...         check_int("k", 0, minimum=1)
        ... except ArgumentError as e:
        ...     e.argument
        'k'
    """
    try:
        yield
    except ArgumentError:
        raise
    except ValueError as e:
        raise ArgumentError(argument, str(e)) from e


#: A field check: takes the field's name and value, returns the value
#: normalised or raises a `ValueError` in the house format.
FieldCheck = Callable[[str, Any], Any]


def check_fields(obj: Any, checks: Mapping[str, FieldCheck]) -> None:
    """Validate the fields of a frozen dataclass once, in order.

    Each check receives the field's name and value; its return value (the
    value normalised) replaces the field's. A failing check raises an
    `ArgumentError` naming the field (see `naming`). Meant for
    `__post_init__` of the library's configuration dataclasses.

    Args:
        obj: the (frozen) dataclass instance.
        checks: field name -> check, run in this order.

    Raises:
        ArgumentError: naming the first field whose check fails.

    Examples:
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Options:
        ...     size: int = 8
        ...     def __post_init__(self):
        ...         check_fields(self, {"size": int_check(1, 8)})
        >>> Options(np.int64(3)).size
        3
        >>> try:
        ...     Options(9)
        ... except ArgumentError as e:
        ...     e.argument
        'size'
    """
    for name, check in checks.items():
        with naming(name):
            object.__setattr__(obj, name, check(name, getattr(obj, name)))


def int_check(minimum: int | None = None, maximum: int | None = None):
    """A `FieldCheck` for `check_int` with these bounds."""
    return lambda name, value: check_int(
        name, value, minimum=minimum, maximum=maximum
    )


def choice_check(choices: Sequence[Any]):
    """A `FieldCheck` for `check_choice` with these choices."""
    return lambda name, value: check_choice(name, value, choices)


def optional(check: FieldCheck) -> FieldCheck:
    """A `FieldCheck` that accepts `None` and otherwise runs `check`."""
    return lambda name, value: None if value is None else check(name, value)


def check_index(name: str, value: Any, count: int) -> int:
    """Check that `value` is an int index into `count` items.

    Args:
        name: str, the argument's name (e.g. `"member"`).
        value: the value received; a Python or NumPy integer (not a bool).
        count: int, the number of items.

    Returns:
        `value` as a Python `int`.

    Raises:
        ValueError: unless `0 <= value < count`.

    Examples:
        >>> check_index("member", 1, 2)
        1
        >>> check_index("member", 2, 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_swn.validation.ArgumentError: ... in [0, 2). Received: member=2
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= value < count
    ):
        raise invalid_argument(name, f"Expected an int in [0, {count}).", value)
    return int(value)


def check_probabilities(
    probs_per_member: Any, y: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Check per-member class probabilities and their labels.

    Args:
        probs_per_member: one `(num_examples, num_classes)` probability
            array per member, or an `(M, n, C)` array (at least one member
            and two classes).
        y: `(num_examples,)` integer labels, `(n, 1)` labels, or one-hot
            `(n, C)`.

    Returns:
        `(probs, labels)`: a float64 `(M, n, C)` array and int64 `(n,)`
        labels in `[0, C)`.

    Raises:
        ValueError: naming `probs_per_member` or `y`.

    Examples:
        >>> probs, labels = check_probabilities(
        ...     [[[0.9, 0.1], [0.2, 0.8]]], [[1, 0], [0, 1]])
        >>> probs.shape, labels.tolist()
        ((1, 2, 2), [0, 1])
    """
    probs = np.asarray(probs_per_member, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[2] < 2:
        raise invalid_argument(
            "probs_per_member",
            "Expected one `(num_examples, num_classes)` probability array "
            "per member (at least 1 member, 2 classes).",
            probs_per_member,
            shown=f"probs_per_member with shape {probs.shape}",
        )
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == probs.shape[2]:
        labels = np.argmax(labels, axis=-1)  # one-hot
    elif labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if (
        labels.ndim != 1
        or labels.shape[0] != probs.shape[1]
        or not np.issubdtype(labels.dtype, np.integer)
        and not np.all(np.mod(labels, 1) == 0)
    ):
        raise invalid_argument(
            "y",
            f"Expected integer class labels of shape ({probs.shape[1]},) "
            "(or one-hot).",
            y,
            shown=f"y with shape {labels.shape} and dtype {labels.dtype}",
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[2]):
        raise invalid_argument(
            "y",
            f"Expected labels in [0, {probs.shape[2]}).",
            y,
            shown=f"y with values in [{labels.min()}, {labels.max()}]",
        )
    return probs, labels
