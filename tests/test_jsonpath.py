"""JSONPath: the fast walker gives what jsonpath-ng gives, and bad expressions are errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonpath_ng.ext import parse

from engine.jsonpath import Extractor, JSONPathError, compile_one

from .conftest import FIXTURES

EXPRESSIONS = [
    "$.choices[0].delta.content", "$['choices'][0]['message']", "$.a.b", "$.list[-1]", "$.list[5]",
    "$.content[*].text", "$.content[*].input", "$.*", "$.parts[*]",
    "$.parts[?(@.thought != true)].text", "$.parts[?(@.thought == true)].text",
    "$.content[?(@.type == 'text')].text", '$.content[?(@.type != "text")]', "$.parts[?(@.n == 1)]",
    "$.parts[?(@.n != 1)]", "$.parts[?(@.n == 1.5)]", "$.parts[?(@.x == null)]", "$.parts[?(@.x != null)]",
    "$.parts[?(@.thought == false)]", "$.obj[?(@.t != true)]",
    "$.candidates[0].content.parts[?(@.thought != true)].text",
    "$.parts[?(@.x)]", "$.parts[?(@.thought)].text", "$.parts[?(@.functionCall)].functionCall.name",
    "$.obj[?(@.t)]",
]

DOCS: list[Any] = [
    {"choices": [{"delta": {"content": "hi"}, "message": {"role": "assistant"}}], "a": {"b": None}, "list": [1, 2, 3]},
    {"content": [{"type": "text", "text": "a"}, {"type": "tool_use", "input": {"x": 1}}, {"type": "text", "text": "b"},
                 "stray", 7, None]},
    {"parts": [{"text": "a"}, {"text": "b", "thought": True}, {"text": "c", "thought": False}, {"x": None},
               {"x": 0, "n": 1}, {"n": True}, {"n": 1.5}, {"n": "1"}, {"thought": 1, "text": "d"}, [], "s"]},
    {"obj": {"a": {"t": True}, "b": {"t": False}, "c": 3}, "parts": {"k": {"thought": True, "text": "z"}}},
    {"content": "not a list", "parts": None, "list": {"0": 1}},
    {"parts": [{"text": "a"}, {"functionCall": {"name": "f"}}, {"functionCall": {"name": "g"}, "thoughtSignature": "s"},
               {"functionCall": None}]},
    [1, 2, {"a": {"b": 1}}],
]


def reference(expression: str, doc: Any) -> list[Any]:
    return [match.value for match in parse(expression).find(doc)]


def fixture_docs() -> list[Any]:
    docs = []
    for path in sorted(FIXTURES.glob("*/response.json")):
        docs.append(json.loads(path.read_text(encoding="utf-8")))
    return docs


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_fast_walker_agrees_with_jsonpath_ng(expression: str) -> None:
    find = compile_one(expression)
    for doc in [*DOCS, *fixture_docs()]:
        assert find(doc) == reference(expression, doc), (expression, doc)


def test_provider_filters_take_the_fast_path() -> None:
    # A compiled jsonpath-ng expression is a lambda; the walker is a named closure.
    for expression in ("$.candidates[0].content.parts[?(@.thought != true)].text", "$.content[*].text",
                       "$.candidates[0].content.parts[?(@.functionCall)]"):
        assert compile_one(expression).__name__ == "find"


def test_richer_expressions_go_to_jsonpath_ng() -> None:
    doc = {"a": [{"n": 1}, {"n": 5}, {"n": 9}]}
    assert compile_one("$.a[?(@.n > 2)].n")(doc) == [5, 9]
    assert compile_one("$.a[0:2].n")(doc) == [1, 5]


def test_bad_expression_is_an_error() -> None:
    with pytest.raises(JSONPathError, match="invalid JSONPath"):
        compile_one("$.a[?(@.n ==]")


def test_alternatives_first_non_null_wins_and_text_joins() -> None:
    extractor = Extractor(["$.missing", "$.null", "$.parts[*].text"])
    doc = {"null": None, "parts": [{"text": "a"}, {"text": "b"}]}
    assert extractor.value(doc) == "a" and extractor.text(doc) == "ab"
    assert Extractor("$.obj").text({"obj": {"k": "é"}}) == '{"k": "é"}'
    assert Extractor("$.null").found({"null": None}) and not Extractor("$.nope").found({})


def test_stream_deltas_count_only_strings() -> None:
    delta = Extractor(["$.content[?(@.type == 'text')].text", "$.content"])
    assert delta.strings({"content": "plain"}) == "plain"
    assert delta.strings({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}) == "ab"
    thinking_only = {"content": [{"type": "thinking", "thinking": [{"text": "hmm"}]}]}
    assert delta.strings(thinking_only) is None  # the list itself is never a delta
    assert delta.text(thinking_only) is not None  # while text() renders structures as JSON
