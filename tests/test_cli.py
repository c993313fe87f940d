"""The `genai` command line, run in-process (`main(argv)`) and as a real process (`python -m engine`)."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine import CompletionRequest, Settings, render_request
from engine.cli import main
from engine.cli.commands import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from engine.cli.console import Console
from engine.cli.docs import schema_text
from engine.cli.parser import build_parser
from engine.registry import Registry
from engine.testing import FakeServer, Fault

REPO = Path(__file__).resolve().parent.parent
BUNDLED = sorted(Registry(Settings()).names())


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m engine ARGS`` as its own process."""
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


PINNED_PRICES = """\
openai:
  gpt-4o: {input: 2.50, cached_input: 1.25, output: 10.00}
  gpt-4o-mini: {input: 0.15, cached_input: 0.075, output: 0.60}
anthropic:
  claude-sonnet-4-5: {input: 3.00, cache_write: 3.75, cached_input: 0.30, output: 15.00}
"""


@pytest.fixture
def pinned_prices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user pricing file (it wins over pricing.yaml), so price updates do not break these tests."""
    path = write(tmp_path / "pinned-prices.yaml", PINNED_PRICES)
    monkeypatch.setenv("GENAI_PRICING_FILE", str(path))
    return path


@pytest.fixture
def openai_at_server(monkeypatch: pytest.MonkeyPatch, local_server: FakeServer) -> FakeServer:
    monkeypatch.setenv("GENAI_OPENAI_BASE_URL", local_server.base_url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli-0123456789")
    monkeypatch.setenv("GENAI_MAX_RETRIES", "0")
    return local_server


# -- help, usage, errors ------------------------------------------------------------------------------


def test_help_lists_every_command_environment_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == EXIT_OK
    for command in ("complete", "chat", "providers", "models", "check", "render", "cost", "pricing", "schema",
                    "docs", "demo"):
        assert command in result.stdout
    assert "exit codes:" in result.stdout and "130" in result.stdout
    assert "GENAI_PROVIDERS_PATH" in result.stdout


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def subcommands() -> list[str]:
    return sorted(subparsers(build_parser()))


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = cli(capsys, command, "--help")
    assert code == EXIT_OK
    assert "examples:" in out and "genai " in out.split("examples:")[1]


def test_providers_show_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "providers", "show", "--help")
    assert code == EXIT_OK and "examples:" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys)
    assert code == EXIT_OK and "commands:" in out


def test_help_imports_none_of_the_engine_pipeline() -> None:
    code = ("import sys\nfrom engine.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = ['pydantic', 'yaml', 'httpx', 'jinja2', 'engine.spec', 'engine.registry', 'asyncio']\n"
            "print([m for m in heavy if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("args", [["nope"], ["complete", "--bogus"], ["cost", "openai/gpt-4o", "many", "1"]])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = cli(capsys, *args)
    assert code == EXIT_USAGE
    assert "usage:" in err


def test_config_errors_are_one_line_with_exit_2() -> None:
    result = run("complete", "-m", "nowhere/model", "hi")
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("genai: error: 'nowhere/model' does not start with a known provider name")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_missing_api_key_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "complete", "-m", "openai/gpt-4o-mini", "hi")
    assert code == EXIT_USAGE
    assert "no API key for provider 'openai'" in err and "OPENAI_API_KEY" in err


def test_debug_shows_the_traceback() -> None:
    result = run("--debug", "complete", "-m", "nowhere/model", "hi")
    assert result.returncode == EXIT_USAGE
    assert "Traceback" in result.stderr and "genai: error:" in result.stderr
    after = run("complete", "-m", "nowhere/model", "hi", "--debug")  # also after the command name
    assert "Traceback" in after.stderr


def test_no_prompt_is_a_usage_error() -> None:
    result = run("complete", "-m", "ollama", stdin="")
    assert result.returncode == EXIT_USAGE
    assert "empty" in result.stderr


# -- complete -------------------------------------------------------------------------------------------


def test_complete_streams_the_reply_and_prints_stats_on_stderr(capsys: pytest.CaptureFixture[str],
                                                              openai_at_server: FakeServer) -> None:
    code, out, err = cli(capsys, "complete", "-m", "openai/gpt-4o-mini", "Hello", "there")
    assert code == EXIT_OK
    sent = openai_at_server.requests[-1].json()
    assert sent["stream"] is True and sent["messages"] == [{"role": "user", "content": "Hello there"}]
    assert out == openai_at_server.reply_for(sent) + "\n"
    assert re.fullmatch(r"openai/gpt-4o-mini · 2 in, \d+ out tokens · \$0\.\d+ · [\d,]+ ms · finish: stop\n", err)


def test_complete_json_prints_the_unified_response(capsys: pytest.CaptureFixture[str],
                                                   openai_at_server: FakeServer) -> None:
    for extra in ([], ["--no-stream"]):
        code, out, err = cli(capsys, "chat", "-m", "openai", "Hi", "--json", *extra)
        assert code == EXIT_OK and err == ""
        response = json.loads(out)
        assert response["success"] is True and response["provider"] == "openai"
        assert response["content"] == openai_at_server.reply_for(openai_at_server.requests[-1].json())
        assert response["input_tokens"] == 1 and response["cost_usd"] > 0


def test_complete_options_reach_the_request(capsys: pytest.CaptureFixture[str], openai_at_server: FakeServer,
                                            tmp_path: Path) -> None:
    schema = write(tmp_path / "city.yaml", "title: City\ntype: object\nproperties: {name: {type: string}}\n")
    code, out, _ = cli(capsys, "complete", "-m", "openai/gpt-4o", "-s", "Be brief", "-t", "0", "--max-tokens", "9",
                       "--schema", str(schema), "-o", "seed=42", "-o", "user=cli", "--no-stream", "City?")
    assert code == EXIT_OK
    sent = openai_at_server.requests[-1].json()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert sent["temperature"] == 0 and 9 in sent.values()  # under the max-tokens field openai.yaml names
    assert sent["response_format"]["json_schema"]["schema"]["title"] == "City"
    assert sent["seed"] == 42 and sent["user"] == "cli"
    assert json.loads(out) == {"answer": "Hello from the local server — you said: City? ✓"}


def test_complete_reads_the_prompt_from_stdin(local_server: FakeServer) -> None:
    env = {"GENAI_OLLAMA_BASE_URL": local_server.base_url}
    result = run("complete", "-m", "ollama", env=env, stdin="from a pipe\n")
    assert result.returncode == EXIT_OK
    assert result.stdout == "Hello from the local server — you said: from a pipe ✓\n"
    assert "ollama/llama3.2" in result.stderr and "$0" in result.stderr


def test_a_failed_call_exits_1_with_one_line(capsys: pytest.CaptureFixture[str],
                                             openai_at_server: FakeServer) -> None:
    openai_at_server.inject(Fault("status", status=401, message="Incorrect API key provided"))
    code, out, err = cli(capsys, "complete", "-m", "openai", "hi")
    assert code == EXIT_FAILED and out == ""
    assert err.startswith("genai: error: openai/gpt-4.1-mini: auth: ") and "Incorrect API key" in err
    openai_at_server.inject(Fault("status", status=401))
    code, out, _ = cli(capsys, "complete", "-m", "openai", "hi", "--json")
    assert code == EXIT_FAILED and json.loads(out)["error_kind"] == "auth"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_a_call_cleanly_with_exit_130() -> None:
    with FakeServer(chunk_size=7, max_seconds=30) as server:
        server.inject(Fault("timeout", seconds=10))
        env = {**os.environ, "GENAI_OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": "sk-test"}
        process = subprocess.Popen([sys.executable, "-m", "engine", "complete", "-m", "openai", "hi"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   text=True)
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:  # wait until the call is in flight
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    assert process.returncode == EXIT_INTERRUPTED
    assert err == "interrupted\n" and out == ""


# -- providers, models, pricing, cost -------------------------------------------------------------------


def table_rows(out: str) -> dict[str, list[str]]:
    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()[1:]}


def test_providers_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    code, out, _ = cli(capsys, "providers")
    assert code == EXIT_OK
    rows = table_rows(out)
    assert sorted(rows) == BUNDLED
    assert out.splitlines()[0].split() == ["PROVIDER", "MODELS", "DEFAULT", "MODEL", "API", "KEY", "STREAM",
                                           "DESCRIPTION"]
    assert rows["groq"][3] == "GROQ_API_KEY (set)"
    openai = Registry(Settings()).spec("openai")
    assert rows["openai"][1:5] == [str(len(openai.models)), openai.default_model, "OPENAI_API_KEY (not set)", "sse"]
    assert rows["ollama"][3:5] == ["- (no key)", "ndjson"]
    assert "\x1b[" not in out  # not a terminal: no colours


def test_providers_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "providers", "--json")
    listing = {p["name"]: p for p in json.loads(out)}
    assert code == EXIT_OK and sorted(listing) == BUNDLED
    assert listing["anthropic"]["key_env"] == ["GENAI_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"]
    assert listing["anthropic"]["key_set"] is False and listing["ollama"]["local"] is True


def test_providers_show_prints_the_resolved_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "providers", "show", "groq")
    assert code == EXIT_OK
    assert re.match(r"# groq: resolved from .*groq\.yaml <- .*openai\.yaml\n", out)
    data = yaml.safe_load(out)
    assert list(data)[:2] == ["name", "extends"] and data["name"] == "groq"
    assert data["auth"]["env"] == ["GROQ_API_KEY"] and "Bearer" in data["auth"]["value"]
    assert "tojson" in data["request"]["body"]  # inherited from openai.yaml
    code, out, _ = cli(capsys, "providers", "show", "groq", "--defaults", "--json")
    full = json.loads(out)
    assert code == EXIT_OK and full["local"] is False and full["request"]["method"] == "POST"


def test_providers_show_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "providers", "show", "nowhere")
    assert code == EXIT_USAGE and "unknown provider 'nowhere'" in err


def test_a_broken_user_file_is_flagged_in_listings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "mine" / "acme.yaml", "name: acme\nextends: openai\nbase_url: https://a.test\ntypo: 1\n")
    code, out, err = cli(capsys, "providers", "-P", str(tmp_path / "mine"))
    assert code == EXIT_FAILED
    assert "invalid file" in table_rows(out)["acme"][1]
    assert "mine/acme.yaml:4: typo: unknown key" in err


def test_models_lists_prices_and_context(capsys: pytest.CaptureFixture[str], pinned_prices: Path) -> None:
    code, out, _ = cli(capsys, "models")
    rows = table_rows(out)
    assert code == EXIT_OK
    assert rows["openai/gpt-4o-mini"][:6] == ["openai/gpt-4o-mini", "128,000", "16,384", "0.15", "0.60", "0.075"]
    assert rows["anthropic/claude-sonnet-4-5"][6] == "retired 2026-11-30 (use claude-sonnet-5-5)"
    assert rows["anthropic/claude-sonnet-5-5"][6] == "current"
    assert rows["ollama/llama3.2"][3] == "0 (local)"
    code, out, _ = cli(capsys, "models", "anthropic", "--json")
    models = json.loads(out)
    assert {m["provider"] for m in models} == {"anthropic"}
    assert all(m["price"] is not None and m["context_window"] for m in models)
    code, _, err = cli(capsys, "models", "nowhere")
    assert code == EXIT_USAGE and "unknown provider" in err


def test_pricing_table(capsys: pytest.CaptureFixture[str], pinned_prices: Path) -> None:
    code, out, err = cli(capsys, "pricing", "anthropic")
    assert code == EXIT_OK and "USD per million tokens" in err
    row = table_rows(out)["anthropic/claude-sonnet-4-5"]
    assert row[1:5] == ["3.00", "15.00", "0.30", "3.75"]
    code, out, _ = cli(capsys, "pricing", "--json")
    assert json.loads(out)["openai"]["gpt-4o-mini"]["input"] == "0.15"


def test_user_pricing_file_wins(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path) -> None:
    monkeypatch.setenv("GENAI_PRICING_FILE", str(write(tmp_path / "p.yaml", "openai:\n  gpt-4o-mini: "
                                                                            "{input: 1, output: 2}\n")))
    code, out, _ = cli(capsys, "cost", "openai/gpt-4o-mini", "1000000", "1000000", "--json")
    assert code == EXIT_OK and json.loads(out)["cost_usd"] == 3.0


def test_cost(capsys: pytest.CaptureFixture[str], pinned_prices: Path) -> None:
    code, out, _ = cli(capsys, "cost", "openai/gpt-4o-mini", "1000", "500")
    assert code == EXIT_OK
    assert out.splitlines()[0] == "openai/gpt-4o-mini: $0.00045 for 1,000 input + 500 output tokens"
    assert "input $0.15, output $0.60" in out
    code, out, _ = cli(capsys, "cost", "anthropic/claude-sonnet-4-5", "20000", "800", "--cached", "15000", "--json")
    cost = json.loads(out)
    # 5,000 fresh x $3 + 15,000 cached x $0.30 + 800 x $15, per million
    assert code == EXIT_OK and cost["cost_usd_exact"] == "0.0315"
    code, out, _ = cli(capsys, "cost", "ollama", "100", "100")
    assert code == EXIT_OK and out.startswith("ollama/llama3.2: $0 for")


def test_cost_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "cost", "azure-openai/my-deployment", "10", "10")
    assert code == EXIT_FAILED and "no price known for azure-openai/my-deployment" in err
    code, _, err = cli(capsys, "cost", "openai/gpt-4o", "10", "10", "--cached", "11")
    assert code == EXIT_USAGE and "cannot add up to more" in err


# -- render ---------------------------------------------------------------------------------------------


def test_render_prints_the_request_with_the_key_redacted(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SECRET-0123456789")
    code, out, err = cli(capsys, "render", "-m", "anthropic/claude-haiku-4-5", "-s", "Be brief", "Hello")
    assert code == EXIT_OK and err == ""
    head, body = out.split("\n\n", 1)
    assert head.splitlines()[0] == "POST https://api.anthropic.com/v1/messages"
    assert "x-api-key: ***" in head.splitlines() and "SECRET" not in out
    sent = json.loads(body)
    assert body == json.dumps(sent, indent=2, ensure_ascii=False) + "\n"  # pretty-printed
    assert sent["model"] == "claude-haiku-4-5" and sent["system"] == "Be brief"
    assert sent["messages"] == [{"role": "user", "content": "Hello"}]


def test_render_uses_render_request(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`render --json` is exactly what `engine.render_request` (the golden tests' function) gives."""
    monkeypatch.setenv("GROQ_API_KEY", "gsk-SECRET")
    code, out, _ = cli(capsys, "render", "-m", "groq/llama-3.1-8b-instant", "--stream", "--max-tokens", "5",
                       "-o", "seed=1", "--json", "Hi")
    request = CompletionRequest(messages=[{"role": "user", "content": "Hi"}], model="llama-3.1-8b-instant",
                                stream=True, max_tokens=5, extra={"seed": 1})
    assert code == EXIT_OK
    assert json.loads(out) == render_request("groq", request, Settings()).to_dict()


