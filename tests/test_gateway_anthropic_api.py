"""The Anthropic-compatible API's requests and replies, without sockets: Messages requests in the engine's shape,
replies and every stream event validated by the official SDK's own types."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("anthropic", reason="the official anthropic SDK (installed by [dev])")

from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from engine import CompletionResponse, ErrorKind, ToolCall
from engine.gateway import anthropic_api
from engine.gateway.calls import ChatCall
from engine.gateway.problems import BUDGET, PERMISSION, Problem
from engine.types import StreamEvent

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def parse(**body: Any) -> ChatCall:
    return anthropic_api.parse({"model": "anthropic/claude-haiku-4-5", "max_tokens": 100,
                                "messages": [{"role": "user", "content": "hi"}], **body})


def test_a_request_becomes_an_engine_call() -> None:
    call = parse(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                 temperature=0.3, top_p=0.8, top_k=5, stop_sequences=["END"], metadata={"user_id": "u-1"},
                 stream=True)
    assert call.stream and call.include_usage and call.max_tokens == 100
    assert call.messages == [{"role": "system", "content": "Be brief.\n\nBe kind."}, {"role": "user", "content": "hi"}]
    assert call.options == {"temperature": 0.3, "max_tokens": 100, "top_p": 0.8, "stop": ["END"], "user": "u-1",
                            "extra": {"top_k": 5}}


def test_blocks_become_content_parts_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "What is here, and the weather?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
             "title": "a.pdf"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no"}],
             "is_error": True},
            {"type": "text", "text": "Thanks"}]},
    ]
    call = parse(messages=messages)
    assert call.messages == [
        {"role": "user", "content": [
            {"type": "text", "text": "What is here, and the weather?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}}]},
        {"role": "assistant", "content": "Checking.",
         "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
         "thinking": [{"type": "thinking", "thinking": "Let me look.", "signature": "sig"}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]},
    ]


@pytest.mark.parametrize(("choice", "options"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "f", "disable_parallel_tool_use": True},
     {"tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": False}),
])
def test_tools_and_tool_choice(choice: dict[str, Any], options: dict[str, Any]) -> None:
    call = parse(tools=[{"name": "f", "description": "does f", "input_schema": {"type": "object"}}],
                 tool_choice=choice)
    assert call.options["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                                       "description": "does f"}}]
    assert {k: v for k, v in call.options.items() if k in options} == options


def test_output_config_format_is_the_output_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert parse(output_config={"format": {"type": "json_schema", "schema": schema}}).options["output_schema"] == schema


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": [{"role": "system", "content": "x"}]}, "role must be user or assistant"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "'video' is not supported"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "source type 'file'"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "only custom tools"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"output_config": {"format": {"type": "json_object"}}}, "json_schema"),
    ({"system": [{"type": "image"}]}, "only text blocks"),
    ({"base_url": "http://evil.example"}, "cannot be set"),
])
def test_malformed_requests_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(Problem, match=message) as refused:
        parse(**body)
    assert refused.value.status == 400


def response(**fields: Any) -> CompletionResponse:
    values: dict[str, Any] = {"content": "Ganymede.", "model": "claude-haiku-4-5", "provider": "anthropic",
                              "input_tokens": 120, "output_tokens": 7, "cached_input_tokens": 100,
                              "cache_write_tokens": 5, "cost_usd": 0.00042, "finish_reason": "stop",
                              "native_finish_reason": "end_turn"}
    values.update(fields)
    return CompletionResponse(**values)


def test_a_reply_is_a_message_whose_input_tokens_exclude_the_cache() -> None:
    body = json.loads(anthropic_api.reply(response(), parse(), "abc"))
    message = Message.model_validate(body)
    assert message.id == "msg_abc" and message.model == "anthropic/claude-haiku-4-5"
    assert message.content[0].type == "text" and message.content[0].text == "Ganymede."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (15, 100, 5, 7)
    assert body["usage"]["cost_usd"] == 0.00042
    routed = json.loads(anthropic_api.reply(response(), parse(model="smart"), "abc"))
    assert routed["model"] == "anthropic/claude-haiku-4-5"  # the model that answered, as the OpenAI reply names it


def test_a_reply_with_thinking_and_tool_use() -> None:
    calls = [ToolCall(id="toolu_9", name="get_weather", arguments='{"city": "Rome"}')]
    reply = response(content="", tool_calls=calls, finish_reason="tool_calls", native_finish_reason="tool_use",
                     thinking=[{"type": "thinking", "thinking": "hmm", "signature": "s1"}])
    message = Message.model_validate(json.loads(anthropic_api.reply(reply, parse(), "x")))
    assert [block.type for block in message.content] == ["thinking", "tool_use"]
    assert message.content[1].input == {"city": "Rome"} and message.stop_reason == "tool_use"  # type: ignore[union-attr]


@pytest.mark.parametrize(("finish", "provider", "native", "stop"), [
    ("stop", "openai", "stop", "end_turn"), ("length", "openai", "length", "max_tokens"),
    ("tool_calls", "gemini", "STOP", "tool_use"), ("content_filter", "openai", "content_filter", "refusal"),
    ("stop", "anthropic", "stop_sequence", "stop_sequence"), ("other", "cohere", "ERROR", "end_turn"),
])
def test_stop_reasons(finish: str, provider: str, native: str, stop: str) -> None:
    assert anthropic_api.stop_reason(response(finish_reason=finish, provider=provider,
                                              native_finish_reason=native)) == stop


def events_of(data: bytes) -> list[tuple[str, Any]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            name, payload = block.split("\n", 1)
            assert name.startswith("event: ") and payload.startswith("data: ")
            out.append((name[len("event: "):], json.loads(payload[len("data: "):])))
    return out


def test_a_stream_validates_event_by_event_and_adds_up_to_the_reply() -> None:
    call = parse(stream=True)
    stream = anthropic_api.Events(call, "rid")
    final = response(content="Hello wörld", reasoning="hm", tool_calls=[
        ToolCall(id="t1", name="f", arguments='{"a": 1}'), ToolCall(id="t2", name="g", arguments="{}")],
                     finish_reason="tool_calls", native_finish_reason="tool_use")
    data = stream.start() + stream.encode([StreamEvent("reasoning", "hm")]) + stream.encode(
        ["Hello", "", " wörld", StreamEvent("tool_call", index=0, id="t1", name="f"),
         StreamEvent("tool_arguments", '{"a": 1}', index=0), StreamEvent("end", response=final)]) + stream.finish(final)
    events = events_of(data)
    for name, payload in events:
        assert EVENTS.validate_python(payload).type == name
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    blocks: dict[int, dict[str, Any]] = {}
    for name, payload in events:
        if name == "content_block_start":
            blocks[payload["index"]] = dict(payload["content_block"], partial="")
        elif name == "content_block_delta":
            delta = payload["delta"]
            block = blocks[payload["index"]]
            key = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial"}[delta["type"]]
            block[key] += delta[{"text_delta": "text", "thinking_delta": "thinking",
                                 "input_json_delta": "partial_json"}[delta["type"]]]
    assert [b["type"] for b in blocks.values()] == ["thinking", "text", "tool_use", "tool_use"]
    assert blocks[0]["thinking"] == "hm" and blocks[1]["text"] == "Hello wörld"
    assert [json.loads(b["partial"]) for b in blocks.values() if b["type"] == "tool_use"] == [{"a": 1}, {}]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 7
    assert delta["usage"]["cost_usd"] == 0.00042


def test_an_error_mid_stream_is_an_error_event() -> None:
    stream = anthropic_api.Events(parse(stream=True), "rid")
    [(name, payload)] = events_of(stream.error(Problem(str(ErrorKind.SERVER), "upstream broke", status=529)))
    assert name == "error" and payload == {"type": "error", "error": {"type": "overloaded_error",
                                                                      "message": "upstream broke"}}


@pytest.mark.parametrize(("kind", "status", "error_type"), [
    (ErrorKind.AUTH, 401, "authentication_error"), (ErrorKind.RATE_LIMIT, 429, "rate_limit_error"),
    (ErrorKind.INVALID_REQUEST, 400, "invalid_request_error"), (ErrorKind.NOT_FOUND, 404, "not_found_error"),
    (ErrorKind.SERVER, 500, "api_error"), (ErrorKind.TIMEOUT, 504, "timeout_error"),
    (ErrorKind.CONNECTION, 502, "api_error"), (ErrorKind.INVALID_RESPONSE, 502, "api_error"),
    (PERMISSION, 403, "permission_error"), (BUDGET, 429, "rate_limit_error"),
])
def test_error_kinds_map_to_status_and_anthropic_error_shape(kind: str, status: int, error_type: str) -> None:
    problem = Problem(str(kind), "it failed")
    assert problem.status == status
    assert json.loads(anthropic_api.error_body(problem, "r1")) == {
        "type": "error", "error": {"type": error_type, "message": "it failed"}, "request_id": "r1"}


def test_models_list_in_anthropics_shape() -> None:
    body = json.loads(anthropic_api.models(["smart", "anthropic/claude-haiku-4-5"]))
    assert [m["id"] for m in body["data"]] == ["smart", "anthropic/claude-haiku-4-5"]
    assert body["first_id"] == "smart" and body["last_id"] == "anthropic/claude-haiku-4-5" and not body["has_more"]
