"""The Bedrock backend: real boto3 against a local Bedrock runtime wire server, through the engine's front door.

Every socket is on 127.0.0.1; credentials are fake and the AWS config files point nowhere. A live test
runs only with real AWS credentials and a region (``pytest -m live``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="the [bedrock] extra (installed by [dev])")

from engine import CompletionRequest, ConfigError, Engine, ErrorKind, ProviderFileError, Settings
from engine.backend import BackendProvider
from engine.bedrock import (
    BedrockBackend,
    StreamReader,
    content_blocks,
    converse_messages,
    converse_params,
    tool_use_id,
    unified_usage,
)
from engine.errors import ProviderError
from engine.pricing import Usage, cost_of
from engine.registry import Registry
from engine.testing.bedrock import (
    USAGE,
    BedrockServer,
    Invalid,
    check_conversation,
    encode_message,
    event_frame,
    exception_frame,
)
from engine.testing.bedrock import BedrockFault as Fault

from .conftest import make_settings

SCHEMA = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}
CLAUDE = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
FAKE_KEY = "AKIDTESTBEDROCK0001"

LIVE_REGION = next(
    (v for k in ("GENAI_BEDROCK_REGION", "AWS_REGION", "AWS_DEFAULT_REGION") if (v := os.environ.get(k))), None)
LIVE_CREDENTIALS = any(os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"))
LIVE_MODEL = os.environ.get("GENAI_BEDROCK_LIVE_MODEL", "nova-lite")


@pytest.fixture(autouse=True)
def _fake_aws(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake keys and no AWS config files, so nothing reaches a real account (live tests excepted)."""
    if request.node.get_closest_marker("live"):
        return
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def server() -> Iterator[BedrockServer]:
    with BedrockServer(max_seconds=60) as running:
        yield running


@pytest.fixture
def fresh(server: BedrockServer) -> Iterator[BedrockServer]:
    """The shared server with its request log and options reset."""
    server.requests.clear()
    server.reasoning, server.redacted, server.tool_text, server.chunk_size, server.aborted = None, None, None, 7, 0
    yield server
    assert server.next_fault() is None, "a test left an unused fault behind"


def bedrock_settings(server: BedrockServer, **overrides: Any) -> Settings:
    config = {"endpoint_url": server.endpoint_url, "region": "us-east-1"}
    return make_settings(provider_config={"bedrock": config}, **overrides)


def run_complete(settings: Settings, request: CompletionRequest) -> Any:
    async def go() -> Any:
        async with Registry(settings).create("bedrock") as provider:
            return await provider.complete(request)
    return asyncio.run(go())


def run_stream(settings: Settings, request: CompletionRequest) -> tuple[list[str], Any]:
    async def go() -> tuple[list[str], Any]:
        async with Registry(settings).create("bedrock") as provider:
            stream = provider.stream_complete(request)
            deltas = [delta async for delta in stream]
            return deltas, stream.response
    return asyncio.run(go())


def price_of(model: str, usage: Usage) -> float:
    price = Registry(Settings()).prices.price("bedrock", model)
    assert price is not None
    cost = cost_of(price, usage)
    assert cost is not None
    return float(cost)


FULL_USAGE = Usage(input_tokens=132, output_tokens=5, cached_input_tokens=100, cache_write_tokens=20)
TURNS: list[dict[str, Any]] = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": [{"type": "text", "text": "And 3+3? ünïcödé"}, {"cachePoint": {"type": "default"}}]},
]


# -- the wire server's event-stream encoding -------------------------------
def test_event_stream_frames_decode_with_botocore() -> None:
    from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

    frames = event_frame("contentBlockDelta", {"delta": {"text": "Hé"}})
    frames += exception_frame("throttlingException", "slow")
    buffer = EventStreamBuffer()
    for i in range(len(frames)):  # one byte at a time: every split point
        buffer.add_data(frames[i:i + 1])
    messages = list(buffer)
    assert [m.headers[":message-type"] for m in messages] == ["event", "exception"]
    assert messages[0].headers[":event-type"] == "contentBlockDelta"
    assert json.loads(messages[0].payload) == {"delta": {"text": "Hé"}}
    assert messages[1].headers[":exception-type"] == "throttlingException"

    broken = bytearray(encode_message({":message-type": "event"}, b"{}"))
    broken[-6] ^= 1
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(broken))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


