"""The package's layout: no import cycle, no module over 500 lines, a
`search` package of at most 10 modules; benchmarks on the public API.

Read from the source with `ast` (no import): every `import` anywhere in a
module's body counts, function-level ones and those under
`if TYPE_CHECKING:` included, and importing `a.b.c` counts as importing
the packages `a.b` and `a` too (their `__init__` runs first).
"""

import ast
import importlib
import pathlib
import types

import keras_swn

ROOT = pathlib.Path(keras_swn.__file__).parent
MAX_LINES = 500


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path: pathlib.Path, modules) -> set[str]:
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        target = resolve(name)
        if target is None:
            continue
        parts = target.split(".")
        found |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        # A module's own parent packages run before it: not an edge.
        own = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
        graph[name] = _imports(path, modules) - own
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (a list of modules), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_imports():
    graph = _graph()
    # keras_swn.search.__getattr__ imports the tuner inside a function.
    assert "keras_swn.search.tuner" in graph["keras_swn.search"]
    assert "keras_swn.io.store" in graph["keras_swn.training.train"]


def test_no_import_cycle():
    assert _cycle(_graph()) is None


def test_no_module_over_500_lines():
    long = {
        str(path.relative_to(ROOT.parent)): n
        for path in ROOT.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_search_package_has_at_most_10_modules():
    modules = sorted(p.name for p in (ROOT / "search").glob("*.py"))
    assert "__init__.py" in modules
    assert len(modules) <= 10, modules


# ----------------------------------------------------------------------
# The benchmarks: built on the public API, quality.py at most 600 lines.

BENCHMARKS = ROOT.parent / "benchmarks"
#: Benchmarks that measure internals on purpose, and why.
INTERNAL_BENCHMARKS = {
    # Times alternative implementations of the bank's composition (the
    # per-layer path, the batched composer's windows and probes) against
    # each other: they exist only inside keras_swn.bank.
    "compose_time.py",
}
#: Benchmark scripts over 500 lines from before the shared modules.
LONG_BENCHMARKS = {"compose_time.py", "step_time.py"}


def _public_modules() -> dict:
    """`keras_swn`, its subpackages in `keras_swn.__all__`, and
    `keras_swn.io_utils` (the documented atomic writes)."""
    names = {"keras_swn", "keras_swn.io_utils"} | {
        f"keras_swn.{name}"
        for name in keras_swn.__all__
        if isinstance(getattr(keras_swn, name), types.ModuleType)
    }
    return {name: importlib.import_module(name) for name in names}


def _private_uses(source: str, public: dict) -> list[str]:
    """The `keras_swn` names `source` reaches outside the public API: a
    module not in `public`, or a name not in a public module's
    `__all__` (imports, and attribute chains from `keras_swn`)."""

    def check(parts: list[str]) -> str | None:
        module = parts[0]
        for part in parts[1:]:
            if module not in public:
                return module
            if f"{module}.{part}" in public:
                module = f"{module}.{part}"
                continue
            if part not in public[module].__all__:
                return f"{module}.{part}"
            value = getattr(public[module], part)
            if not isinstance(value, types.ModuleType):
                return None  # a public class or function
            module = f"{module}.{part}"
        return None if module in public else module

    found = []
    for node in ast.walk(ast.parse(source)):
        chains = []
        if isinstance(node, ast.Import):
            chains = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module.split(".")
            chains = [base + [a.name] for a in node.names]
        elif isinstance(node, ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts, value = [value.attr] + parts, value.value
            if isinstance(value, ast.Name):
                chains = [[value.id] + parts]
        for chain in chains:
            if chain[0] == "keras_swn" and (bad := check(chain)):
                found.append(bad)
    return sorted(set(found))


def test_private_use_checker_finds_private_names():
    public = _public_modules()
    source = (
        "import keras_swn\n"
        "from keras_swn.models import WideResNet\n"
        "from keras_swn.models.swn_model import SWNModel\n"
        "from keras_swn.search import oracle_state\n"
        "keras_swn.models.WideResNet(16, 1)\n"
        "keras_swn.bank.template_bank.coefficient_probe_key\n"
        "keras_swn.export.to_keras\n"
        "from keras_swn.io_utils import atomic_write\n"
    )
    assert _private_uses(source, public) == [
        "keras_swn.bank",
        "keras_swn.models.swn_model",
        "keras_swn.search.oracle_state",
    ]


def test_benchmarks_use_only_the_public_api():
    public = _public_modules()
    private = {
        path.name: uses
        for path in sorted(BENCHMARKS.glob("*.py"))
        if (uses := _private_uses(path.read_text(encoding="utf-8"), public))
    }
    assert set(private) <= INTERNAL_BENCHMARKS, private
    for name in ("quality.py", "quality_report.py", "paired.py", "report.py"):
        assert (BENCHMARKS / name).exists()
        assert name not in private


def test_benchmark_sizes():
    lines = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in BENCHMARKS.glob("*.py")
    }
    assert lines["quality.py"] <= 600
    long = {
        name: n
        for name, n in lines.items()
        if n > MAX_LINES and name not in LONG_BENCHMARKS | {"quality.py"}
    }
    assert long == {}
