"""The OpenAI-compatible API's requests and replies, without sockets: each reply validated by the official SDK's
own types, each refusal a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("openai", reason="the official openai SDK (installed by [dev])")

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from engine import CompletionResponse, ErrorKind, ToolCall
from engine.gateway import openai_api
from engine.gateway.calls import ChatCall, read_json
from engine.gateway.problems import BUDGET, PERMISSION, Problem, failed_call
from engine.types import StreamEvent

ASK = [{"role": "user", "content": "hi"}]


def parse(**body: Any) -> ChatCall:
    return openai_api.parse({"model": "openai/gpt-4o-mini", "messages": ASK, **body})


def test_a_request_becomes_an_engine_call() -> None:
    call = parse(max_completion_tokens=50, max_tokens=10, temperature=0.2, top_p=0.9, seed=4, stop=["x"], user="u",
                 presence_penalty=0.1, frequency_penalty=0.2, parallel_tool_calls=False, tool_choice="auto",
                 tools=[{"type": "function", "function": {"name": "f"}}], reasoning_effort="low")
    assert call.model == "openai/gpt-4o-mini" and call.messages == ASK and not call.stream
    assert call.max_tokens == 50
    assert call.options == {"temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "presence_penalty": 0.1,
                            "frequency_penalty": 0.2, "seed": 4, "stop": ["x"], "user": "u",
                            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
                            "parallel_tool_calls": False, "extra": {"reasoning_effort": "low"}}


def test_without_a_temperature_the_provider_default_is_left_alone() -> None:
    assert parse().options == {"temperature": None}  # the engine's own default (0.7) would otherwise be sent


@pytest.mark.parametrize(("response_format", "schema"), [
    ({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {}}}},
     {"type": "object", "properties": {}}),
    ({"type": "json_object"}, {"type": "object"}),
    ({"type": "text"}, None),
])
def test_response_format_becomes_output_schema(response_format: dict[str, Any], schema: Any) -> None:
    assert parse(response_format=response_format).options.get("output_schema") == schema


def test_usage_in_the_last_chunk_only_when_asked() -> None:
    assert parse(stream=True, stream_options={"include_usage": True}).include_usage
    assert not parse(stream=True).include_usage
    assert not parse(stream_options={"include_usage": True}).include_usage  # not a stream


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"model": ""}, "model", "model is required"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": ["hi"]}, "messages", "non-empty list"),
    ({"n": 2}, "n", "n must be 1"),
    ({"logprobs": True}, "logprobs", "not supported"),
    ({"max_tokens": "ten"}, "max_tokens", "integer"),
    ({"temperature": True}, "temperature", "number"),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format", "schema"),
    ({"response_format": {"type": "yaml"}}, "response_format", "text, json_object or json_schema"),
    ({"base_url": "http://evil.example"}, "base_url", "cannot be set"),
    ({"api_key": "sk-mine"}, "api_key", "cannot be set"),
    ({"extra_headers": {"x": "y"}}, "extra_headers", "cannot be set"),
])
def test_malformed_requests_are_refused_naming_the_field(body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(Problem, match=message) as refused:
        parse(**body)
    assert refused.value.status == 400 and refused.value.kind == "invalid_request" and refused.value.param == field


def test_a_body_that_is_not_a_json_object_is_refused() -> None:
    for body in (b"{", b"[1]", b'"text"'):
        with pytest.raises(Problem) as refused:
            read_json(body)
        assert refused.value.status == 400


def response(**fields: Any) -> CompletionResponse:
    values: dict[str, Any] = {"content": "Ganymede.", "model": "gpt-4o-mini-2024-07-18", "provider": "openai",
                              "input_tokens": 12, "output_tokens": 3, "cached_input_tokens": 4,
                              "reasoning_tokens": 1, "cost_usd": 0.0000123, "finish_reason": "stop"}
    values.update(fields)
    return CompletionResponse(**values)


def test_a_reply_is_a_chat_completion_with_its_cost() -> None:
    body = json.loads(openai_api.reply(response(), parse(), "abc", 1700000000))
    completion = ChatCompletion.model_validate(body)
    assert completion.id == "chatcmpl-abc" and completion.created == 1700000000
    assert completion.model == "openai/gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == "Ganymede." and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12, 3, 15)
    assert completion.usage.prompt_tokens_details.cached_tokens == 4  # type: ignore[union-attr]
    assert completion.usage.completion_tokens_details.reasoning_tokens == 1  # type: ignore[union-attr]
    assert body["usage"]["cost_usd"] == 0.0000123


def test_a_reply_with_tool_calls_and_reasoning() -> None:
    calls = [ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')]
    body = json.loads(openai_api.reply(response(content="", tool_calls=calls, finish_reason="tool_calls",
                                                reasoning="thinking...", cost_usd=None), parse(), "x", 1))
    message = ChatCompletion.model_validate(body).choices[0].message
    assert message.content is None and message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert message.tool_calls[0].function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["reasoning_content"] == "thinking..."
    assert body["usage"]["cost_usd"] is None


def test_the_engines_finish_reason_other_is_shown_as_stop() -> None:
    body = json.loads(openai_api.reply(response(finish_reason="other"), parse(), "x", 1))
    assert body["choices"][0]["finish_reason"] == "stop"


def sse(data: bytes) -> list[Any]:
    events = []
    for block in data.decode().split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            payload = block[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_a_stream_is_chunks_then_finish_then_usage_then_done() -> None:
    call = parse(stream=True, stream_options={"include_usage": True})
    chunks = openai_api.Chunks(call, "rid", 5)
    final = response(content="Hello wörld", tool_calls=[ToolCall(id="c1", name="f", arguments='{"a": 1}')],
                     finish_reason="tool_calls")
    data = chunks.start() + chunks.encode(["Hello", " wörld"]) + chunks.encode([
        StreamEvent("reasoning", "hm"), StreamEvent("tool_call", index=0, id="c1", name="f"),
        StreamEvent("tool_arguments", '{"a": ', index=0), StreamEvent("tool_arguments", "1}", index=0),
        StreamEvent("usage", response=final), StreamEvent("end", response=final)]) + chunks.finish(final)
    events = sse(data)
    assert events[-1] == "[DONE]"
    parsed = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    assert {c.id for c in parsed} == {"chatcmpl-rid"} and {c.model for c in parsed} == {"openai/gpt-4o-mini"}
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "Hello wörld"
    pieces = [t for c in parsed if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert pieces[0].id == "c1" and pieces[0].function.name == "f"  # type: ignore[union-attr]
    assert "".join(p.function.arguments or "" for p in pieces) == '{"a": 1}'  # type: ignore[union-attr]
    assert events[1 + 2]["choices"][0]["delta"] == {"reasoning_content": "hm"}
    assert parsed[-2].choices[0].finish_reason == "tool_calls"
    assert parsed[-1].choices == [] and parsed[-1].usage is not None and parsed[-1].usage.total_tokens == 15
    assert events[-2]["usage"]["cost_usd"] == final.cost_usd


def test_a_stream_without_include_usage_has_no_usage_chunk() -> None:
    chunks = openai_api.Chunks(parse(stream=True), "rid", 5)
    events = sse(chunks.finish(response()))
    assert events[-1] == "[DONE]" and len(events) == 2 and "usage" not in events[0]


def test_an_error_mid_stream_is_an_error_chunk() -> None:
    chunks = openai_api.Chunks(parse(stream=True), "rid", 5)
    problem = failed_call(CompletionResponse(success=False, error="HTTP 500", error_message="upstream broke",
                                             error_kind=ErrorKind.SERVER, status_code=500))
    [event] = sse(chunks.error(problem))
    assert event == {"error": {"message": "upstream broke", "type": "server_error", "param": None, "code": None}}


@pytest.mark.parametrize(("kind", "status", "kind_type", "code"), [
    (ErrorKind.AUTH, 401, "authentication_error", "invalid_api_key"),
    (ErrorKind.RATE_LIMIT, 429, "rate_limit_error", "rate_limit_exceeded"),
    (ErrorKind.INVALID_REQUEST, 400, "invalid_request_error", None),
    (ErrorKind.NOT_FOUND, 404, "invalid_request_error", "model_not_found"),
    (ErrorKind.SERVER, 500, "server_error", None),
    (ErrorKind.TIMEOUT, 504, "timeout", "upstream_timeout"),
    (ErrorKind.CONNECTION, 502, "server_error", "upstream_connection_error"),
    (ErrorKind.INVALID_RESPONSE, 502, "server_error", "upstream_invalid_response"),
    (PERMISSION, 403, "permission_error", "model_not_allowed"),
    (BUDGET, 429, "insufficient_quota", "budget_exceeded"),
])
def test_error_kinds_map_to_status_and_openai_error_shape(kind: str, status: int, kind_type: str,
                                                          code: str | None) -> None:
    problem = Problem(str(kind), "it failed")
    assert problem.status == status
    assert json.loads(openai_api.error_body(problem)) == {"error": {"message": "it failed", "type": kind_type,
                                                                    "param": None, "code": code}}


def test_a_failed_call_keeps_the_providers_5xx_and_message() -> None:
    problem = failed_call(CompletionResponse(success=False, error="HTTP 529: overloaded (overloaded_error)",
                                             error_message="overloaded", error_code="overloaded_error",
                                             error_kind=ErrorKind.SERVER, status_code=529))
    assert (problem.status, problem.message, problem.code) == (529, "overloaded", "overloaded_error")
    rate = failed_call(CompletionResponse(success=False, error="HTTP 429", error_kind=ErrorKind.RATE_LIMIT,
                                          status_code=429))
    assert rate.status == 429 and rate.message == "HTTP 429"


def test_models_list() -> None:
    body = json.loads(openai_api.models(["smart", "openai/gpt-4o"], 7))
    assert body == {"object": "list", "data": [
        {"id": "smart", "object": "model", "created": 7, "owned_by": "genai-gateway"},
        {"id": "openai/gpt-4o", "object": "model", "created": 7, "owned_by": "openai"}]}
