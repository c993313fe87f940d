"""The public test-support package: wire formats, the fake server, replayed replies and the pytest plugin."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from engine import CompletionRequest, Settings
from engine.extract import http_error
from engine.registry import Registry
from engine.render import prepare, render
from engine.stream import StreamState
from engine.testing import FORMATS, FakeServer, Fault, RecordedRequest, replay_client
from engine.testing.wire import Call, OpenAIChat, OpenAIResponses, WireError, route

NATIVE = {"anthropic": "anthropic", "ollama": "ollama", "gemini": "gemini", "cohere": "cohere",
          "vertex-gemini": "gemini", "vertex-anthropic": "vertex-anthropic", "openai-responses": "openai-responses"}
CALL = Call(model="m-1", text="Hello wörld ✓", deltas=["Hello", " wörld", " ✓"], input_tokens=3)
HI = [{"role": "user", "content": "  hi\n  there  "}]


def _parts(failure: Any) -> tuple[Any, Any, Any]:
    return failure.error, failure.kind, failure.payload


def test_every_bundled_provider_path_is_routed(registry: Registry, settings: Settings) -> None:
    checked = 0
    for name in registry.names():
        compiled = registry.compiled(name)
        if compiled.spec.backend is not None or compiled.spec.request is None:
            continue
        request = CompletionRequest(messages=HI, model=compiled.spec.default_model or "example-model")
        for stream in (False, True):
            path = urlsplit(render(prepare(compiled, settings), request, stream).url).path
            routed = route(path)
            assert routed is not None, (name, path)
            assert routed[0].name == NATIVE.get(name, "openai"), (name, path)
            checked += 1
    assert checked >= 2 * 19


@pytest.mark.parametrize(("path", "name"), [
    ("/v1/chat/completions", "openai"), ("/openai/deployments/x/chat/completions", "openai"),
    ("/chat/completions/", "openai"), ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini"),
    ("/v1/models/g:generateContent", "gemini"), ("/v2/chat", "cohere"), ("/api/chat", "ollama"),
    ("/v1/messages", "anthropic"), ("/v1/responses", "openai-responses"), ("/openai/v1/responses/", "openai-responses"),
    ("/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent", "gemini"),
    ("/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
     "vertex-anthropic"),
])
def test_route_by_path_ending(path: str, name: str) -> None:
    routed = route(path)
    assert routed is not None and routed[0] is FORMATS[name]


def test_gemini_route_carries_model_and_method() -> None:
    routed = route("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    assert routed is not None
    wire, match = routed
    assert wire.model({}, match) == "gemini-2.5-flash" and wire.wants_stream({}, match)


@pytest.mark.parametrize("path", ["/", "/health", "/v1/embeddings", "/v1/chat/completions/extra", "/v2/chats",
                                  "/v1/responses/resp_1/input_items",
                                  "/models/a/b:generateContent"])
def test_unanswered_paths(path: str) -> None:
    assert route(path) is None


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_reply_is_read_by_the_bundled_provider(registry: Registry, name: str) -> None:
    content = registry.compiled(name).response["content"]
    assert content.text(FORMATS[name].reply(CALL)) == CALL.text


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_stream_ends_with_its_end_marker_and_the_engine_reads_it(registry: Registry, name: str) -> None:
    events = FORMATS[name].stream(CALL)
    last = events[-1].decode()
    marker = {"openai": "data: [DONE]", "anthropic": "event: message_stop", "ollama": '"done":true',
              "gemini": '"finishReason":"STOP"', "cohere": "event: message-end",
              "vertex-anthropic": "event: message_stop", "openai-responses": "event: response.completed"}[name]
    assert marker in last and all(marker not in e.decode() for e in events[:-1])
    stream = registry.compiled(name).stream
    assert stream is not None
    state = StreamState(stream)
    state.feed(b"".join(events))
    state.close()
    assert state.content == CALL.text and state.ended and state.error is None
    cut = StreamState(stream)
    cut.feed(b"".join(events[:-1]))
    cut.close()
    assert not cut.ended


def test_openai_stream_usage_only_when_asked() -> None:
    plain = FORMATS["openai"].stream(CALL)
    asked = FORMATS["openai"].stream(Call(**{**CALL.__dict__, "include_usage": True}))
    assert len(asked) == len(plain) + 1
    assert json.loads(asked[-2].removeprefix(b"data: "))["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(("name", "status", "kind"), [
    ("openai", 401, "auth"), ("openai", 429, "rate_limit"), ("openai", 500, "server"),
    ("anthropic", 529, "server"), ("anthropic", 404, "not_found"), ("anthropic", 400, "invalid_request"),
    ("gemini", 429, "rate_limit"), ("gemini", 403, "auth"), ("ollama", 404, "not_found"), ("cohere", 429, "rate_limit"),
    ("openai-responses", 401, "auth"), ("openai-responses", 429, "rate_limit"), ("openai-responses", 503, "server"),
    ("openai-responses", 400, "invalid_request"),
])
def test_error_bodies_are_read_by_the_bundled_provider(registry: Registry, name: str, status: int, kind: str) -> None:
    body = FORMATS[name].error_body(status, "it broke")
    text, found, _ = _parts(http_error(registry.compiled(name), status, json.dumps(body).encode(), None))
    assert text.startswith(f"HTTP {status}: it broke") and found == kind


def test_error_body_shapes() -> None:
    assert FORMATS["openai"].error_body(429, "m")["error"]["code"] == "rate_limit_exceeded"
    assert FORMATS["anthropic"].error_body(529, "m") == {"type": "error", "error": {"type": "overloaded_error",
                                                                                    "message": "m"}}
    assert FORMATS["anthropic"].error_body(502, "m")["error"]["type"] == "api_error"
    assert FORMATS["gemini"].error_body(502, "m")["error"] == {"code": 502, "message": "m", "status": "INTERNAL"}
    assert FORMATS["ollama"].error_body(500, "m") == {"error": "m"}
    assert FORMATS["cohere"].error_body(500, "m")["message"] == "m"


def test_reply_for_a_recorded_a_rendered_and_a_bare_request(registry: Registry, settings: Settings) -> None:
    server = FakeServer()
    expected = "Hello from the local server — you said: hi there ✓"
    body = {"model": "m", "messages": HI}
    assert server.reply_for(body) == expected
    assert server.reply_for(RecordedRequest("POST", "/v1/chat/completions", "", {}, json.dumps(body).encode())) == (
        expected)
    rendered = render(prepare(registry.compiled("gemini"), settings), CompletionRequest(messages=HI))
    assert server.reply_for(rendered) == expected
    json_mode = {**body, "response_format": {"type": "json_object"}}
    assert json.loads(server.reply_for(json_mode)) == {"answer": expected}
    assert FakeServer(reply="fixed").reply_for(body) == "fixed"
    with pytest.raises(ValueError, match="does not answer '/v1/embeddings'"):
        server.reply_for(RecordedRequest("POST", "/v1/embeddings", "", {}, b"{}"))


def test_unknown_path_is_404_and_get_on_an_api_path_is_405(local_server: FakeServer) -> None:
    with httpx.Client(base_url=local_server.base_url, timeout=5.0) as client:
        assert client.get("/health").json() == {"ok": True}
        missing = client.post("/v1/completions", json={})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        wrong = client.get("/v1/messages")
        assert wrong.status_code == 405 and wrong.json() == FORMATS["anthropic"].error_body(405, "use POST")


def test_a_fault_is_consumed_by_exactly_one_api_request() -> None:
    body = {"model": "m", "messages": HI}
    with FakeServer(chunk_size=None, max_seconds=60) as server, \
            httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        server.inject(Fault("status", status=503, retry_after="2"))
        assert client.get("/health").status_code == 200  # not an API request: the fault waits
        assert client.post("/v1/nothing", json=body).status_code == 404
        failed = client.post("/v1/chat/completions", json=body)
        assert failed.status_code == 503 and failed.headers["retry-after"] == "2"
        assert failed.json()["error"]["message"] == "injected failure"
        ok = client.post("/v1/chat/completions", json=body)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == server.reply_for(body)
        assert [r.path for r in server.requests][-2:] == ["/v1/chat/completions"] * 2
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("bogus")


class Picky(OpenAIChat):
    """A format of one's own: refuses a request without a user, and shouts when asked to."""

    name = "picky"
    path = re.compile(r"/picky/chat$")

    def check(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("user"), str):
            raise WireError("Missing required parameter: 'user'.")

    def reply_options(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"shout": body.get("shout") is True}

    def reply(self, call: Call) -> dict[str, Any]:
        reply = super().reply(call)
        if call.extra["shout"]:
            reply["choices"][0]["message"]["content"] = call.text.upper()
        return reply


