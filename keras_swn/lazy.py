"""Package exports that the `keras-swn` command imports on first use.

Importing `keras_swn` normally imports every submodule (and so Keras and
its backend), which also registers the library's classes for `.keras`
loading. In the `keras-swn` command (`LAZY`) the package namespaces
(`keras_swn`, `keras_swn.models`, `keras_swn.bank`) import a name only
when it is first read, so that `keras-swn --help` and `keras-swn plan`
start no backend. Standard library only.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any
from typing import Mapping


def _command_line() -> bool:
    """Whether this process is the `keras-swn` command (the console
    script, or `python -m keras_swn.cli`)."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    if name.startswith("keras-swn"):
        return True
    argv = list(getattr(sys, "orig_argv", ()))
    return any(
        a == "-m" and b == "keras_swn.cli" for a, b in zip(argv, argv[1:])
    )


#: True in the `keras-swn` command: exports are imported on first use.
LAZY = _command_line()


def export_names(namespace: dict[str, Any], names: Mapping[str, str]) -> None:
    """Give a package namespace its exports.

    Sets `__all__`, a module `__getattr__` that imports `names[name]` (a
    submodule when it is `<package>.<name>`, else the module that defines
    `name`) and `__dir__`; outside the command (`LAZY` false) every export
    is imported at once.

    Args:
        namespace: the package's `globals()`.
        names: export name -> the module to import it from.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}"
            )
        module = importlib.import_module(names[name])
        value = module if names[name] == f"{package}.{name}" else None
        value = getattr(module, name) if value is None else value
        namespace[name] = value
        return value

    namespace["__all__"] = sorted([*names, *namespace.get("__all__", ())])
    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = lambda: sorted(set(namespace) | set(names))
    if not LAZY:
        for name in names:
            __getattr__(name)