# -- Converse and ConverseStream over a socket ------------------------------
def test_complete_sends_a_signed_converse_request(fresh: BedrockServer) -> None:
    fresh.reasoning = "Let me add."
    request = CompletionRequest(messages=TURNS, model="claude-haiku-4-5", temperature=0.2, max_tokens=64,
                                extra={"top_p": 0.9, "stop": "END"})
    result = run_complete(bedrock_settings(fresh), request)

    sent = fresh.requests[-1]
    assert sent.path == "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    auth = sent.headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={FAKE_KEY}/") and "/us-east-1/bedrock/aws4_request" in auth
    assert "Signature=" in auth and sent.headers["X-Amz-Date"]
    assert sent.body == {
        "system": [{"text": "Be terse."}],
        "messages": [
            {"role": "user", "content": [{"text": "What is 2+2?"}]},
            {"role": "assistant", "content": [{"text": "4"}]},
            {"role": "user", "content": [{"text": "And 3+3? ünïcödé"}, {"cachePoint": {"type": "default"}}]},
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
    }
    assert result.success, result.error
    assert (result.content, result.provider, result.model, result.finish_reason, result.native_finish_reason) == (
        "Hello from Bedrock!", "bedrock", CLAUDE, "stop", "end_turn")
    assert result.reasoning == "Let me add." and result.thinking == [{"text": "Let me add.", "signature": "sig"}]
    assert result.tool_calls == []
    # Bedrock's inputTokens (12) leaves out the 100 cache reads and 20 cache writes.
    assert (result.input_tokens, result.output_tokens, result.cached_input_tokens, result.cache_write_tokens) == (
        132, 5, 100, 20)
    assert result.cost_usd == pytest.approx(price_of(CLAUDE, FULL_USAGE))
    assert result.cost_usd == pytest.approx(float((12 * Decimal("1") + 100 * Decimal("0.1") + 20 * Decimal("1.25")
                                                   + 5 * Decimal("5")) / 1_000_000))
    assert result.raw_response["usage"] == USAGE and result.latency_ms > 0


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_stream_yields_text_deltas_then_usage_and_cost(fresh: BedrockServer, chunk_size: int) -> None:
    fresh.chunk_size, fresh.reasoning = chunk_size, "hidden thoughts"
    request = CompletionRequest(messages=TURNS, model="nova-pro", max_tokens=32, stream=True)
    deltas, result = run_stream(bedrock_settings(fresh), request)

    assert fresh.requests[-1].path == "/model/amazon.nova-pro-v1%3A0/converse-stream"
    assert "Authorization" in fresh.requests[-1].headers
    assert deltas == ["Hello ", "from ", "Bedrock!"]
    assert result.success, result.error
    assert result.content == "Hello from Bedrock!"
    assert (result.finish_reason, result.native_finish_reason) == ("stop", "end_turn")
    assert result.reasoning == "hidden thoughts"
    assert result.thinking == [{"text": "hidden thoughts", "signature": "sig"}]  # assembled from its deltas
    assert (result.input_tokens, result.cached_input_tokens, result.cache_write_tokens) == (132, 100, 20)
    assert result.cost_usd == pytest.approx(price_of("amazon.nova-pro-v1:0", FULL_USAGE))
    assert any("metadata" in event for event in result.raw_response)


@pytest.mark.parametrize("stream", [False, True])
def test_json_output_through_structured_output(fresh: BedrockServer, stream: bool) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="claude-sonnet-4-5",
                                output_schema=SCHEMA)
    settings = bedrock_settings(fresh)
    result = run_stream(settings, request)[1] if stream else run_complete(settings, request)
    body = fresh.requests[-1].body
    text_format = body["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema" and text_format["structure"]["jsonSchema"]["name"] == "Answer"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == SCHEMA  # a JSON string, not an object
    assert "toolConfig" not in body
    assert result.success and json.loads(result.content) == {"answer": "Hello from Bedrock!"}


@pytest.mark.parametrize("stream", [False, True])
def test_json_output_through_a_forced_tool(fresh: BedrockServer, stream: bool) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-lite", output_schema=SCHEMA)
    if stream:
        deltas, result = run_stream(bedrock_settings(fresh), request)
        assert len(deltas) > 1 and "".join(deltas) == result.content  # streamed as toolUse input fragments
    else:
        result = run_complete(bedrock_settings(fresh), request)
    tool_config = fresh.requests[-1].body["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": "Answer"}}
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": SCHEMA}
    # The forced tool's input is the reply, not a call: no tool calls, and a turn that finished.
    assert result.success and (result.finish_reason, result.native_finish_reason) == ("stop", "end_turn")
    assert result.tool_calls == [] and json.loads(result.content) == {"answer": "Hello from Bedrock!"}


