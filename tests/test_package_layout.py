"""The package's layout: no import cycle, no module over 500 lines, a
`search` package of at most 10 modules.

Read from the source with `ast` (no import): every `import` anywhere in a
module's body counts, function-level ones and those under
`if TYPE_CHECKING:` included, and importing `a.b.c` counts as importing
the packages `a.b` and `a` too (their `__init__` runs first).
"""

import ast
import pathlib

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
