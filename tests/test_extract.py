"""Extraction: unified usage, error kinds in precedence order, and readable, scrubbed error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import ErrorKind, Settings
from engine.compiled import CompiledProvider
from engine.extract import body_snippet, http_error, kind_for, scrub, unify_usage
from engine.pricing import Usage
from engine.registry import Registry
from engine.spec import ResponseSpec

from .conftest import TEST_KEY

ACME = """\
name: acme
extends: openai
base_url: https://api.acme.example/v1
errors:
  type: $.error.type
  kinds: {quota_exceeded: rate_limit}
  message_kinds: {"maximum context length": invalid_request, "overloaded": server}
  status_kinds: {498: auth, 429: server}
"""


def _parts(failure: Any) -> tuple[Any, Any, Any]:
    return failure.error, failure.kind, failure.payload


def flags(**values: bool) -> ResponseSpec:
    return ResponseSpec.model_validate({"content": "$.text", **values})


@pytest.fixture
def acme(tmp_path: Path) -> CompiledProvider:
    (tmp_path / "acme.yaml").write_text(ACME, encoding="utf-8")
    return Registry(Settings(providers_path=[tmp_path])).compiled("acme")


def test_usage_as_reported_when_the_counts_already_include_everything() -> None:
    raw = {"input_tokens": 10, "output_tokens": "5", "cached_input_tokens": 4, "reasoning_tokens": True}
    assert unify_usage(raw, flags()) == unify_usage(raw, None) == Usage(10, 5, 4, None, None)


def test_cached_and_cache_write_tokens_are_added_to_the_input() -> None:
    raw = {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 3, "cache_write_tokens": 2}
    assert unify_usage(raw, flags(input_includes_cached=False)) == Usage(15, 5, 3, 2, None)
    assert unify_usage({"output_tokens": 5, "cached_input_tokens": 3}, flags(input_includes_cached=False)) == Usage(
        None, 5, 3, None, None)


def test_reasoning_tokens_are_added_to_the_output() -> None:
    raw = {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 4}
    assert unify_usage(raw, flags(output_includes_reasoning=False)) == Usage(10, 9, None, None, 4)
    assert unify_usage({**raw, "reasoning_tokens": None}, flags(output_includes_reasoning=False)).output_tokens == 5


def test_omitted_zeros_are_zero_only_for_mapped_counts_and_only_when_something_is_reported() -> None:
    raw = {"input_tokens": 7, "output_tokens": None, "reasoning_tokens": None}
    assert unify_usage(raw, flags(usage_omits_zeros=True)) == Usage(7, 0, None, None, 0)
    assert unify_usage(raw, flags()) == Usage(7, None, None, None, None)
    nothing = {"input_tokens": None, "output_tokens": None}
    assert unify_usage(nothing, flags(usage_omits_zeros=True)) == Usage()


def test_counts_that_are_not_sane_whole_numbers_are_dropped_with_a_warning() -> None:
    warnings: list[str] = []
    raw = {"input_tokens": -1, "output_tokens": 2.5, "reasoning_tokens": 4.0, "cached_input_tokens": None}
    assert unify_usage(raw, flags(usage_omits_zeros=True), warnings) == Usage(None, None, 0, None, 4)
    assert len(warnings) == 1 and "input_tokens='-1', output_tokens='2.5'" in warnings[0]
    unify_usage({"input_tokens": 3}, flags(), warnings)
    assert len(warnings) == 1


@pytest.mark.parametrize(("error_type", "status", "message", "kind"), [
    ("quota_exceeded", 498, "model overloaded", ErrorKind.RATE_LIMIT),  # errors.kinds first
    ("other", 498, "the model is overloaded", ErrorKind.SERVER),  # then message_kinds
    (None, 400, "exceeds the maximum context length", ErrorKind.INVALID_REQUEST),
    (None, 498, "nope", ErrorKind.AUTH),  # then status_kinds
    (None, 429, None, ErrorKind.SERVER),  # status_kinds overrides the shared table
    ("invalid_api_key", 500, None, ErrorKind.AUTH),  # kinds inherited from openai
    (None, 404, "Overloaded", ErrorKind.NOT_FOUND),  # then the status; text matches case-sensitively
    (None, None, None, ErrorKind.SERVER),
])
def test_kind_for_precedence(acme: CompiledProvider, error_type: str | None, status: int | None,
                             message: str | None, kind: ErrorKind) -> None:
    assert kind_for(acme, error_type, status, message) is kind


def test_http_error_from_a_json_body(registry: Registry) -> None:
    body = {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}
    text, kind, payload = _parts(http_error(registry.compiled("openai"), 401, json.dumps(body).encode(), TEST_KEY))
    assert (text, kind, payload) == ("HTTP 401: Incorrect API key (invalid_api_key)", ErrorKind.AUTH, body)


def test_http_error_from_json_without_a_message(registry: Registry) -> None:
    text, kind, payload = _parts(http_error(registry.compiled("openai"), 503, b'{"detail": "busy"}', None))
    assert (text, kind, payload) == ('HTTP 503: {"detail": "busy"}', ErrorKind.SERVER, {"detail": "busy"})


def test_http_error_from_a_non_json_body(registry: Registry) -> None:
    text, kind, payload = _parts(http_error(registry.compiled("cohere"), 498, b"token   expired\n", None))
    assert (text, kind) == ("HTTP 498: non-JSON error body: token expired", ErrorKind.AUTH)
    assert payload == "token   expired\n"


def test_http_error_from_an_html_page(registry: Registry) -> None:
    page = (b"<html><head><title>502 Bad Gateway</title><style>h1 {color: red}</style>"
            b"<script>var x = 1;</script></head><body><h1>Bad   Gateway</h1>\n<hr>nginx</body></html>")
    text, kind, payload = _parts(http_error(registry.compiled("openai"), 502, page, None))
    assert text == "HTTP 502: non-JSON error body: 502 Bad Gateway Bad Gateway nginx"
    assert kind is ErrorKind.SERVER and payload == page.decode()


def test_http_error_from_an_empty_body(registry: Registry) -> None:
    assert _parts(http_error(registry.compiled("anthropic"), 529, b"", None)) == (
        "HTTP 529: (empty body)", ErrorKind.SERVER, None)


def test_http_error_keeps_the_providers_own_message_and_code(registry: Registry) -> None:
    body = {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}}
    failure = http_error(registry.compiled("openai"), 401, json.dumps(body).encode(), None)
    assert (failure.message, failure.code) == ("Incorrect API key", "invalid_api_key")
    assert http_error(registry.compiled("openai"), 502, b"<html>x</html>", None).message is None


def test_an_echoed_key_is_scrubbed_from_message_and_payload(registry: Registry) -> None:
    text, _, payload = _parts(http_error(registry.compiled("openai"), 401, f"bad key {TEST_KEY}".encode(), TEST_KEY))
    assert TEST_KEY not in text and TEST_KEY not in payload and "bad key ***" in text


def test_scrub() -> None:
    assert scrub("key=sk-123456 again sk-123456", "sk-123456") == "key=*** again ***"
    assert scrub("abc abc", "abc") == "abc abc"  # too short to mask safely
    assert scrub("text", None) == "text"


def test_body_snippet_truncates_with_an_ellipsis() -> None:
    assert body_snippet(b"x" * 300) == "x" * 200 + "…"
    assert body_snippet(b"y" * 200) == "y" * 200
    assert body_snippet(b"a <b> c", limit=3) == "a c"
    assert body_snippet("caf\u00e9 \xff".encode("latin-1")) == "caf\ufffd \ufffd"


def test_token_counts_in_text_are_plain_ascii_digits() -> None:
    from engine.extract import token_count

    assert token_count("42") == (42, False) and token_count(" 7 ") == (7, False)  # a header's count
    for bad in ("²", "٣", "-1", "1e3", "4.0", "9" * 13, ""):  # digits to isdigit, not to int
        assert token_count(bad) == (None, True), bad
    assert token_count(True) == (None, True) and token_count(None) == (None, False)


THOUGHTFUL = """\
name: thoughtful
extends: openai
base_url: https://api.thoughtful.example/v1
response:
  content: "$.output[*].text"
  thinking:
    each: "$.output[?(@.type == 'reasoning')]"
    id: $.id
    text: $.summary[*].text
    redacted: $.encrypted