# -- tools ------------------------------------------------------------------------
WEATHER: dict[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
PARIS_ROME = [("tooluse_01", "get_weather", {"city": "Paris"}), ("tooluse_02", "get_weather", {"city": "Rome"})]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00fake"
PDF = b"%PDF-1.7 fake"


def calls_of(response: Any) -> list[tuple[str, str, Any]]:
    return [(call.id, call.name, call.args()) for call in response.tool_calls]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_sync(fresh: BedrockServer, stream: bool) -> None:
    fresh.tool_text = "Looking both up."
    with Engine(bedrock_settings(fresh)) as engine:
        if stream:
            handle = engine.stream("bedrock/claude-haiku-4-5", ASK, tools=[WEATHER], tool_choice="auto")
            deltas = list(handle)
            result = handle.final()
            assert "".join(deltas) == "Looking both up."
        else:
            result = engine.complete("bedrock/claude-haiku-4-5", ASK, tools=[WEATHER], tool_choice="auto")
    assert result.success, result.error
    assert calls_of(result) == PARIS_ROME
    assert result.content == "Looking both up."  # text blocks only; the calls are not content
    assert (result.finish_reason, result.native_finish_reason) == ("tool_calls", "tool_use")
    assert fresh.requests[-1].body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "The weather in a city.",
                                "inputSchema": {"json": WEATHER["function"]["parameters"]}}}],
        "toolChoice": {"auto": {}}}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_async(fresh: BedrockServer, stream: bool) -> None:
    async def go() -> Any:
        async with Engine(bedrock_settings(fresh)) as engine:
            if stream:
                return await engine.astream("bedrock/nova-pro", ASK, tools=[WEATHER]).final()
            return await engine.acomplete("bedrock/nova-pro", ASK, tools=[WEATHER])

    result = asyncio.run(go())
    assert result.success and calls_of(result) == PARIS_ROME and result.content == ""
    assert result.finish_reason == "tool_calls"
    assert "toolChoice" not in fresh.requests[-1].body["toolConfig"]  # no choice given: Converse's default (auto)


def test_stream_events_show_the_calls_forming(fresh: BedrockServer) -> None:
    with Engine(bedrock_settings(fresh)) as engine:
        events = list(engine.stream("bedrock/claude-haiku-4-5", ASK, tools=[WEATHER]).events())
    starts = [(e.index, e.id, e.name) for e in events if e.type == "tool_call"]
    assert starts == [(0, "tooluse_01", "get_weather"), (1, "tooluse_02", "get_weather")]
    pieces = [e for e in events if e.type == "tool_arguments"]
    assert len(pieces) > 4, "the input arrives in several pieces per call"
    assert ["".join(e.text for e in pieces if e.index == i) for i in (0, 1)] == [
        '{"city": "Paris"}', '{"city": "Rome"}']
    # Converse blocks are sequential: every piece of the first call comes before the second call starts.
    second = next(i for i, e in enumerate(events) if e.type == "tool_call" and e.index == 1)
    assert all(e.index == 0 for e in events[:second] if e.type == "tool_arguments")
    assert events[-1].type == "end" and events[-1].response is not None
    assert calls_of(events[-1].response) == PARIS_ROME


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip(fresh: BedrockServer, stream: bool) -> None:
    """Call, answer both calls, get the final reply; the server checks the native follow-up (thinking included)."""
    fresh.reasoning = "Two cities: two calls."
    model, messages = "bedrock/claude-sonnet-4-5", list(ASK)
    with Engine(bedrock_settings(fresh)) as engine:
        def call() -> Any:
            if stream:
                return engine.stream(model, messages, tools=[WEATHER]).final()
            return engine.complete(model, messages, tools=[WEATHER])

        first = call()
        assert first.success and first.finish_reason == "tool_calls", first.error
        messages.append(first.message)
        for tool_call, temperature in zip(first.tool_calls, (18, 24), strict=True):
            result = json.dumps({"temp_c": temperature})
            messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": result})
        final = call()
    assert final.success, final.error
    assert final.content == 'Results: {"temp_c": 18}; {"temp_c": 24}'
    assert (final.finish_reason, final.tool_calls) == ("stop", [])
    sent = fresh.requests[-1].body["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Two cities: two calls.", "signature": "sig"}}},
            {"toolUse": {"toolUseId": "tooluse_01", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_02", "name": "get_weather", "input": {"city": "Rome"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "tooluse_01", "content": [{"json": {"temp_c": 18}}]}},
            {"toolResult": {"toolUseId": "tooluse_02", "content": [{"json": {"temp_c": 24}}]}}]},
    ]


