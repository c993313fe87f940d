"""A hostile server, over real sockets: whatever it sends becomes a typed failure (or a sane success), never an
exception, within the limits, with the key never echoed back. Every wire format, streamed and not."""

from __future__ import annotations

import asyncio
import math
import tracemalloc
from typing import Any

import pytest

from engine import CompletionResponse, ErrorKind, Settings
from engine.registry import Registry
from engine.testing import FakeServer, Fault

from .conftest import TEST_KEY, server_settings

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "ollama": "llama3.2",
             "gemini": "gemini-2.5-flash", "cohere": "command-a-03-2025", "openai-responses": "gpt-4.1-mini"}
STREAMED = [False, True]


@pytest.fixture(scope="module")
def server() -> Any:
    with FakeServer(chunk_size=None, max_seconds=600) as fake:
        yield fake


def call(server: FakeServer, provider: str, stream: bool, *faults: Fault, **settings: Any) -> CompletionResponse:
    """One call with faults queued; asserts that nothing raised and that the stream's deltas add up."""
    server.inject(*faults)
    registry = Registry(server_settings(server, max_retries=0, **settings))

    async def go() -> CompletionResponse:
        from engine import CompletionRequest

        request = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model=PROVIDERS[provider])
        async with registry.create(provider) as instance:
            if not stream:
                return await instance.complete(request)
            result = instance.stream_complete(request)
            deltas = [delta async for delta in result]
            assert result.response is not None and "".join(deltas) == result.response.content
            return result.response

    return asyncio.run(go())


def failed(response: CompletionResponse, kind: ErrorKind, *words: str) -> None:
    assert not response.success and response.error_kind is kind, (response.error_kind, response.error)
    for word in words:
        assert word in (response.error or ""), response.error
    assert TEST_KEY not in repr(response.model_dump())


@pytest.mark.parametrize("stream", STREAMED)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_deep_nesting_is_invalid_response(server: FakeServer, provider: str, stream: bool) -> None:
    failed(call(server, provider, stream, Fault("deep_json", size=100_000)), ErrorKind.INVALID_RESPONSE,
           "max_json_depth", "GENAI_MAX_JSON_DEPTH")


@pytest.mark.parametrize("stream", STREAMED)
def test_deep_nesting_just_under_the_limit_is_read(server: FakeServer, stream: bool) -> None:
    response = call(server, "openai", stream, Fault("deep_json", size=100), max_json_depth=100)
    # 100 levels parse (the limit holds): the body is just not a reply, and the stream has no end marker
    expected = ErrorKind.CONNECTION if stream else ErrorKind.INVALID_RESPONSE
    assert response.error_kind is expected and "max_json_depth" not in (response.error or ""), response.error


@pytest.mark.parametrize("value", ["1e400", "-5", "NaN", "Infinity", "-Infinity", "2.5", "1e15"])
@pytest.mark.parametrize("stream", STREAMED)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama", "gemini", "cohere", "openai-responses"])
def test_absurd_numbers_count_as_not_reported(server: FakeServer, provider: str, stream: bool, value: str) -> None:
    response = call(server, provider, stream, Fault("bad_numbers", value=value))
    assert response.success and response.content, response.error
    counts = [response.input_tokens, response.output_tokens, response.cached_input_tokens,
              response.cache_write_tokens, response.reasoning_tokens]
    assert all(n is None or (isinstance(n, int) and 0 <= n <= 10**10) for n in counts), counts
    assert response.input_tokens is None and response.output_tokens is None
    assert response.cost_usd is None or (math.isfinite(response.cost_usd) and response.cost_usd >= 0)
    assert any("were ignored" in w for w in response.warnings), response.warnings


