"""Tool calls read from recorded replies and streams in each wire format (tests/fixtures/tools/), streams
replayed in 1-, 7- and 4096-byte pieces: the calls come out whole and in order, with valid JSON arguments, the
text deltas join to exactly the content, and the typed events reassemble into the same calls."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from engine import CompletionRequest, CompletionResponse, StreamEvent
from engine.registry import Registry
from engine.testing import replay_client

from .conftest import FIXTURES, make_settings

TOOLS = FIXTURES / "tools"
REGISTRY = Registry(make_settings())
ASK = [{"role": "user", "content": "Weather in Paris and Rome?"}]
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

# provider: (content, call ids (None: made by the engine), reasoning, native finish reason)
EXPECTED: dict[str, tuple[str, list[str | None], str | None, str]] = {
    "openai": ("Checking both.", ["call_Pa1", "call_Ro2"], None, "tool_calls"),
    "anthropic": ("Checking both.", ["toolu_Pa1", "toolu_Ro2"], "Two cities, two calls.", "tool_use"),
    "gemini": ("Checking both.", [None, None], None, "STOP"),
    "cohere": ("", ["get_weather_pa1", "get_weather_ro2"], "I will check both cities.", "TOOL_CALL"),
    "ollama": ("Checking both.", ["call_k3j9x2ab", "call_m4n8p1cd"], None, "stop"),
    "mistral": ("", ["Pa1bCdEf2", "Ro2gHiJk3"], None, "tool_calls"),
    "openai-responses": ("Checking both.", ["call_Pa1", "call_Ro2"], "Two cities, two calls.", "completed"),
}
MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-3.8-flash",
          "cohere": "command-a-03-2025", "ollama": "qwen3", "mistral": "mistral-small-latest",
          "openai-responses": "gpt-5-mini"}


def run(provider: str, stream: bool, piece: int = 4096) -> tuple[CompletionResponse, list[StreamEvent]]:
    name = "stream.txt" if stream else "response.json"
    body = (TOOLS / provider / name).read_bytes()
    content_type = {"ollama": "application/x-ndjson"}.get(provider, "text/event-stream") if stream else \
        "application/json"

    async def go() -> tuple[CompletionResponse, list[StreamEvent]]:
        client, _ = replay_client(200, body, {"content-type": content_type}, piece=piece)
        async with client, REGISTRY.create(provider, http_client=client) as instance:
            request = CompletionRequest(messages=ASK, tools=WEATHER, model=MODELS[provider])
            if not stream:
                return await instance.complete(request), []
            result = instance.stream_complete(request)
            events = [event async for event in result.events()]
            assert result.response is not None
            return result.response, events

    return asyncio.run(go())


def check_calls(provider: str, response: CompletionResponse) -> None:
    content, ids, reasoning, native = EXPECTED[provider]
    assert response.success, response.error
    assert response.content == content
    assert [(c.name, c.args()) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    for call, expected_id in zip(response.tool_calls, ids, strict=True):
        assert call.id == expected_id if expected_id else call.id.startswith("call_")
    assert response.reasoning == reasoning
    assert (response.finish_reason, response.native_finish_reason) == ("tool_calls", native)


@pytest.mark.parametrize("provider", list(EXPECTED))
def test_a_reply_with_two_calls(provider: str) -> None:
    check_calls(provider, run(provider, stream=False)[0])


@pytest.mark.parametrize("piece", [1, 7, 4096])
@pytest.mark.parametrize("provider", list(EXPECTED))
def test_a_stream_with_two_calls_at_every_split(provider: str, piece: int) -> None:
    response, events = run(provider, stream=True, piece=piece)
    check_calls(provider, response)
    texts = [e.text for e in events if e.type == "text"]
    assert "".join(texts) == response.content
    # The typed events rebuild the same calls: a start (index, id, name), then argument pieces by index.
    rebuilt: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.type == "tool_call":
            assert event.index not in rebuilt
            rebuilt[event.index or 0] = {"id": event.id, "name": event.name, "arguments": ""}
        elif event.type == "tool_arguments":
            rebuilt[event.index or 0]["arguments"] += event.text
    assert [(r["name"], json.loads(r["arguments"])) for _, r in sorted(rebuilt.items())] == [
        (c.name, c.args()) for c in response.tool_calls]
    assert events[-1].type == "end" and events[-1].response is response
    assert [e.type for e in events].count("usage") == 1


@pytest.mark.parametrize("provider", ["openai", "openai-responses"])
def test_interleaved_pieces_come_out_whole_and_in_order(provider: str) -> None:
    response, events = run(provider, stream=True, piece=1)
    pieces = [(e.index, e.text) for e in events if e.type == "tool_arguments"]
    assert [i for i, _ in pieces] == [0, 1, 0, 1, 0]  # as the stream interleaved them
    assert [c.arguments for c in response.tool_calls] == ['{"city": "Paris"}', '{"city": "Rome"}']


def test_engine_made_ids_are_stable_between_streamed_and_whole_replies() -> None:
    whole, _ = run("gemini", stream=False)
    streamed, _ = run("gemini", stream=True, piece=7)
    assert [c.id for c in whole.tool_calls] == [c.id for c in streamed.tool_calls]
    assert len({c.id for c in whole.tool_calls}) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_opaque_replay_data_is_kept_on_the_message(stream: bool) -> None:
    gemini, _ = run("gemini", stream=stream)
    assert [c.signature for c in gemini.tool_calls] == ["c2lnLWdlbQ==", None]
    assert gemini.message["tool_calls"][0]["signature"] == "c2lnLWdlbQ=="
    anthropic, _ = run("anthropic", stream=stream)
    assert anthropic.thinking == [{"text": "Two cities, two calls.", "signature": "EqQBsig=="}]
    assert anthropic.message["thinking"] == anthropic.thinking
    responses, _ = run("openai-responses", stream=stream)  # a reasoning item: its id and encrypted content
    assert responses.thinking == [{"text": "Two cities, two calls.", "redacted": "gAAAAABencT1==", "id": "rs_T1"}]
    assert responses.message["thinking"] == responses.thinking


def test_replaying_the_message_sends_the_opaque_data_back() -> None:
    for provider, stream in (("gemini", False), ("anthropic", True), ("openai-responses", True),
                             ("openai-responses", False)):
        response, _ = run(provider, stream=stream)
        follow_up = [*ASK, response.message, *({"role": "tool", "tool_call_id": c.id, "content": "18C"}
                                               for c in response.tool_calls)]
        body = REGISTRY.create(provider).render(  # type: ignore[attr-defined]
            CompletionRequest(messages=follow_up, tools=WEATHER, model=MODELS[provider])).json
        if provider == "gemini":
            text, first, second = body["contents"][1]["parts"]
            assert text == {"text": "Checking both."} and first["thoughtSignature"] == "c2lnLWdlbQ=="
            assert "thoughtSignature" not in second
        elif provider == "anthropic":
            assert body["messages"][1]["content"][0] == {"type": "thinking", "thinking": "Two cities, two calls.",
                                                         "signature": "EqQBsig=="}
        else:  # the reasoning item first, as it came, then the text, the calls and their outputs as items
            summary = [{"type": "summary_text", "text": "Two cities, two calls."}]
            call = {"type": "function_call", "name": "get_weather"}
            assert body["input"][1:] == [
                {"type": "reasoning", "id": "rs_T1", "summary": summary, "encrypted_content": "gAAAAABencT1=="},
                {"type": "message", "role": "assistant", "content": "Checking both."},
                {**call, "call_id": "call_Pa1", "arguments": '{"city": "Paris"}'},
                {**call, "call_id": "call_Ro2", "arguments": '{"city": "Rome"}'},
                {"type": "function_call_output", "call_id": "call_Pa1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_Ro2", "output": "18C"}]
            assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
