"""Optional extras: without one, what needs it fails with the install hint, and nothing else needs it.

Each test hides the extra's library from this process (``sys.modules[name] = None`` makes ``import name`` raise
``ImportError`` and ``find_spec`` answer ``None``), so these run whether or not the extras are installed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from engine import Engine
from engine.errors import BackendLoadError, ConfigError
from engine.testing import FakeServer

from .conftest import make_settings, server_settings


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]


def test_bedrock_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "boto3", "botocore")
    with Engine(make_settings()) as engine, \
            pytest.raises(BackendLoadError, match=r"needs boto3: pip install 'genai-engine\[bedrock\]'"):
        engine.complete("bedrock/nova-lite", "hi")
    with Engine(make_settings()) as engine:  # every other provider is untouched
        assert engine.quote("openai/gpt-4o-mini").price is not None


@pytest.mark.parametrize(("provider", "library", "extra"), [
    ("vertex-gemini", "google", "google"),
    ("vertex-anthropic", "google", "google"),
    ("azure-openai-entra", "azure", "azure"),
])
def test_a_token_hook_without_its_library_names_the_extra(monkeypatch: pytest.MonkeyPatch, provider: str,
                                                          library: str, extra: str) -> None:
    hide(monkeypatch, library)
    config = dict(make_settings().provider_config[provider])
    del config["access_token"]  # sign in through the library
    settings = make_settings(provider_config={provider: config})
    with Engine(settings) as engine, pytest.raises(BackendLoadError, match=rf"pip install 'genai-engine\[{extra}\]'"):
        engine.complete(f"{provider}/some-model", "hi")


@pytest.mark.parametrize(("provider", "model", "library"), [
    ("vertex-gemini", "gemini-2.5-flash", "google"),
    ("vertex-anthropic", "claude-haiku-4-5@20251001", "google"),
    ("azure-openai-entra", "my-deployment", "azure"),
])
def test_a_token_given_as_it_is_needs_no_library(monkeypatch: pytest.MonkeyPatch, provider: str, model: str,
                                                 library: str) -> None:
    hide(monkeypatch, library)
    with FakeServer(chunk_size=None, max_seconds=30) as server, Engine(server_settings(server)) as engine:
        reply = asyncio.run(engine.acomplete(f"{provider}/{model}", "Hello"))
    assert reply.success, reply.error
    assert server.requests[-1].headers["authorization"].startswith("Bearer test-")


def test_the_price_audit_without_genai_prices_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.audit import audit
    from engine.registry import Registry

    hide(monkeypatch, "genai_prices")
    with pytest.raises(ConfigError, match=r"pip install 'genai-engine\[audit\]'"):
        audit(Registry(make_settings()))


def test_genai_serve_without_the_server_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main

    hide(monkeypatch, "uvicorn")
    config = tmp_path / "gateway.yaml"
    config.write_text("keys: [{name: team, sha256: '" + "0" * 64 + "'}]\n", encoding="utf-8")
    assert main(["serve", "--config", str(config), "--port", "0"]) == 2
    assert "pip install 'genai-engine[server]'" in capsys.readouterr().err


def test_a_redis_url_without_the_redis_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.gateway.redis_state import client

    hide(monkeypatch, "redis")
    with pytest.raises(ConfigError, match=r"GENAI_REDIS_URL is set .* pip install 'genai-engine\[redis\]'"):
        client("redis://127.0.0.1:1/0")
