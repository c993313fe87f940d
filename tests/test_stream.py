"""Stream decoding: any chunk boundary, SSE details, NDJSON, and per-event rules."""

from __future__ import annotations

import json

import pytest

from engine.errors import ErrorKind
from engine.registry import Registry
from engine.stream import NDJSONDecoder, SSEDecoder, StreamState
from engine.types import StreamEvent

from .conftest import FIXTURES, make_settings

REGISTRY = Registry(make_settings())


def decode_all(decoder: SSEDecoder | NDJSONDecoder, body: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    events = []
    start = 0
    for cut in [*cuts, len(body)]:
        events += decoder.feed(body[start:cut])
        start = cut
    return events + decoder.close()


SSE = ("event: greeting\r\ndata: {\"a\": \"héllo\"}\r\n\r\n: keep-alive comment\n\n"
       "data: line one\ndata: line two\n\nid: 7\nretry: 100\ndata:no-space\n\ndata: [DONE]\n\n").encode()


def test_sse_every_split_point_gives_the_same_events() -> None:
    whole = decode_all(SSEDecoder(), SSE, [])
    assert whole == [("greeting", '{"a": "héllo"}'.encode()), (None, b"line one\nline two"),
                     (None, b"no-space"), (None, b"[DONE]")]
    for cut in range(1, len(SSE)):
        assert decode_all(SSEDecoder(), SSE, [cut]) == whole, cut


def test_sse_one_byte_at_a_time() -> None:
    assert decode_all(SSEDecoder(), SSE, list(range(1, len(SSE)))) == decode_all(SSEDecoder(), SSE, [])


def test_sse_lone_carriage_returns_and_a_last_event_without_blank_line() -> None:
    assert decode_all(SSEDecoder(), b"data: a\r\rdata: b", []) == [(None, b"a"), (None, b"b")]


def test_ndjson_every_split_point() -> None:
    body = '{"a": "é"}\n\n{"b": 2}\r\n{"c": 3}'.encode()
    expected = [(None, '{"a": "é"}'.encode()), (None, b'{"b": 2}\r'), (None, b'{"c": 3}')]
    for cut in range(1, len(body)):
        assert decode_all(NDJSONDecoder(), body, [cut]) == expected


def texts(events: list[StreamEvent | str]) -> list[str]:
    """The text deltas of a batch: StreamState gives them as plain strings."""
    assert not any(isinstance(e, StreamEvent) and e.type == "text" for e in events)
    return [event for event in events if isinstance(event, str)]


def state_for(provider: str) -> StreamState:
    compiled = REGISTRY.compiled(provider)
    assert compiled.stream is not None
    return StreamState(compiled.stream, compiled.spec.errors.kinds)


def test_anthropic_rules_per_event_type() -> None:
    state = state_for("anthropic")
    events = state.feed((FIXTURES / "anthropic" / "stream.txt").read_bytes()) + state.close()
    assert texts(events) == ["Hello", " wörld — ✓"] and state.ended and state.error is None
    assert state.values["input_tokens"] == 25 and state.values["output_tokens"] == 15
    assert state.values["finish_reason"] == "end_turn"


def test_an_error_event_fails_the_stream_with_the_providers_kind() -> None:
    state = state_for("anthropic")
    state.feed(b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"Hi"}}\n\n'
               b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}\n\n')
    assert state.content == "Hi"
    assert state.error == "error in stream: Slow down (rate_limit_error)"
    assert state.error_kind is ErrorKind.RATE_LIMIT


def test_openai_in_stream_error_object() -> None:
    state = state_for("openai")
    state.feed(b'data: {"error": {"message": "boom", "type": "server_error", "code": null}}\n\n')
    assert state.error == "error in stream: boom (server_error)" and state.error_kind is ErrorKind.SERVER


def test_invalid_json_event_is_an_invalid_response() -> None:
    state = state_for("openai")
    state.feed(b"data: {not json\n\n")
    assert state.error_kind is ErrorKind.INVALID_RESPONSE