def test_a_format_checks_its_native_shape_and_the_reply_depends_on_its_options() -> None:
    body = {"model": "m", "messages": HI, "user": "u-1"}
    with FakeServer(chunk_size=None, max_seconds=60, formats=[Picky()]) as server, \
            httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        refused = client.post("/picky/chat", json={"model": "m", "messages": HI})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "Missing required parameter: 'user'."
        said = client.post("/picky/chat", json=body).json()["choices"][0]["message"]["content"]
        assert said == server.reply_for(body)
        shouted = client.post("/picky/chat", json={**body, "shout": True}).json()["choices"][0]["message"]["content"]
        assert shouted == said.upper()


RESPONSES = {"model": "gpt-4.1-mini", "input": [{"type": "message", "role": "user", "content": "hi"}], "store": False}
REASONING = {**RESPONSES, "model": "gpt-5-mini", "include": ["reasoning.encrypted_content"]}
CALLED = [{"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
          {"type": "function_call_output", "call_id": "call_1", "output": "done"}]
THOUGHT = {"type": "reasoning", "id": "rs_1", "summary": []}


@pytest.mark.parametrize(("body", "complaint"), [
    ({**RESPONSES, "messages": HI}, "Unsupported parameter: 'messages'. In the Responses API, this parameter has "
                                    "moved to 'input'."),
    ({**RESPONSES, "max_tokens": 64}, "moved to 'max_output_tokens'"),
    ({**RESPONSES, "response_format": {"type": "json_object"}}, "moved to 'text.format'"),
    ({**RESPONSES, "stop": ["END"]}, "Unsupported parameter: 'stop'."),
    ({**RESPONSES, "max_output_tokens": 10}, "Expected a value >= 16, but got 10 instead."),
    ({**REASONING, "temperature": 0.7}, "'temperature' is not supported with this model"),
    ({**RESPONSES, "include": ["reasoning.encrypted_content"]}, "Encrypted content is not supported with this model"),
    ({**RESPONSES, "text": {"format": {"type": "json_schema", "name": "a b", "schema": {}}}}, "text.format.name"),
    ({**RESPONSES, "tools": [{"type": "function", "name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}}}}]}, "In strict mode, 'additionalProperties'"),
    ({**RESPONSES, "tool_choice": {"type": "function", "function": {"name": "f"}}}, "'tool_choice.name'"),
    ({**RESPONSES, "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
     "Invalid value: 'text'. Supported values are: 'input_text' and 'input_image' and 'input_file'"),
    ({**RESPONSES, "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "hi"}]}]},
     "Supported values are: 'output_text' and 'refusal'"),
    ({**RESPONSES, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "cat.png"}]}]},
     "an image URL must be https or a data URL"),
    ({**RESPONSES, "input": [{"role": "user", "content": [
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE"}]}]}, "'input[0].content[0].filename'"),
    ({**RESPONSES, "input": [*RESPONSES["input"], CALLED[1]]}, "No tool call found for function call output"),
    ({**RESPONSES, "input": [*RESPONSES["input"], CALLED[0]]}, "No tool output found for function call call_1"),
    ({**REASONING, "input": [*RESPONSES["input"], THOUGHT, *CALLED]}, "Items are not persisted when `store` is set"),
    ({**REASONING, "input": [*RESPONSES["input"], {**THOUGHT, "encrypted_content": "x"}, *CALLED]},
     "could not be verified"),
    ({**REASONING, "input": [*RESPONSES["input"], *CALLED, {**THOUGHT, "encrypted_content": OpenAIResponses.encrypted(
        "rs_1")}]}, "without its required following item"),
])
def test_the_responses_format_refuses_what_the_api_refuses(local_server: FakeServer, body: dict[str, Any],
                                                           complaint: str) -> None:
    with httpx.Client(base_url=local_server.base_url, timeout=5.0) as client:
        answer = client.post("/v1/responses", json=body)
    assert answer.status_code == 400 and complaint in answer.json()["error"]["message"], answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_the_responses_format_answers_a_reasoning_model_with_a_reasoning_item(local_server: FakeServer) -> None:
    thought = {**THOUGHT, "id": "rs_9", "encrypted_content": OpenAIResponses.encrypted("rs_9")}
    with httpx.Client(base_url=local_server.base_url, timeout=5.0) as client:
        plain = client.post("/v1/responses", json={**RESPONSES, "input": "hi"}).json()
        replayed = client.post("/v1/responses", json={**REASONING, "input": [*RESPONSES["input"], thought, *CALLED]})
        summary = client.post("/v1/responses", json={**REASONING, "reasoning": {"summary": "auto"}}).json()
    assert [item["type"] for item in plain["output"]] == ["message"] and plain["status"] == "completed"
    assert plain["output"][0]["content"][0]["text"] == local_server.reply_for({**RESPONSES, "input": "hi"})
    assert replayed.status_code == 200 and replayed.json()["output"][1]["content"][0]["text"] == "Results: done"
    reasoning = summary["output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": OpenAIResponses.SUMMARY}]
    assert reasoning["encrypted_content"] == OpenAIResponses.encrypted(reasoning["id"])
    assert summary["usage"]["output_tokens_details"]["reasoning_tokens"] == OpenAIResponses.REASONING_TOKENS


def test_replay_client_sends_the_body_in_pieces_and_records_requests() -> None:
    async def go() -> tuple[list[bytes], list[httpx.Request]]:
        client, seen = replay_client(201, b"0123456789ab", {"x-id": "7"}, piece=5)
        async with client, client.stream("POST", "https://example.test/v1/chat", content=b"hello") as response:
            assert response.status_code == 201 and response.headers["x-id"] == "7"
            return [piece async for piece in response.aiter_raw()], seen

    pieces, seen = asyncio.run(go())
    assert pieces == [b"01234", b"56789", b"ab"]
    assert len(seen) == 1 and seen[0].content == b"hello" and seen[0].url.path == "/v1/chat"
    with pytest.raises(ValueError, match="piece"):
        replay_client(200, b"", piece=0)


PLUGIN_TESTS = """\
import asyncio
import os

from engine import CompletionRequest, get_provider


def test_settings_point_at_the_server(fake_llm_server, fake_llm_settings):
    assert fake_llm_settings.base_urls["anthropic"] == fake_llm_server.base_url
    assert fake_llm_settings.api_keys["groq"].get_secret_value() == "test-key"
    assert fake_llm_settings.max_retries == 0

    async def call():
        async with get_provider("groq", fake_llm_settings) as provider:
            return await provider.complete(CompletionRequest(messages=[{"role": "user", "content": "ping"}]))

    result = asyncio.run(call())
    assert result.success and result.content == fake_llm_server.reply_for(fake_llm_server.requests[-1])


def test_httpx_pool(httpx_pool):
    assert httpx_pool == os.environ["GENAI_HTTP_TRANSPORT"] == "httpx"
"""


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_uses_plugin.py").write_text(textwrap.dedent(PLUGIN_TESTS), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "engine.testing.pytest_plugin", "-p", "no:cacheprovider",
         "test_uses_plugin.py"], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_a_slow_fault_paces_a_stream_and_counts_a_client_that_leaves() -> None:
    body = {"model": "m", "messages": HI, "stream": True}
    with FakeServer(chunk_size=None, max_seconds=30) as server:
        server.inject(Fault("slow", seconds=0.5))
        arrivals = []
        with httpx.Client() as client, client.stream("POST", server.base_url + "/v1/chat/completions",
                                                     json=body) as reply:
            t0 = time.monotonic()
            for piece in reply.iter_raw():
                if piece:
                    arrivals.append(time.monotonic() - t0)
        assert arrivals[-1] >= 0.4 and len(arrivals) > 3  # spread over the half second, not in one write
        assert server.abandoned == 0

        server.inject(Fault("slow", seconds=2.0))
        with httpx.Client() as client, client.stream("POST", server.base_url + "/v1/chat/completions",
                                                     json=body) as reply:
            next(reply.iter_raw())  # the first event, then leave
        for _ in range(100):
            if server.abandoned:
                break
            time.sleep(0.02)
        assert server.abandoned == 1

        server.inject(Fault("slow", seconds=1.0))
        with httpx.Client() as client, pytest.raises(httpx.ReadTimeout):
            client.post(server.base_url + "/v1/chat/completions", json={**body, "stream": False}, timeout=0.2)
        for _ in range(100):
            if server.abandoned == 2:
                break
            time.sleep(0.02)
        assert server.abandoned == 2


def test_the_vertex_claude_format_checks_its_native_shape() -> None:
    import httpx

    good = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    path = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001:"
    with FakeServer(chunk_size=None, max_seconds=30) as server:
        def post(method: str, body: dict) -> httpx.Response:
            return httpx.post(server.base_url + path + method, json=body, timeout=10)

        ok = post("rawPredict", good)
        assert ok.status_code == 200 and ok.json()["model"] == "claude-haiku-4-5@20251001"
        streamed = post("streamRawPredict", {**good, "stream": True})
        assert streamed.headers["content-type"].startswith("text/event-stream")
        for method, body, problem in [
            ("rawPredict", {**good, "model": "claude"}, "model in the path"),
            ("rawPredict", {**good, "anthropic_version": "2023-06-01"}, "anthropic_version must be"),
            ("rawPredict", {**good, "stream": True}, ":streamRawPredict"),
            ("streamRawPredict", good, ":streamRawPredict"),
        ]:
            answer = post(method, body)
            assert answer.status_code == 400 and problem in answer.json()["error"]["message"], (method, body)


def test_every_bundled_embeddings_path_is_routed(registry: Registry, settings: Settings) -> None:
    from engine.render import render_embeddings
    from engine.testing.embeddings import route_embeddings
    from engine.types import EmbeddingRequest

    checked = 0
    for name in registry.names():
        compiled = registry.compiled(name)
        if compiled.spec.embeddings is None:
            continue
        model = compiled.spec.embeddings.default_model or "example-model"
        url = render_embeddings(prepare(compiled, settings), EmbeddingRequest(inputs=["a"]), ["a"], model).url
        assert route_embeddings(urlsplit(url).path) is not None, (name, url)
        checked += 1
    assert checked >= 15


def test_embeddings_requests_in_the_wrong_shape_are_refused(local_server: FakeServer) -> None:
    with httpx.Client(base_url=local_server.base_url, timeout=5.0) as client:
        for path, body, problem in [
            ("/v1/embeddings", {"model": "m", "input": []}, "non-empty list of strings"),
            ("/v1/embeddings", {"model": "m", "input": ["a"], "encoding_format": "base64"}, "float vectors only"),
            ("/v2/embed", {"model": "m", "texts": ["a"], "embedding_types": ["float"]}, "input_type must be"),
            ("/v1beta/models/g:batchEmbedContents",
             {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}, "must be models/g"),
            ("/v1/projects/p/locations/l/publishers/google/models/gemini-embedding-001:predict",
             {"instances": [{"content": "a"}, {"content": "b"}]}, "at most 1 instance"),
        ]:
            answer = client.post(path, json=body)
            assert answer.status_code == 400 and problem in answer.text, (path, answer.text)