def test_the_server_refuses_a_wrong_follow_up(fresh: BedrockServer) -> None:
    """The round trip above proves something: the server names what is wrong with a bad native follow-up."""
    with Engine(bedrock_settings(fresh, max_retries=0)) as engine:
        first = engine.complete("bedrock/nova-pro", ASK, tools=[WEATHER])
        one_answer = [*ASK, first.message, {"role": "tool", "tool_call_id": "tooluse_01", "content": "18 C"}]
        result = engine.complete("bedrock/nova-pro", one_answer, tools=[WEATHER])
    assert result.error_kind is ErrorKind.INVALID_REQUEST and result.status_code == 400
    assert "do not answer the toolUse blocks" in (result.error or "")
    with pytest.raises(Invalid, match="toolConfig field must be defined"):
        check_conversation([{"role": "user", "content": [{"toolResult": {}}]}], {})
    with pytest.raises(Invalid, match="alternate"):
        check_conversation([{"role": "user", "content": []}, {"role": "user", "content": []}], {})


def test_redacted_thinking_comes_back_as_base64_and_is_replayed_as_bytes(fresh: BedrockServer) -> None:
    fresh.redacted = b"\x00opaque\xff"
    settings = bedrock_settings(fresh)
    request = CompletionRequest(messages=ASK, model="claude-sonnet-4-5", tools=[WEATHER])
    complete, streamed = run_complete(settings, request), run_stream(settings, request)[1]
    assert complete.thinking == streamed.thinking == [{"redacted": "AG9wYXF1Zf8="}]
    assert calls_of(streamed) == calls_of(complete) == PARIS_ROME
    params = converse_params(request.model_copy(update={"messages": [*ASK, complete.message]}), "m", {})
    assert params["messages"][1]["content"][0] == {"reasoningContent": {"redactedContent": b"\x00opaque\xff"}}


@pytest.mark.parametrize("stream", [False, True])
def test_json_output_with_tools_through_a_forced_tool(fresh: BedrockServer, stream: bool) -> None:
    """With the caller's tools, the model must call one of them or the answer tool; only real calls are calls."""
    request = CompletionRequest(messages=ASK, model="nova-lite", output_schema=SCHEMA, tools=[WEATHER])
    settings = bedrock_settings(fresh)
    result = run_stream(settings, request)[1] if stream else run_complete(settings, request)
    config = fresh.requests[-1].body["toolConfig"]
    assert [tool["toolSpec"]["name"] for tool in config["tools"]] == ["get_weather", "Answer"]
    assert config["toolChoice"] == {"any": {}}
    assert calls_of(result) == PARIS_ROME and result.finish_reason == "tool_calls"

    reader = StreamReader("Answer")
    start = {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "Answer"}}}}
    chunks = [chunk for event in (
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Nova's preamble"}}}, start,
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"answer"'}}}},
        {"messageStop": {"stopReason": "tool_use"}}) for chunk in reader.read(event)]
    assert [c.delta for c in chunks if c.delta] == ['{"answer"']
    assert not any(c.tool_call for c in chunks) and chunks[-1].finish_reason == "end_turn"


# -- errors -----------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("name", "status", "kind"), [
    ("ThrottlingException", 429, ErrorKind.RATE_LIMIT),
    ("ValidationException", 400, ErrorKind.INVALID_REQUEST),
    ("AccessDeniedException", 403, ErrorKind.AUTH),
    ("UnrecognizedClientException", 403, ErrorKind.AUTH),
    ("ResourceNotFoundException", 404, ErrorKind.NOT_FOUND),
    ("ModelNotReadyException", 429, ErrorKind.SERVER),
    ("ServiceUnavailableException", 503, ErrorKind.SERVER),
])
def test_error_responses_map_to_unified_kinds(fresh: BedrockServer, name: str, status: int, kind: ErrorKind,
                                              stream: bool) -> None:
    fresh.inject(Fault("error", name, message="nope"))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    settings = bedrock_settings(fresh, max_retries=0)
    result = run_stream(settings, request)[1] if stream else run_complete(settings, request)
    assert not result.success
    assert (result.error_kind, result.status_code) == (kind, status)
    assert result.error == f"HTTP {status}: nope ({name})"
    assert len(fresh.requests) == 1


def test_retries_follow_the_engine_policy(fresh: BedrockServer) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    fresh.inject(Fault("error", "ThrottlingException"), Fault("error", "ServiceUnavailableException"))
    assert run_complete(bedrock_settings(fresh, max_retries=2), request).success
    assert len(fresh.requests) == 3

    fresh.requests.clear()
    fresh.inject(*[Fault("error", "ThrottlingException")] * 3)
    result = run_stream(bedrock_settings(fresh, max_retries=2), request)[1]
    assert result.error_kind is ErrorKind.RATE_LIMIT and len(fresh.requests) == 3

    fresh.requests.clear()
    fresh.inject(Fault("error", "ValidationException"))
    assert run_complete(bedrock_settings(fresh, max_retries=2), request).error_kind is ErrorKind.INVALID_REQUEST
    assert len(fresh.requests) == 1, "a 400 is not retried"


