"""The package's shape: no import circles inside dmvae/, layers import downwards only, files stay small.

Imports are read from the source with ast (those inside functions too, which run later but still tie the
modules together; those under `if TYPE_CHECKING:` never run and are left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dmvae", "tune", "analysis")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def runtime_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement outside `if TYPE_CHECKING:` blocks."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports (a submodule when `from pkg import submodule`)."""
    modules = {module_name(path): path for path in source_files(package)}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names in runtime_imports(ast.parse(path.read_text())):
            if module.split(".")[0] != package:
                continue
            targets = [f"{module}.{item}" for item in names if f"{module}.{item}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(module)
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circles(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 3
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_layers_import_downwards() -> None:
    """dmvae/ imports neither tune/ nor analysis/ nor Ray; evaluation never imports training; models and
    data never import training or evaluation."""
    graph = import_graph("dmvae")
    for path in source_files("dmvae"):
        for module, _ in runtime_imports(ast.parse(path.read_text())):
            assert module.split(".")[0] not in ("tune", "analysis", "ray"), f"{path} imports {module}"
    for source, targets in graph.items():
        for target in targets:
            if source.startswith("dmvae.evaluation"):
                assert not target.startswith("dmvae.training"), f"{source} imports {target}"
            if source.startswith(("dmvae.models", "dmvae.data")):
                assert not target.startswith(("dmvae.training", "dmvae.evaluation")), f"{source} -> {target}"


def test_the_models_see_the_data_types_only() -> None:
    graph = import_graph("dmvae")
    data_imports = {t for s, ts in graph.items() if s.startswith("dmvae.models") for t in ts if "data" in t}
    assert data_imports == {"dmvae.data.types"}


@pytest.mark.parametrize("package", (*PACKAGES, "tests", "bench"))
def test_no_source_file_is_over_the_line_limit(package: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in source_files(package)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"
