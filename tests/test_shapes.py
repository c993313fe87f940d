"""Shapes (engine/shapes.py): unified messages and tools written in a provider's own JSON, and what is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from engine import CompletionRequest, ErrorKind
from engine.errors import InvalidMessages, UnsupportedInput
from engine.registry import Registry
from engine.shapes import (
    MessageShapes,
    ShapeError,
    ToolShapes,
    compile_shape,
    data_url,
    normalize,
    shape_variables,
    write_messages,
    write_tools,
)

from .conftest import make_settings

CALLS = [{"role": "user", "content": "hi"},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}, "signature": "s"},
             {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
         {"role": "tool", "tool_call_id": "call_1", "content": "one"},
         {"role": "tool", "tool_call_id": "call_2", "content": '{"x": 2}'},
         {"role": "user", "content": "thanks"}]


def test_a_shape_fills_variables_drops_nulls_and_keeps_literals() -> None:
    fill = compile_shape({"a": "$x", "b": "$missing_ok", "c": ["$x", "$none", "lit"], "d": "$$price", "e": 3})
    assert fill({"x": 1, "missing_ok": None, "none": None}) == {"a": 1, "c": [1, "lit"], "d": "$price", "e": 3}
    assert shape_variables({"a": "$x", "b": ["$y"], "c": "$$z"}) == {"x", "y"}
    with pytest.raises(KeyError):
        compile_shape("$nope")({})


def test_first_gives_a_default_for_a_variable_that_comes_out_null() -> None:
    fill = compile_shape({"strict": {"$first": ["$strict", False]}, "detail": {"$first": ["$detail", "$fallback"]}})
    assert fill({"strict": None, "detail": None, "fallback": None}) == {"strict": False}
    assert fill({"strict": True, "detail": "low", "fallback": "auto"}) == {"strict": True, "detail": "low"}
    assert fill({"strict": False, "detail": None, "fallback": "auto"}) == {"strict": False, "detail": "auto"}
    assert shape_variables({"s": {"$first": ["$strict", "$other", 1]}}) == {"strict", "other"}
    for bad in ({"$first": "$x"}, {"$first": []}, {"$first": ["$x"], "other": 1}):
        with pytest.raises(ShapeError, match=r"\$first takes a list"):
            compile_shape(bad)


def test_when_leaves_a_mapping_out_unless_its_variable_is_set() -> None:
    fill = compile_shape({"summary": [{"$when": "$text", "type": "summary_text", "text": "$text"}],
                          "item": {"$when": "$id", "id": "$id", "note": "kept"}})
    assert fill({"text": None, "id": None}) == {"summary": []}
    assert fill({"text": "", "id": "rs_1"}) == {"summary": [], "item": {"id": "rs_1", "note": "kept"}}
    assert fill({"text": "why", "id": None}) == {"summary": [{"type": "summary_text", "text": "why"}]}
    assert shape_variables({"$when": "$a", "b": "$b"}) == {"a", "b"}
    with pytest.raises(KeyError):
        compile_shape({"$when": "$unknown", "a": 1})({})
    for bad in ({"$when": "text", "a": 1}, {"$when": ["$a"], "a": 1}, {"$when": "$$a"}):
        with pytest.raises(ShapeError, match=r"\$when names one variable"):
            compile_shape(bad)


def test_data_urls_are_read_and_bad_ones_refused() -> None:
    assert data_url("data:image/png;base64,QUJD") == ("image/png", "QUJD")
    assert data_url("data:text/plain,hi%21") == ("text/plain", "aGkh")  # not base64: encoded
    assert data_url("https://x/a.png") is None
    with pytest.raises(InvalidMessages, match="data URL"):
        data_url("data:image/png;base64")


def test_normalize_reads_parts_and_names_tool_results() -> None:
    turns = normalize(CALLS)
    assert [t.role for t in turns] == ["user", "assistant", "tool", "tool", "user"]
    assert [c.values["name"] for c in turns[1].calls] == ["f", "g"] and turns[1].calls[0].values["args"] == {"a": 1}
    result = turns[3].parts[0]
    assert result.kind == "tool_result" and result.values["name"] == "g" and result.values["value"] == {"x": 2}
    with pytest.raises(InvalidMessages, match="answers no earlier tool call"):
        normalize([{"role": "tool", "tool_call_id": "nope", "content": "x"}])
    with pytest.raises(InvalidMessages, match="not JSON text"):
        normalize([{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{x"}}]}])


def test_merging_tool_results_and_same_role_turns() -> None:
    shapes = MessageShapes(roles={"tool": "user"}, tool_results="merge", merge_roles=True, calls="parts",
                           message=compile_shape({"role": "$role", "content": "$content"}),
                           parts={"text": compile_shape({"t": "$text"}), "tool_call": compile_shape({"call": "$id"}),
                                  "tool_result": compile_shape({"result": "$id"})})
    written = write_messages(shapes, CALLS).messages
    assert written == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"call": "call_1"}, {"call": "call_2"}]},
        # both results and the user's next text in one user turn, results first
        {"role": "user", "content": [{"result": "call_1"}, {"result": "call_2"}, {"t": "thanks"}]},
    ]


def test_a_part_without_a_shape_is_refused_but_foreign_reasoning_is_left_out() -> None:
    shapes = MessageShapes(message=compile_shape({"role": "$role", "content": "$content"}),
                           parts={"text": compile_shape({"t": "$text"})})
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]
    with pytest.raises(UnsupportedInput, match="images by URL"):
        write_messages(shapes, image)
    thought = [{"role": "assistant", "content": "ok", "thinking": [{"text": "t", "signature": "s"}]}]
    assert write_messages(shapes, thought).messages == [{"role": "assistant", "content": "ok"}]


def test_calls_and_reasoning_as_items_of_their_own_in_a_flat_list() -> None:
    shapes = MessageShapes(
        calls="items", reasoning="items", message=compile_shape({"role": "$role", "content": "$content"}),
        by_role={"assistant": compile_shape({"role": "assistant", "content": "$text"}),
                 "tool": compile_shape({"type": "output", "call": "$tool_call_id", "output": "$content"})},
        parts={"text": compile_shape({"t": "$text"}), "tool_call": compile_shape({"type": "call", "call": "$id"}),
               "tool_result": compile_shape({"result": "$id"}),
               "redacted_reasoning": compile_shape({"$when": "$id", "type": "reasoning", "id": "$id",
                                                    "data": "$redacted"})})
    thinking = [{"redacted": "enc-1", "id": "rs_1"}, {"redacted": "foreign"}, {"text": "no shape", "signature": "s"}]
    messages = [CALLS[0], {**CALLS[1], "thinking": thinking}, *CALLS[2:]]
    assert write_messages(shapes, messages).messages == [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "data": "enc-1"},  # before the calls; foreign and text-only ones left out
        {"type": "call", "call": "call_1"}, {"type": "call", "call": "call_2"},  # no empty assistant message
        {"type": "output", "call": "call_1", "output": "one"},
        {"type": "output", "call": "call_2", "output": '{"x": 2}'},
        {"role": "user", "content": "thanks"},
    ]
    spoken = [CALLS[0], {**CALLS[1], "content": "Let me look."}, *CALLS[2:4]]
    assert write_messages(shapes, spoken).messages[1:4] == [
        {"role": "assistant", "content": "Let me look."}, {"type": "call", "call": "call_1"},
        {"type": "call", "call": "call_2"}]
    merged = MessageShapes(calls="items", merge_roles=True, message=shapes.message, parts=shapes.parts)
    two = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert write_messages(merged, two).messages == [{"role": "user", "content": [{"t": "a"}, {"t": "b"}]}]


def test_openai_shape_passes_messages_as_given_without_the_engines_keys() -> None:
    written = write_messages(MessageShapes(), [*CALLS[:2], {**CALLS[2]}]).messages
    assert "signature" not in written[1]["tool_calls"][0] and written[0] is not None
    plain = [{"role": "user", "content": "hi", "name": "bob"}]
    assert write_messages(MessageShapes(), plain).messages == plain  # untouched (no copy needed)


def test_call_ids_fitted_to_a_length_the_same_way_for_call_and_result() -> None:
    written = write_messages(MessageShapes(call_id_length=9), CALLS).messages
    ids = [c["id"] for c in written[1]["tool_calls"]]
    assert all(len(i) == 9 and i.isalnum() for i in ids)
    assert [written[2]["tool_call_id"], written[3]["tool_call_id"]] == ids
    assert write_messages(MessageShapes(call_id_length=9), CALLS).messages[1]["tool_calls"][0]["id"] == ids[0]


def test_tools_and_each_kind_of_choice() -> None:
    shapes = ToolShapes(tool=compile_shape({"n": "$name", "s": "$parameters"}),
                        choice={"auto": compile_shape({"m": "auto", "single": "$no_parallel"}),
                                "named": compile_shape({"m": "one", "n": "$name"})})
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert write_tools(shapes, [tool], None, None) == ([{"n": "f", "s": {"type": "object"}}], None)
    assert write_tools(shapes, [tool], None, False)[1] == {"m": "auto", "single": True}
    named = {"type": "function", "function": {"name": "f"}}
    assert write_tools(shapes, [tool], named, None)[1] == {"m": "one", "n": "f"}
    with pytest.raises(UnsupportedInput, match="tool_choice 'required'"):
        write_tools(shapes, [tool], "required", None)
    assert write_tools(ToolShapes(), [tool], "required", True) == ([tool], "required")  # OpenAI's shape: as given
    # An API with no way to say "none" is sent no tools at all, which means the same.
    assert write_tools(shapes, [tool], "none", None) == (None, None)


def test_a_request_a_model_cannot_take_fails_before_anything_is_sent() -> None:
    seen: list[httpx.Request] = []
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)))
    registry = Registry(make_settings())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("anthropic", {"seed": 1}, "does not take seed"),
        ("ollama", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]}, "does not take image URLs"),
        ("deepseek", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}]}, "does not take images"),
        ("groq", {"model": "llama-3.3-70b-versatile", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}]}, "does not take images"),
        ("openai", {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"url": "https://x/a.pdf"}}]}]}, "does not take document URLs"),
        ("cohere", {"tool_choice": {"type": "function", "function": {"name": "f"}},
                    "tools": [{"type": "function", "function": {"name": "f"}}]}, "a named tool_choice"),
    ]

    async def go() -> None:
        for provider, fields, message in cases:
            request = CompletionRequest(**{"messages": [{"role": "user", "content": "hi"}], **fields})
            instance = registry.create(provider, http_client=client)
            response = await instance.complete(request)
            assert response.error_kind is ErrorKind.INVALID_REQUEST and message in (response.error or ""), response
            assert "nothing was sent" in (response.error or "")
            streamed = await instance.stream_complete(request).final()
            assert streamed.error_kind is ErrorKind.INVALID_REQUEST

    asyncio.run(go())
    assert seen == []


def test_a_vision_model_of_a_provider_takes_images_its_others_refuse() -> None:
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}]
    provider = Registry(make_settings()).create("groq")
    body = provider.render(CompletionRequest(messages=image,  # type: ignore[attr-defined]
                                             model="meta-llama/llama-4-scout-17b-16e-instruct")).json
    assert body["messages"][0]["content"][0]["type"] == "image_url"
    with pytest.raises(UnsupportedInput, match="groq/unlisted-model does not take images"):
        provider.render(CompletionRequest(messages=image, model="unlisted-model"))  # type: ignore[attr-defined]