@pytest.mark.parametrize("value", ["-123.45", "Infinity", "NaN"])
def test_a_billed_cost_that_is_not_an_amount_falls_back_to_the_price_table(server: FakeServer, value: str) -> None:
    server.inject(Fault("bad_numbers", value=value))
    registry = Registry(server_settings(server, max_retries=0))

    async def go() -> CompletionResponse:
        from engine import CompletionRequest

        async with registry.create("openrouter") as instance:  # openrouter reads usage.cost
            return await instance.complete(CompletionRequest(messages=[{"role": "user", "content": "hi"}],
                                                             model="openai/gpt-5-mini"))

    response = asyncio.run(go())
    assert response.success and response.cost_usd is None  # counts unusable too, so no cost at all
    assert any("billed cost" in w for w in response.warnings)


@pytest.mark.parametrize("stream", STREAMED)
def test_a_gzip_bomb_stops_at_the_limit_without_holding_it_in_memory(server: FakeServer, stream: bool) -> None:
    limit = 4 * 1024 * 1024
    tracemalloc.start()
    try:
        response = call(server, "openai", stream, Fault("gzip_bomb", size=512 * 1024 * 1024),
                        max_response_bytes=limit, max_stream_bytes=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    name = "max_stream_bytes" if stream else "max_response_bytes"
    failed(response, ErrorKind.INVALID_RESPONSE, name)
    assert peak < 4 * limit, f"peak {peak:,} bytes while decompressing"


@pytest.mark.parametrize("stream", STREAMED)
def test_a_100_mb_line_is_refused_at_the_event_limit(server: FakeServer, stream: bool) -> None:
    response = call(server, "openai", stream, Fault("long_line", size=100 * 1024 * 1024),
                    max_event_bytes=1024 * 1024, max_response_bytes=2 * 1024 * 1024)
    failed(response, ErrorKind.INVALID_RESPONSE, "max_event_bytes" if stream else "max_response_bytes")


@pytest.mark.parametrize("stream", STREAMED)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama", "openai-responses"])
def test_bytes_that_are_not_utf8_are_invalid_response(server: FakeServer, provider: str, stream: bool) -> None:
    failed(call(server, provider, stream, Fault("bad_utf8")), ErrorKind.INVALID_RESPONSE)


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/plain"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "openai-responses"])
def test_a_stream_answered_with_a_plain_body_says_what_came_back(server: FakeServer, provider: str,
                                                                 content_type: str) -> None:
    response = call(server, provider, True, Fault("wrong_content_type", content_type=content_type))
    failed(response, ErrorKind.INVALID_RESPONSE, "expected a stream (text/event-stream)",
           content_type.partition(";")[0])


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_an_empty_200_stream_is_invalid_response(server: FakeServer, provider: str) -> None:
    failed(call(server, provider, True, Fault("empty_stream")), ErrorKind.INVALID_RESPONSE, "empty")


@pytest.mark.parametrize("stream", STREAMED)  # every format with a key (ollama takes none)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "cohere", "openai-responses"])
def test_a_key_echoed_back_is_masked_everywhere(server: FakeServer, provider: str, stream: bool) -> None:
    response = call(server, provider, stream, Fault("echo_key"))
    assert response.success, response.error
    assert TEST_KEY not in repr(response.model_dump()), "the key survived in the response"
    assert "***" in response.content


@pytest.mark.parametrize("status", [200, 500])
def test_a_json_error_body_on_a_stream_endpoint_is_read_as_an_error(server: FakeServer, status: int) -> None:
    # An error body with the JSON content type on a 200: the provider's own error, not "not a stream".
    server.inject(Fault("status", status=status, message="model is overloaded"))
    response = call(server, "openai", True)
    failed(response, ErrorKind.SERVER if status == 500 else ErrorKind.INVALID_REQUEST, "model is overloaded")


def test_limits_are_settings_with_documented_defaults() -> None:
    from engine.limits import DEFAULT, NAMES

    settings = Settings()
    for name in NAMES:
        assert getattr(settings, name) == getattr(DEFAULT, name)
    assert Settings(max_event_bytes=10).limits.max_event_bytes == 10
