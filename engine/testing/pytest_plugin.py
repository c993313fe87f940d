"""Pytest fixtures for tests of code that calls the engine. Enable them in a ``conftest.py``:

    pytest_plugins = ["engine.testing.pytest_plugin"]

- ``fake_llm_server``: a `FakeServer` on 127.0.0.1 for the session.
- ``fake_llm_settings``: `Settings` that send every provider to that server with a test key.
- ``httpx_pool``: the engine on httpx's own connection pool, which respx mocks; use it in tests
  that mock the engine's HTTP calls with respx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .server import FakeServer

if TYPE_CHECKING:
    from ..settings import Settings


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=7, max_seconds=1800) as server:
        yield server


@pytest.fixture
def fake_llm_settings(fake_llm_server: FakeServer) -> Settings:
    from pydantic import SecretStr

    from ..registry import list_providers
    from ..settings import Settings

    names = list_providers()
    return Settings(api_keys={n: SecretStr("test-key") for n in names},
                    base_urls={n: fake_llm_server.base_url for n in names}, max_retries=0)


@pytest.fixture
def httpx_pool(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GENAI_HTTP_TRANSPORT", "httpx")
    return "httpx"
