"""A small, bounded fake LLM server on 127.0.0.1 speaking three real wire formats.

Used by the offline demo, by socket-level integration tests (with fault injection) and by
benchmarks. Standard library only; runs its own asyncio loop in a daemon thread, so it can be
used from synchronous and asynchronous code alike and many instances can coexist.

Routes (HTTP/1.1, keep-alive, Content-Length or chunked request bodies):

* ``GET /health`` -> ``{"ok": true}``
* ``POST /v1/chat/completions`` (also ``/chat/completions``, ``/openai/deployments/{name}/chat/completions``
  and ``/openai/v1/chat/completions``): OpenAI Chat Completions, JSON or SSE (``"stream": true``,
  ``stream_options.include_usage`` honoured, ends with ``data: [DONE]``).
* ``POST /v1/messages``: Anthropic Messages, JSON or SSE (named events ``message_start`` ...
  ``message_stop``). A forced tool (``tool_choice`` ``{"type": "tool"}`` or ``{"type": "any"}``) is
  answered with a ``tool_use`` block whose input is ``{"answer": <reply>}``.
* ``POST /api/chat``: Ollama native chat; streams NDJSON unless ``"stream": false``.
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
  ``alt=sse``): Google Gemini; JSON mode is ``generationConfig.responseMimeType: application/json``.
* ``POST /v2/chat``: Cohere v2 chat, JSON or SSE (``event:`` line and ``data.type`` both name the event).

Anything else -> 404 JSON. The reply text is deterministic, see `LocalServer.reply_for`. JSON mode
(OpenAI ``response_format`` json_object/json_schema, Ollama ``format``, Anthropic ``output_config.format``
or a forced tool) makes
the reply the JSON text ``{"answer": <reply>}``.

Faults (`Fault.kind`), queued with `LocalServer.inject`, each consumed by the next API request
(``/health`` and unknown paths never consume one):

* ``status``: error status with the route's error body (+ ``Retry-After`` if given).
* ``html``: 502 with a proxy-style HTML page.
* ``truncated_json``: 200 JSON body cut in half (Content-Length matches the cut body).
* ``timeout``: stall ``seconds`` (max 30), then close without answering.
* ``reset``: stream: ``after_events`` events, then a TCP reset; non-stream: reset at once.
* ``cut``: stream: ``after_events`` events, then a clean end of the HTTP body without the end marker;
  non-stream: full Content-Length announced, half the body sent, connection closed.
* ``stream_error``: stream: ``after_events`` events, the route's in-stream error event, clean end;
  non-stream: a 500 with the route's error body.

CLI: ``python -m engine.localserver [--port N] [--chunk-size N] [--max-seconds S] [--reply TEXT]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NoReturn
from urllib.parse import urlsplit

__all__ = ["FAULT_KINDS", "Fault", "LocalServer", "RecordedRequest"]

FAULT_KINDS = frozenset({"status", "html", "truncated_json", "timeout", "reset", "cut", "stream_error"})

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_MAX_STALL = 30.0
_CREATED_AT = "2026-01-01T00:00:00.000000Z"
_AZURE_PATH = re.compile(r"/openai/(?:deployments/[^/]+/|v1/)chat/completions")
_GEMINI_PATH = re.compile(r"/v1beta/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)")
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_WORDS = re.compile(r"\s*\S+\s*")
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>local-proxy</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class Fault:
    """One injected failure; applies to exactly one request."""

    kind: str
    status: int = 500
    retry_after: str | None = None
    after_events: int = 2
    seconds: float = 5.0
    message: str = "injected failure"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")


@dataclass
class RecordedRequest:
    """A request as the server received it (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Drop(Exception):
    """End the connection now without writing anything more."""


@dataclass
class _Request:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    responded: bool = False


@dataclass
class _Call:
    """Everything needed to render one completion in any of the formats."""

    fmt: str
    model: str
    stream: bool
    number: int
    base_reply: str  # before JSON-mode wrapping
    text: str  # what is actually sent as content / partial_json
    deltas: list[str]
    input_tokens: int
    tool_name: str | None
    include_usage: bool
    created: int

    @property
    def output_tokens(self) -> int:
        return len(self.deltas)


def _dumps(obj: Any) -> str:
    # Raw UTF-8 (not \u escapes) so that chunk boundaries really split multi-byte characters.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _text_of(content: Any) -> str:
    """Plain text of a message content in any of the three formats (string or list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(t for t in (_text_of(part) for part in content) if t)
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else _text_of(content.get("content") or content.get("parts"))
    return ""


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict)]
    contents = body.get("contents")  # Gemini: {role: user|model, parts: [{text}]}
    if isinstance(contents, list):
        return [{"role": "assistant" if c.get("role") == "model" else "user", "content": c.get("parts")}
                for c in contents if isinstance(c, dict)]
    return []


def _input_tokens(body: dict[str, Any]) -> int:
    words = len(_text_of(body.get("system")).split()) + len(_text_of(body.get("systemInstruction")).split())
    words += sum(len(_text_of(m.get("content")).split()) for m in _messages(body))
    return max(1, words)


def _forced_tool(body: dict[str, Any]) -> str | None:
    """Name of the tool an Anthropic request forces, if any."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not (isinstance(tools, list) and tools and isinstance(choice, dict)):
        return None
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    if choice.get("type") == "any" and isinstance(tools[0], dict) and isinstance(tools[0].get("name"), str):
        return str(tools[0]["name"])
    return None


def _json_mode(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    output_config = body.get("output_config")  # Anthropic structured outputs
    if isinstance(output_config, dict) and isinstance(output_config.get("format"), dict):
        return True
    generation = body.get("generationConfig")
    if isinstance(generation, dict) and generation.get("responseMimeType") == "application/json":
        return True
    return bool(body.get("format")) or _forced_tool(body) is not None


def _default_reply(body: dict[str, Any]) -> str:
    users = [m for m in _messages(body) if m.get("role") == "user"]
    last = _text_of(users[-1].get("content")) if users else ""
    said = " ".join(last.split())[:60].rstrip() or "(nothing)"
    return f"Hello from the local server — you said: {said} ✓"


def _reason(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if chunked else data


def _usage_openai(call: _Call) -> dict[str, Any]:
    i, o = call.input_tokens, call.output_tokens
    return {
        "prompt_tokens": i,
        "completion_tokens": o,
        "total_tokens": i + o,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _usage_anthropic(call: _Call, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": call.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _ollama_stats(call: _Call) -> dict[str, Any]:
    load, prompt, gen = 1_000_000, call.input_tokens * 50_000, call.output_tokens * 1_000_000
    return {
        "total_duration": load + prompt + gen + 100_000,
        "load_duration": load,
        "prompt_eval_count": call.input_tokens,
        "prompt_eval_duration": prompt,
        "eval_count": call.output_tokens,
        "eval_duration": gen,
    }


def _full_body(call: _Call) -> dict[str, Any]:
    """The non-streaming response body."""
    if call.fmt == "openai":
        return {
            "id": f"chatcmpl-local{call.number:04d}",
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": call.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": _usage_openai(call),
            "system_fingerprint": "fp_local",
        }
    if call.fmt == "anthropic":
        content: list[dict[str, Any]]
        if call.tool_name is not None:
            content = [{"type": "tool_use", "id": "toolu_local01", "name": call.tool_name,
                        "input": {"answer": call.base_reply}}]
        else:
            content = [{"type": "text", "text": call.text}]
        return {
            "id": f"msg_local{call.number:04d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": "end_turn" if call.tool_name is None else "tool_use",
            "stop_sequence": None,
            "usage": _usage_anthropic(call, call.output_tokens),
        }
    if call.fmt == "gemini":
        return _gemini_chunk(call, call.text, call.output_tokens, "STOP")
    if call.fmt == "cohere":
        return {
            "id": f"local-{call.number:04d}",
            "message": {"role": "assistant", "content": [{"type": "text", "text": call.text}]},
            "finish_reason": "COMPLETE",
            "usage": _usage_cohere(call),
        }
    return {
        "model": call.model,
        "created_at": _CREATED_AT,
        "message": {"role": "assistant", "content": call.text},
        "done_reason": "stop",
        "done": True,
        **_ollama_stats(call),
    }


def _gemini_chunk(call: _Call, text: str, output_tokens: int, finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": call.input_tokens, "candidatesTokenCount": output_tokens,
             "totalTokenCount": call.input_tokens + output_tokens}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": call.model,
            "responseId": f"local{call.number:04d}"}


def _usage_cohere(call: _Call) -> dict[str, Any]:
    billed = {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}
    # tokens also counts Cohere's own prompt template, billed_units does not.
    return {"billed_units": billed, "tokens": {"input_tokens": call.input_tokens + 60,
                                               "output_tokens": call.output_tokens}}


def _sse(data: Any, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {_dumps(data)}\n\n".encode()


def _stream_events(call: _Call) -> list[bytes]:
    """Every event/line of a streaming response; the last one is the end marker."""
    if call.fmt == "openai":
        base = {"id": f"chatcmpl-local{call.number:04d}", "object": "chat.completion.chunk",
                "created": call.created, "model": call.model, "system_fingerprint": "fp_local"}
        extra = {"usage": None} if call.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**base, "choices": [choice], **extra})

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": d}, None) for d in call.deltas]
        events.append(chunk({}, "stop"))
        if call.include_usage:
            events.append(_sse({**base, "choices": [], "usage": _usage_openai(call)}))
        events.append(b"data: [DONE]\n\n")
        return events
    if call.fmt == "anthropic":
        start = {**_full_body(call), "content": [], "stop_reason": None, "usage": _usage_anthropic(call, 1)}
        if call.tool_name is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": d} for d in call.deltas]
        else:
            block = {"type": "tool_use", "id": "toolu_local01", "name": call.tool_name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": d} for d in call.deltas]
        events = [
            _sse({"type": "message_start", "message": start}, "message_start"),
            _sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
            _sse({"type": "ping"}, "ping"),
        ]
        events += [_sse({"type": "content_block_delta", "index": 0, "delta": d}, "content_block_delta")
                   for d in deltas]
        stop_reason = "end_turn" if call.tool_name is None else "tool_use"
        events += [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                  "usage": {"output_tokens": call.output_tokens}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return events
    if call.fmt == "gemini":  # cumulative usage in every event; the last one has the finishReason
        last = len(call.deltas)
        return [_sse(_gemini_chunk(call, d, i, "STOP" if i == last else None)).replace(b"\n", b"\r\n")
                for i, d in enumerate(call.deltas, 1)]
    if call.fmt == "cohere":
        def event(kind: str, **fields: Any) -> bytes:
            return _sse({"type": kind, **fields}, kind)

        events = [event("message-start", id=f"local-{call.number:04d}", delta={"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}),
            event("content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}})]
        events += [event("content-delta", index=0, delta={"message": {"content": {"text": d}}}) for d in call.deltas]
        events += [event("content-end", index=0),
                   event("message-end", delta={"finish_reason": "COMPLETE", "usage": _usage_cohere(call)})]
        return events
    head = {"model": call.model, "created_at": _CREATED_AT}
    lines = [
        (_dumps({**head, "message": {"role": "assistant", "content": d}, "done": False}) + "\n").encode()
        for d in call.deltas
    ]
    final = {**head, "message": {"role": "assistant", "content": ""}, "done_reason": "stop", "done": True,
             **_ollama_stats(call)}
    lines.append((_dumps(final) + "\n").encode())
    return lines


def _stream_error_event(fmt: str, message: str) -> bytes:
    if fmt == "openai":
        return _sse({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
    if fmt == "anthropic":
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": message}}, "error")
    if fmt == "gemini":
        return _sse({"error": {"code": 500, "message": message, "status": "INTERNAL"}})
    if fmt == "cohere":
        return _sse({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": message}}, "message-end")
    return (_dumps({"error": message}) + "\n").encode()


def _error_body(fmt: str, status: int, message: str) -> dict[str, Any]:
    if fmt == "anthropic":
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                 529: "overloaded_error"}
        kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if fmt == "ollama":
        return {"error": message}
    if fmt == "gemini":
        return {"error": {"code": status, "message": message,
                          "status": _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}
    if fmt == "cohere":
        return {"id": "local-error", "message": message}
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", "invalid_api_key" if status == 401 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _route(path: str) -> str | None:
    if len(path) > 1:
        path = path.rstrip("/")
    if path in ("/v1/chat/completions", "/chat/completions") or _AZURE_PATH.fullmatch(path):
        return "openai"
    if path == "/v1/messages":
        return "anthropic"
    if path == "/api/chat":
        return "ollama"
    if _GEMINI_PATH.fullmatch(path):
        return "gemini"
    if path == "/v2/chat":
        return "cohere"
    return None


def _hard_reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0 turns close() into an RST, which is what a crashed proxy looks like to the client.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class LocalServer:
    """Fake OpenAI / Anthropic / Ollama server on ``127.0.0.1`` running in its own thread.

    ``chunk_size``: stream bodies are written in pieces of this many bytes (each its own HTTP chunk),
    deliberately splitting SSE lines, JSON tokens and UTF-8 characters; ``None`` writes at once.
    ``reply``: fixed reply text (default: derived from the request, see `reply_for`).
    ``chunks``: number of content deltas (default: one per word).
    ``max_seconds``: the server stops itself after this long.
    ``port``: 0 lets the OS choose.
    """

    def __init__(self, *, chunk_size: int | None = 7, reply: str | None = None, chunks: int | None = None,
                 max_seconds: float = 600.0, port: int = 0) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be >= 1 or None")
        if chunks is not None and chunks < 1:
            raise ValueError("chunks must be >= 1 or None")
        self.chunk_size = chunk_size
        self.reply = reply
        self.chunks = chunks
        self.max_seconds = max_seconds
        self.port = port
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.connections = 0  # accepted so far: shows whether clients reuse their connections
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ public API

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to the next API request (FIFO) and is then consumed."""
        with self._lock:
            self._faults.extend(faults)

    def reply_for(self, body: dict[str, Any]) -> str:
        """The exact text the server sends for this request body (for every route).

        Default: ``"Hello from the local server — you said: <last user text, whitespace-collapsed,
        first 60 chars> ✓"``. With ``chunks`` larger than the text, the text is repeated (space
        separated) until every delta can hold at least one character. In JSON mode the result is
        ``json.dumps({"answer": text}, ensure_ascii=False)``.
        """
        return self._texts(body)[1]

    def start(self) -> LocalServer:
        """Start serving in a daemon thread; returns once the socket is listening."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("LocalServer already started")
            self._ready.clear()
            self._startup_error = None
            self._thread = threading.Thread(target=self._run, name="LocalServer", daemon=True)
            self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("LocalServer did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError(f"LocalServer failed to start: {self._startup_error}") from self._startup_error
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then join the thread (bounded wait)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed: it stopped by itself
                loop.call_soon_threadsafe(event.set)
        thread.join(2.5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> LocalServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------ lifecycle

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); a daemon thread has nobody else to tell
            if not self._ready.is_set():
                self._startup_error = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._ready.set()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._serve_connection, "127.0.0.1", self.port, limit=_MAX_HEAD)
        self.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop_event.wait(), self.max_seconds)
        except TimeoutError:
            pass
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 0.5)

    def _wait(self) -> None:
        # Short joins keep Ctrl-C responsive in the CLI.
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None:
                    break
                try:
                    keep = await self._handle(request, writer)
                except (_Drop, ConnectionError, asyncio.IncompleteReadError):
                    raise
                except Exception as exc:  # a handler bug must cost one connection, never the server
                    if request.responded:
                        raise _Drop from exc
                    request.keep_alive = False
                    await self._send_json(writer, request, 500, {"error": {
                        "message": f"local server error: {exc!r}", "type": "server_error",
                        "param": None, "code": None}})
                    keep = False
                if not keep:
                    break
        except (asyncio.CancelledError, Exception):  # _Drop, resets, shutdown: nobody left to tell
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        """Read one request; None on a clean EOF between requests."""
        head = b""
        while not head:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError:
                await self._reject(writer, 431, "request header too large")
            # RFC 9112 allows stray CRLFs before a request line.
            head = head.lstrip(b"\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._reject(writer, 400, "malformed request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                await self._reject(writer, 400, "malformed header")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if not target.startswith("/"):  # absolute-form target, as sent to proxies
            parsed = urlsplit(target)
            target = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        path, _, query = target.partition("?")
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader, writer)
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                await self._reject(writer, 400, "bad Content-Length")
            if length > _MAX_BODY:
                await self._reject(writer, 413, "request body too large")
            body = await reader.readexactly(length)
        connection = headers.get("connection", "").lower()
        keep = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
        return _Request(method, path, query, version, headers, body, keep)

    async def _read_chunked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                await self._reject(writer, 400, "bad chunk size")
            if size == 0:
                break
            total += size
            if total > _MAX_BODY:
                await self._reject(writer, 413, "request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # skip trailers
            pass
        return b"".join(parts)

    async def _reject(self, writer: asyncio.StreamWriter, status: int, message: str) -> NoReturn:
        """Answer a request we could not parse, then drop the connection (raises `_Drop`)."""
        body = _dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": None}}).encode()
        writer.write(_head(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(body)))], False) + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        raise _Drop

    async def _send(self, writer: asyncio.StreamWriter, request: _Request, status: int, body: bytes,
                    content_type: str, extra: list[tuple[str, str]] | None = None) -> bool:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(extra or [])]
        data = _head(status, headers, request.keep_alive) + body
        request.responded = True
        writer.write(data)
        await writer.drain()
        return request.keep_alive

    async def _send_json(self, writer: asyncio.StreamWriter, request: _Request, status: int, obj: Any,
                         extra: list[tuple[str, str]] | None = None) -> bool:
        return await self._send(writer, request, status, _dumps(obj).encode(), "application/json", extra)

    async def _write_pieces(self, writer: asyncio.StreamWriter, data: bytes, chunked: bool) -> None:
        if not data:
            return  # an empty HTTP chunk would end the body
        size = self.chunk_size
        if size is None:
            writer.write(_frame(data, chunked))
            await writer.drain()
            return
        for start in range(0, len(data), size):
            writer.write(_frame(data[start:start + size], chunked))
            await writer.drain()
            # Yield so each piece leaves in its own send() call, i.e. usually its own TCP segment.
            await asyncio.sleep(0)

    async def _send_stream(self, writer: asyncio.StreamWriter, request: _Request, content_type: str,
                           extra: list[tuple[str, str]], events: list[bytes], *, finish: bool = True) -> bool:
        # HTTP/1.0 clients cannot take chunked bodies: fall back to a close-delimited one.
        chunked = request.version != "HTTP/1.0"
        keep = request.keep_alive and chunked
        headers = [("Content-Type", content_type), ("Cache-Control", "no-cache"), *extra]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        request.responded = True
        writer.write(_head(200, headers, keep))
        await self._write_pieces(writer, b"".join(events), chunked)
        if finish and chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        if finish and not keep:
            raise _Drop  # close-delimited body ends with the connection
        return keep

    # ------------------------------------------------------------------ routing

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _texts(self, body: dict[str, Any]) -> tuple[str, str]:
        """(base reply, sent text): the sent text is JSON-wrapped in JSON mode."""
        base = self.reply if self.reply is not None else _default_reply(body)
        if self.chunks and base and len(base) < self.chunks:
            base = " ".join([base] * math.ceil((self.chunks + 1) / (len(base) + 1)))
        text = json.dumps({"answer": base}, ensure_ascii=False) if _json_mode(body) else base
        return base, text

    def _deltas(self, text: str) -> list[str]:
        if self.chunks:
            n = min(self.chunks, len(text)) or 1
            cuts = [len(text) * i // n for i in range(n + 1)]
            return [text[a:b] for a, b in itertools.pairwise(cuts)]
        return _WORDS.findall(text) or [text]

    def _make_call(self, fmt: str, body: dict[str, Any], number: int, path: str = "") -> _Call:
        base, text = self._texts(body)
        model = body.get("model")
        # Ollama streams unless told not to; Gemini by its method; the others only when asked.
        stream = body.get("stream", True) is not False if fmt == "ollama" else body.get("stream") is True
        if fmt == "gemini" and (match := _GEMINI_PATH.fullmatch(path)):
            model, stream = match["model"], match["method"] == "streamGenerateContent"
        options = body.get("stream_options")
        return _Call(
            fmt=fmt,
            model=model if isinstance(model, str) else "local-model",
            stream=stream,
            number=number,
            base_reply=base,
            text=text,
            deltas=self._deltas(text),
            input_tokens=_input_tokens(body),
            tool_name=_forced_tool(body) if fmt == "anthropic" else None,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            created=int(time.time()),
        )

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns whether the connection may be reused."""
        self.requests.append(RecordedRequest(request.method, request.path, request.query,
                                             dict(request.headers), request.body))
        if request.path == "/health":
            return await self._send_json(writer, request, 200, {"ok": True})
        fmt = _route(request.path)
        if fmt is None:
            return await self._send_json(writer, request, 404, {"error": {
                "message": f"no route for {request.method} {request.path}", "type": "invalid_request_error",
                "param": None, "code": "not_found"}})
        number = next(self._ids)
        extra = {"openai": [("x-request-id", f"req_local{number:04d}")],
                 "anthropic": [("request-id", f"req_local{number:04d}")]}.get(fmt, [])
        if request.method != "POST":
            return await self._send_json(writer, request, 405, _error_body(fmt, 405, "use POST"), extra)

        fault = self._next_fault()
        kind = fault.kind if fault else None
        if fault is not None and kind == "status":
            if fault.retry_after is not None:
                extra = [*extra, ("Retry-After", fault.retry_after)]
            return await self._send_json(writer, request, fault.status,
                                         _error_body(fmt, fault.status, fault.message), extra)
        if kind == "html":
            return await self._send(writer, request, 502, _HTML_502, "text/html", extra)
        if fault is not None and kind == "timeout":
            await asyncio.sleep(min(max(fault.seconds, 0.0), _MAX_STALL))
            raise _Drop

        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            if kind == "reset":
                _hard_reset(writer)
                raise _Drop
            return await self._send_json(writer, request, 400,
                                         _error_body(fmt, 400, "request body must be a JSON object"), extra)
        call = self._make_call(fmt, body, number, request.path)

        if kind == "reset" and not call.stream:
            _hard_reset(writer)
            raise _Drop
        if fault is not None and kind == "stream_error" and not call.stream:
            return await self._send_json(writer, request, 500, _error_body(fmt, 500, fault.message), extra)
        if kind == "truncated_json" or not call.stream:
            payload = _dumps(_full_body(call)).encode()
            if kind == "truncated_json":
                # Cut on a character boundary so the client fails on JSON, not on UTF-8 decoding.
                half = payload[: len(payload) // 2].decode("utf-8", "ignore").encode()
                return await self._send(writer, request, 200, half,
                                        "application/json", extra)
            if kind == "cut":
                # Announce the full length but deliver half: the client sees a short body and EOF.
                request.responded = True
                headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
                headers += extra
                writer.write(_head(200, headers, False) + payload[: len(payload) // 2])
                await writer.drain()
                raise _Drop
            return await self._send(writer, request, 200, payload, "application/json", extra)

        content_type = "application/x-ndjson" if fmt == "ollama" else "text/event-stream; charset=utf-8"
        events = _stream_events(call)
        if fault is None:
            return await self._send_stream(writer, request, content_type, extra, events)
        sent = events[: min(max(fault.after_events, 0), len(events) - 1)]  # never the end marker
        if kind == "cut":
            return await self._send_stream(writer, request, content_type, extra, sent)
        if kind == "stream_error":
            sent = [*sent, _stream_error_event(fmt, fault.message)]
            return await self._send_stream(writer, request, content_type, extra, sent)
        # reset: let the events reach the client before the RST discards the kernel send queue.
        await self._send_stream(writer, request, content_type, extra, sent, finish=False)
        await asyncio.sleep(0.02)
        _hard_reset(writer)
        raise _Drop


def main(argv: list[str] | None = None) -> int:
    """Run a server until killed or ``--max-seconds`` elapse."""
    parser = argparse.ArgumentParser(prog="python -m engine.localserver",
                                     description="Fake OpenAI / Anthropic / Ollama server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--chunk-size", type=int, default=7,
                        help="bytes per streamed piece; 0 writes each body at once (default: 7)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="stop after this long (default: 600)")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: derived from the request)")
    args = parser.parse_args(argv)
    server = LocalServer(chunk_size=args.chunk_size or None, reply=args.reply,
                         max_seconds=args.max_seconds, port=args.port).start()
    print(f"LISTENING {server.base_url}", flush=True)
    try:
        server._wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