@pytest.mark.parametrize(("name", "kind"), [("modelStreamErrorException", ErrorKind.SERVER),
                                            ("throttlingException", ErrorKind.RATE_LIMIT),
                                            ("validationException", ErrorKind.INVALID_REQUEST)])
def test_exception_in_the_middle_of_a_stream(fresh: BedrockServer, name: str, kind: ErrorKind) -> None:
    fresh.inject(Fault("stream_exception", name, message="model broke", after=3))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    deltas, result = run_stream(bedrock_settings(fresh), request)
    assert deltas == ["Hello ", "from "]
    assert not result.success and result.error_kind is kind
    assert result.error == f"model broke ({name})" and result.content == "Hello from "
    assert len(fresh.requests) == 1, "a stream is not retried once it has started"


def test_a_cut_off_stream_fails_with_the_text_so_far(fresh: BedrockServer) -> None:
    fresh.inject(Fault("cut", after=2))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    deltas, result = run_stream(bedrock_settings(fresh, max_retries=0), request)
    assert deltas == ["Hello "]
    assert not result.success and result.error_kind is ErrorKind.CONNECTION and result.content == "Hello "


def test_read_timeout_comes_from_settings(fresh: BedrockServer) -> None:
    fresh.inject(Fault("stall", seconds=1.0))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    started = time.perf_counter()
    result = run_complete(bedrock_settings(fresh, timeout=0.2, max_retries=0), request)
    assert result.error_kind is ErrorKind.TIMEOUT and "timed out" in (result.error or "")
    assert time.perf_counter() - started < 0.9


def test_calls_do_not_block_the_event_loop(fresh: BedrockServer) -> None:
    fresh.inject(Fault("stall", seconds=0.3))
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")

    async def go() -> tuple[Any, int]:
        ticks = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        async with Registry(bedrock_settings(fresh)).create("bedrock") as provider:
            ticker = asyncio.create_task(tick())
            result = await provider.complete(request)
            done.set()
            await ticker
        return result, ticks

    result, ticks = asyncio.run(go())
    assert result.success and ticks >= 10


def test_a_stream_closed_early_closes_the_connection(fresh: BedrockServer) -> None:
    fresh.inject(Fault("slow", seconds=0.05))
    with Engine(bedrock_settings(fresh)) as engine, engine.stream("bedrock/nova-micro", "hi") as stream:
        assert next(stream) == "Hello "
    assert stream.response is not None and stream.response.error_kind is ErrorKind.CONNECTION
    assert stream.response.content == "Hello "
    deadline = time.monotonic() + 3
    while not fresh.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fresh.aborted == 1, "the server saw the client hang up"


# -- the front door, settings and credentials --------------------------------
def test_front_door_sync_and_async(fresh: BedrockServer) -> None:
    settings = bedrock_settings(fresh)
    with Engine(settings) as engine:
        reply = engine.complete("bedrock/nova-lite", "hi", temperature=0.1, max_tokens=16)
        stream = engine.stream("bedrock/nova-lite", "hi")
        text = "".join(stream)
    assert reply.success and reply.cost_usd == pytest.approx(price_of("amazon.nova-lite-v1:0", FULL_USAGE))
    assert text == "Hello from Bedrock!" and stream.response is not None and stream.response.cost_usd == reply.cost_usd

    async def go() -> tuple[Any, Any]:
        async with Engine(settings) as engine:
            reply = await engine.acomplete("bedrock", "hi")  # the provider's default model
            stream = engine.astream("bedrock/amazon.nova-lite-v1:0", "hi")
            return reply, await stream.final()

    reply, streamed = asyncio.run(go())
    assert reply.success and reply.model == "amazon.nova-lite-v1:0"
    assert streamed.success and streamed.content == "Hello from Bedrock!"


