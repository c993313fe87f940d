"""The generic HTTP provider over real sockets: every wire format, awkward chunking, and injected faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import respx

from engine import CompletionRequest, CompletionResponse, ErrorKind, get_provider
from engine.testing import FakeServer, Fault

from .conftest import TEST_KEY, make_settings, server_settings

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "ollama": "llama3.2", "groq": None,
          "vllm": "served-model", "llamacpp": None, "together": None, "gemini": "gemini-2.5-flash",
          "cohere": None, "mistral": None, "deepseek": None, "openrouter": None, "openai-responses": "gpt-4.1-mini"}
NATIVE = ("openai", "anthropic", "ollama", "gemini", "cohere", "openai-responses")


@pytest.fixture(autouse=True, params=["httpcore2", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs over both connection pools."""
    monkeypatch.setenv("GENAI_HTTP_TRANSPORT", request.param)
    return str(request.param)


def request(provider: str, text: str = "tell me something", **kw: Any) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
                             model=MODELS.get(provider), **kw)


async def call(server: FakeServer, provider: str, *, stream: bool, max_retries: int = 2, timeout: float = 5.0,
               **kw: Any) -> tuple[CompletionResponse, list[str]]:
    settings = server_settings(server, max_retries=max_retries, timeout=timeout)
    async with get_provider(provider, settings) as instance:
        if not stream:
            return await instance.complete(request(provider, **kw)), []
        result = instance.stream_complete(request(provider, **kw))
        deltas = [d async for d in result]
        assert result.response is not None
        return result.response, deltas


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("stream", [False, True])
def test_every_wire_format_over_real_sockets(local_server: FakeServer, provider: str, stream: bool) -> None:
    result, deltas = asyncio.run(call(local_server, provider, stream=stream, text="héllo wörld ✓ " * 3))
    sent = local_server.requests[-1]
    expected = local_server.reply_for(sent.json())
    assert result.success, result.error
    assert result.content == expected
    if stream:
        assert "".join(deltas) == expected and len(deltas) > 3
    # Mistral and OpenRouter send stream usage unasked; OpenAI's wire format (this server) only when asked.
    if not stream or "stream_options" in sent.json() or provider in NATIVE:
        assert result.input_tokens and result.output_tokens
    else:
        assert result.input_tokens is None and result.cost_usd is None  # not reported: no guess
    assert result.provider == provider
    assert result.latency_ms is not None and result.latency_ms > 0
    auth = sent.headers.get("authorization") or sent.headers.get("x-api-key") or sent.headers.get("x-goog-api-key")
    assert (auth or "").endswith(TEST_KEY) or provider in ("ollama", "vllm", "llamacpp")


