"""Checking provider files as a library call: every problem, per file, without running provider code."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

from engine import ConfigError, Settings
from engine.check import Problem, check, module_exists
from engine.loader import bundled_path

CHILD = "name: {name}\nextends: {parent}\nbase_url: https://{name}.test/v1\n"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_bundled_file_is_ok() -> None:
    result = check(Settings())
    assert result.ok and result.errors == 0 and result.warnings == 0
    providers = [r.path.name for r in result.reports if r.kind == "provider"]
    assert sorted(providers) == sorted(p.name for p in bundled_path("providers.d").glob("*.yaml"))
    assert [r.path.name for r in result.reports if r.kind == "pricing"] == ["pricing.yaml"]


def test_a_broken_and_a_good_file_are_reported_separately(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken", CHILD.format(name="broken", parent="openai") + "descripton: typo\n")
    good = write(tmp_path, "good", CHILD.format(name="good", parent="openai"))
    result = check(Settings(), [tmp_path])
    reports = {r.path: r for r in result.reports}
    assert set(reports) == {broken, good}
    assert reports[good].ok and reports[good].problems == []
    assert not reports[broken].ok and not result.ok and result.errors == 1
    assert reports[broken].problems == [Problem(str(broken), 4, "descripton",
                                                "unknown key (not part of the provider-file format)")]


def test_a_problem_shared_through_a_broken_parent_is_reported_once(tmp_path: Path) -> None:
    broken_path = "response:\n  model: $.x[?(@.y ==]\n"
    parent = write(tmp_path, "parent", CHILD.format(name="parent", parent="openai") + broken_path)
    one = write(tmp_path, "one", "name: one\nextends: parent\n")
    two = write(tmp_path, "two", "name: two\nextends: parent\n")
    result = check(Settings(), [one, two])
    assert [len(r.problems) for r in result.reports] == [1, 1]
    assert result.reports[0].problems == result.reports[1].problems
    assert len(result.problems) == 1 and result.errors == 1
    problem = result.problems[0]
    assert (problem.file, problem.line, problem.key) == (str(parent), 5, "response.model")


def test_a_paid_model_without_a_price_is_a_warning(tmp_path: Path) -> None:
    paid = write(tmp_path, "paid", CHILD.format(name="paid", parent="openai") + "models: [{id: priced}, {id: free}]\n"
                 "pricing:\n  priced: {input: 1, output: 2}\n")
    result = check(Settings(), [paid])
    (problem,) = result.problems
    assert problem.warning and problem.key == "models.1" and "'free'" in problem.message
    assert result.reports[0].ok and result.ok and (result.errors, result.warnings) == (0, 1)
    assert problem.format() == f"{paid}:4: models.1: warning: {problem.message}"


def test_a_missing_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        check(Settings(), [tmp_path / "nope.yaml"])
    with pytest.raises(ConfigError, match="no such file"):
        check(Settings(), pricing=[tmp_path / "pricing.yaml"])


@pytest.mark.parametrize(("name", "found"), [("json", True), ("json.decoder", True), ("sys", True),
                                              ("engine.bedrock", True), ("nope.nothing", False),
                                              ("json.nothing", False)])
def test_module_exists(name: str, found: bool) -> None:
    assert module_exists(name) is found


def test_module_exists_imports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "mk_module.py").write_text(code)
    (tmp_path / "mk_package").mkdir()
    (tmp_path / "mk_package" / "__init__.py").write_text(code)
    (tmp_path / "mk_package" / "sub.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module_exists("mk_module") and module_exists("mk_package.sub")
    assert not module_exists("mk_package.other")
    assert not marker.exists() and "mk_package" not in sys.modules


def test_check_locates_a_backend_without_importing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "mk_backend.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    good = write(tmp_path / "p", "good", "name: good\nbackend: mk_backend:Backend\n")
    bad = write(tmp_path / "p", "bad", "name: bad\nbackend: mk_missing:Backend\n")
    reports = {r.path: r for r in check(Settings(), [good, bad]).reports}
    assert reports[good].ok and not marker.exists()
    assert reports[bad].problems == [Problem(str(bad), 2, "backend", "cannot find Python module 'mk_missing'")]


class _VirtualFinder(importlib.abc.MetaPathFinder):
    """Finds one module the way setuptools' editable installs do: through sys.meta_path, not sys.path."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, None) if name == "mk_editable_backend" else None


def test_module_exists_sees_meta_path_finders_like_editable_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, _VirtualFinder()])
    assert importlib.util.find_spec("mk_editable_backend") is not None
    assert module_exists("mk_editable_backend")