def test_render_without_a_key_uses_a_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "render", "-m", "azure-openai/my-gpt", "Hello")
    assert code == EXIT_OK
    assert "no API key set" in err and "placeholders used: resource" in err
    assert out.startswith("POST https://your-resource.openai.azure.com/openai/deployments/my-gpt/chat/completions")
    assert "api-key: ***" in out


# -- check ----------------------------------------------------------------------------------------------


def test_check_every_bundled_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "check")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert {Path(line.split(":")[0]).name for line in lines[:-1]} == {f"{n}.yaml" for n in BUNDLED} | {"pricing.yaml"}
    assert all(line.endswith(": ok") for line in lines[:-1])
    assert lines[-1] == f"checked {len(BUNDLED)} provider files and 1 pricing file: 0 errors, 0 warnings"


OPENAI_CHILD = "name: broken\nextends: openai\nbase_url: https://example.test/v1\n"

BROKEN = {
    "invalid YAML": ({"broken.yaml": "name: broken\nextends: [openai\ndescription: x\n"},
                     r"broken\.yaml:3: invalid YAML: did not find expected ',' or '\]'"),
    "unknown key": ({"broken.yaml": OPENAI_CHILD + "descripton: typo\n"},
                    r"broken\.yaml:4: descripton: unknown key \(not part of the provider-file format\)"),
    "wrong type": ({"broken.yaml": OPENAI_CHILD + "models:\n  - {id: m, context_window: lots}\n"},
                   r"broken\.yaml:5: models\.0\.context_window: Input should be a valid integer.*"),
    "bad JSONPath": ({"broken.yaml": OPENAI_CHILD + "response:\n  content: $.choices[?(@.x==\n"},
                     r"broken\.yaml:5: response\.content: invalid JSONPath '\$\.choices\[\?\(@\.x=='.*"),
    "Jinja syntax error": ({"broken.yaml": OPENAI_CHILD + "request:\n  path: /chat\n  body: |\n"
                                                          "    {{ {\"model\": model,\n"
                                                          "        \"messages\": messages } | tojson }\n"},
                           r"broken\.yaml:8: request\.body: template syntax error: unexpected '}'"),
    "value without tojson": ({"broken.yaml": OPENAI_CHILD + "request:\n  path: /chat\n  body: |\n"
                                                            "    {\"model\": {{ model }}}\n"},
                             r"broken\.yaml:7: request\.body: body template printed str 'example-model' without "
                             r"'\| tojson'.*\(rendering a sample request\)"),
    "unknown option": ({"broken.yaml": OPENAI_CHILD + "models:\n  - {id: m, options: {temprature: false}}\n"},
                       r"broken\.yaml:5: models\.0\.options\.temprature: unknown option \(declared options: "
                       r"json_mode, max_tokens_field, seed_field, stream_usage, temperature\)"),
    "wrong option type": ({"broken.yaml": OPENAI_CHILD + "options:\n  stream_usage: {default: 'no'}\n"},
                          r"broken\.yaml:5: options\.stream_usage: Value error, default of type boolean.*"),
    "template reads an undeclared option": (
        {"broken.yaml": OPENAI_CHILD + "request:\n  path: /chat\n  body: '{{ {\"m\": options.max_token_field} "
                                       "| tojson }}'\n"},
        r"broken\.yaml:6: request\.body: template reads option 'max_token_field', which is not declared under "
        r"'options' \(declared: json_mode, max_tokens_field, seed_field, stream_usage, temperature\)"),
    "missing extends target": ({"broken.yaml": "name: broken\nextends: nowhere\n"},
                               r"broken\.yaml:2: extends: extends unknown provider 'nowhere' \(known: .*\)"),
    "extends cycle": ({"broken.yaml": "name: broken\nextends: other\n", "other.yaml": "name: other\nextends: broken\n"},
                      r"broken\.yaml:2: extends: extends cycle: broken -> other -> broken"),
    "missing sections": ({"broken.yaml": "name: broken\nbase_url: https://example.test\n"},
                         r"broken\.yaml: Value error, an HTTP provider needs request, response .*"),
    "bad pricing file": ({"pricing.yaml": "openai:\n  gpt-4o: {input: -1, output: 2}\n"},
                         r"pricing\.yaml:2: openai\.gpt-4o\.input: a price is USD per million tokens, "
                         r"from 0 to 10,000; got -1"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_check_reports_each_kind_of_error_like_a_compiler(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          case: str) -> None:
    files, expected = BROKEN[case]
    folder = tmp_path / "mine"
    for name, text in files.items():
        write(folder / name, text)
    target = "mine/pricing.yaml" if "pricing.yaml" in files else "mine/broken.yaml"
    code, out, _ = cli(capsys, "check", target)
    assert code == EXIT_FAILED
    lines = out.splitlines()
    assert re.fullmatch("mine/" + expected, lines[0]), lines[0]
    assert re.fullmatch(r"checked .*: 1 error, 0 warnings", lines[-1])


def test_check_in_a_real_process_prints_no_traceback() -> None:
    folder = Path.cwd() / "mine"
    write(folder / "broken.yaml", OPENAI_CHILD + "descripton: typo\n")
    result = run("check", "mine/broken.yaml")
    assert result.returncode == EXIT_FAILED and result.stderr == ""
    assert result.stdout.splitlines()[0] == "mine/broken.yaml:4: descripton: unknown key (not part of the " \
                                            "provider-file format)"


def test_check_warns_about_paid_models_without_a_price(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "mine" / "paid.yaml", OPENAI_CHILD.replace("broken", "paid")
          + "models:\n  - {id: priced}\n  - {id: unpriced}\npricing:\n  priced: {input: 1, output: 2}\n")
    write(tmp_path / "mine" / "free.yaml", OPENAI_CHILD.replace("broken", "free") + "local: true\n"
          + "models: [{id: m}]\n")
    code, out, _ = cli(capsys, "check", "mine")
    assert code == EXIT_OK
    assert "mine/free.yaml: ok" in out.splitlines()
    assert "mine/paid.yaml:6: models.1: warning: no price for paid model 'unpriced'" in out
    assert out.splitlines()[-1] == "checked 2 provider files: 0 errors, 1 warning"


def test_check_reports_every_broken_file_and_finds_siblings(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    write(folder / "base.yaml", "name: base\nextends: openai\nbase_url: https://base.test/v1\n")
    write(folder / "child.yaml", "name: child\nextends: base\n")  # resolves against its neighbour
    write(folder / "typo.yaml", "name: typo\nextends: base\nbase_ulr: x\n")
    write(folder / "yaml.yaml", "name: [\n")
    code, out, _ = cli(capsys, "check", "mine/child.yaml", "mine/typo.yaml", "mine/yaml.yaml")
    assert code == EXIT_FAILED
    assert out.splitlines()[:3] == ["mine/child.yaml: ok", "mine/typo.yaml:3: base_ulr: unknown key (not part of "
                                    "the provider-file format)", out.splitlines()[2]]
    assert out.splitlines()[2].startswith("mine/yaml.yaml:2: invalid YAML")
    assert out.splitlines()[-1] == "checked 3 provider files: 2 errors, 0 warnings"


def test_check_all_includes_user_folders_and_pricing(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write(tmp_path / "mine" / "acme.yaml", "name: acme\nextends: openai\nbase_url: https://a.test/v1\n")
    monkeypatch.setenv("GENAI_PROVIDERS_PATH", str(tmp_path / "mine"))
    monkeypatch.setenv("GENAI_PRICING_FILE", str(write(tmp_path / "prices.yaml", "nobody:\n  m: {input: 1, "
                                                                                 "output: 1}\n")))
    code, out, _ = cli(capsys, "check")
    assert code == EXIT_OK
    assert "mine/acme.yaml: ok" in out
    assert "prices.yaml:1: nobody: warning: prices for a provider that no provider file defines" in out


def test_check_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "check", "no-such-file.yaml")
    assert code == EXIT_USAGE and err == "genai: error: no-such-file.yaml: no such file or folder\n"


# -- schema and docs ------------------------------------------------------------------------------------


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "schema")
    assert code == EXIT_OK and out == schema_text()
    assert json.loads(out)["properties"]["auth"]["$ref"] == "#/$defs/AuthSpec"
    code, _, _ = cli(capsys, "schema", "-o", "out/provider.schema.json")
    assert code == EXIT_OK and Path("out/provider.schema.json").read_text() == schema_text()
    code, out, _ = cli(capsys, "schema", "--check", str(REPO / "schema" / "provider.schema.json"))
    assert code == EXIT_OK and "up to date" in out
    write(Path("stale.json"), "{}\n")
    code, _, err = cli(capsys, "schema", "--check", "stale.json")
    assert code == EXIT_FAILED and "out of date; run: genai schema -o stale.json" in err


def test_docs_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "docs", "--check", str(REPO / "docs" / "provider-format.md"))
    assert code == EXIT_OK
    code, out, _ = cli(capsys, "docs")
    assert code == EXIT_OK and "### `auth`" in out
    page = write(Path("page.md"), "# Title\n\n<!-- BEGIN GENERATED KEY REFERENCE (genai docs --write "
                                  "docs/provider-format.md) -->\nold\n<!-- END GENERATED KEY REFERENCE -->\n")
    assert cli(capsys, "docs", "--check", str(page))[0] == EXIT_FAILED
    assert cli(capsys, "docs", "--write", str(page))[0] == EXIT_OK
    assert cli(capsys, "docs", "--check", str(page))[0] == EXIT_OK
    assert page.read_text().startswith("# Title\n") and "\nold\n" not in page.read_text()


# -- demo -----------------------------------------------------------------------------------------------


def test_demo_runs_every_provider_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "demo", "--json")
    rows = {row["provider"]: row for row in json.loads(out)}
    assert code == EXIT_OK
    assert sorted(rows) == BUNDLED
    assert {row["result"] for row in rows.values()} <= {"ok", "skipped"}
    for name in ("openai", "anthropic", "ollama", "groq", "openai-responses"):
        assert rows[name]["result"] == "ok", rows[name]
        assert rows[name]["text"] == f"Hello from the local server — you said: Hello {name}, this is the demo. ✓"
    assert rows["anthropic"]["format"] == "anthropic" and rows["ollama"]["format"] == "ollama"
    assert rows["openai-responses"]["format"] == "openai-responses" and rows["openai-responses"]["cost_usd"] > 0
    assert rows["openai"]["cost_usd"] > 0 and rows["ollama"]["cost_usd"] == 0
    for row in rows.values():
        if row["result"] == "skipped":  # (a hook's optional library may be absent when the extras are)
            assert row["error"] in ("no local wire format", "python backend: no local wire format") or \
                (row["error"].startswith("auth hook not available here: ") and "pip install 'genai-engine[" in \
                row["error"]), row