def test_region_and_endpoint_from_env(fresh: BedrockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    monkeypatch.setenv("GENAI_BEDROCK_ENDPOINT_URL", fresh.endpoint_url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert run_complete(make_settings(), request).success
    assert "/eu-west-1/bedrock/aws4_request" in fresh.requests[-1].headers["Authorization"]
    monkeypatch.setenv("GENAI_BEDROCK_REGION", "ap-south-2")  # the engine's setting wins over AWS_REGION
    assert run_complete(make_settings(), request).success
    assert "/ap-south-2/bedrock/aws4_request" in fresh.requests[-1].headers["Authorization"]


def test_keys_from_the_dotenv_file(fresh: BedrockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    Path(".env").write_text("AWS_ACCESS_KEY_ID=AKIDFROMDOTENV\nAWS_SECRET_ACCESS_KEY=s3cret\n", encoding="utf-8")
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="nova-micro")
    assert run_complete(bedrock_settings(fresh), request).success
    assert "Credential=AKIDFROMDOTENV/" in fresh.requests[-1].headers["Authorization"]


def test_missing_credentials_is_a_configuration_error(fresh: BedrockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with Engine(bedrock_settings(fresh)) as engine, pytest.raises(ConfigError) as caught:
        engine.complete("bedrock/nova-micro", "hi")
    message = str(caught.value)
    for hint in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "GENAI_BEDROCK_PROFILE", "IAM role", "AWS_BEARER_TOKEN_BEDROCK"):
        assert hint in message
    assert not fresh.requests, "nothing unsigned was sent"


def test_missing_region_is_a_configuration_error(fresh: BedrockServer) -> None:
    settings = make_settings(provider_config={"bedrock": {"endpoint_url": fresh.endpoint_url}})
    with pytest.raises(ConfigError, match="GENAI_BEDROCK_REGION or AWS_REGION"):
        run_complete(settings, CompletionRequest(messages=[{"role": "user", "content": "hi"}]))


def test_botocore_retries_are_off_and_timeouts_come_from_settings(fresh: BedrockServer) -> None:
    settings = bedrock_settings(fresh, timeout=12.5, connect_timeout=3.5)

    async def go() -> Any:
        async with Registry(settings).create("bedrock") as provider:
            assert isinstance(provider, BackendProvider)
            return (await provider.backend.client()).meta.config  # type: ignore[attr-defined]

    config = asyncio.run(go())
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert (config.read_timeout, config.connect_timeout) == (12.5, 3.5)


def test_importing_the_engine_does_not_import_boto3() -> None:
    code = ("import sys, engine; from engine.registry import Registry; from engine import Settings; "
            "Registry(Settings()).create('bedrock'); "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'imported too early'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=Path(__file__).parent.parent)


# -- without a socket -----------------------------------------------------------
@pytest.mark.parametrize("model", ["claude-opus-4-5", "nova-pro"])
def test_request_fields_pass_botocore_validation(model: str) -> None:
    """botocore's Stubber checks our fields against the service model; no socket needed for that."""
    import boto3
    from botocore.stub import Stubber

    provider = Registry(make_settings(provider_config={"bedrock": {"region": "us-east-1"}})).create("bedrock")
    assert isinstance(provider, BackendProvider)
    client = boto3.Session().client("bedrock-runtime", region_name="us-east-1")
    provider.backend._client = client  # type: ignore[attr-defined]
    request = CompletionRequest(messages=TURNS, model=model, max_tokens=100, output_schema=SCHEMA,
                                extra={"additionalModelRequestFields": {"top_k": 5}})
    backend = provider.backend
    assert isinstance(backend, BedrockBackend)
    model_id = provider.spec.resolve_alias(model)
    expected = converse_params(request, model_id, backend.spec.options_for(model_id))
    assert ("toolConfig" in expected) == model.startswith("nova") != ("outputConfig" in expected)
    answer = {"output": {"message": {"role": "assistant", "content": [{"text": '{"answer": "ok"}'}]}},
              "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
              "metrics": {"latencyMs": 1}}
    with Stubber(client) as stub:
        stub.add_response("converse", answer, expected)
        result = asyncio.run(provider.complete(request))
        stub.assert_no_pending_responses()
    assert result.success and result.input_tokens == 3 and result.cost_usd is not None


def test_tool_choice_variants() -> None:
    def config(choice: Any, messages: list[dict[str, Any]] = ASK, tools: list[Any] | None = None) -> Any:
        request = CompletionRequest(messages=messages, tools=[WEATHER] if tools is None else tools, tool_choice=choice)
        return converse_params(request, "m", {}).get("toolConfig")

    spec = {"toolSpec": {"name": "get_weather", "description": "The weather in a city.",
                         "inputSchema": {"json": WEATHER["function"]["parameters"]}}}
    assert config(None) == {"tools": [spec]}
    assert config("auto") == {"tools": [spec], "toolChoice": {"auto": {}}}
    assert config("required") == {"tools": [spec], "toolChoice": {"any": {}}}
    assert config({"type": "function", "function": {"name": "get_weather"}}) == {
        "tools": [spec], "toolChoice": {"tool": {"name": "get_weather"}}}
    assert config("none") is None  # Converse has no 'none': no tools at all
    history: list[dict[str, Any]] = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "-3 C"}]
    assert config("none", history) == {"tools": [spec]}  # tool blocks need toolConfig: tools, no choice
    cases: list[tuple[Any, list[dict[str, Any]], list[Any] | None, str]] = [
        (None, history, [], "needs the tool definitions"),
        ({"type": "function", "function": {"name": "nope"}}, ASK, None, "'nope', which is not among the tools"),
        ("required", ASK, [], "'required' needs tools"),
    ]
    for choice, messages, tools, message in cases:
        with pytest.raises(ProviderError, match=message) as caught:
            config(choice, messages, tools)
        assert caught.value.kind is ErrorKind.INVALID_REQUEST


