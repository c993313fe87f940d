"""Shared fixtures: settings with test keys, golden files, replayed responses, the local server."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import CompletionResponse, EmbeddingResponse, Settings, list_providers
from engine.registry import Registry
from engine.testing import FakeServer
from engine.testing.replay import replay_client

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden"
FIXTURES = TESTS / "fixtures"
TEST_KEY = "sk-test-SECRET-0123456789"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files from the current output (review the diff!)")


@functools.cache
def provider_env_names() -> frozenset[str]:
    """Every env variable a bundled provider reads its key or config from."""
    registry = Registry(Settings())
    names = set()
    for provider in registry.names():
        spec = registry.spec(provider)
        names.update(spec.auth.env, *(var.env for var in spec.config.values()))
    return frozenset(names)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Tests never see the developer's keys, provider settings or .env file (live tests keep the keys)."""
    monkeypatch.chdir(tmp_path)
    if request.node.get_closest_marker("live"):
        return
    for name in list(os.environ):
        if name.startswith(("GENAI_", "AWS_")) or name in provider_env_names():
            monkeypatch.delenv(name)


def make_settings(**overrides: Any) -> Settings:
    """Settings with a fake key for every bundled provider and near-instant retries."""
    keys = {name: TEST_KEY for name in list_providers(Settings())}
    values: dict[str, Any] = {"api_keys": keys, "retry_initial_delay": 0.001, "retry_max_delay": 0.01,
                              "timeout": 5.0, "provider_config": {
                                  "azure-openai": {"resource": "example-resource"},
                                  "azure-openai-entra": {"resource": "example-resource",
                                                         "access_token": "test-entra-token"},
                                  "vertex-gemini": {"project": "example-project", "location": "us-central1",
                                                    "access_token": "test-google-token"},
                                  "vertex-anthropic": {"project": "example-project", "location": "us-east5",
                                                       "access_token": "test-google-token"}}}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(settings)


class Golden:
    """Compare data with a checked-in JSON file; ``--update-golden`` rewrites it instead."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, path: Path, data: Any) -> None:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"golden file {path.relative_to(TESTS)} is missing; run pytest --update-golden")
        assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), (
            f"{path.relative_to(TESTS)} differs; if the change is intended, run pytest --update-golden "
            "and review the diff"
        )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(request.config.getoption("--update-golden"))


async def replay(registry: Registry, provider: str, request: Any, status: int, body: bytes, *,
                 stream: bool = False, piece: int = 5) -> CompletionResponse:
    """Run a real provider call against a recorded response body."""
    client, _ = replay_client(status, body, piece=piece)
    async with client:
        instance = registry.create(provider, http_client=client)
        if stream:
            result = instance.stream_complete(request)
            deltas = [d async for d in result]
            assert result.response is not None
            assert "".join(deltas) == result.response.content
            return result.response
        return await instance.complete(request)


async def replay_embeddings(registry: Registry, provider: str, request: Any, status: int,
                            body: bytes) -> EmbeddingResponse:
    """Run a real embeddings call against a recorded response body."""
    client, _ = replay_client(status, body, piece=5)
    async with client:
        return await registry.create(provider, http_client=client).embed(request)


@pytest.fixture(scope="session")
def local_server() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=7, max_seconds=600) as server:
        yield server


def server_settings(server: FakeServer, **overrides: Any) -> Settings:
    """Settings pointing every bundled provider at the fake server (it answers any path prefix)."""
    base_urls = {name: server.base_url for name in list_providers(Settings())}
    return make_settings(base_urls=base_urls, **overrides)
