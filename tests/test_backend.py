"""The Python escape hatch: a backend class named in a provider file gets the whole engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import (
    Backend,
    BackendChunk,
    BackendLoadError,
    BackendResult,
    CompletionRequest,
    Engine,
    ErrorKind,
    ProviderError,
    Settings,
    Usage,
)
from engine.errors import ConfigError
from engine.registry import Registry


class EchoBackend(Backend):
    """Answers with the last user message, in two chunks; 'fail' and 'break' trigger errors."""

    async def complete(self, request: CompletionRequest, model: str) -> BackendResult:
        text = request.messages[-1]["content"]
        if text == "fail":
            raise ProviderError("throttled by the echo service", ErrorKind.RATE_LIMIT)
        if text == "crash":
            raise RuntimeError("unexpected")
        return BackendResult(f"echo: {text}", model=f"{model}-v1", finish_reason="stop",
                             usage=Usage(input_tokens=10, output_tokens=4, cached_input_tokens=2), raw={"t": text})

    async def stream(self, request: CompletionRequest, model: str) -> AsyncIterator[BackendChunk]:
        text = request.messages[-1]["content"]
        yield BackendChunk(reasoning="thinking about it", raw={"event": "thought"})
        yield BackendChunk(delta="echo: ")
        if text == "break":
            raise ProviderError("stream broke", ErrorKind.SERVER)
        yield BackendChunk(delta=text, finish_reason="stop")
        yield BackendChunk(usage=Usage(input_tokens=10, output_tokens=4), model=f"{model}-v1")

    async def close(self) -> None:
        EchoBackend.closed = True


EchoBackend.closed = False  # type: ignore[attr-defined]

ECHO = """\
name: echo
description: test backend
docs_url: https://example.com
checked: 2026-11-25
backend: tests.test_backend:EchoBackend
default_model: echo-1
models: [{id: echo-1}]
config:
  region: {env: [ECHO_REGION], default: moon-1}
pricing:
  echo-1: {input: 1, output: 2, cached_input: 0.5}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    (tmp_path / "echo.yaml").write_text(ECHO)
    return Engine(Settings(providers_path=[tmp_path]))


def test_backend_complete_gets_cost_latency_and_config(engine: Engine) -> None:
    response = engine.complete("echo/echo-1", "hello")
    assert response.success and response.content == "echo: hello" and response.model == "echo-1-v1"
    assert response.provider == "echo" and response.latency_ms is not None
    assert response.cost_usd == pytest.approx((8 * 1 + 2 * 0.5 + 4 * 2) / 1e6)
    backend = engine._sync_provider("echo").backend  # type: ignore[attr-defined]
    assert backend.config == {"region": "moon-1"}
    engine.close()
    assert EchoBackend.closed  # type: ignore[attr-defined]


def test_backend_errors_become_typed_failures(engine: Engine) -> None:
    failed = engine.complete("echo", "fail")
    assert not failed.success and failed.error_kind is ErrorKind.RATE_LIMIT
    crashed = engine.complete("echo", "crash")
    assert crashed.error_kind is ErrorKind.SERVER and "RuntimeError: unexpected" in (crashed.error or "")


def test_backend_streams_sync_and_async(engine: Engine) -> None:
    stream = engine.stream("echo", "hi")
    assert list(stream) == ["echo: ", "hi"]
    assert stream.response is not None and stream.response.success and stream.response.output_tokens == 4
    assert stream.response.reasoning == "thinking about it" and stream.response.raw_response

    async def go() -> tuple[list[str], object]:
        result = engine.astream("echo", "break")
        deltas = [d async for d in result]
        return deltas, result.response

    deltas, response = asyncio.run(go())
    assert deltas == ["echo: "]
    assert response.success is False and response.content == "echo: "  # type: ignore[attr-defined]
    assert response.raw_response  # type: ignore[attr-defined]  # the events received before the failure


def test_backend_that_cannot_be_imported_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO.replace("tests.test_backend:EchoBackend", "nowhere.mod:Thing"))
    with pytest.raises(BackendLoadError, match=r"echo\.yaml: backend: cannot import 'nowhere\.mod'"):
        Registry(Settings(providers_path=[tmp_path])).create("echo")


def test_backend_that_is_not_a_backend_subclass(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO.replace("tests.test_backend:EchoBackend", "tests.test_backend:ECHO"))
    with pytest.raises(BackendLoadError, match=r"not a subclass of engine\.Backend"):
        Registry(Settings(providers_path=[tmp_path])).create("echo")


def test_required_backend_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(ECHO.replace("default: moon-1", "required: true"))
    with pytest.raises(ConfigError, match="set GENAI_ECHO_REGION or ECHO_REGION"):
        Registry(Settings(providers_path=[tmp_path])).create("echo")
