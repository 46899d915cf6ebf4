"""Argument checks with one error format.

Every check raises a `ValueError` in the house format, which names the
argument and ends with the value received:

    Invalid value for argument `x`. Expected .... Received: x=...

Each check returns the value normalised (a Python `int` or `float`, or the
value itself), so a caller can check and store in one line.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any
from typing import Iterator
from typing import Mapping
from typing import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def invalid_argument(name: str, expected: str, value: Any) -> ValueError:
    """The house `ValueError` for a bad argument (returned, not raised).

    Args:
        name: str, the argument's name.
        expected: str, one or more sentences saying what is accepted.
        value: the value received.

    Returns:
        A `ValueError` to raise.

    Examples:
        >>> str(invalid_argument("k", "Expected an int.", "2"))
        "Invalid value for argument `k`. Expected an int. Received: k='2'"
    """
    return ValueError(
        f"Invalid value for argument `{name}`. {expected} "
        f"Received: {name}={value!r}"
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
        ValueError: Invalid value for argument `fan_in`. Expected one of ...
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
        ValueError: Invalid value for argument `k`. Expected an integer in...
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


def check_real(name: str, value: Any, *, positive: bool = False) -> float:
    """Check that `value` is a finite real number (not a bool).

    Args:
        name: str, the argument's name.
        value: the value received; a Python or NumPy number.
        positive: bool, also require `value > 0`.

    Returns:
        `value` as a Python `float`.

    Raises:
        ValueError: on a non-number, NaN or infinity, or (with
            `positive=True`) a value <= 0.

    Examples:
        >>> check_real("threshold", 1)
        1.0
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or (positive and not float(value) > 0)
    ):
        what = "a finite number > 0" if positive else "a finite real number"
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
    reading the message.

    Attributes:
        argument: str, the name of the argument.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


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


def argument_error(name: str, expected: str, value: Any) -> ArgumentError:
    """`invalid_argument` as an `ArgumentError` that names `name`.

    Examples:
        >>> argument_error("k", "Expected an int.", "2").argument
        'k'
    """
    return ArgumentError(name, str(invalid_argument(name, expected, value)))