stream:
  events:
    done:
      end: true
      thinking: {index: $.at, id: $.item.id, redacted: $.item.encrypted}
    summary:
      thinking: {index: $.at, text: "$.parts[*]"}
"""


def test_reasoning_blocks_keep_their_id_and_join_their_text(tmp_path: Path) -> None:
    from engine.extract import extract_response
    from engine.stream import StreamState

    (tmp_path / "thoughtful.yaml").write_text(THOUGHTFUL, encoding="utf-8")
    compiled = Registry(Settings(providers_path=[tmp_path])).compiled("thoughtful")
    body = {"output": [{"type": "reasoning", "id": "rs_1", "summary": [{"text": "First, "}, {"text": "then."}],
                        "encrypted": "enc"},
                       {"type": "reasoning", "id": "rs_2", "summary": []},  # nothing to replay: left out
                       {"type": "message", "text": "Done."}]}
    extracted = extract_response(compiled, body)
    assert extracted.content == "Done."
    assert extracted.thinking == [{"text": "First, then.", "redacted": "enc", "id": "rs_1"}]
    assert compiled.stream is not None
    state = StreamState(compiled.stream)
    state.feed(b'event: summary\ndata: {"at": 0, "parts": ["First, ", "then."]}\n\n'
               b'event: done\ndata: {"at": 0, "item": {"id": "rs_1", "encrypted": "enc"}}\n\n')
    assert state.ended and state.thinking() == extracted.thinking


def responses_reply(status: str, output: list[Any], **fields: Any) -> bytes:
    return json.dumps({"id": "resp_1", "object": "response", "status": status, "model": "gpt-4.1-mini", "error": None,
                       "incomplete_details": None, "output": output, **fields,
                       "usage": {"input_tokens": 5, "output_tokens": 16}}).encode()


def said(text: str, kind: str = "output_text") -> list[Any]:
    key = "refusal" if kind == "refusal" else "text"
    return [{"type": "message", "role": "assistant", "content": [{"type": kind, key: text}]}]


@pytest.mark.parametrize(("body", "content", "finish", "native"), [
    (responses_reply("completed", said("Paris.")), "Paris.", "stop", "completed"),
    # a built-in tool's item, then the answer with its citation: the text is the answer's
    (responses_reply("completed", [{"type": "web_search_call", "id": "ws_1", "status": "completed",
                                    "action": {"type": "search", "query": "capital of France"}},
                                   {"type": "message", "role": "assistant", "content": [{
                                       "type": "output_text", "text": "Paris [1].", "annotations": [
                                           {"type": "url_citation", "url": "https://example.com", "start_index": 6,
                                            "end_index": 9, "title": "Example"}]}]}]), "Paris [1].", "stop",
     "completed"),
    (responses_reply("incomplete", said("Par"), incomplete_details={"reason": "max_output_tokens"}), "Par", "length",
     "max_output_tokens"),
    (responses_reply("incomplete", [], incomplete_details={"reason": "content_filter"}), "", "content_filter",
     "content_filter"),
    (responses_reply("completed", said("I can't help with that.", "refusal")), "I can't help with that.",
     "content_filter", "refusal"),
    (responses_reply("completed", [{"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}]),
     "", "tool_calls", "completed"),
])
def test_responses_status_and_incomplete_reason_become_the_finish_reason(body: bytes, content: str, finish: str,
                                                                         native: str) -> None:
    import asyncio

    from engine import CompletionRequest

    from .conftest import make_settings, replay

    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}])
    result = asyncio.run(replay(Registry(make_settings()), "openai-responses", request, 200, body))
    assert result.success, result.error
    assert (result.content, result.finish_reason, result.native_finish_reason) == (content, finish, native)


@pytest.mark.parametrize(("code", "kind"), [("server_error", ErrorKind.SERVER), ("rate_limit_exceeded",
                                            ErrorKind.RATE_LIMIT), ("invalid_prompt", ErrorKind.INVALID_REQUEST)])
def test_a_responses_reply_whose_status_is_failed_fails_with_its_code(code: str, kind: ErrorKind) -> None:
    import asyncio

    from engine import CompletionRequest

    from .conftest import make_settings, replay

    body = responses_reply("failed", [], error={"code": code, "message": "The model failed to answer."})
    request = CompletionRequest(messages=[{"role": "user", "content": "hi"}])
    result = asyncio.run(replay(Registry(make_settings(max_retries=0)), "openai-responses", request, 200, body))
    assert not result.success and result.error_kind is kind
    assert result.error_message == "The model failed to answer." and result.error_code == code
