"""Generated docs stay current: the JSON Schema, the key reference, the walkthrough, the CLI page."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from engine import CompletionRequest, Settings
from engine.cli import main
from engine.cli.docs import check_examples, reference, schema_text, sections, update_reference
from engine.cli.parser import EXIT_CODES, build_parser
from engine.registry import Registry
from engine.render import prepare, render
from engine.testing import FakeServer

REPO = Path(__file__).resolve().parent.parent
FORMAT_PAGE = REPO / "docs" / "provider-format.md"
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/provider.schema.json"


def test_shipped_schema_is_current() -> None:
    assert (REPO / "schema" / "provider.schema.json").read_text(encoding="utf-8") == schema_text(), (
        "schema/provider.schema.json is out of date: run genai schema -o schema/provider.schema.json")


@pytest.mark.parametrize("path", sorted((REPO / "providers.d").glob("*.yaml")), ids=lambda p: p.name)
def test_every_bundled_provider_file_points_editors_at_the_schema(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE, f"make this the first line: {SCHEMA_LINE}"


def test_key_reference_is_current() -> None:
    page = FORMAT_PAGE.read_text(encoding="utf-8")
    assert update_reference(page) == page, (
        "docs/provider-format.md is out of date: run genai docs --write docs/provider-format.md")


@pytest.mark.parametrize("section", sections(), ids=lambda s: s.model.__name__)
def test_every_key_has_a_description_and_a_valid_example(section: Any) -> None:
    for name, info in section.model.model_fields.items():
        assert info.description, f"{section.model.__name__}.{name} needs Field(description=...) in engine/spec.py"
    assert check_examples(section)


def test_reference_documents_every_key() -> None:
    text = reference()
    for section in sections():
        assert f"### {section.heading}" in text
        for name, info in section.model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text


def _tables(text: str) -> list[list[str]]:
    """The first-column names of each markdown table in the text, in order."""
    tables: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("|") and not in_table:
            tables.append([])
        in_table = line.startswith("|")
        if line.startswith("| `"):
            tables[-1].append(line.split("`")[1])
    return tables


def test_template_variables_are_documented() -> None:
    """The variable tables of the Templates section list exactly what prepare() and render() give templates."""
    once: dict[str, Any] = {}
    per_call: dict[str, Any] = {}

    def spy(store: dict[str, Any], result: str) -> Any:
        return lambda context: store.update(context) or result

    compiled = Registry(Settings()).compiled("openai")
    compiled = dataclasses.replace(compiled, base_url=spy(once, "https://example.test"), body=spy(per_call, "{}"))
    prepared = prepare(compiled, Settings(api_keys={"openai": SecretStr("sk-test")}))
    render(prepared, CompletionRequest(messages=[{"role": "user", "content": "Hi"}]))
    page = FORMAT_PAGE.read_text(encoding="utf-8")
    templates = page[page.index('<a id="templates"></a>'):page.index("### Paths")]
    documented_once, documented_per_call = _tables(templates)
    assert sorted(documented_once) == sorted(once)
    assert sorted(documented_per_call) == sorted(per_call)


# -- the walkthrough, run as written ------------------------------------------------------------------


def _walkthrough() -> list[tuple[str, str, str]]:
    """(language, code, text before it) for each code block of the walkthrough section."""
    page = FORMAT_PAGE.read_text(encoding="utf-8")
    section = page[page.index("## Add a provider in five minutes"):page.index("## How the engine reads a file")]
    blocks = []
    position = 0
    for match in re.finditer(r"```(\w+)\n(.*?)```", section, re.S):
        blocks.append((match.group(1), match.group(2), section[position:match.start()]))
        position = match.end()
    return blocks


def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Runs every shell block of the walkthrough in one bash session, in order, and compares the outputs shown.

    The only liberty: the "start the local server" line runs an in-process FakeServer on a free port (with the
    key the line gives), and that port replaces 8765 in the later commands.
    """
    script = ["set -e"]
    expected: dict[int, str] = {}
    page = FORMAT_PAGE.read_text(encoding="utf-8")
    (api_key,) = re.findall(r"python -m engine.testing.server --port 8765 --api-key (\S+)", page)
    with FakeServer(chunk_size=7, max_seconds=120, api_key=api_key) as server:
        port = server.base_url.rsplit(":", 1)[1]
        previous = ""
        for number, (language, code, before) in enumerate(_walkthrough()):
            if language == "yaml":
                (path,) = re.findall(r"Create `([^`]+)`", before)
                script.append(f"cat > {path} <<'EOF'\n{code}EOF")
            elif language == "sh":
                lines = [line for line in code.splitlines() if not line.startswith("python -m engine.testing.server")]
                script.append(f"echo '@@{number}@@'")
                script += [line.replace("8765", port) for line in lines]
            elif language == "text" and previous == "sh" and not before.strip():
                expected[number - 1] = code
            previous = language
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 0, f"walkthrough failed:\n{result.stdout}\n{result.stderr}"
    outputs = dict(re.findall(r"@@(\d+)@@\n(.*?)(?=@@\d+@@\n|\Z)", result.stdout, re.S))
    assert len(expected) >= 3
    for number, text in expected.items():
        assert outputs[str(number)].rstrip("\n") == text.rstrip("\n"), f"output of block {number} differs"
    assert "acme/acme-large · 2 in, 11 out tokens · $0.0000175 · " in result.stderr


def test_walkthrough_error_example(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The error the walkthrough shows for a misspelt key is the one `check` prints."""
    blocks = _walkthrough()
    acme = next(code for language, code, _ in blocks if language == "yaml")
    shown = next(code for language, code, before in blocks if language == "text" and "`evn`" in before)
    folder = Path("my-providers")
    folder.mkdir()
    (folder / "acme.yaml").write_text(acme.replace("  env: [ACME_API_KEY]", "  evn: [ACME_API_KEY]"))
    monkeypatch.setenv("GENAI_PROVIDERS_PATH", str(folder.resolve()))
    assert main(["check", "my-providers/acme.yaml"]) == 1
    assert capsys.readouterr().out.splitlines()[0] == shown.strip()


# -- the CLI page ---------------------------------------------------------------------------------------


def test_cli_page_lists_every_command_and_exit_code() -> None:
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in action.choices:
        shown = {"pricing-audit": "pricing audit"}.get(name, name)  # how it is typed
        assert f"`genai {shown}" in page, f"docs/cli.md does not mention genai {shown}"
    for code in re.findall(r"^  (\d+) ", EXIT_CODES, re.M):
        assert f"\n| {code} |" in page


def test_readme_providers_table_is_current() -> None:
    from engine.cli.docs import providers_table, update_providers_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = providers_table(Registry(Settings()))
    assert update_providers_table(readme, table) == readme, (
        "the providers table in README.md is out of date: run genai docs --providers --write README.md")
    assert "| `openai` | `OPENAI_API_KEY` | SSE | JSON Schema |" in table
    assert "| `ollama` | none | NDJSON |" in table and "local (free)" in table
