"""Flag value types of `keras-swn`: raw text -> value.

Each parser takes the text of one flag and returns its value, or raises
`ValueError` with the reason (the parser of `keras_swn.cli.flags` puts
the flag and its text in front). Standard library only.
"""

from __future__ import annotations

from typing import Callable


def members(text: str) -> tuple:
    """Comma-separated WRN `depth-width` pairs -> `((depth, width), ...)`.

    Args:
        text: str, e.g. `"28-7,16-4"`.

    Returns:
        A tuple of `(depth, width)` int pairs.

    Raises:
        ValueError: on an item that is not `int-int`.
    """
    pairs = []
    for item in text.split(","):
        try:
            depth, width = (int(p) for p in item.strip().split("-"))
        except ValueError:
            raise ValueError(
                "Expected comma-separated WRN depth-width pairs such as "
                f"28-7,16-4; {item.strip()!r} is not one"
            ) from None
        pairs.append((depth, width))
    return tuple(pairs)


def number(item: str) -> int | float:
    """An int if the text is one, else a float.

    Args:
        item: str.

    Returns:
        int or float.

    Raises:
        ValueError: if the text is not a number.
    """
    try:
        return int(item)
    except ValueError:
        try:
            return float(item)
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not a number") from None


def milestones(text: str) -> tuple:
    """Comma-separated numbers; the empty text is no milestone.

    Args:
        text: str, e.g. `"0.3,0.6"` or `"60,120"` or `""`.

    Returns:
        A tuple of ints or floats (empty: a constant learning rate).

    Raises:
        ValueError: on an item that is not a number.
    """
    if not text.strip():
        return ()
    return tuple(number(item) for item in text.split(","))


def shape(text: str) -> tuple:
    """`H,W,C` -> a tuple of three positive ints.

    Args:
        text: str, e.g. `"32,32,3"`.

    Returns:
        `(height, width, channels)`.

    Raises:
        ValueError: unless three comma-separated positive ints.
    """
    try:
        dims = tuple(int(p) for p in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(
            "Expected three comma-separated positive ints (height, width, "
            "channels), e.g. 32,32,3"
        )
    return dims


def int_at_least(minimum: int) -> Callable[[str], int]:
    """The parser of an int `>= minimum`.

    Args:
        minimum: int, the smallest accepted value.

    Returns:
        A parser: text -> int, raising `ValueError` below `minimum`.
    """

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"Expected an integer >= {minimum}")
        return value

    return parse


def fraction(text: str) -> float:
    """A float strictly between 0 and 1.

    Args:
        text: str.

    Returns:
        float.

    Raises:
        ValueError: outside `(0, 1)` or not a number.
    """
    value = float(text)
    if not 0.0 < value < 1.0:
        raise ValueError("Expected a number strictly between 0 and 1")
    return value


def fan_in(text: str) -> int | str:
    """A template fan-in: digits as an int, else the text.

    Args:
        text: str, e.g. `"kernel"` or `"9"`.

    Returns:
        int or str.
    """
    return int(text) if text.isdigit() else text


_BOOL = {"true": True, "1": True, "false": False, "0": False}


def boolean(text: str) -> bool:
    """`true`/`1` or `false`/`0` (any case).

    Args:
        text: str.

    Returns:
        bool.

    Raises:
        ValueError: on any other text.
    """
    if text.lower() not in _BOOL:
        raise ValueError("Expected true or false")
    return _BOOL[text.lower()]
