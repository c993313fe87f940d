"""The public names: `engine.__all__`, the lazy-import table and the type-checker imports list the same names,
every one resolves, and moved names still work with a DeprecationWarning."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import engine
import engine.testing

ROOT = Path(__file__).resolve().parent.parent


def type_checking_names(init: Path) -> set[str]:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(alias.asname or alias.name for alias in stmt.names)
    return names


@pytest.mark.parametrize("package", [engine, engine.testing], ids=["engine", "engine.testing"])
def test_the_three_lists_agree(package: object) -> None:
    init = Path(package.__file__)  # type: ignore[attr-defined]
    exports = set(package._EXPORTS)  # type: ignore[attr-defined]
    assert set(package.__all__) == exports  # type: ignore[attr-defined]
    assert type_checking_names(init) == exports


@pytest.mark.parametrize("package", [engine, engine.testing], ids=["engine", "engine.testing"])
def test_every_public_name_resolves_from_its_module(package: object) -> None:
    for name, module in package._EXPORTS.items():  # type: ignore[attr-defined]
        value = getattr(package, name)
        assert value is getattr(__import__(f"{package.__name__}.{module}", fromlist=[name]), name)  # type: ignore[attr-defined]


def test_moved_names_warn_and_still_work() -> None:
    with pytest.warns(DeprecationWarning, match="use engine.AsyncStream"):
        assert engine.StreamResponse is engine.AsyncStream  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="use engine.Stream"):
        assert engine.SyncStream is engine.Stream  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        engine.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_import_engine_loads_no_pipeline_module() -> None:
    code = "import sys, engine; print(sorted(m for m in sys.modules if m.startswith('engine.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


def test_symmetric_stream_names() -> None:
    from engine.client import Engine

    assert Engine.stream.__annotations__["return"] == "Stream"
    assert Engine.astream.__annotations__["return"] == "AsyncStream"
    for sync_name, async_name in (("final", "final"), ("close", "aclose"), ("__iter__", "__aiter__")):
        assert hasattr(engine.Stream, sync_name) and hasattr(engine.AsyncStream, async_name)
