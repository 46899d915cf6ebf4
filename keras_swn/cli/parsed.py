"""`Parsed`: the flags of one command line, and errors naming them.

Standard library only (see `keras_swn.cli.flags`).
"""

from __future__ import annotations

from typing import Any
from typing import Mapping

from keras_swn.cli.messages import flag_lookup
from keras_swn.cli.messages import flag_message


class CommandError(Exception):
    """A bad flag value or input (exit status 2), printed as one line."""


def flag_text(value: Any) -> str:
    """A flag value as it is written on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if value and isinstance(value[0], tuple):
            return ",".join("-".join(map(str, v)) for v in value)
        return ",".join(str(v) for v in value)
    return str(value)


class Parsed:
    """The flags of one command line: values, and the text as written.

    Attributes:
        command: str.
        values: dict, flag name -> value (the default when not given).
        raw: dict, flag name -> its text as written.
    """

    def __init__(self, command: str, values: dict, raw: dict):
        self.command = command
        self.values = values
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def text(self, name: str) -> str:
        """The flag's text: as written, or its value (a default)."""
        if name in self.raw:
            return self.raw[name]
        return flag_text(self.values.get(name))

    def invalid(self, flag: str, reason: str) -> CommandError:
        """A `CommandError` for the value of `--flag`.

        Args:
            flag: str, the flag's name.
            reason: str, what is wrong and what to do.

        Returns:
            The `CommandError` to raise:
            `Invalid value for flag --flag=TEXT: reason`.
        """
        if flag not in self.raw and self.values.get(flag) is None:
            return CommandError(
                f"Invalid value for flag --{flag} (default): {reason}"
            )
        return CommandError(
            f"Invalid value for flag --{flag}={self.text(flag)}: {reason}"
        )

    def error(
        self,
        error: BaseException | str,
        argument: str | None = None,
        renames: Mapping[str, str] | None = None,
    ) -> CommandError:
        """A library error as a `CommandError` in the words of the flags.

        The message names the flag of the argument the error names (an
        `ArgumentError`), else the flag of `argument`, with its text as
        written; the library's message follows with every argument that
        has a flag written as that flag (`keras_swn.cli.messages`).

        Args:
            error: the library's exception, or a message.
            argument: str or None, the library argument (or flag) to
                blame when `error` names none.
            renames: extra argument -> flag renames for this error (e.g.
                `{"path": "data"}`).

        Returns:
            The `CommandError` to raise.
        """
        flag_of = flag_lookup(self.values, renames)
        message = flag_message(error, flag_of)
        for name in (getattr(error, "argument", None), argument):
            flag = flag_of(name) if name else None
            if flag is not None:
                return self.invalid(flag, message)
        return CommandError(message)
