"""The import layering: the pipeline flows one way, with no cycles, and runtime modules never import tooling.

Every ``from .x import`` in ``engine/`` (top-level or inside a function; ``TYPE_CHECKING`` blocks
excluded, since they never run) must point to a module of the same or an earlier stage. A new module
must be given its stage here, so adding one is a deliberate choice.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# The stages, earliest first: the file format and its foundations, then compile, render, send,
# extract/stream, cost, the providers that tie them together, and the front doors.
STAGES: list[set[str]] = [
    {"errors", "_env", "limits", "trust"},
    {"types", "settings", "retry", "jsonpath", "templates", "spec", "shapes", "lifecycle"},
    {"loader"},
    {"compiled", "pricing"},
    {"render"},
    {"transport", "send", "auth"},
    {"extract", "stream"},
    {"provider"},
    {"auth_google", "auth_azure"},  # the bundled auth hooks (their libraries are optional extras)
    {"backend"},
    {"bedrock"},
    {"registry", "router"},
    {"api", "check", "_sync", "client", "audit"},
    {"__init__", "__main__"},
]
TOOLING = ("testing", "cli")  # packages above the pipeline; the runtime never imports them


def rank(module: str) -> int:
    for i, stage in enumerate(STAGES):
        if module in stage:
            return i
    raise AssertionError(f"engine/{module}.py has no stage in tests/test_layering.py STAGES")


def runtime_imports(path: Path) -> set[str]:
    """The engine modules a file imports when it runs (relative imports, resolved to top-level names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    depth = len(path.relative_to(ENGINE).parts) - 1
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            up = node.level - 1 - depth  # how far above engine/ the import starts
            if up > 0:
                continue
            parts = [*path.relative_to(ENGINE).parts[:-1][:depth - (node.level - 1)], *(node.module or "").split(".")]
            parts = [p for p in parts if p]
            names = [parts[0]] if parts else [alias.name for alias in node.names]
        elif node.module and node.module.split(".")[0] == "engine":
            rest = node.module.split(".")[1:]
            names = [rest[0]] if rest else [alias.name for alias in node.names]
        else:
            continue
        found.update(names)
    return found


def modules() -> dict[str, Path]:
    return {p.stem: p for p in ENGINE.glob("*.py")}


def test_every_runtime_module_has_a_stage() -> None:
    for name in modules():
        rank(name)


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_point_to_the_same_or_an_earlier_stage(name: str) -> None:
    path = modules()[name]
    for target in runtime_imports(path):
        assert target not in TOOLING or name in ("__main__",), f"engine/{name}.py imports tooling: {target}"
        if target in TOOLING:
            continue
        assert rank(target) <= rank(name), (
            f"engine/{name}.py (stage {rank(name)}) imports engine/{target}.py (stage {rank(target)}), a later stage")


def test_no_import_cycles() -> None:
    graph = {name: runtime_imports(path) & set(modules()) for name, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_check_itself_sees_imports() -> None:
    # A check that finds nothing could not fail: make sure it reads real imports.
    assert {"compiled", "render", "send", "extract", "stream", "pricing"} <= runtime_imports(ENGINE / "provider.py")
    assert "registry" in runtime_imports(ENGINE / "client.py")
    assert "testing" in runtime_imports(ENGINE / "cli" / "commands.py")


def test_tooling_packages_are_not_imported_by_the_pipeline() -> None:
    for name, path in modules().items():
        if name == "__main__":
            continue
        assert not runtime_imports(path) & set(TOOLING), f"engine/{name}.py imports a tooling package"
