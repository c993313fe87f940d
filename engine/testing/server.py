"""A small, bounded fake LLM server on 127.0.0.1 speaking the bundled providers' wire formats.

Used by the offline demo, by socket-level integration tests (with fault injection), and by your
own tests: point a provider's base URL at `FakeServer.base_url` and it answers in that provider's
format. Standard library only; it runs its own asyncio loop in a daemon thread, so it can be used
from synchronous and asynchronous code alike and many instances can coexist.

Routes (HTTP/1.1, keep-alive, Content-Length or chunked request bodies), matched by the end of the
path so that any base-URL prefix works (see `engine.testing.wire`):

* ``GET /health`` -> ``{"ok": true}``
* ``POST .../chat/completions``: OpenAI Chat Completions, JSON or SSE (``"stream": true``,
  ``stream_options.include_usage`` honoured, ends with ``data: [DONE]``). Azure's deployment paths too.
* ``POST .../messages``: Anthropic Messages, JSON or SSE (named events ``message_start`` ...
  ``message_stop``). JSON mode through a forced tool (``tool_choice`` ``{"type": "tool"}`` or
  ``{"type": "any"}`` with one tool, which has an ``answer`` property) is answered with a ``tool_use``
  block whose input is ``{"answer": <reply>}``.
* ``POST .../api/chat``: Ollama native chat; streams NDJSON unless ``"stream": false``.
* ``POST .../models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with ``alt=sse``):
  Google Gemini; JSON mode is ``generationConfig.responseMimeType: application/json``.
* ``POST .../v2/chat``: Cohere v2 chat, JSON or SSE (``event:`` line and ``data.type`` both name the event).
* ``POST .../responses``: OpenAI Responses, JSON or SSE (typed events from ``response.created`` to
  ``response.completed``, no ``[DONE]``); the request is checked as the API checks it (chat-completions fields,
  ``max_output_tokens`` of at least 16, flat function tools, ``input`` items); reasoning models (``o3``,
  ``gpt-5...``) answer with a reasoning item first; one sent back must carry the encrypted content issued for it.

Anything else -> 404 JSON. The reply text is deterministic, see `FakeServer.reply_for`. JSON mode
(OpenAI ``response_format`` json_object/json_schema or Responses ``text.format``, Ollama ``format``, Anthropic
``output_config.format`` or a forced tool) makes the reply the JSON text ``{"answer": <reply>}``.

Tool calls in every format (see `engine.testing.wire`): a request offering tools whose last turn is a user
turn with text is answered with two parallel calls to the first (or the chosen) tool, arguments
``{"<string property>": "Paris"}`` and ``... "Rome"}``; a request ending with tool results is checked in the
format's native shape (400 in its error shape when wrong) and answered ``Results: <result>; <result>``.
Images in a user turn (checked too) make the reply begin ``I see <n> image(s). ``.

Faults (`Fault.kind`), queued with `FakeServer.inject`, each consumed by the next API request
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
* ``slow``: a model that takes its time: a stream's events spread evenly over ``seconds`` (max 30); a
  non-stream reply sent after ``seconds``. A client that leaves before the reply is complete is counted in
  `FakeServer.abandoned`.

Hostile replies (a 200 unless said otherwise), for hardening tests:

* ``deep_json``: JSON nested ``size`` deep (default 100,000) as the body, or as the first stream event.
* ``bad_numbers``: the normal reply with every token count and cost replaced by ``value`` (JSON text such
  as ``1e400``, ``-5``, ``NaN``, ``Infinity`` or ``2.5``); a ``cost`` is added next to the usage.
* ``gzip_bomb``: ``Content-Encoding: gzip``, a body that decompresses to ``size`` bytes of spaces.
* ``long_line``: one line of ``size`` bytes with no line break (written in 1 MiB pieces).
* ``bad_utf8``: the normal reply with bytes that are not UTF-8 inside its text.
* ``wrong_content_type``: a stream request answered with a plain body of ``content_type``.
* ``empty_stream``: a stream request answered 200 with the stream content type and an empty body.
* ``echo_key``: the reply text and a top-level ``echo`` field repeat the credential the request sent.

CLI: ``python -m engine.testing.server [--port N] [--chunk-size N] [--max-seconds S] [--reply TEXT]``.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..types import HTTPRequest

from .embeddings import EmbeddingFormat, route_embeddings, vector_for
from .wire import FORMATS, Call, WireError, WireFormat, dumps, route, text_of

__all__ = ["FAULT_KINDS", "FakeServer", "Fault", "RecordedRequest"]

FAULT_KINDS = frozenset({"status", "html", "truncated_json", "timeout", "reset", "cut", "stream_error", "slow",
                         # hostile replies, for hardening tests
                         "deep_json", "bad_numbers", "gzip_bomb", "long_line", "bad_utf8", "wrong_content_type",
                         "empty_stream", "echo_key"})

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_MAX_STALL = 30.0
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
    value: str = "1e400"  # bad_numbers: the JSON text put in place of every count and cost
    size: int = 100 * 1024 * 1024  # gzip_bomb: decompressed bytes; long_line: bytes in the line; deep_json: depth
    content_type: str = "text/html; charset=utf-8"  # wrong_content_type

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
    reader: asyncio.StreamReader | None = None


def _default_reply(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    last = text_of(users[-1].get("content")) if users else ""
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


def _hard_reset(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0 turns close() into an RST, which is what a crashed proxy looks like to the client.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FakeServer:
    """A fake LLM server on ``127.0.0.1`` running in its own thread; every provider's base URL can point at it.

    ``chunk_size``: stream bodies are written in pieces of this many bytes (each its own HTTP chunk),
    deliberately splitting SSE lines, JSON tokens and UTF-8 characters; ``None`` writes at once.
    ``reply``: fixed reply text (default: derived from the request, see `reply_for`).
    ``chunks``: number of content deltas (default: one per word).
    ``max_seconds``: the server stops itself after this long.
    ``port``: 0 lets the OS choose.
    ``api_key``: when set, a request that does not carry this key (as a bearer token, a ``*-key`` header such
    as ``x-api-key``, or a ``key`` query value) gets a 401 in its format, as a live API would (formats whose
    ``needs_key`` is false take any request). A function instead checks the key (e.g. `TokenServer.valid`
    for OAuth2 access tokens).
    ``formats``: wire formats of your own (`WireFormat` subclasses), tried before the built-in ones, so
    that a provider file for an API the engine does not bundle can be tested over real sockets.
    """

    def __init__(self, *, chunk_size: int | None = 7, reply: str | None = None, chunks: int | None = None,
                 max_seconds: float = 600.0, port: int = 0, formats: Sequence[WireFormat] = (),
                 api_key: str | Callable[[str], bool] | None = None) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be >= 1 or None")
        if chunks is not None and chunks < 1:
            raise ValueError("chunks must be >= 1 or None")
        self.chunk_size = chunk_size
        self.reply = reply
        self.chunks = chunks
        self.max_seconds = max_seconds
        self.port = port
        self.formats = tuple(formats)
        self.api_key = api_key
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.connections = 0  # accepted so far: shows whether clients reuse their connections
        self.abandoned = 0  # slow replies whose client left before they were complete
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

    def _key_ok(self, credential: str) -> bool:
        key = self.api_key
        return key(credential) if callable(key) else credential == key

    def reply_for(self, request: RecordedRequest | HTTPRequest | dict[str, Any]) -> str:
        """The exact text the server sends for a request (a recorded one, a rendered one, or a bare body).

        Default: ``"Hello from the local server — you said: <last user text, whitespace-collapsed,
        first 60 chars> ✓"``. With ``chunks`` larger than the text, the text is repeated (space
        separated) until every delta can hold at least one character. In JSON mode the result is
        ``json.dumps({"answer": text}, ensure_ascii=False)``. A default reply to a user turn with images begins
        ``"I see <n> image(s). "``; a request ending with tool results gets ``"Results: <r1>; <r2>"``; a reply
        that calls tools carries only the text before the calls (``""`` but for Anthropic).
        """
        if isinstance(request, dict):  # no path: any format that finds messages in it
            known = (*self.formats, *FORMATS.values())
            wire = next((w for w in known if w.messages(request)), FORMATS["openai"])
            json_mode = any(w.json_mode(request) for w in known)
            return self._texts(wire, request, json_mode)[1]
        path = request.path if isinstance(request, RecordedRequest) else urlsplit(request.url).path
        routed = route(path, self.formats)
        if routed is None:
            raise ValueError(f"the fake server does not answer {path!r}")
        body = request.json() if isinstance(request, RecordedRequest) else request.json
        return self._texts(routed[0], body)[1]

    def start(self) -> FakeServer:
        """Start serving in a daemon thread; returns once the socket is listening."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("FakeServer already started")
            self._ready.clear()
            self._startup_error = None
            self._thread = threading.Thread(target=self._run, name="FakeServer", daemon=True)
            self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("FakeServer did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError(f"FakeServer failed to start: {self._startup_error}") from self._startup_error
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

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeServer:
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
        return _Request(method, path, query, version, headers, body, keep, reader=reader)

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
        body = dumps({"error": {"message": message, "type": "invalid_request_error",
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
        return await self._send(writer, request, status, dumps(obj).encode(), "application/json", extra)

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

    async def _pace(self, request: _Request, seconds: float) -> bool:
        """Sleep, watching the client; False (counted in `abandoned`) when it leaves first."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.02))
            if request.reader is not None and request.reader.at_eof():
                self.abandoned += 1
                return False
        return True

    async def _send_stream(self, writer: asyncio.StreamWriter, request: _Request, content_type: str,
                           extra: list[tuple[str, str]], events: list[bytes], *, finish: bool = True,
                           pace: float = 0.0) -> bool:
        # HTTP/1.0 clients cannot take chunked bodies: fall back to a close-delimited one.
        chunked = request.version != "HTTP/1.0"
        keep = request.keep_alive and chunked
        headers = [("Content-Type", content_type), ("Cache-Control", "no-cache"), *extra]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        request.responded = True
        writer.write(_head(200, headers, keep))
        if pace:
            for event in events:
                try:
                    await self._write_pieces(writer, event, chunked)
                except ConnectionError:
                    self.abandoned += 1
                    raise _Drop from None
                if not await self._pace(request, pace):
                    raise _Drop
        else:
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

    def _texts(self, wire: WireFormat, body: dict[str, Any], json_mode: bool | None = None) -> tuple[str, str]:
        """(base reply, sent text): the sent text is JSON-wrapped in JSON mode; a reply with tool calls sends the
        text before them. Raises `WireError` for a request whose tool results or images are malformed."""
        images = wire.images(body)
        results = wire.tool_results(body)
        if calls := wire.answer_calls(body):
            text = wire.call_text(calls)
            return text, text
        if results is not None:
            base = "Results: " + "; ".join(results)
        elif self.reply is not None:
            base = self.reply
        else:
            base = _default_reply(wire.messages(body))
            if images:
                base = f"I see {images} image(s). {base}"
        if self.chunks and base and len(base) < self.chunks:
            base = " ".join([base] * math.ceil((self.chunks + 1) / (len(base) + 1)))
        json_mode = wire.json_mode(body) if json_mode is None else json_mode
        text = json.dumps({"answer": base}, ensure_ascii=False) if json_mode else base
        return base, text

    def _deltas(self, text: str) -> list[str]:
        if self.chunks:
            n = min(self.chunks, len(text)) or 1
            cuts = [len(text) * i // n for i in range(n + 1)]
            return [text[a:b] for a, b in itertools.pairwise(cuts)]
        return _WORDS.findall(text) or [text]

    def _make_call(self, wire: WireFormat, match: re.Match[str], body: dict[str, Any], number: int) -> Call:
        wire.check(body)
        base, text = self._texts(wire, body)
        calls = wire.answer_calls(body)
        words = len(wire.system_text(body).split())
        words += sum(len(text_of(m.get("content")).split()) for m in wire.messages(body))
        return Call(
            model=wire.model(body, match), text=text, deltas=self._deltas(text) if text or not calls else [],
            input_tokens=max(1, words), stream=wire.wants_stream(body, match), number=number, base_reply=base,
            tool_name=wire.forced_tool(body), include_usage=wire.include_usage(body), created=int(time.time()),
            tool_calls=calls, extra=wire.reply_options(body),
        )

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns whether the connection may be reused."""
        self.requests.append(RecordedRequest(request.method, request.path, request.query,
                                             dict(request.headers), request.body))
        if request.path == "/health":
            return await self._send_json(writer, request, 200, {"ok": True})
        embeddings = route_embeddings(request.path)
        if embeddings is not None:
            return await self._embeddings(request, writer, *embeddings)
        routed = route(request.path, self.formats)
        if routed is None:
            return await self._send_json(writer, request, 404, {"error": {
                "message": f"no route for {request.method} {request.path}", "type": "invalid_request_error",
                "param": None, "code": "not_found"}})
        wire, match = routed
        number = next(self._ids)
        extra = wire.request_id_headers(number)
        if request.method != "POST":
            return await self._send_json(writer, request, 405, wire.error_body(405, "use POST"), extra)

        if self.api_key is not None and wire.needs_key and not self._key_ok(_credential(request)):
            return await self._send_json(writer, request, 401, wire.error_body(401, "invalid API key"), extra)
        fault = self._next_fault()
        kind = fault.kind if fault else None
        if fault is not None and kind == "status":
            if fault.retry_after is not None:
                extra = [*extra, ("Retry-After", fault.retry_after)]
            return await self._send_json(writer, request, fault.status,
                                         wire.error_body(fault.status, fault.message), extra)
        if kind == "html":
            return await self._send(writer, request, 502, _HTML_502, "text/html", extra)
        if fault is not None and kind == "timeout":
            await asyncio.sleep(min(max(fault.seconds, 0.0), _MAX_STALL))
            raise _Drop
        slow = min(max(fault.seconds, 0.0), _MAX_STALL) if fault is not None and kind == "slow" else 0.0

        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            if kind == "reset":
                _hard_reset(writer)
                raise _Drop
            return await self._send_json(writer, request, 400,
                                         wire.error_body(400, "request body must be a JSON object"), extra)
        try:
            call = self._make_call(wire, match, body, number)
        except WireError as exc:  # tool results or images not in the format's native shape
            return await self._send_json(writer, request, 400, wire.error_body(400, str(exc)), extra)
        extra = [*extra, *wire.reply_headers(call)]

        if fault is not None and kind in HOSTILE:
            return await self._hostile(writer, request, wire, call, fault, extra)
        if kind == "reset" and not call.stream:
            _hard_reset(writer)
            raise _Drop
        if fault is not None and kind == "stream_error" and not call.stream:
            return await self._send_json(writer, request, 500, wire.error_body(500, fault.message), extra)
        if kind == "truncated_json" or not call.stream:
            if slow and not await self._pace(request, slow):
                raise _Drop
            payload = dumps(wire.reply(call)).encode()
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

        content_type = wire.stream_content_type
        events = wire.stream(call)
        if fault is None:
            return await self._send_stream(writer, request, content_type, extra, events)
        if slow:
            return await self._send_stream(writer, request, content_type, extra, events, pace=slow / len(events))
        sent = events[: min(max(fault.after_events, 0), len(events) - 1)]  # never the end marker
        if kind == "cut":
            return await self._send_stream(writer, request, content_type, extra, sent)
        if kind == "stream_error":
            sent = [*sent, wire.stream_error(fault.message)]
            return await self._send_stream(writer, request, content_type, extra, sent)
        # reset: let the events reach the client before the RST discards the kernel send queue.
        await self._send_stream(writer, request, content_type, extra, sent, finish=False)
        await asyncio.sleep(0.02)
        _hard_reset(writer)
        raise _Drop


    # ------------------------------------------------------------------ embeddings

    async def _embeddings(self, request: _Request, writer: asyncio.StreamWriter, fmt: EmbeddingFormat,
                          match: re.Match[str]) -> bool:
        """Vectors for the texts (`vector_for`), in the format's own shape; faults as for chat calls."""
        if request.method != "POST":
            return await self._send_json(writer, request, 405, fmt.error_body(405, "use POST"))
        if self.api_key is not None and fmt.needs_key and not self._key_ok(_credential(request)):
            return await self._send_json(writer, request, 401, fmt.error_body(401, "invalid API key"))
        fault = self._next_fault()
        kind = fault.kind if fault else None
        if fault is not None and kind in ("status", "stream_error"):
            extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
            return await self._send_json(writer, request, fault.status, fmt.error_body(fault.status, fault.message),
                                         extra)
        if kind == "html":
            return await self._send(writer, request, 502, _HTML_502, "text/html", [])
        if fault is not None and kind == "timeout":
            await asyncio.sleep(min(max(fault.seconds, 0.0), _MAX_STALL))
            raise _Drop
        if kind == "reset":
            _hard_reset(writer)
            raise _Drop
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict):
                raise WireError("the request body must be a JSON object")
            model, texts, dimensions = fmt.request(body, match)
        except (ValueError, RecursionError) as exc:
            return await self._send_json(writer, request, 400, fmt.error_body(400, str(exc)))
        payload = dumps(fmt.reply(model, texts, [vector_for(t, dimensions) for t in texts])).encode()
        if kind == "truncated_json":
            payload = payload[: len(payload) // 2]
        return await self._send(writer, request, 200, payload, "application/json", [])

    # ------------------------------------------------------------------ hostile replies

    async def _hostile(self, writer: asyncio.StreamWriter, request: _Request, wire: WireFormat, call: Call,
                       fault: Fault, extra: list[tuple[str, str]]) -> bool:
        kind = fault.kind
        stream_type = wire.stream_content_type if call.stream else "application/json"
        if kind == "deep_json":
            deep = b"[" * fault.size + b"]" * fault.size
            body = (b"data: " + deep + b"\n\n") if call.stream and wire.stream_content_type != \
                "application/x-ndjson" else deep + (b"\n" if call.stream else b"")
            return await self._send(writer, request, fault.status if fault.status != 500 else 200, body,
                                    stream_type, extra)
        if kind == "bad_numbers":
            if call.stream:
                events = [_poison_bytes(event, fault.value) for event in wire.stream(call)]
                return await self._send_stream(writer, request, stream_type, extra, events)
            return await self._send(writer, request, 200, _poison_bytes(dumps(wire.reply(call)).encode(),
                                                                        fault.value), stream_type, extra)
        if kind == "gzip_bomb":
            return await self._send(writer, request, 200, _gzip_bomb(fault.size), stream_type,
                                    [*extra, ("Content-Encoding", "gzip")])
        if kind == "long_line":
            request.responded = True
            headers = [("Content-Type", stream_type), ("Content-Length", str(fault.size + 6)), *extra]
            writer.write(_head(200, headers, False) + (b"data: " if call.stream else b'"'))
            piece = b"a" * (1024 * 1024)
            left = fault.size - (0 if call.stream else 1)
            while left > 0:
                writer.write(piece[:left])
                left -= len(piece)
                await writer.drain()
            raise _Drop
        if kind == "bad_utf8":
            call.text = call.text + "\ufffd"
            call.deltas[-1] += "\ufffd"
            data = b"".join(wire.stream(call)) if call.stream else dumps(wire.reply(call)).encode()
            data = data.replace("\ufffd".encode(), b"\xff\xfe\xc3")
            if call.stream:
                return await self._send_stream(writer, request, stream_type, extra, [data])
            return await self._send(writer, request, 200, data, stream_type, extra)
        if kind == "wrong_content_type":
            return await self._send(writer, request, 200, b"<html><body>Service temporarily rerouted</body></html>"
                                    if "html" in fault.content_type else b"upstream says hello",
                                    fault.content_type, extra)
        if kind == "empty_stream":
            return await self._send(writer, request, 200, b"", wire.stream_content_type, extra)
        # echo_key: repeat the credential the request carried
        credential = _credential(request)
        call.text = f"you sent {credential}"
        call.deltas = [call.text[:5], call.text[5:]]
        if call.stream:
            events = [e.replace(b"{", b'{"echo":' + json.dumps(credential).encode() + b",", 1)
                      for e in wire.stream(call)]
            return await self._send_stream(writer, request, stream_type, extra, events)
        return await self._send_json(writer, request, 200, {"echo": credential, **wire.reply(call)}, extra)


HOSTILE = frozenset({"deep_json", "bad_numbers", "gzip_bomb", "long_line", "bad_utf8", "wrong_content_type",
                     "empty_stream", "echo_key"})
_COUNT = re.compile(rb'("(?:[A-Za-z_]*tokens?|[A-Za-z_]*[Cc]ount|eval_count|cost|input|output)":)\s*-?[0-9.eE+]+')


def _poison_bytes(data: bytes, value: str) -> bytes:
    """Every token count and cost in JSON text replaced by ``value``; a ``cost`` added next to a usage object."""
    data = _COUNT.sub(lambda m: m.group(1) + value.encode(), data)
    return re.sub(rb'"(usage|usageMetadata)":\{', lambda m: m.group(0) + b'"cost":' + value.encode() + b",", data)


def _gzip_bomb(size: int) -> bytes:
    """A gzip body of ``size`` bytes of spaces: one small member, repeated (a valid multi-member gzip)."""
    import gzip

    member = gzip.compress(b" " * (1024 * 1024), compresslevel=9)
    return member * max(1, size // (1024 * 1024))


def _credential(request: _Request) -> str:
    """The key a request carries: a bearer token, a ``*-key`` header (``x-api-key``, ``api-key``, ...) or a
    ``key`` query value."""
    if "authorization" in request.headers:
        return request.headers["authorization"].removeprefix("Bearer ").strip()
    for name, value in request.headers.items():
        if name.endswith("-key"):
            return value.strip()
    from urllib.parse import parse_qs

    values = parse_qs(request.query).get("key")
    return values[0] if values else ""


def main(argv: list[str] | None = None) -> int:
    """Run a server until killed or ``--max-seconds`` elapse."""
    parser = argparse.ArgumentParser(prog="python -m engine.testing.server",
                                     description="Fake LLM server on 127.0.0.1: " + ", ".join(FORMATS) + ".")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument("--chunk-size", type=int, default=7,
                        help="bytes per streamed piece; 0 writes each body at once (default: 7)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="stop after this long (default: 600)")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: derived from the request)")
    parser.add_argument("--api-key", default=None,
                        help="answer requests without this key with a 401, as a live API would (default: any key)")
    args = parser.parse_args(argv)
    server = FakeServer(chunk_size=args.chunk_size or None, reply=args.reply, max_seconds=args.max_seconds,
                        port=args.port, api_key=args.api_key).start()
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