def test_json_output_schema_reaches_the_server_and_comes_back(local_server: FakeServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    for provider in NATIVE:
        result, _ = asyncio.run(call(local_server, provider, stream=False, output_schema=schema))
        assert result.success and result.content.startswith('{"answer": '), (provider, result.content)


def test_rate_limit_with_retry_after_is_retried(local_server: FakeServer) -> None:
    local_server.inject(Fault("status", status=429, retry_after="0.05"))
    started = time.perf_counter()
    result, _ = asyncio.run(call(local_server, "openai", stream=False))
    assert result.success and time.perf_counter() - started >= 0.05


def test_server_errors_after_retries_become_a_typed_failure(local_server: FakeServer) -> None:
    local_server.inject(*[Fault("status", status=500, message="kaput")] * 3)
    count = len(local_server.requests)
    result, _ = asyncio.run(call(local_server, "anthropic", stream=False))
    assert not result.success and result.error_kind is ErrorKind.SERVER and result.status_code == 500
    assert "kaput" in (result.error or "") and len(local_server.requests) - count == 3


def test_auth_error_is_not_retried(local_server: FakeServer) -> None:
    local_server.inject(Fault("status", status=401, message="bad key"))
    count = len(local_server.requests)
    result, _ = asyncio.run(call(local_server, "openai", stream=True))
    assert result.error_kind is ErrorKind.AUTH and len(local_server.requests) - count == 1


def test_timeout(local_server: FakeServer) -> None:
    local_server.inject(Fault("timeout", seconds=2))
    result, _ = asyncio.run(call(local_server, "ollama", stream=False, max_retries=0, timeout=0.3))
    assert not result.success and result.error_kind is ErrorKind.TIMEOUT


def test_connection_reset_mid_stream_keeps_the_text_so_far(local_server: FakeServer) -> None:
    local_server.inject(Fault("reset", after_events=4))
    result, deltas = asyncio.run(call(local_server, "openai", stream=True))
    assert not result.success and result.error_kind is ErrorKind.CONNECTION
    assert result.content == "".join(deltas) and result.content


def test_stream_cut_before_its_end_marker_is_not_a_success(local_server: FakeServer) -> None:
    for provider in NATIVE:
        local_server.inject(Fault("cut", after_events=5))
        result, deltas = asyncio.run(call(local_server, provider, stream=True))
        assert not result.success and "cut off" in (result.error or ""), provider
        assert result.content == "".join(deltas)


@pytest.mark.parametrize("provider", NATIVE)
def test_error_event_in_stream(local_server: FakeServer, provider: str) -> None:
    local_server.inject(Fault("stream_error", after_events=5, message="overloaded now"))
    result, deltas = asyncio.run(call(local_server, provider, stream=True))
    assert not result.success and result.error_kind is ErrorKind.SERVER and "overloaded now" in (result.error or "")
    assert result.content == "".join(deltas) and result.content


def test_html_error_page(local_server: FakeServer) -> None:
    local_server.inject(Fault("html"))
    result, _ = asyncio.run(call(local_server, "openai", stream=False, max_retries=0))
    assert result.status_code == 502 and result.error_kind is ErrorKind.SERVER
    assert "<" not in (result.error or "") and "Bad Gateway" in (result.error or "")


def test_truncated_json_body(local_server: FakeServer) -> None:
    local_server.inject(Fault("truncated_json"))
    result, _ = asyncio.run(call(local_server, "openai", stream=False))
    assert result.error_kind is ErrorKind.INVALID_RESPONSE and "not valid JSON" in (result.error or "")


# (fault, streamed, kind, words in the error): every injected fault, in OpenAI's Responses format.
RESPONSES_FAULTS = [
    (Fault("status", status=429, message="slow down"), False, ErrorKind.RATE_LIMIT, "slow down (rate_limit_exceeded)"),
    (Fault("status", status=500, message="kaput"), True, ErrorKind.SERVER, "HTTP 500: kaput"),
    (Fault("html"), False, ErrorKind.SERVER, "Bad Gateway"),
    (Fault("truncated_json"), False, ErrorKind.INVALID_RESPONSE, "not valid JSON"),
    (Fault("timeout", seconds=2), True, ErrorKind.TIMEOUT, ""),
    (Fault("reset"), False, ErrorKind.CONNECTION, ""),
    (Fault("reset", after_events=6), True, ErrorKind.CONNECTION, ""),
    (Fault("cut", after_events=7), True, ErrorKind.CONNECTION, "cut off"),
    (Fault("cut"), False, ErrorKind.CONNECTION, ""),
    (Fault("stream_error", after_events=7, message="overloaded now"), True, ErrorKind.SERVER,
     "error in stream: overloaded now (server_error)"),
    (Fault("stream_error", message="overloaded now"), False, ErrorKind.SERVER, "HTTP 500: overloaded now"),
]


@pytest.mark.parametrize(("fault", "stream", "kind", "words"), RESPONSES_FAULTS,
                         ids=[f"{f.kind}-{'stream' if s else 'whole'}" for f, s, _, _ in RESPONSES_FAULTS])
def test_every_fault_in_the_responses_format(local_server: FakeServer, fault: Fault, stream: bool,
                                             kind: ErrorKind, words: str) -> None:
    local_server.inject(fault)
    result, deltas = asyncio.run(call(local_server, "openai-responses", stream=stream, max_retries=0, timeout=0.5))
    assert not result.success and result.error_kind is kind and words in (result.error or ""), result.error
    assert result.content == "".join(deltas)
    if fault.kind in ("cut", "stream_error", "reset") and stream:
        assert result.content, "the text received before the fault is kept"


def test_connection_refused_is_a_connection_error() -> None:
    settings = make_settings(base_urls={"openai": "http://127.0.0.1:9/v1"}, max_retries=1)

    async def go() -> CompletionResponse:
        async with get_provider("openai", settings) as provider:
            return await provider.complete(request("openai"))

    result = asyncio.run(go())
    assert result.error_kind is ErrorKind.CONNECTION and TEST_KEY not in (result.error or "")


@respx.mock
def test_retry_after_http_date_and_x_should_retry_false() -> None:
    route = respx.post("https://api.openai.com/v1/chat/completions")
    route.side_effect = [httpx.Response(503, headers={"x-should-retry": "false"}, json={"error": {"message": "no"}})]
    settings = make_settings(http_transport="httpx")

    async def go() -> CompletionResponse:
        async with get_provider("openai", settings) as provider:
            return await provider.complete(request("openai"))

    result = asyncio.run(go())
    assert result.status_code == 503 and route.call_count == 1


@respx.mock
def test_api_key_echoed_by_a_provider_is_scrubbed() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {TEST_KEY}", "type": "invalid_request_error"}}
    respx.post("https://api.openai.com/v1/chat/completions").mock(return_value=httpx.Response(401, json=body))

    async def go() -> CompletionResponse:
        async with get_provider("openai", make_settings(http_transport="httpx")) as provider:
            return await provider.complete(request("openai"))

    result = asyncio.run(go())
    assert result.error_kind is ErrorKind.AUTH
    assert TEST_KEY not in (result.error or "") and TEST_KEY not in str(result.raw_response)
    assert TEST_KEY not in repr(result) and TEST_KEY not in result.model_dump_json()


@respx.mock
def test_200_without_content_is_an_invalid_response() -> None:
    respx.post("https://api.openai.com/v1/chat/completions").mock(
        return_value=httpx.Response(200, json={"id": "x", "choices": []}))

    async def go() -> CompletionResponse:
        async with get_provider("openai", make_settings(http_transport="httpx")) as provider:
            return await provider.complete(request("openai"))

    result = asyncio.run(go())
    assert not result.success and result.error_kind is ErrorKind.INVALID_RESPONSE
    assert "$.choices[0].message.content" in (result.error or "")


@respx.mock
def test_no_usage_reported_means_none_not_zero() -> None:
    respx.post("https://api.openai.com/v1/chat/completions").mock(return_value=httpx.Response(
        200, json={"model": "gpt-4o", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}))

    async def go() -> CompletionResponse:
        async with get_provider("openai", make_settings(http_transport="httpx")) as provider:
            return await provider.complete(request("openai"))

    result = asyncio.run(go())
    assert result.success and result.input_tokens is None and result.output_tokens is None
    assert result.cost_usd is None


def test_consumer_stopping_early_releases_the_stream(local_server: FakeServer) -> None:
    async def go() -> CompletionResponse | None:
        async with get_provider("openai", server_settings(local_server)) as provider:
            result = provider.stream_complete(request("openai"))
            async for _ in result:
                break
            await result.aclose()
            return result.response

    response = asyncio.run(go())
    assert response is not None and not response.success and "closed by the caller" in (response.error or "")


def _complete(provider: str, response: httpx.Response, **settings: Any) -> CompletionResponse:
    async def go() -> CompletionResponse:
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _request: response))
        async with client, get_provider(provider, make_settings(max_retries=0, **settings),
                                        http_client=client) as instance:
            return await instance.complete(request(provider))

    return asyncio.run(go())


