"""The front door: "provider/model" routing, sync and async, streaming with a final response."""

from __future__ import annotations

import asyncio

import pytest

from engine import CompletionResponse, Engine
from engine.errors import ConfigError
from engine.testing import FakeServer

from .conftest import server_settings


def test_sync_complete_and_stream(local_server: FakeServer) -> None:
    with Engine(server_settings(local_server)) as engine:
        reply = engine.complete("groq/llama-3.3-70b-versatile", "hello there")
        assert reply.success and reply.content == local_server.reply_for(local_server.requests[-1].json())
        assert reply.cost_usd is not None and reply.cost_usd > 0

        stream = engine.stream("anthropic/claude-haiku-4-5", [{"role": "user", "content": "stream please"}],
                               max_tokens=50, temperature=0.1)
        deltas = list(stream)
        assert stream.response is not None and stream.response.success
        assert "".join(deltas) == stream.response.content
        body = local_server.requests[-1].json()
        assert body["max_tokens"] == 50 and body["temperature"] == 0.1 and body["stream"] is True


def test_async_complete_and_stream(local_server: FakeServer) -> None:
    async def go() -> tuple[CompletionResponse, CompletionResponse]:
        async with Engine(server_settings(local_server)) as engine:
            reply = await engine.acomplete("ollama/llama3.2", "hi", extra={"top_k": 5}, top_p=0.5)
            stream = engine.astream("openai/gpt-4o-mini", "hi")
            final = await stream.final()
            return reply, final

    reply, final = asyncio.run(go())
    assert reply.success and final.success and final.output_tokens
    sent = local_server.requests[-2].json()
    assert sent["top_k"] == 5 and sent["options"]["top_p"] == 0.5  # extra, and a sampling option in its own place


def test_sync_works_inside_a_running_event_loop(local_server: FakeServer) -> None:
    """Notebooks run a loop in the main thread; the sync API must not need it."""

    async def inside() -> CompletionResponse:
        with Engine(server_settings(local_server)) as engine:
            return engine.complete("openai/gpt-4o-mini", "hi")

    assert asyncio.run(inside()).success


def test_bare_provider_name_uses_its_default_model(local_server: FakeServer) -> None:
    with Engine(server_settings(local_server)) as engine:
        assert engine.complete("openai", "hi").success
        assert local_server.requests[-1].json()["model"] == "gpt-4.1-mini"


def test_default_model_from_settings(local_server: FakeServer) -> None:
    with Engine(server_settings(local_server, default_model="ollama/qwen3")) as engine:
        assert engine.complete(messages="hi").success
        assert local_server.requests[-1].json()["model"] == "qwen3"


def test_unknown_provider_in_model_string() -> None:
    with pytest.raises(ConfigError, match="known provider name"):
        Engine().complete("nosuch/model", "hi")


def test_sync_stream_stopped_early_closes_cleanly(local_server: FakeServer) -> None:
    with Engine(server_settings(local_server)) as engine:
        stream = engine.stream("openai/gpt-4o-mini", "a b c d e f g h")
        first = next(iter(stream))
        stream.close()
        assert first and stream.response is not None and not stream.response.success
