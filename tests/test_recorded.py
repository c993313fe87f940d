"""Golden tests for a user's own provider file, end to end: `genai record` against a live API (the fake
server, with a key it checks), then `genai test` offline; a change is caught, and ``--update`` accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from engine import Settings
from engine.cli import main
from engine.registry import Registry
from engine.testing import FakeServer, Fault, check_recorded, record

KEY = "sk-live-0123456789abcdef"
ACME = """\
name: acme
extends: openai
base_url: https://api.acme.example/v1
default_model: acme-large
models: [{id: acme-large}]
auth: {env: [ACME_API_KEY]}
options:
  max_tokens_field: {default: max_tokens}
"""
ALL = ["simple", "conversation", "stream", "json", "tools", "tools_stream", "auth_error"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "acme.yaml").write_text(ACME, encoding="utf-8")
    monkeypatch.setenv("GENAI_PROVIDERS_PATH", str(tmp_path))
    return tmp_path


@pytest.fixture
def live() -> FakeServer:
    with FakeServer(chunk_size=7, max_seconds=120, api_key=KEY) as server:
        yield server


def settings_for(server: FakeServer) -> Settings:
    return Settings(api_keys={"acme": SecretStr(KEY)}, base_urls={"acme": server.base_url + "/v1"}, max_retries=0)


def test_record_then_test_offline(folder: Path, live: FakeServer) -> None:
    live.inject(Fault("echo_key"))  # the first reply repeats the key: it must not be kept anywhere
    assert record("acme", settings=settings_for(live)) == ALL
    out = folder / "acme.tests"
    assert sorted(p.name for p in (out / "golden").iterdir()) == sorted(f"{n}.json" for n in ALL)
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    golden = json.loads((out / "golden" / "simple.json").read_text(encoding="utf-8"))
    assert golden["headers"]["Authorization"] == "***" and golden["url"] == "{base_url}/chat/completions"
    assert json.loads((out / "replies" / "auth_error.json").read_text(encoding="utf-8"))["status"] == 401
    meta = json.loads((out / "replies" / "simple.json").read_text(encoding="utf-8"))
    assert set(meta["headers"]) == {"content-type", "x-request-id"}  # only what the file reads
    expected = yaml.safe_load((out / "expected.yaml").read_text(encoding="utf-8"))
    assert expected["model"] == "acme-large"
    assert expected["scenarios"]["auth_error"] == {
        "success": False, "error_kind": "auth", "error_code": "invalid_api_key", "error_message": "invalid API key",
        "request_id": "req_local0007"}
    assert expected["scenarios"]["simple"]["content"] == "you sent ***"
    assert [c["name"] for c in expected["scenarios"]["tools_stream"]["tool_calls"]] == ["get_weather"] * 2

    # Offline: no server, no key.
    live.stop()
    report = check_recorded("acme")
    assert report.ok, report.summary()
    assert report.passed == 18  # a golden request per scenario; a reply per scenario, streams at 3 splits


def test_a_change_is_caught_and_update_accepts_it(folder: Path, live: FakeServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    record("acme", settings=settings_for(live))
    (folder / "acme.yaml").write_text(ACME.replace("default: max_tokens}", "default: max_completion_tokens}"),
                                      encoding="utf-8")
    assert main(["test", "acme"]) == 1
    out = capsys.readouterr().out
    assert "acme: 11 checks passed, 7 failed" in out
    assert "FAIL simple: the rendered request differs from" in out

    expected_file = folder / "acme.tests" / "expected.yaml"
    expected = yaml.safe_load(expected_file.read_text(encoding="utf-8"))
    expected["scenarios"]["stream"]["content"] = "something else"
    expected_file.write_text(yaml.safe_dump(expected), encoding="utf-8")
    report = check_recorded("acme")
    assert any(f.startswith("stream (replayed in 7-byte pieces): expected") for f in report.failures)

    assert main(["test", "acme", "--update"]) == 0
    assert main(["test", "acme"]) == 0
    golden = json.loads((folder / "acme.tests" / "golden" / "simple.json").read_text(encoding="utf-8"))
    assert golden["body"]["max_completion_tokens"] == 64


def test_record_and_test_from_the_command_line(folder: Path, live: FakeServer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GENAI_ACME_BASE_URL", live.base_url + "/v1")
    monkeypatch.setenv("ACME_API_KEY", KEY)
    where = tmp_path / "fixtures"
    assert main(["record", "acme", "--out", str(where)]) == 0
    assert "recorded simple, conversation" in capsys.readouterr().out
    assert main(["test", "acme", "--dir", str(where)]) == 0
    assert "acme: 18 checks passed, 0 failed" in capsys.readouterr().out
    assert main(["test", "acme"]) == 2  # nothing recorded beside the file


def test_nothing_reachable_records_nothing(folder: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_ACME_BASE_URL", "http://127.0.0.1:9/v1")  # the discard port: refused
    monkeypatch.setenv("ACME_API_KEY", KEY)
    assert main(["record", "acme"]) == 1
    assert "nothing recorded for acme" in capsys.readouterr().err
    assert not (folder / "acme.tests").exists() or not any((folder / "acme.tests").rglob("*.body"))


def test_an_unknown_provider_and_a_registry_can_be_given(folder: Path) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="no recorded fixtures for 'acme'"):
        check_recorded("acme", registry=Registry(Settings()))
