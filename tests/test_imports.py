"""The package's import graph has no circle (an import circle is a layering mistake waiting to bite).

Every import counts: at module level, in functions, and under TYPE_CHECKING
(a circle that only type-checking sees is still two modules that each need the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in found if target in modules and target != name}


def test_no_import_circle_in_the_package() -> None:
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    graph = {name: imports(path, set(paths)) for name, path in paths.items()}
    assert graph["socketkit.engines.loop.reactor"] >= {"socketkit.session", "socketkit.engines.base"}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


#: DESIGN §1's layers, lowest first: a module may import its own layer and those below it
#: (modules outside these, errors.py or endpoints.py, are shared by all of them).
LAYERS = ["codecs layers", "session", "engines plan", "supervisor", "server", "services", "cli __main__"]


def _layer(module: str) -> int | None:
    name = module.removeprefix("socketkit.")
    for rank, members in enumerate(LAYERS):
        for member in members.split():
            if name == member or name.startswith(member + "."):
                return rank
    return None


def test_no_module_imports_a_layer_above_its_own() -> None:
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    upward = []
    for name, path in paths.items():
        own = _layer(name)
        for target in imports(path, set(paths)):
            above = _layer(target)
            if own is not None and above is not None and above > own:
                upward.append(f"{name} -> {target}")
    assert upward == []
