"""Every public callable that takes parameters documents them under "Args:".

The public API is the `__all__` of each package of the API reference
(`docs/api/`), plus the lazily loaded `keras_swn.search.SWNTuner`. For a
public class the check covers its constructor (documented in the class
docstring: the docs merge `__init__` into the class) and every public
method the class or a `keras_swn` base defines. Methods that Keras,
KerasTuner or Python define (including `keras_swn` overrides of them, such
as `call`, `build` or `train_step`, whose contract is the base's) and
properties are left to their own docs.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

PUBLIC_MODULES = (
    "keras_swn",
    "keras_swn.analysis",
    "keras_swn.bank",
    "keras_swn.callbacks",
    "keras_swn.data",
    "keras_swn.ensembles",
    "keras_swn.export",
    "keras_swn.layers",
    "keras_swn.models",
    "keras_swn.policy",
    "keras_swn.search",
    "keras_swn.testing",
)

#: Public names that `__all__` does not list (loaded on first access).
LAZY = {"keras_swn.search": ("SWNTuner",)}

#: Sections that document a callable's parameters.
ARGS = "Args:"


def _own(module_name: str) -> bool:
    return module_name == "keras_swn" or module_name.startswith("keras_swn.")


def _public_objects():
    """`(qualified name, object)` for every public function and class."""
    seen = {}
    for package in PUBLIC_MODULES:
        module = importlib.import_module(package)
        names = list(getattr(module, "__all__", ()))
        for name in LAZY.get(package, ()):
            try:
                getattr(module, name)
            except ImportError:  # an optional dependency is missing
                continue
            names.append(name)
        for name in names:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            if not _own(getattr(obj, "__module__", "") or ""):
                continue
            seen.setdefault(id(obj), (f"{package}.{name}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def _parameters(func) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p for p in signature.parameters if p not in ("self", "cls")]


def _constructor_documented(cls) -> bool:
    doc = inspect.getdoc(cls) or ""
    if ARGS in doc:
        return True
    # A frozen record (dataclass, NamedTuple) documents its fields, which
    # are its constructor's parameters, as "Attributes:".
    record = dataclasses.is_dataclass(cls) or hasattr(cls, "_fields")
    return record and "Attributes:" in doc


def _overrides_foreign(cls, name: str) -> bool:
    """Whether `name` overrides a method of a Keras (or other) base."""
    return any(
        name in vars(klass)
        for klass in cls.__mro__
        if not _own(klass.__module__) and klass is not object
    )


def _public_methods(cls):
    """`(name, function)` of the public methods `keras_swn` defines."""
    for klass in cls.__mro__:
        if not _own(klass.__module__):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if not inspect.isfunction(attr):
                continue  # properties, constants, nested classes
            if _overrides_foreign(cls, name):
                continue  # `call`, `build`, ...: Keras documents them
            # Resolve to what the class actually exposes (the first
            # definition along the MRO), so an override counts once.
            yield name, attr


def _undocumented():
    missing = []
    for qualname, obj in _public_objects():
        if inspect.isclass(obj):
            init = obj.__init__
            own_init = _own(getattr(init, "__module__", "") or "")
            if (own_init or dataclasses.is_dataclass(obj)) and _parameters(
                init
            ):
                if not _constructor_documented(obj):
                    missing.append(qualname)
            done = set()
            for name, method in _public_methods(obj):
                if name in done:
                    continue
                done.add(name)
                if _parameters(method) and ARGS not in (
                    inspect.getdoc(method) or ""
                ):
                    missing.append(f"{qualname}.{name}")
        elif _parameters(obj) and ARGS not in (inspect.getdoc(obj) or ""):
            missing.append(qualname)
    return missing


def test_public_api_is_walked():
    names = [name for name, _ in _public_objects()]
    assert "keras_swn.SWNModel" in names
    assert "keras_swn.policy.SharingPolicy" in names or (
        "keras_swn.SharingPolicy" in names
    )
    assert len(names) > 40


def test_every_public_callable_documents_its_args():
    missing = _undocumented()
    assert not missing, (
        f"{len(missing)} public callables take parameters but their "
        "docstring has no 'Args:' section: " + ", ".join(missing)
    )


@pytest.mark.parametrize(
    "doc, documented",
    [("Does it.\n\nArgs:\n    x: an int.\n", True), ("Does it.\n", False)],
)
def test_the_check_itself(doc, documented, monkeypatch):
    """The check fails a function that lacks "Args:" (a self-test)."""

    def function(x):
        pass

    function.__doc__ = doc
    function.__module__ = "keras_swn.fake"
    import keras_swn

    monkeypatch.setattr(keras_swn, "__all__", ["fake_function"])
    monkeypatch.setattr(keras_swn, "fake_function", function, raising=False)
    missing = [m for m in _undocumented() if m.endswith("fake_function")]
    assert (not missing) == documented


#: Documents that users never get: the docs point to `docs/algorithm.md`.
OUTSIDE = (
    "swn-algorithm",
    "§",
    "style-guide.md",
    "keras3-notes",
    "../shared",
    "shared/docs",
    "shared/data",
)


def test_no_reference_to_files_outside_the_project():
    """Docstrings, comments and docs pages cite the project's own pages
    (e.g. the algorithm page), never a document users do not have."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    paths = [*root.joinpath("keras_swn").rglob("*.py")]
    paths += root.joinpath("docs").rglob("*.md")
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(paths)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(word in line for word in OUTSIDE)
    ]
    assert not found, "references to files outside the project: " + (
        ", ".join(found)
    )