def test_demo_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "demo", "--provider", "anthropic", "--provider", "ollama", "--no-stream")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].startswith("Offline self-test") and "fake server" in lines[1]
    assert lines[4].split() == ["PROVIDER", "FORMAT", "RESULT", "EMBED", "TOKENS", "IN/OUT", "COST", "TIME", "REPLY"]
    assert lines[5].split()[:4] == ["anthropic", "anthropic", "ok", "-"]  # no embeddings
    assert lines[6].split()[:4] == ["ollama", "ollama", "ok", "ok"]
    assert lines[-1].startswith("2 ok, 0 failed, 0 skipped")


def test_demo_fails_for_a_broken_provider(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path / "mine" / "wrong.yaml", "name: wrong\nextends: openai\nbase_url: https://w.test/v1\n"
                                            "stream:\n  chunk:\n    delta: $.choices[0].text\n")
    code, out, _ = cli(capsys, "-P", str(tmp_path / "mine"), "demo", "--provider", "wrong", "--json")
    (row,) = json.loads(out)
    assert code == EXIT_FAILED
    assert row["result"] == "fail" and row["error"].startswith("expected 'Hello from the local server")


def test_demo_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "demo", "--provider", "nowhere")
    assert code == EXIT_USAGE and "unknown provider 'nowhere'" in err


