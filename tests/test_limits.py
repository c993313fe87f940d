"""Every limit in engine.limits, at its edge and one past it: at the edge works, past it fails naming the limit
and its setting."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import CompletionRequest, ErrorKind, Settings, TemplateRenderError
from engine.limits import DEFAULT, LimitExceeded, Limits, parse_json
from engine.registry import Registry
from engine.stream import NDJSONDecoder, SSEDecoder
from engine.templates import compile_template, limited
from engine.testing import replay_client

from .conftest import TEST_KEY, make_settings

HELLO = [{"role": "user", "content": "hi"}]


def openai_body(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()


def complete(body: bytes, stream: bool = False, **settings: object) -> object:
    async def go() -> object:
        client, _ = replay_client(200, body, {"content-type": "text/event-stream" if stream else "application/json"},
                                  piece=4096)
        async with client, Registry(make_settings(**settings)).create("openai", http_client=client) as provider:
            request = CompletionRequest(messages=HELLO, model="gpt-4o")
            if stream:
                return await provider.stream_complete(request).final()
            return await provider.complete(request)

    return asyncio.run(go())


def test_response_bytes_at_and_past_the_limit() -> None:
    body = openai_body("x" * 100)
    assert complete(body, max_response_bytes=len(body)).success  # type: ignore[attr-defined]
    past = complete(body, max_response_bytes=len(body) - 1)
    assert past.error_kind is ErrorKind.INVALID_RESPONSE  # type: ignore[attr-defined]
    assert "max_response_bytes; set GENAI_MAX_RESPONSE_BYTES" in past.error  # type: ignore[attr-defined]


def stream_body(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()


def test_stream_bytes_at_and_past_the_limit() -> None:
    body = stream_body("y" * 500)
    assert complete(body, stream=True, max_stream_bytes=len(body)).success  # type: ignore[attr-defined]
    past = complete(body, stream=True, max_stream_bytes=len(body) - 1)
    assert "max_stream_bytes" in past.error and past.error_kind is ErrorKind.INVALID_RESPONSE  # type: ignore[attr-defined]


@pytest.mark.parametrize("decoder", [SSEDecoder, NDJSONDecoder])
def test_event_bytes_at_and_past_the_limit(decoder: type[SSEDecoder] | type[NDJSONDecoder]) -> None:
    prefix = b"data: " if decoder is SSEDecoder else b""
    payload = b'"' + b"z" * 98 + b'"'  # 100 bytes of data
    line = prefix + payload
    limit = len(line)
    events = decoder(limit).feed(line + b"\n\n")
    assert [data for _, data in events] == [payload]
    with pytest.raises(LimitExceeded, match="max_event_bytes"):
        decoder(limit - 1).feed(line + b"\n\n")
    with pytest.raises(LimitExceeded, match="max_event_bytes"):  # also when the line arrives in pieces
        d = decoder(limit - 1)
        for i in range(0, len(line), 7):
            d.feed(line[i:i + 7])


@pytest.fixture
def alarm() -> Iterator[None]:
    """A bound on a test that would hang if a decoder went quadratic (it takes well under a second)."""
    def stop(*_: object) -> None:
        raise TimeoutError("decoding did not finish in 60 s: buffering is not linear")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_long_line_in_small_pieces_is_joined_once(alarm: None) -> None:
    line = b"data: \"" + b"q" * (16 * 1024 * 1024) + b"\"\n\n"
    decoder = SSEDecoder(32 * 1024 * 1024)
    events = []
    for i in range(0, len(line), 1024):  # 16,384 pieces: quadratic buffering would copy ~128 GB
        events += decoder.feed(line[i:i + 1024])
    assert len(events) == 1 and len(events[0][1]) == 16 * 1024 * 1024 + 2


def test_json_depth_at_and_past_the_limit() -> None:
    limits = Limits(max_json_depth=50)
    assert parse_json(b"[" * 50 + b"]" * 50, limits)
    with pytest.raises(LimitExceeded, match="max_json_depth; set GENAI_MAX_JSON_DEPTH"):
        parse_json(b"[" * 51 + b"]" * 51, limits)
    with pytest.raises(LimitExceeded, match="max_json_depth"):  # deeper than Python's recursion limit too
        parse_json(b"[" * 100_000 + b"]" * 100_000, limits)
    wide = json.dumps([{"a": [1]} for _ in range(100)]).encode()  # many brackets, little depth
    assert len(parse_json(wide, Limits(max_json_depth=3))) == 100  # type: ignore[arg-type]


def test_file_bytes_at_and_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ProviderFileError
    from engine.loader import read_text

    path = tmp_path / "f.yaml"
    path.write_text("name: x\n" + "#" * 92)
    assert read_text(path, limit=100)
    with pytest.raises(ProviderFileError, match="max_file_bytes"):
        read_text(path, limit=99)


def render_body(template: str, **limits: int) -> str:
    with limited(Limits(**limits)):
        return compile_template(template, "body")({})


@pytest.mark.parametrize(("template", "name", "edge"), [
    ('{{ ("a" * N) | length | tojson }}', "template_max_string", 1000),
    ('{{ ([0] * N) | length | tojson }}', "template_max_string", 1000),
    ('{{ range(N) | list | length | tojson }}', "template_max_range", 1000),
    ('{{ (2 ** N) | string | length | tojson }}', "template_max_power", 1000),
    ('{{ ("{0:>" ~ N ~ "}").format(1) | length | tojson }}', "template_max_format_width", 1000),
    ('{{ ("%" ~ N ~ "d") | format(1) | length | tojson }}', "template_max_format_width", 1000),
    ('{{ ("x" | center(N)) | length | tojson }}', "template_max_string", 1000),
])
def test_template_limits_at_and_past_the_edge(template: str, name: str, edge: int) -> None:
    at = template.replace("N", str(edge))
    past = template.replace("N", str(edge + 1))
    assert render_body(at, **{name: edge})
    with pytest.raises(LimitExceeded, match=f"{name}; set GENAI_{name.upper()}"):
        render_body(past, **{name: edge})


def test_rendered_body_at_and_past_the_limit() -> None:
    text = '{{ "abcdefghij" | tojson }}'  # renders 12 characters
    assert render_body(text, max_request_bytes=12)
    with pytest.raises(LimitExceeded, match="max_request_bytes"):
        render_body(text, max_request_bytes=11)


def test_template_limit_errors_name_the_file_key_and_setting(tmp_path: Path) -> None:
    (tmp_path / "greedy.yaml").write_text(
        "name: greedy\nextends: openai\nbase_url: https://api.example.com/v1\nrequest:\n  path: /chat\n"
        "  body: '{{ {\"model\": model, \"pad\": \"x\" * 10**9} | tojson }}'\n")
    registry = Registry(Settings(providers_path=[tmp_path], api_keys={"greedy": TEST_KEY}))
    with pytest.raises(TemplateRenderError, match="template_max_string") as info:
        registry.create("greedy").render(CompletionRequest(messages=HELLO, model="m"))  # type: ignore[attr-defined]
    assert info.value.key == "request.body" and info.value.line == 6


def test_caller_content_past_the_request_limit_is_a_render_error() -> None:
    registry = Registry(make_settings(max_request_bytes=1000))
    request = CompletionRequest(messages=[{"role": "user", "content": "w" * 2000}], model="gpt-4o")
    with pytest.raises(TemplateRenderError, match="max_request_bytes"):
        registry.create("openai").render(request)  # type: ignore[attr-defined]


def test_defaults_are_the_documented_ones() -> None:
    assert Limits(max_response_bytes=64 * 2**20, max_stream_bytes=512 * 2**20, max_event_bytes=8 * 2**20,
                             max_json_depth=128, max_file_bytes=2**20, max_request_bytes=64 * 2**20,
                             template_max_string=2**20, template_max_range=100_000, template_max_power=4096,
                             template_max_format_width=10_000) == DEFAULT