def test_status_kinds_from_the_provider_file() -> None:
    result = _complete("cohere", httpx.Response(498, json={"id": "x", "message": "invalid api token"}))
    assert result.error_kind is ErrorKind.AUTH and "invalid api token" in (result.error or "")


def test_omitted_zero_counts_are_zero_when_the_provider_says_it_omits_them() -> None:
    body = {"model": "llama3.2", "message": {"role": "assistant", "content": "hi"}, "done": True,
            "done_reason": "stop", "eval_count": 3}  # prompt_eval_count left out: all from the KV cache
    result = _complete("ollama", httpx.Response(200, json=body))
    assert result.input_tokens == 0 and result.output_tokens == 3 and result.cost_usd == 0.0


def test_empty_answer_with_a_finish_reason_is_a_success() -> None:
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 4, "thoughtsTokenCount": 10}}
    result = _complete("gemini", httpx.Response(200, json=body))
    assert result.success and result.content == "" and result.finish_reason == "length"
    assert result.native_finish_reason == "MAX_TOKENS"
    assert result.output_tokens == 10 and result.reasoning_tokens == 10


@pytest.mark.parametrize("provider", NATIVE)
def test_streams_give_their_connection_back_to_the_pool(local_server: FakeServer, provider: str) -> None:
    async def go() -> list[bool]:
        async with get_provider(provider, server_settings(local_server)) as instance:
            return [(await instance.stream_complete(request(provider)).final()).success for _ in range(3)]

    before = local_server.connections
    assert asyncio.run(go()) == [True] * 3
    assert local_server.connections - before == 1, "each stream opened a new connection"


def test_the_pool_is_chosen_by_settings_alone(tmp_path: Any) -> None:
    """httpcore2 by default, whatever else the process has imported (respx included); httpx's on request."""
    import os
    import subprocess
    import sys

    code = "import engine, respx; p = engine.get_provider('ollama'); print(type(p.client._transport).__name__)"
    for setting, expected in ((None, "Httpcore2Transport"), ("auto", "Httpcore2Transport"),
                              ("httpx", "AsyncHTTPTransport")):
        env = {k: v for k, v in os.environ.items() if k != "GENAI_HTTP_TRANSPORT"}
        if setting is not None:
            env["GENAI_HTTP_TRANSPORT"] = setting
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=True, cwd=tmp_path, env=env).stdout.strip()
        assert out == expected


def test_a_cost_the_provider_reports_wins_over_the_price_table() -> None:
    body = {"model": "openai/gpt-5-mini", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 10, "cost": 0.5}}
    assert _complete("openrouter", httpx.Response(200, json=body)).cost_usd == 0.5  # what was billed
    del body["usage"]["cost"]  # type: ignore[attr-defined]
    assert _complete("openrouter", httpx.Response(200, json=body)).cost_usd == pytest.approx(
        (1000 * 0.25 + 10 * 2.00) / 1e6)  # else the price table