def test_tool_calls_and_results_in_the_conversation() -> None:
    """Results of one turn, and user text after them, form one user turn with the results first."""
    system, turns = converse_messages([
        {"role": "system", "content": "S"}, *ASK,
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call 2/x", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": "call 2/x", "content": "no such city", "is_error": True},
        {"role": "user", "content": "And tomorrow?"},
    ])
    fitted = tool_use_id("call 2/x")
    assert system == [{"text": "S"}] and fitted.startswith("call_") and fitted == tool_use_id("call 2/x")
    assert turns[1:] == [
        {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": fitted, "name": "get_weather", "input": {}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"json": {"temp_c": 18}}]}},
            {"toolResult": {"toolUseId": fitted, "content": [{"text": "no such city"}], "status": "error"}},
            {"text": "And tomorrow?"}]},
    ]


def test_images_and_documents_are_raw_bytes_blocks() -> None:
    png, pdf = base64.b64encode(PNG).decode(), base64.b64encode(PDF).decode()
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{png}"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "Q3 report.v2.pdf"}},
        {"type": "file", "file": {"file_data": base64.b64encode(b"# Notes").decode(), "filename": "notes.md"}},
    ]
    assert content_blocks(content) == [
        {"text": "Compare"},
        {"image": {"format": "png", "source": {"bytes": PNG}}},  # bytes: boto3 does the base64
        {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
        {"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": PDF}}},  # no dots in names
        {"document": {"format": "md", "name": "notes", "source": {"bytes": b"# Notes"}}},
    ]
    for bad, message in [
        ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}, "png, jpeg, gif or webp"),
        ({"type": "file", "file": {"file_data": "data:application/zip;base64,AAAA"}}, "documents must be"),
        ({"type": "input_audio", "input_audio": {}}, "unsupported content part 'input_audio'"),
    ]:
        with pytest.raises(ProviderError, match=message):
            content_blocks([bad])


def test_an_image_by_url_is_refused_before_sending(fresh: BedrockServer) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    request = CompletionRequest(messages=[{"role": "user", "content": [image]}], model="nova-lite")
    with pytest.raises(ProviderError, match="not by URL") as caught:
        converse_params(request, "m", {})
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    for result in (run_complete(bedrock_settings(fresh), request), run_stream(bedrock_settings(fresh), request)[1]):
        assert not result.success and result.error_kind is ErrorKind.INVALID_REQUEST
    assert not fresh.requests


def test_replayed_thinking_goes_first_with_its_signature() -> None:
    _, turns = converse_messages([*ASK, {"role": "assistant", "content": "Sunny.", "thinking": [
        {"text": "Look it up.", "signature": "c2ln"}, {"redacted": base64.b64encode(b"\x01\x02").decode()}]}])
    assert turns[1] == {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Look it up.", "signature": "c2ln"}}},
        {"reasoningContent": {"redactedContent": b"\x01\x02"}},
        {"text": "Sunny."}]}


def test_sampling_options() -> None:
    request = CompletionRequest(messages=ASK, stop="END", top_p=0.5, max_tokens=9, temperature=None)
    inference = converse_params(request, "m", {})["inferenceConfig"]
    assert inference == {"maxTokens": 9, "topP": 0.5, "stopSequences": ["END"]}
    request = CompletionRequest(messages=ASK, stop=["a", "b"], temperature=None, extra={"top_p": 0.1, "stop": "x"})
    assert converse_params(request, "m", {})["inferenceConfig"] == {"topP": 0.1, "stopSequences": ["a", "b"]}
    with pytest.raises(ProviderError, match="no seed, user") as caught:
        converse_params(CompletionRequest(messages=ASK, seed=1, user="u"), "m", {})
    assert caught.value.kind is ErrorKind.INVALID_REQUEST


