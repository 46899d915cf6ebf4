"""Library error messages rewritten in the words of the command line.

The library's errors name Python arguments and sometimes advise a
Python-only argument (``pass on_over_budget='report'``,
``overwrite=True``); the library never names a flag. On the command line
the user can only change flags, so `flag_message` rewrites a library
error:

- A bad argument is a `keras_swn.validation.ArgumentError` made by
  `invalid_argument`: its `expected` attribute is the message without
  the "Invalid value for argument" sentence and the "Received:" clause
  (the caller states the flag and its text once, from the error's
  `argument`), so nothing is cut from its text.
- Other errors (plain `ValueError`s of file checks and resumed runs,
  Keras's own, an `ArgumentError` wrapping another message) only have
  their text: a leading "Invalid value for argument" sentence and
  "Received:" clauses are cut from it with regular expressions.

Then, in both, advice about arguments without a flag is replaced by the
flags that do the same (fixed phrases), and every argument that has a
flag becomes that flag (`` `num_bins` `` -> `--bins`, `sharing='soft'`
-> `--sharing=soft`). That last step stays a regular expression: the
library's sentences name other arguments in prose ("Raise `budget` or
lower `num_bins`"), which only the text holds.

No library import: this module is used on every error path.
"""

from __future__ import annotations

import re
from typing import Callable
from typing import Mapping

#: Library arguments whose flag has another name (None: no flag).
ARGUMENT_FLAGS: Mapping[str, str | None] = {
    "num_bins": "bins",
    "depth": "members",
    "width": "members",
    "train_data": "data",
    "validation_data": "data",
    "path": "model_dir",
    "project_name": "output_dir",
    "directory": "output_dir",
    "on_over_budget": None,
    "jit_compile": None,
}

#: Advice about Python-only arguments -> the flags that do the same
#: (fixed phrases of the library, replaced in this order).
_OVERWRITE = "Pass --overwrite to start over, or another --output_dir."
_ADVICE = (
    (
        "merge more layers into fewer groups, or pass on_over_budget='report'",
        "or merge more layers into fewer groups (a lower --bins)",
    ),
    (", or pass on_over_budget='report'", ""),
    (" or pass on_over_budget='report'", ""),
    (
        "Pass overwrite=True to the constructor or use another `project_name`.",
        _OVERWRITE,
    ),
    ("Pass overwrite=True or another `project_name`.", _OVERWRITE),
)

# Only for errors without an `expected` (see the module's docstring).
_LEADING = re.compile(r"^Invalid value for argument `\w+`\s*[.:]\s*")
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|\([^)]*\)|\[[^\]]*\]|[^\s,;]+)"
_RECEIVED = re.compile(
    rf"\s*Received: \w+={_VALUE}(?:, \w+={_VALUE})*(?=\.?(?:\s|$))\.?"
)
_TICKED = re.compile(r"`(\w+)`")
_ASSIGNED = re.compile(rf"(?<![\w.`-])(\w+)=({_VALUE})")
_IDENTIFIER = re.compile(r"(?<![\w.`'\"/-])([a-z]+(?:_[a-z]+)+)(?![\w'\"=(])")


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines too) as one space."""
    return " ".join(str(text).split())


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def error_text(error: BaseException | str) -> str:
    """What a library error says, without the frame the flag replaces.

    Args:
        error: the library's exception, or its message.

    Returns:
        The `expected` text of an `ArgumentError` made by
        `invalid_argument`; otherwise the message, on one line, less a
        leading "Invalid value for argument" sentence and its "Received:"
        clauses.

    Examples:
        >>> from keras_swn.validation import invalid_argument
        >>> error_text(invalid_argument("k", "Expected an int.", "2"))
        'Expected an int.'
        >>> error_text("Unsupported version. Received: version=3")
        'Unsupported version.'
    """
    expected = getattr(error, "expected", None)
    if isinstance(expected, str):
        return one_line(expected)
    text = one_line(str(error))
    text = _LEADING.sub("", text)
    return _RECEIVED.sub("", text)


def flag_message(
    error: BaseException | str,
    flag_of: Callable[[str], str | None],
) -> str:
    """`error` (a library error) in the words of the command line.

    Args:
        error: the library's exception, or its message.
        flag_of: callable, a library argument name -> the flag name that
            sets it in this command, or None when no flag does.

    Returns:
        The message on one line (`error_text`), naming flags instead of
        arguments.

    Examples:
        >>> from keras_swn.validation import invalid_argument
        >>> flags = {"budget": "budget", "num_bins": "bins"}
        >>> flag_message(
        ...     invalid_argument("budget", "Expected at least 9. Raise "
        ...                      "`budget` or lower `num_bins`.", 5),
        ...     flags.get)
        'Expected at least 9. Raise --budget or lower --bins.'
    """
    text = error_text(error)
    for phrase, replacement in _ADVICE:
        text = text.replace(phrase, replacement)

    def ticked(match: re.Match) -> str:
        flag = flag_of(match.group(1))
        return f"--{flag}" if flag else match.group(0)

    def assigned(match: re.Match) -> str:
        flag = flag_of(match.group(1))
        if not flag:
            return match.group(0)
        value = _unquote(match.group(2))
        if value in ("True", "False"):  # a bool flag: --x or --nox
            return f"--{flag}" if value == "True" else f"--no{flag}"
        return f"--{flag}={value}"

    def identifier(match: re.Match) -> str:
        flag = flag_of(match.group(1))
        return f"--{flag}" if flag else match.group(0)

    text = _TICKED.sub(ticked, text)
    text = _ASSIGNED.sub(assigned, text)
    text = _IDENTIFIER.sub(identifier, text)
    return one_line(text)


def flag_lookup(
    known: Mapping[str, object], renames: Mapping[str, str] | None = None
) -> Callable[[str], str | None]:
    """The `flag_of` of a command: argument -> flag among `known`.

    Args:
        known: the flags of the command (names; the values are ignored).
        renames: extra argument -> flag renames for one call (e.g.
            `{"path": "data"}` for the errors of an `.npz` file).

    Returns:
        A callable for `flag_message`.
    """
    table = {**ARGUMENT_FLAGS, **(renames or {})}

    def flag_of(argument: str) -> str | None:
        flag = table.get(argument, argument)
        return flag if flag is not None and flag in known else None

    return flag_of