def test_ndjson_end_when_done_and_usage_from_last_line() -> None:
    state = state_for("ollama")
    lines = (FIXTURES / "ollama" / "stream.txt").read_bytes()
    assert texts(state.feed(lines)) == ["Hello", " wörld — ✓"]
    assert state.ended and state.values["output_tokens"] == 282


def test_nothing_after_the_end_marker_is_read() -> None:
    state = state_for("openai")
    deltas = state.feed(b'data: [DONE]\n\ndata: {"choices":[{"delta":{"content":"late"}}]}\n\n')
    assert deltas == [] and state.ended


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama", "openai-responses"])
def test_events_are_kept_as_raw_response(provider: str) -> None:
    state = state_for(provider)
    body = (FIXTURES / provider / "stream.txt").read_bytes()
    state.feed(body)
    assert state.events and json.dumps(state.events)


def typed(*events: dict[str, object], named: bool = True) -> bytes:
    """Responses-style events: the type in the data and (``named``) in the SSE event: line."""
    return b"".join((f"event: {e['type']}\n" if named else "").encode() + b"data: " + json.dumps(e).encode() + b"\n\n"
                    for e in events)


TEXT = {"type": "response.output_text.delta", "output_index": 0, "delta": "Par"}


@pytest.mark.parametrize(("event", "message", "kind"), [
    ({"type": "response.failed", "response": {"status": "failed", "error": {
        "code": "server_error", "message": "The model failed."}}},
     "The model failed. (server_error)", ErrorKind.SERVER),
    ({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down.", "param": None},
     "Slow down. (rate_limit_exceeded)", ErrorKind.RATE_LIMIT),
    # the shape seen in production: the error nested, as in an HTTP error body
    ({"type": "error", "error": {"type": "invalid_request_error", "code": "context_length_exceeded",
                                 "message": "Too long."}}, "Too long. (context_length_exceeded)",
     ErrorKind.INVALID_REQUEST),
])
@pytest.mark.parametrize("named", [True, False], ids=["event-line", "type-only"])
def test_responses_failed_and_error_events_fail_the_stream(event: dict[str, object], message: str,
                                                           kind: ErrorKind, named: bool) -> None:
    state = state_for("openai-responses")
    deltas = state.feed(typed(TEXT, event, named=named))
    assert texts(deltas) == ["Par"] and state.content == "Par"
    assert state.error == f"error in stream: {message}" and state.error_kind is kind


def test_responses_incomplete_ends_the_stream_with_its_reason_and_a_refusal_is_content_filtered() -> None:
    state = state_for("openai-responses")
    state.feed(typed(TEXT, {"type": "response.incomplete", "response": {
        "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 3, "output_tokens": 16, "output_tokens_details": {"reasoning_tokens": 12}}}}))
    assert state.ended and state.error is None and state.values["finish_reason"] == "max_output_tokens"
    assert (state.values["output_tokens"], state.values["reasoning_tokens"]) == (16, 12)
    refused = state_for("openai-responses")
    refused.feed(typed({"type": "response.refusal.delta", "output_index": 0, "delta": "I can't help."},
                       {"type": "response.completed", "response": {"status": "completed", "output": [
                           {"type": "message", "content": [{"type": "refusal", "refusal": "I can't help."}]}]}}))
    assert refused.ended and refused.content == "I can't help." and refused.values["finish_reason"] == "refusal"
    # A function call's item events carry no text: only its start and argument pieces count.
    calls = state_for("openai-responses")
    calls.feed(typed({"type": "response.output_item.added", "output_index": 1, "item": {
        "type": "message", "id": "msg_1", "name": "not-a-call"}},
                     {"type": "response.output_item.added", "output_index": 2, "item": {
        "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}},
                     {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": "{}"}))
    assert [(c.id, c.name, c.arguments) for c in calls.tool_calls()] == [("call_1", "f", "{}")]
