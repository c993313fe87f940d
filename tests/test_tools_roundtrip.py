"""Tool calls, tool results and images end to end over real sockets, sync and async, streamed and not.

The fake server answers in each provider's native wire format and checks the follow-up strictly (every call
answered once, in the right place, Gemini's thought signature sent back), so a final "Results: ..." proves
the engine wrote the native shape.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from engine import CompletionRequest, CompletionResponse, Engine, ErrorKind, render_request
from engine.testing import FakeServer
from engine.testing.wire import SIGNATURE, OpenAIResponses
from engine.types import StreamEvent

from .conftest import server_settings

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash", "cohere": None,
          "ollama": "llama3.2", "groq": None, "mistral": None,
          "openai-responses": "gpt-5-mini"}  # a reasoning model: its encrypted reasoning goes back with the results
IMAGES = ("openai", "anthropic", "gemini", "cohere", "ollama", "mistral", "openai-responses")  # groq's takes none
PIECED = ("openai", "anthropic", "cohere", "groq", "mistral", "openai-responses")  # arguments sent in pieces
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The local time.",
                                         "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "Weather in Paris and Rome?"}]
RESULTS = ["18C in Paris", "22C in Rome"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def picture(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def run(server: FakeServer, provider: str, messages: list[dict[str, Any]], *, stream: bool, mode: str = "sync",
        **options: Any) -> tuple[CompletionResponse, list[StreamEvent]]:
    """One call through `Engine` (``mode`` sync or async); a streamed one also gives its events."""
    model = f"{provider}/{MODELS[provider]}" if MODELS[provider] else provider
    settings = server_settings(server, max_retries=0)
    if mode == "sync":
        with Engine(settings) as engine:
            if not stream:
                return engine.complete(model, messages, **options), []
            handle = engine.stream(model, messages, **options)
            events = list(handle.events())
            return handle.final(), events

    async def go() -> tuple[CompletionResponse, list[StreamEvent]]:
        async with Engine(settings) as engine:
            if not stream:
                return await engine.acomplete(model, messages, **options), []
            handle = engine.astream(model, messages, **options)
            events = [event async for event in handle.events()]
            return await handle.final(), events

    return asyncio.run(go())


def follow_up(response: CompletionResponse) -> list[dict[str, Any]]:
    """The conversation after the calls: the question, the reply as given, then one result per call."""
    return [*ASK, response.message, *({"role": "tool", "tool_call_id": call.id, "content": result}
                                      for call, result in zip(response.tool_calls, RESULTS, strict=True))]


def check_events(events: list[StreamEvent], response: CompletionResponse) -> None:
    """Text deltas join to the content; tool_call / tool_arguments events rebuild the final calls."""
    assert events and events[-1].type == "end" and events[-1].response == response
    assert "".join(e.text for e in events if e.type == "text") == response.content
    starts = [e for e in events if e.type == "tool_call"]
    assert [e.index for e in starts] == list(range(len(response.tool_calls)))
    started: set[int | None] = set()
    arguments: dict[int | None, str] = defaultdict(str)
    for event in events:
        if event.type == "tool_call":
            started.add(event.index)
        elif event.type == "tool_arguments":
            assert event.index in started, "arguments for a call that has not started"
            arguments[event.index] += event.text
    rebuilt = [(s.name, json.loads(arguments[s.index] or "{}")) for s in starts]
    assert rebuilt == [(call.name, call.args()) for call in response.tool_calls]
    assert all(s.id in (None, call.id) for s, call in zip(starts, response.tool_calls, strict=True))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", sorted(MODELS))
def test_two_parallel_calls_then_their_results(local_server: FakeServer, provider: str, stream: bool,
                                               mode: str) -> None:
    first, events = run(local_server, provider, ASK, stream=stream, mode=mode, tools=[WEATHER])
    assert first.success, first.error
    assert first.finish_reason == "tool_calls"
    assert [(call.name, call.args()) for call in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert len({call.id for call in first.tool_calls}) == 2
    if stream:
        check_events(events, first)
        pieces = [e for e in events if e.type == "tool_arguments" and e.index == 0]
        assert len(pieces) >= (3 if provider in PIECED else 1)

    final, events = run(local_server, provider, follow_up(first), stream=stream, mode=mode, tools=[WEATHER])
    assert final.success, final.error  # the server answers 400 to a follow-up not in its native shape
    assert final.content == "Results: 18C in Paris; 22C in Rome"
    assert final.finish_reason == "stop" and not final.tool_calls
    if stream:
        check_events(events, final)


def test_mistral_call_ids_are_nine_letters_and_digits(local_server: FakeServer) -> None:
    first, _ = run(local_server, "mistral", ASK, stream=False, tools=[WEATHER])
    assert [call.id for call in first.tool_calls] == ["call_local1", "call_local2"]  # as the server sent them
    final, _ = run(local_server, "mistral", follow_up(first), stream=False, tools=[WEATHER])
    assert final.success, final.error
    sent = local_server.requests[-1].json()["messages"]
    ids = [call["id"] for call in sent[1]["tool_calls"]] + [m["tool_call_id"] for m in sent[2:]]
    assert len(ids) == 4 and all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids), ids
    assert ids[:2] == ids[2:] and ids[0] != ids[1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", sorted(MODELS))
def test_tool_choice_none_gives_a_text_answer(local_server: FakeServer, provider: str, stream: bool) -> None:
    result, events = run(local_server, provider, ASK, stream=stream, tools=[WEATHER], tool_choice="none")
    assert result.success, result.error
    assert not result.tool_calls and result.finish_reason == "stop"
    assert result.content == local_server.reply_for(local_server.requests[-1])
    assert not any(e.type == "tool_call" for e in events)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openai-responses"])
def test_a_named_tool_without_parallel_calls_is_called_once(local_server: FakeServer, provider: str) -> None:
    result, _ = run(local_server, provider, ASK, stream=False, tools=[WEATHER, TIME], parallel_tool_calls=False,
                    tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert result.success, result.error
    assert [(call.name, call.args()) for call in result.tool_calls] == [("get_time", {})]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_encrypted_reasoning_goes_back_with_the_results(local_server: FakeServer, stream: bool) -> None:
    first, _ = run(local_server, "openai-responses", ASK, stream=stream, tools=[WEATHER])
    assert first.success and first.finish_reason == "tool_calls", first.error
    [block] = first.thinking
    assert block == {"id": block["id"], "redacted": OpenAIResponses.encrypted(block["id"])}
    assert first.reasoning is None and first.reasoning_tokens == OpenAIResponses.REASONING_TOKENS
    final, _ = run(local_server, "openai-responses", follow_up(first), stream=stream, tools=[WEATHER])
    assert final.success and final.content == "Results: 18C in Paris; 22C in Rome", final.error
    sent = local_server.requests[-1].json()
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert [item.get("type") for item in sent["input"]] == [
        "message", "reasoning", "function_call", "function_call", "function_call_output", "function_call_output"]
    assert sent["input"][1] == {"type": "reasoning", "id": block["id"], "summary": [],
                                "encrypted_content": block["redacted"]}


def test_reasoning_that_cannot_be_verified_is_refused_and_reasoning_without_it_is_left_out(
        local_server: FakeServer) -> None:
    first, _ = run(local_server, "openai-responses", ASK, stream=False, tools=[WEATHER])
    tampered = follow_up(first)
    tampered[1]["thinking"] = [{**first.thinking[0], "redacted": "forged"}]
    final, _ = run(local_server, "openai-responses", tampered, stream=False, tools=[WEATHER])
    assert final.error_kind is ErrorKind.INVALID_REQUEST and "could not be verified" in (final.error or "")
    # Without its encrypted content a reasoning item is unusable when nothing is stored: it is not sent at all.
    bare = follow_up(first)
    bare[1]["thinking"] = [{"id": first.thinking[0]["id"], "text": "a summary, no encrypted content"}]
    final, _ = run(local_server, "openai-responses", bare, stream=False, tools=[WEATHER])
    assert final.success, final.error
    assert all(item.get("type") != "reasoning" for item in local_server.requests[-1].json()["input"])


def test_built_in_tools_go_next_to_the_function_tools(local_server: FakeServer) -> None:
    first, _ = run(local_server, "openai-responses", ASK, stream=False, tools=[WEATHER],
                   extra={"tools": [{"type": "web_search"}]})
    assert first.success and [call.name for call in first.tool_calls] == ["get_weather", "get_weather"], first.error
    assert [tool["type"] for tool in local_server.requests[-1].json()["tools"]] == ["function", "web_search"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_reasoning_summary_asked_for_is_the_reasoning(local_server: FakeServer, stream: bool) -> None:
    result, events = run(local_server, "openai-responses", ASK, stream=stream,
                         extra={"reasoning": {"summary": "auto", "effort": "low"}})
    assert result.success, result.error
    assert result.reasoning == OpenAIResponses.SUMMARY
    assert result.thinking[0]["text"] == OpenAIResponses.SUMMARY and result.thinking[0]["redacted"]
    if stream:
        assert "".join(e.text for e in events if e.type == "reasoning") == OpenAIResponses.SUMMARY
        check_events(events, result)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", IMAGES)
def test_an_image_by_data_url_reaches_the_server(local_server: FakeServer, provider: str, stream: bool,
                                                 mode: str) -> None:
    result, events = run(local_server, provider, picture(f"data:image/png;base64,{PNG}"), stream=stream, mode=mode)
    assert result.success, result.error
    assert result.content.startswith("I see 1 image(s). ")
    assert result.content == local_server.reply_for(local_server.requests[-1])
    if stream:
        check_events(events, result)


@pytest.mark.parametrize("provider", IMAGES)
def test_an_image_with_json_output(local_server: FakeServer, provider: str) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    result, _ = run(local_server, provider, picture(f"data:image/png;base64,{PNG}"), stream=True,
                    output_schema=schema)
    assert result.success, result.error
    assert json.loads(result.content)["answer"].startswith("I see 1 image(s). ")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_image_url_to_ollama_is_refused_before_sending(local_server: FakeServer, stream: bool, mode: str) -> None:
    before = len(local_server.requests)
    result, _ = run(local_server, "ollama", picture("https://example.com/cat.png"), stream=stream, mode=mode)
    assert not result.success and result.error_kind is ErrorKind.INVALID_REQUEST
    assert len(local_server.requests) == before


# -- the server's own checks: a follow-up in the wrong native shape is a 400 naming the problem ----------------

CALLED: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_A1", "type": "function", "signature": SIGNATURE,
     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_B2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]}
ANSWERED: list[dict[str, Any]] = [*ASK, CALLED, {"role": "tool", "tool_call_id": "call_A1", "content": RESULTS[0]},
            {"role": "tool", "tool_call_id": "call_B2", "content": RESULTS[1]}]


def drop_last_result(body: dict[str, Any]) -> None:
    if "input" in body:
        body["input"].pop()
    elif "contents" in body:
        body["contents"][-1]["parts"].pop()
    elif isinstance(body["messages"][-1]["content"], list):  # Anthropic: the results are blocks of one message
        body["messages"][-1]["content"].pop()
    else:
        body["messages"].pop()


def text_before_results(body: dict[str, Any]) -> None:
    body["messages"][-1]["content"].insert(0, {"type": "text", "text": "here you go"})


def no_signature(body: dict[str, Any]) -> None:
    del body["contents"][-2]["parts"][0]["thoughtSignature"]


def results_as_chat_messages(body: dict[str, Any]) -> None:
    body["input"][-2:] = [{"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
                          for item in body["input"][-2:]]


def calls_nested_in_the_message(body: dict[str, Any]) -> None:
    calls = [body["input"].pop(1), body["input"].pop(1)]
    body["input"].insert(1, {"role": "assistant", "content": "", "tool_calls": calls})


def tools_nested_as_in_chat(body: dict[str, Any]) -> None:
    body["tools"] = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
                     for t in body["tools"]]


def results_in_two_turns(body: dict[str, Any]) -> None:
    last = body["messages"].pop()
    body["messages"] += [{"role": "user", "content": [block]} for block in last["content"]]


def arguments_as_object(body: dict[str, Any]) -> None:
    if "input" in body:
        for item in body["input"][1:3]:
            item["arguments"] = json.loads(item["arguments"])
        return
    for call in body["messages"][1]["tool_calls"]:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])


def arguments_as_text(body: dict[str, Any]) -> None:
    for call in body["messages"][1]["tool_calls"]:
        call["function"]["arguments"] = json.dumps(call["function"]["arguments"])


@pytest.mark.parametrize(("provider", "break_it", "complaint"), [
    ("openai", drop_last_result, "did not have response messages: call_B2"),
    ("openai", arguments_as_object, "must be JSON text"),
    ("cohere", drop_last_result, "did not have response messages: call_B2"),
    ("ollama", drop_last_result, "one tool message per call"),
    ("ollama", arguments_as_text, "must be an object"),
    ("anthropic", drop_last_result, "without `tool_result` blocks immediately after: call_B2"),
    ("anthropic", text_before_results, "before any text"),
    ("anthropic", results_in_two_turns, "right after an assistant message with tool_use"),
    ("gemini", drop_last_result, "number of function response parts"),
    ("gemini", no_signature, "missing a thought_signature"),
    ("openai-responses", drop_last_result, "No tool output found for function call call_B2"),
    ("openai-responses", arguments_as_object, "expected a string, but got an object"),
    ("openai-responses", results_as_chat_messages, "Invalid value for 'input[3].role'"),
    ("openai-responses", calls_nested_in_the_message, "Unknown parameter: 'input[1].tool_calls'"),
    ("openai-responses", tools_nested_as_in_chat, "Function tools are flat"),
])
def test_the_server_refuses_results_in_the_wrong_shape(local_server: FakeServer, provider: str,
                                                       break_it: Callable[[dict[str, Any]], None],
                                                       complaint: str) -> None:
    request = CompletionRequest(messages=ANSWERED, model=MODELS[provider], tools=[WEATHER])
    rendered = render_request(provider, request, server_settings(local_server))
    body = rendered.json
    with httpx.Client(timeout=5.0) as client:
        right = client.post(rendered.url, headers=rendered.headers, content=rendered.content)
        assert right.status_code == 200, right.text
        break_it(body)
        wrong = client.post(rendered.url, headers=rendered.headers, content=json.dumps(body).encode())
    assert wrong.status_code == 400 and complaint in wrong.text, wrong.text