def test_a_full_conversation_passes_botocore_validation() -> None:
    """Tools, calls, results, images, documents and thinking, checked against botocore's service model."""
    import boto3
    from botocore.stub import Stubber

    provider = Registry(make_settings(provider_config={"bedrock": {"region": "us-east-1"}})).create("bedrock")
    assert isinstance(provider, BackendProvider)
    client = boto3.Session().client("bedrock-runtime", region_name="us-east-1")
    provider.backend._client = client  # type: ignore[attr-defined]
    png, pdf = base64.b64encode(PNG).decode(), base64.b64encode(PDF).decode()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [
            {"type": "text", "text": "Weather where this was taken, and in the report's city?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "r.pdf"}}]},
        {"role": "assistant", "content": None, "thinking": [{"text": "Two calls.", "signature": "sig"}],
         "tool_calls": [{"id": "tooluse_01", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "tooluse_01", "content": '{"temp_c": 18}'},
    ]
    request = CompletionRequest(messages=messages, model="claude-opus-4-5", tools=[WEATHER], tool_choice="required",
                                stop=["END"], top_p=0.9)
    model_id = provider.spec.resolve_alias("claude-opus-4-5")
    expected = converse_params(request, model_id, provider.spec.options_for(model_id))
    answer = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Now Rome.", "signature": "sig2"}}},
        {"toolUse": {"toolUseId": "tooluse_02", "name": "get_weather", "input": {"city": "Rome"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
        "metrics": {"latencyMs": 1}}
    with Stubber(client) as stub:
        stub.add_response("converse", answer, expected)
        result = asyncio.run(provider.complete(request))
        stub.assert_no_pending_responses()
    assert result.success, result.error
    assert calls_of(result) == [("tooluse_02", "get_weather", {"city": "Rome"})]
    assert result.thinking == [{"text": "Now Rome.", "signature": "sig2"}] and result.finish_reason == "tool_calls"


def test_message_conversion() -> None:
    system, turns = converse_messages([
        {"role": "developer", "content": "A"}, {"role": "user", "content": "x"}, {"role": "user", "content": "y"},
        {"role": "assistant", "content": None}])
    assert system == [{"text": "A"}]
    assert turns == [{"role": "user", "content": [{"text": "x"}, {"text": "y"}]}, {"role": "assistant", "content": []}]
    assert content_blocks([{"type": "text", "text": "t"}, {"image": {"format": "png"}}]) == [
        {"text": "t"}, {"image": {"format": "png"}}]


def test_unsupported_input_is_an_invalid_request_without_a_call(fresh: BedrockServer) -> None:
    for messages in ([{"role": "tool", "content": "x"}],
                     [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]):
        result = run_complete(bedrock_settings(fresh), CompletionRequest(messages=messages))
        assert result.error_kind is ErrorKind.INVALID_REQUEST
    assert not fresh.requests


def test_options_temperature_false_and_unknown_json_mode(tmp_path: Path) -> None:
    request = CompletionRequest(messages=[{"role": "user", "content": "x"}], extra={"inferenceConfig": {"topP": 1}})
    assert converse_params(request, "m", {"temperature": False})["inferenceConfig"] == {"topP": 1}
    # json_output is a declared option with choices: a wrong value is a file error with its line.
    (tmp_path / "bedrock2.yaml").write_text(
        "name: bedrock2\nextends: bedrock\nmodels:\n  - {id: m1, options: {json_output: prompt}}\n")
    registry = Registry(Settings(providers_path=[tmp_path]))
    with pytest.raises(ProviderFileError, match="must be one of 'output_config', 'tool'") as caught:
        registry.spec("bedrock2")
    assert (caught.value.key, caught.value.line) == ("models.0.options.json_output", 4)


def test_usage_counts_cache_tokens_in_the_input() -> None:
    assert unified_usage(None) is None
    assert unified_usage({"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}) == Usage(3, 2, None, None)
    assert unified_usage(USAGE) == FULL_USAGE


# -- a real account ------------------------------------------------------------
@pytest.mark.live
@pytest.mark.skipif(not (LIVE_REGION and LIVE_CREDENTIALS), reason="needs AWS credentials and a region")
def test_live_bedrock() -> None:
    settings = Settings(provider_config={"bedrock": {"region": LIVE_REGION or ""}})
    with Engine(settings) as engine:
        reply = engine.complete(f"bedrock/{LIVE_MODEL}", "Reply with one word: pong", max_tokens=16, temperature=0)
        assert reply.success, reply.error
        assert reply.content and reply.input_tokens and reply.output_tokens and reply.cost_usd is not None
        stream = engine.stream(f"bedrock/{LIVE_MODEL}", "Count from 1 to 5.", max_tokens=64, temperature=0)
        text = "".join(stream)
        assert stream.response is not None and stream.response.success, stream.response
        assert text == stream.response.content and stream.response.output_tokens