# -- terminal behaviour ---------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _Terminal())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("NO_COLOR", raising=False)
    console = Console()
    assert console.paint("ok", "green") == "\x1b[32mok\x1b[0m"
    assert console.paint("ok", "green", err=True) == "ok"  # stderr is not a terminal here
    assert Console(color=False).paint("ok", "green") == "ok"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Console().paint("ok", "green") == "ok"


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")
@pytest.mark.parametrize(("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False)])
def test_colours_in_a_real_terminal(env: dict[str, str], coloured: bool, pinned_prices: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        process = subprocess.run([sys.executable, "-m", "engine", "cost", "openai/gpt-4o", "1", "1"],
                                 stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **env}, timeout=30)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    assert process.returncode == EXIT_OK
    assert (b"\x1b[" in output) is coloured
    assert b"openai/gpt-4o: $0.0000125" in output


def test_examples_in_help_use_real_commands() -> None:
    """Every `genai ...` line in the help epilogs parses (the examples cannot rot)."""
    parser = build_parser()
    texts = [parser.epilog or ""] + [sub.epilog or "" for sub in subparsers(parser).values()]
    examples = [line.split("genai ", 1)[1] for text in texts for line in text.splitlines()
                if line.strip().startswith(("genai ", "echo", "GENAI_")) and "genai " in line]
    assert len(examples) > 20
    for example in examples:
        import shlex

        words = shlex.split(example.split("|")[0].split("  ")[0])
        try:
            parser.parse_args(words)
        except SystemExit as exc:  # pragma: no cover - shown on failure
            pytest.fail(f"help example does not parse: genai {example}  ({exc})")


def test_check_and_providers_report_broken_files_duplicates_and_overrides(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    write(folder / "a.yaml", OPENAI_CHILD.replace("broken", "twin"))
    write(folder / "b.yaml", OPENAI_CHILD.replace("broken", "twin"))
    write(folder / "groq.yaml", "name: groq\nextends: groq\ndescription: my groq\n")
    (folder / "latin.yaml").write_bytes(b"name: latin\ndescription: caf\xe9\n")
    code, out, _ = cli(capsys, "check", str(folder))
    assert code == EXIT_FAILED
    assert re.search(r"b\.yaml:1: name: a\.yaml in the same folder also defines provider 'twin'", out)
    assert re.search(r"groq\.yaml:1: name: note: overrides provider 'groq' of .*providers\.d/groq\.yaml", out)
    assert re.search(r"latin\.yaml:2: not UTF-8 text", out)
    assert out.splitlines()[-1] == "checked 4 provider files: 2 errors, 0 warnings"
    code, out, err = cli(capsys, "providers", "-P", str(folder))
    assert code == EXIT_FAILED  # listed, with the broken ones named on stderr; the others still load
    assert re.search(r"^openai ", out, re.M) and re.search(r"^latin .*invalid file", out, re.M)
    assert "both define provider 'twin'" in err and "not UTF-8 text" in err
    assert re.search(r"note: .*groq\.yaml overrides provider 'groq'", err)


def test_render_takes_a_whole_request(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "18C"}]
    write(tmp_path / "chat.json", json.dumps({"messages": conversation, "seed": 7}))
    write(tmp_path / "tools.yaml", "- {type: function, function: {name: get_weather, parameters: {type: object}}}\n")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n")
    code, out, _ = cli(capsys, "render", "-m", "openai/gpt-4.1", "--messages", str(tmp_path / "chat.json"),
                       "--tools", str(tmp_path / "tools.yaml"), "--tool-choice", "get_weather",
                       "--image", str(tmp_path / "pic.png"), "--json", "And Rome?")
    assert code == EXIT_OK
    body = json.loads(out)["body"]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "And Rome?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}]
    assert body["tools"][0]["function"]["name"] == "get_weather" and body["seed"] == 7
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_render_refuses_what_the_model_cannot_take(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "render", "-m", "anthropic", "-o", "seed=1", "hi")
    assert code == EXIT_USAGE and "anthropic/claude-sonnet-4-6 does not take seed" in err


# -- the gateway's commands (genai serve itself runs in tests/test_gateway_app.py and test_gateway_serve.py) ------


def test_keys_new_prints_a_key_and_only_its_hash_for_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.gateway.keys import hash_key

    code, out, err = cli(capsys, "keys", "new", "--name", "team-search")
    key = out.strip()
    assert code == EXIT_OK and key.startswith("sk-genai-")
    assert f'{{name: team-search, sha256: "{hash_key(key)}"}}' in err and key not in err


def test_keys_hash_reads_the_key_from_stdin() -> None:
    from engine.gateway.keys import hash_key

    done = run("keys", "hash", stdin="sk-genai-abc\n")
    assert done.returncode == EXIT_OK and done.stdout.strip() == hash_key("sk-genai-abc")
    assert run("keys", "hash", stdin="").returncode == EXIT_USAGE


def test_usage_table_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import asyncio

    from engine.gateway.ledger import Entry, Ledger

    async def fill(path: Path, rows: list[tuple[str, str, float | None]]) -> None:
        ledger = Ledger(path)
        for i, (key, provider, cost) in enumerate(rows):
            await ledger.add(Entry(id=f"{path.stem}-{i}", ts=1_796_000_000, key=key, api="openai", model="m",
                                   stream=False, status=200, provider=provider, served_model="m", input_tokens=1000,
                                   output_tokens=100, cost_usd=cost))
        ledger.close()

    asyncio.run(fill(tmp_path / "a.db", [("team", "openai", 0.25), ("ci", "anthropic", 0.5)]))
    asyncio.run(fill(tmp_path / "b.db", [("team", "openai", 1.0), ("team", "ollama", None)]))
    code, out, err = cli(capsys, "--no-color", "usage", "--db", str(tmp_path / "a.db"), "--db", str(tmp_path / "b.db"),
                         "--by", "key,provider")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "PROVIDER", "REQUESTS", "ERRORS", "TOKENS", "IN", "TOKENS", "OUT", "COST"]
    assert lines[1].split()[:4] == ["ci", "anthropic", "1", "0"]
    assert lines[-1].split()[:2] == ["total", "4"] and "$1.75" in lines[-1]
    assert "1 successful requests had no known price" in err
    code, out, _ = cli(capsys, "usage", "--db", str(tmp_path / "a.db"), "--json")
    assert code == EXIT_OK and [(r["key"], r["requests"]) for r in json.loads(out)] == [("ci", 1), ("team", 1)]
    code, _, err = cli(capsys, "usage", "--db", str(tmp_path / "missing.db"))
    assert code == EXIT_USAGE and "no ledger" in err
    code, _, err = cli(capsys, "usage", "--db", str(tmp_path / "a.db"), "--by", "colour")
    assert code == EXIT_USAGE and "cannot group by 'colour'" in err
    code, _, err = cli(capsys, "usage")
    assert code == EXIT_USAGE and "no gateway config" in err


def test_serve_stops_on_a_bad_config_before_binding(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the [server] extra (installed by [dev])")
    config = write(tmp_path / "gateway.yaml", "keys:\n  - {name: a, key_env: A_GATEWAY_KEY_NOT_SET}\n")
    code, _, err = cli(capsys, "serve", "--config", str(config), "--port", "0")
    assert code == EXIT_USAGE and "A_GATEWAY_KEY_NOT_SET is not set" in err
    code, _, err = cli(capsys, "serve", "--config", str(tmp_path / "nope.yaml"))
    assert code == EXIT_USAGE and "no such file" in err
