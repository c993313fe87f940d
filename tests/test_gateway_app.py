"""The gateway end to end, with real clients over real sockets: the official ``openai`` and ``anthropic`` SDKs talk
to ``genai serve`` (a subprocess), which fronts the fake server in every wire format it speaks. Streamed and
not, tools and images, errors in each SDK's own error classes, a budget running out, rate limits, a fallback
route, a client that leaves mid-stream (the upstream call is cancelled), models, health, metrics, logs and the
ledger. The fake server only accepts the provider key the gateway was configured with."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("openai", reason="the official openai SDK (installed by [dev])")
pytest.importorskip("anthropic", reason="the official anthropic SDK (installed by [dev])")
pytest.importorskip("starlette", reason="the [server] extra (installed by [dev])")
pytest.importorskip("uvicorn", reason="the [server] extra (installed by [dev])")
pytest.importorskip("prometheus_client", reason="the [server] extra (installed by [dev])")

import anthropic
import openai

from engine.testing import FakeServer, Fault, GatewayProcess, upstream_env

from .gateway_support import KEY, ROOT, TINY_KEY, UPSTREAM_KEY, child_env, config, keys_env

LIMITED_KEY, NARROW_KEY = "sk-genai-test-limited-0123456789", "sk-genai-test-narrow-0123456789"
LOOSE_KEY = "sk-genai-test-loose-0123456789"
MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5", "ollama": "ollama/llama3.2",
          "gemini": "gemini/gemini-3.5-flash", "cohere": "cohere/command-a-03-2025"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeServer]:
    with FakeServer(chunk_size=7, api_key=UPSTREAM_KEY, max_seconds=900) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    keys = [*config()["keys"],
            {"name": "limited", "key_env": "LIMITED_KEY", "rpm": 2},
            {"name": "narrow", "key_env": "NARROW_KEY", "models": ["anthropic/*"]},
            {"name": "loose", "key_env": "LOOSE_KEY", "budget": {"usd": 1, "unpriced": "allow"}}]
    routes = {"smart": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
              "quick": [{"model": "openai/gpt-4o-mini", "timeout": 0.5}],
              "vectors": ["openai/text-embedding-3-small", "gemini/gemini-embedding-001"]}
    env = {**keys_env(), "LIMITED_KEY": LIMITED_KEY, "NARROW_KEY": NARROW_KEY, "LOOSE_KEY": LOOSE_KEY,
           **upstream_env(upstream, UPSTREAM_KEY)}
    with GatewayProcess(config(keys=keys, routes=routes), folder=tmp_path_factory.mktemp("gateway"), env=env,
                        max_seconds=900) as process:
        yield process


@pytest.fixture(autouse=True)
def _no_fault_left_behind(upstream: FakeServer) -> Iterator[None]:
    yield
    left = list(upstream._faults)
    upstream._faults.clear()
    assert not left, f"faults not consumed: {left}"


def oa(gateway: GatewayProcess, key: str = KEY, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=kw.pop("max_retries", 0), **kw)


def an(gateway: GatewayProcess, key: str = KEY, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=kw.pop("max_retries", 0), **kw)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def expected(server: FakeServer, text: str) -> str:
    return server.reply_for({"messages": ask(text)})


# -- the OpenAI SDK --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream_format", list(MODELS))
def test_openai_sdk_to_every_wire_format(gateway: GatewayProcess, upstream: FakeServer, upstream_format: str) -> None:
    client = oa(gateway)
    raw = client.chat.completions.with_raw_response.create(model=MODELS[upstream_format],
                                                           messages=ask(f"hello {upstream_format}"))
    completion = raw.parse()
    assert completion.choices[0].message.content == expected(upstream, f"hello {upstream_format}")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model.startswith(upstream_format + "/")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    cost = float(raw.headers["x-genai-cost-usd"])
    assert usage.model_extra is not None and usage.model_extra["cost_usd"] == pytest.approx(cost, rel=1e-6)
    assert (cost == 0) == (upstream_format == "ollama")  # local models are free, the others priced
    assert len(raw.headers["x-request-id"]) == 24 and completion.id == "chatcmpl-" + raw.headers["x-request-id"]


@pytest.mark.parametrize("upstream_format", list(MODELS))
def test_openai_sdk_streams_from_every_wire_format(gateway: GatewayProcess, upstream: FakeServer,
                                                   upstream_format: str) -> None:
    chunks = list(oa(gateway).chat.completions.create(
        model=MODELS[upstream_format], messages=ask(f"stream {upstream_format}"), stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected(upstream, f"stream {upstream_format}")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # streamed, not one piece
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.model_extra is not None and chunks[-1].usage.model_extra["cost_usd"] is not None


def test_openai_sdk_tool_calls_round_trip_through_another_providers_format(gateway: GatewayProcess) -> None:
    client = oa(gateway)
    messages = ask("Weather in Paris and Rome?")
    first = client.chat.completions.create(model=MODELS["anthropic"], messages=messages, tools=[WEATHER])
    calls = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls" and len(calls) == 2
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]  # type: ignore[union-attr]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": r} for c, r in zip(calls, ["18C", "22C"],
                                                                                         strict=True)]
    final = client.chat.completions.create(model=MODELS["anthropic"], messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == "Results: 18C; 22C"  # the fake server checked Anthropic's shape


def test_openai_sdk_streamed_tool_calls(gateway: GatewayProcess) -> None:
    pieces: dict[int, dict[str, str]] = {}
    for chunk in oa(gateway).chat.completions.create(model=MODELS["gemini"], messages=ask("Weather in Paris and Rome?"),
                                                     tools=[WEATHER], stream=True):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            piece = pieces.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            piece["id"] += call.id or ""
            piece["name"] += (call.function.name or "") if call.function else ""
            piece["arguments"] += (call.function.arguments or "") if call.function else ""
    assert [json.loads(p["arguments"]) for p in pieces.values()] == [{"city": "Paris"}, {"city": "Rome"}]
    assert all(p["id"] and p["name"] == "get_weather" for p in pieces.values())


def test_openai_sdk_image_parts_and_json_schema(gateway: GatewayProcess) -> None:
    client = oa(gateway)
    seen = client.chat.completions.create(model=MODELS["anthropic"], messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    assert (seen.choices[0].message.content or "").startswith("I see 1 image(s).")
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    structured = client.chat.completions.create(
        model=MODELS["gemini"], messages=ask("Largest moon?"),
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
    assert set(json.loads(structured.choices[0].message.content or "")) == {"answer"}


# -- the Anthropic SDK -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream_format", list(MODELS))
def test_anthropic_sdk_to_every_wire_format(gateway: GatewayProcess, upstream: FakeServer,
                                            upstream_format: str) -> None:
    client = an(gateway)
    raw = client.messages.with_raw_response.create(model=MODELS[upstream_format], max_tokens=100,
                                                   system="Be brief.", messages=ask(f"hi {upstream_format}"))
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == expected(upstream, f"hi {upstream_format}")
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert float(raw.headers["x-genai-cost-usd"]) >= 0


@pytest.mark.parametrize("upstream_format", list(MODELS))
def test_anthropic_sdk_streams_from_every_wire_format(gateway: GatewayProcess, upstream: FakeServer,
                                                      upstream_format: str) -> None:
    with an(gateway).messages.stream(model=MODELS[upstream_format], max_tokens=100,
                                     messages=ask(f"stream {upstream_format}")) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == expected(upstream, f"stream {upstream_format}") and len(deltas) > 3
    assert final.content[0].text == "".join(deltas)  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_anthropic_sdk_tools_round_trip_through_openai(gateway: GatewayProcess) -> None:
    client = an(gateway)
    tool = {"name": "get_weather", "description": "Weather", "input_schema": WEATHER["function"]["parameters"]}
    with client.messages.stream(model=MODELS["openai"], max_tokens=200, tools=[tool],  # type: ignore[list-item]
                                messages=ask("Weather in Paris and Rome?")) as stream:
        first = stream.get_final_message()
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and [u.input for u in uses] == [{"city": "Paris"}, {"city": "Rome"}]
    follow = [*ask("Weather in Paris and Rome?"), {"role": "assistant", "content": [b.model_dump() for b in uses]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": r}
                                           for u, r in zip(uses, ["18C", "22C"], strict=True)]}]
    final = client.messages.create(model=MODELS["openai"], max_tokens=200, tools=[tool],  # type: ignore[list-item]
                                   messages=follow)  # type: ignore[arg-type]
    assert final.content[0].text == "Results: 18C; 22C"  # type: ignore[union-attr]


def test_anthropic_sdk_image_blocks(gateway: GatewayProcess) -> None:
    blocks = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
              {"type": "text", "text": "What is this?"}]
    message = an(gateway).messages.create(model=MODELS["gemini"], max_tokens=100,
                                          messages=[{"role": "user", "content": blocks}])  # type: ignore[typeddict-item]
    assert message.content[0].text.startswith("I see 1 image(s).")  # type: ignore[union-attr]


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "openai_error", "anthropic_error", "status"), [
    (Fault("status", status=429, retry_after="1"), openai.RateLimitError, anthropic.RateLimitError, 429),
    (Fault("status", status=500), openai.InternalServerError, anthropic.InternalServerError, 500),
    (Fault("status", status=503), openai.InternalServerError, anthropic.ServiceUnavailableError, 503),
    (Fault("status", status=401), openai.AuthenticationError, anthropic.AuthenticationError, 401),
    (Fault("status", status=400, message="bad field"), openai.BadRequestError, anthropic.BadRequestError, 400),
    (Fault("status", status=404), openai.NotFoundError, anthropic.NotFoundError, 404),
    (Fault("html"), openai.InternalServerError, anthropic.InternalServerError, 502),
    (Fault("truncated_json"), openai.InternalServerError, anthropic.APIStatusError, 502),
    (Fault("reset"), openai.InternalServerError, anthropic.APIStatusError, 502),
])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_reach_each_sdk_as_its_own_error(gateway: GatewayProcess, upstream: FakeServer,
                                                           fault: Fault, openai_error: type, anthropic_error: type,
                                                           status: int, stream: bool) -> None:
    if stream and fault.kind == "reset":
        fault = Fault("reset", after_events=0)  # before any event: a stream that cannot start is an HTTP error
    upstream.inject(fault)
    with pytest.raises(openai_error) as raised:
        reply = oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("x"), stream=stream)
        list(reply) if stream else None  # type: ignore[call-overload]
    assert raised.value.status_code == status  # type: ignore[attr-defined]
    assert raised.value.response.headers["x-genai-error-kind"]  # type: ignore[attr-defined]
    upstream.inject(Fault(**vars(fault)))
    with pytest.raises(anthropic_error) as raised_a:
        message = an(gateway).messages.create(model=MODELS["anthropic"], max_tokens=50, messages=ask("x"),
                                              stream=stream)
        list(message) if stream else None  # type: ignore[call-overload]
    assert raised_a.value.status_code == status  # type: ignore[attr-defined]
    body = raised_a.value.body  # type: ignore[attr-defined]
    assert body["type"] == "error" and body["error"]["type"]


def test_a_timeout_is_504(gateway: GatewayProcess, upstream: FakeServer) -> None:
    upstream.inject(Fault("timeout", seconds=2))
    with pytest.raises(openai.InternalServerError) as raised:
        oa(gateway).chat.completions.create(model="quick", messages=ask("x"))
    assert raised.value.status_code == 504 and raised.value.body["type"] == "timeout"  # type: ignore[index]


def test_a_failure_mid_stream_is_raised_by_each_sdk(gateway: GatewayProcess, upstream: FakeServer) -> None:
    upstream.inject(Fault("stream_error", after_events=4, message="model crashed"))
    received = []
    with pytest.raises(openai.APIError, match="model crashed"):
        for chunk in oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("x"), stream=True):
            received.append(chunk)
    assert received  # it had started
    upstream.inject(Fault("cut", after_events=5))
    with pytest.raises(anthropic.APIStatusError, match="cut off"), an(gateway).messages.stream(
            model=MODELS["anthropic"], max_tokens=50, messages=ask("x")) as stream:
        list(stream.text_stream)


def test_gateway_refusals(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.AuthenticationError, match="unknown gateway key"):
        oa(gateway, key="sk-wrong").chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    with pytest.raises(anthropic.AuthenticationError):
        an(gateway, key="sk-wrong").messages.create(model=MODELS["openai"], max_tokens=5, messages=ask("x"))
    with pytest.raises(openai.PermissionDeniedError, match="may not call"):
        oa(gateway, key=NARROW_KEY).chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    with pytest.raises(anthropic.PermissionDeniedError):
        an(gateway, key=NARROW_KEY).messages.create(model="smart", max_tokens=5, messages=ask("x"))
    with pytest.raises(openai.NotFoundError, match="not served here"):
        oa(gateway).chat.completions.create(model="groq/llama-3.3-70b-versatile", messages=ask("x"))
    with pytest.raises(anthropic.NotFoundError):
        an(gateway).messages.create(model="nosuch", max_tokens=5, messages=ask("x"))
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("x"), n=2)
    with pytest.raises(openai.BadRequestError, match="'base_url' cannot be set"):
        oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("x"),
                                            extra_body={"base_url": "http://127.0.0.1:1"})
    with pytest.raises(openai.BadRequestError, match="needs a 'role'"):
        oa(gateway).chat.completions.create(model=MODELS["openai"], messages=[{"content": "x"}])  # type: ignore[list-item]


def test_the_provider_key_never_reaches_a_client(gateway: GatewayProcess, upstream: FakeServer) -> None:
    upstream.inject(Fault("status", status=400, message=f"invalid key {UPSTREAM_KEY} for this model"))
    with pytest.raises(openai.BadRequestError) as raised:
        oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    assert UPSTREAM_KEY not in raised.value.response.text and "***" in raised.value.response.text
    upstream.inject(Fault("echo_key"))
    reply = oa(gateway).chat.completions.with_raw_response.create(model=MODELS["openai"], messages=ask("x"))
    assert UPSTREAM_KEY not in reply.http_response.text
    upstream.inject(Fault("echo_key"))
    with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                      json={"model": MODELS["openai"], "messages": ask("x"), "stream": True}) as streamed:
        assert UPSTREAM_KEY not in streamed.read().decode()
    assert all(r.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}" for r in upstream.requests
               if r.path.endswith("/chat/completions"))
    assert not any(KEY in json.dumps(r.headers) for r in upstream.requests)  # the gateway key stays with the gateway


# -- budgets, rate limits, routes ----------------------------------------------------------------------------------


def test_a_budget_running_out_is_a_429_in_each_sdks_error_type(gateway: GatewayProcess, upstream: FakeServer) -> None:
    client = oa(gateway, key=TINY_KEY, max_retries=2)  # x-should-retry: false stops the SDK's retries
    spent, calls = 0.0, 0
    with pytest.raises(openai.RateLimitError) as raised:
        for calls in range(1, 40):  # noqa: B007 - read after the loop
            raw = client.chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=ask("x " * 50))
            spent += float(raw.headers["x-genai-cost-usd"])
    assert 0.001 <= spent < 0.001 + spent / (calls - 1)  # refused once the budget was spent, not before
    assert raised.value.body["code"] == "budget_exceeded" and raised.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert raised.value.response.headers["x-should-retry"] == "false"
    before = len(upstream.requests)
    with pytest.raises(anthropic.RateLimitError, match="spent its budget"):
        an(gateway, key=TINY_KEY, max_retries=2).messages.create(model="openai/gpt-4o", max_tokens=5, messages=ask("x"))
    assert len(upstream.requests) == before  # refused at the gateway, and not retried


def test_a_key_with_a_budget_may_not_call_a_model_without_a_price(gateway: GatewayProcess,
                                                                   upstream: FakeServer) -> None:
    before = len(upstream.requests)
    with pytest.raises(openai.PermissionDeniedError, match="has no known price") as raised:
        oa(gateway, key=TINY_KEY).chat.completions.create(model="openai/my-unpriced-finetune", messages=ask("x"))
    assert raised.value.body["code"] == "model_not_priced"  # type: ignore[index]
    assert len(upstream.requests) == before  # its cost could not be counted: not sent
    # a key without a budget may, and so may one whose budget allows unpriced calls (uncounted)
    assert oa(gateway).chat.completions.create(model="openai/my-unpriced-finetune", messages=ask("x")).choices
    raw = oa(gateway, key=LOOSE_KEY).chat.completions.with_raw_response.create(model="openai/my-unpriced-finetune",
                                                                               messages=ask("x"))
    assert raw.parse().choices and "x-genai-cost-usd" not in raw.headers


def test_requests_per_minute(gateway: GatewayProcess) -> None:
    client = oa(gateway, key=LIMITED_KEY)
    first = client.chat.completions.with_raw_response.create(model=MODELS["openai"], messages=ask("x"))
    assert first.headers["x-ratelimit-limit-requests"] == "2" and first.headers["x-ratelimit-remaining-requests"] == "1"
    client.chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    with pytest.raises(openai.RateLimitError, match="rate limit of requests") as raised:
        client.chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    assert 50 <= int(raised.value.response.headers["retry-after"]) <= 60


def test_a_fallback_route(gateway: GatewayProcess, upstream: FakeServer) -> None:
    upstream.inject(Fault("status", status=503))
    completion = oa(gateway).chat.completions.create(model="smart", messages=ask("which?"))
    assert completion.model.startswith("anthropic/") and completion.choices[0].message.content == expected(
        upstream, "which?")
    upstream.inject(Fault("status", status=429))  # the first deployment cools down after a rate limit
    with an(gateway).messages.stream(model="smart", max_tokens=50, messages=ask("stream which?")) as stream:
        assert "".join(stream.text_stream) == expected(upstream, "stream which?")
    paths = [r.path.rsplit("/", 1)[-1] for r in upstream.requests[-4:]]
    assert paths == ["completions", "messages", "completions", "messages"]


# -- disconnects --------------------------------------------------------------------------------------------------


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_call(gateway: GatewayProcess,
                                                                  upstream: FakeServer) -> None:
    before = upstream.abandoned
    upstream.inject(Fault("slow", seconds=6))
    started = time.monotonic()
    stream = oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("a long story"), stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    for _ in range(200):
        if upstream.abandoned > before:
            break
        time.sleep(0.02)
    assert upstream.abandoned == before + 1 and time.monotonic() - started < 4
    assert any(line["status"] == 499 and line["stream"] for line in wait_for_lines(gateway, lambda ls: any(
        x["status"] == 499 and x["stream"] for x in ls)))


def test_a_client_that_leaves_before_a_reply_cancels_the_upstream_call(gateway: GatewayProcess,
                                                                      upstream: FakeServer) -> None:
    before = upstream.abandoned
    upstream.inject(Fault("slow", seconds=6))
    with pytest.raises(openai.APITimeoutError):
        oa(gateway, timeout=0.5).chat.completions.create(model=MODELS["anthropic"], messages=ask("slow"))
    for _ in range(200):
        if upstream.abandoned > before:
            break
        time.sleep(0.02)
    assert upstream.abandoned == before + 1
    wait_for_lines(gateway, lambda ls: any(x["status"] == 499 and not x["stream"] for x in ls))


def wait_for_lines(gateway: GatewayProcess, ready: Any, seconds: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        lines = gateway.access_lines()
        if ready(lines) or time.monotonic() > deadline:
            assert ready(lines), lines[-5:]
            return lines
        time.sleep(0.05)


# -- models, health, metrics, logs, ledger -----------------------------------------------------------------------------


def test_models_are_the_routes_and_the_configured_providers_models_a_key_may_call(gateway: GatewayProcess) -> None:
    ids = [m.id for m in oa(gateway).models.list()]
    assert ids[:3] == ["smart", "quick", "vectors"]
    assert {name.partition("/")[0] for name in ids[3:]} == set(MODELS)
    assert "openai/text-embedding-3-small" in ids  # embedding models too  # every provider with a key, no other
    assert "openai/gpt-4o-mini" in ids and "groq/llama-3.3-70b-versatile" not in ids
    narrow = [m.id for m in an(gateway, key=NARROW_KEY).models.list()]
    assert narrow and all(name.startswith("anthropic/") for name in narrow)
    with pytest.raises(openai.AuthenticationError):
        oa(gateway, key="sk-nope").models.list()


def test_health_ready_and_metrics(gateway: GatewayProcess) -> None:
    oa(gateway).chat.completions.create(model=MODELS["openai"], messages=ask("count me"))
    assert httpx.get(gateway.base_url + "/health").json() == {"status": "ok"}
    assert httpx.get(gateway.base_url + "/ready").json() == {"status": "ready"}
    text = httpx.get(gateway.base_url + "/metrics").text
    assert 'genai_gateway_requests_total{api="openai",key="team",model="gpt-4o-mini",provider="openai",status="200"}' \
        in text
    assert 'genai_gateway_tokens_total{key="team",model="gpt-4o-mini",provider="openai",type="output"}' in text
    assert 'genai_gateway_cost_usd_total{key="team",model="gpt-4o-mini",provider="openai"}' in text
    with pytest.raises(openai.PermissionDeniedError):
        oa(gateway, key=NARROW_KEY).chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    text = httpx.get(gateway.base_url + "/metrics").text
    assert 'genai_gateway_errors_total{api="openai",key="narrow",kind="permission",model="-",provider="-"}' in text
    assert "genai_gateway_request_seconds_bucket" in text and "genai_gateway_in_flight" in text
    missing = httpx.post(gateway.base_url + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert httpx.get(gateway.base_url + "/v1/chat/completions").status_code == 405


def test_logs_are_json_lines_without_secrets(gateway: GatewayProcess) -> None:
    rid = oa(gateway).chat.completions.with_raw_response.create(model=MODELS["openai"],
                                                                messages=ask("log me")).headers["x-request-id"]
    for _ in range(250):  # the access line is written once the reply is out: wait for it
        text = gateway.logs()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        access = [line for line in lines if line.get("event") == "request" and line.get("id") == rid]
        if access:
            break
        time.sleep(0.02)
    assert access and {"ts", "id", "status", "key", "model", "latency_ms", "cost_usd"} <= set(access[0])
    for secret in (KEY, TINY_KEY, LIMITED_KEY, NARROW_KEY, UPSTREAM_KEY):
        assert secret not in text
    assert "log me" not in text  # message content is not logged


def test_the_ledger_has_every_request_and_genai_usage_sums_it(gateway: GatewayProcess) -> None:
    raw = oa(gateway).chat.completions.with_raw_response.create(model=MODELS["openai"], messages=ask("ledger"))
    rid, cost = raw.headers["x-request-id"], float(raw.headers["x-genai-cost-usd"])
    db = sqlite3.connect(gateway.folder / "ledger.db")
    row = db.execute("SELECT key, provider, served_model, status, cost_usd, messages FROM requests WHERE id = ?",
                     (rid,)).fetchone()
    assert row == ("team", "openai", "gpt-4o-mini", 200, pytest.approx(cost), None)
    with pytest.raises(openai.PermissionDeniedError):
        oa(gateway, key=NARROW_KEY).chat.completions.create(model=MODELS["openai"], messages=ask("x"))
    refused = db.execute("SELECT status, error_kind, provider FROM requests WHERE key = 'narrow'").fetchall()
    assert (403, "permission", None) in refused  # refusals of a known key are on record too
    out = subprocess.run([sys.executable, "-m", "engine", "usage", "--db", str(gateway.folder / "ledger.db"),
                          "--by", "key,provider", "--json"], cwd=ROOT, env=child_env(), capture_output=True,
                         text=True, check=True).stdout
    rows = {(r["key"], r["provider"]): r for r in json.loads(out)}
    total = db.execute("SELECT COUNT(*), SUM(cost_usd) FROM requests WHERE key = 'team' AND provider = 'openai'")
    count, spent = total.fetchone()
    assert rows["team", "openai"]["requests"] == count and rows["team", "openai"]["cost_usd"] == pytest.approx(spent)


# -- embeddings -------------------------------------------------------------------------------------------------

EMBEDDERS = {"openai": "openai/text-embedding-3-small", "gemini": "gemini/gemini-embedding-001",
             "cohere": "cohere/embed-v4.0", "ollama": "ollama/nomic-embed-text"}
MOONS = ["Io is volcanic.", "Europa hides an ocean.", "Ganymede is the largest moon."]


@pytest.mark.parametrize("encoding", ["base64", "float"])  # the SDK asks for base64 unless told otherwise
@pytest.mark.parametrize("upstream_format", list(EMBEDDERS))
def test_openai_sdk_embeddings_from_every_wire_format(gateway: GatewayProcess, upstream_format: str,
                                                      encoding: str) -> None:
    from engine.testing.embeddings import vector_for

    options: dict[str, Any] = {"extra_body": {"input_type": "document"}} if upstream_format == "cohere" else {}
    if encoding == "float":
        options["encoding_format"] = "float"
    raw = oa(gateway).embeddings.with_raw_response.create(model=EMBEDDERS[upstream_format], input=MOONS, **options)
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1, 2]
    for item, text in zip(result.data, MOONS, strict=True):
        assert item.embedding == pytest.approx(vector_for(text), rel=1e-6, abs=1e-7)  # float32 on the base64 path
    assert result.model.startswith(upstream_format + "/")
    cost = float(raw.headers["x-genai-cost-usd"])
    assert result.usage.model_extra is not None and result.usage.model_extra["cost_usd"] == pytest.approx(cost)
    assert (cost == 0) == (upstream_format == "ollama")
    if upstream_format != "ollama":  # Ollama's /api/embed reports prompt_eval_count; the others their own count
        assert result.usage.prompt_tokens > 0
    row = sqlite3.connect(gateway.folder / "ledger.db").execute(
        "SELECT api, provider, status, input_tokens, output_tokens, cost_usd FROM requests WHERE id = ?",
        (raw.headers["x-request-id"],)).fetchone()
    assert row[:3] == ("openai", upstream_format, 200) and row[4] == 0 and row[5] == pytest.approx(cost)


def test_embeddings_of_one_string(gateway: GatewayProcess) -> None:
    from engine.testing.embeddings import vector_for

    single = oa(gateway).embeddings.create(model=EMBEDDERS["openai"], input="Callisto", encoding_format="float")
    assert len(single.data) == 1 and single.data[0].embedding == pytest.approx(vector_for("Callisto"))


def test_an_embeddings_route_falls_back(gateway: GatewayProcess, upstream: FakeServer) -> None:
    from engine.testing.embeddings import vector_for

    upstream.inject(Fault("status", status=503))
    result = oa(gateway).embeddings.create(model="vectors", input=MOONS, encoding_format="float")
    assert result.model.startswith("gemini/")
    assert [d.embedding for d in result.data] == [pytest.approx(vector_for(t)) for t in MOONS]


def test_embeddings_refusals_and_failures(gateway: GatewayProcess, upstream: FakeServer) -> None:
    client = oa(gateway)
    with pytest.raises(openai.BadRequestError, match="token-id arrays are not supported"):
        client.embeddings.create(model=EMBEDDERS["openai"], input=[[1, 2, 3]])
    with pytest.raises(openai.BadRequestError, match="has no embeddings"):
        client.embeddings.create(model=MODELS["anthropic"], input=MOONS)
    with pytest.raises(openai.BadRequestError, match="cannot be set through the gateway"):
        client.embeddings.create(model=EMBEDDERS["openai"], input=MOONS, extra_body={"api_key": "sk-mine"})
    with pytest.raises(openai.PermissionDeniedError):
        oa(gateway, key=NARROW_KEY).embeddings.create(model=EMBEDDERS["openai"], input=MOONS)
    upstream.inject(Fault("status", status=429))
    with pytest.raises(openai.RateLimitError) as raised:
        client.embeddings.create(model=EMBEDDERS["openai"], input=MOONS)
    assert raised.value.response.headers["x-genai-error-kind"] == "rate_limit"


def test_the_gateway_config_path_is_the_folder_of_its_ledger(gateway: GatewayProcess) -> None:
    assert Path(gateway.config_path).parent == gateway.folder and (gateway.folder / "ledger.db").is_file()
