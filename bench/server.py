"""A fast fake LLM server for the benchmark: OpenAI, Anthropic and Ollama formats on 127.0.0.1.

Standard library only, one raw ``asyncio.Protocol`` (keep-alive, TCP_NODELAY) with every body
precomputed, so that the client, not the server, is what is measured. It runs in its own process
(``python -m bench.server``) so its CPU time never counts as the client's. The engine's own
``engine.localserver`` is built for fault injection and awkward chunk boundaries, not speed
(see README.md for the figures).

Routes: ``POST /v1/chat/completions`` (OpenAI; a request with ``tools`` gets the ``tools`` format: two
parallel tool calls whose argument pieces interleave, one piece per chunk), ``POST /v1/messages`` (Anthropic),
``POST /api/chat`` (Ollama; streams unless ``"stream": false``); ``GET /health``; ``GET /stats`` and ``POST
/stats/reset`` (request and connection counters, to catch retries and lost keep-alive); ``POST /config`` with
a JSON object changes the stream shape (``chunks``, ``gap_ms``, ``hold``, ``hold_ms``) for the following
requests.

Streams: the head and the first event are written, then after ``gap_ms`` (the first event arrives
alone, as from a model) the rest of the precomputed stream in one write, so the client sets the pace.
With ``hold`` = n (the concurrent-streams phase), each stream is held open after its first event
until n streams are held at once, then all are finished together; ``hold_ms`` bounds the wait.
``/stats`` reports ``held_max``, the most streams held open at the same time.

The reply text is a function of the counts only (`completion_text`, `stream_text`), so a client
can check every reply. The server exits after ``--max-seconds`` or when its parent process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import Any

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
MODEL_SNAPSHOT = "gpt-4o-mini-2024-07-18"

_SENTENCE = ("The quick brown fox jumps over the lazy dog while a helpful assistant explains how streamed "
             "replies arrive token by token and every client parses each event before the caller sees it")
WORDS = _SENTENCE.split()

ROUTES = {b"/v1/chat/completions": "openai", b"/chat/completions": "openai", b"/v1/messages": "anthropic",
          b"/api/chat": "ollama"}
# Index of the first event that carries text: the server sends up to it, then pauses.
FIRST_TEXT_EVENT = {"openai": 0, "anthropic": 3, "ollama": 0, "tools": 0}
TOOL_NAMES = ("lookup", "note")
ARGS_OPEN, ARGS_CLOSE = '{"text":"', '"}'

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
           411: b"Length Required", 413: b"Payload Too Large", 431: b"Request Header Fields Too Large"}


def completion_text(words: int) -> str:
    """The text of every non-streamed reply."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def stream_text(chunks: int, fmt: str = "openai") -> str:
    """The concatenated deltas of a stream of ``chunks`` content events; for ``tools``, of its argument
    pieces in the order they arrive (both calls open, the interleaved pieces, both close)."""
    text = "".join(delta(i) for i in range(chunks))
    return ARGS_OPEN * 2 + text + ARGS_CLOSE * 2 if fmt == "tools" else text


def tool_arguments(chunks: int) -> list[str]:
    """The whole JSON arguments of the two calls of a ``tools`` stream."""
    return [ARGS_OPEN + "".join(delta(i) for i in range(k, chunks, 2)) + ARGS_CLOSE for k in (0, 1)]


def delta(i: int) -> str:
    return WORDS[i % len(WORDS)] + " "


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def completion_body(fmt: str, model: str, words: int) -> bytes:
    """A realistic non-streamed response body in one of the three formats."""
    text = completion_text(words)
    out = max(1, round(words * 1.3))
    if fmt in ("openai", "tools"):
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if fmt == "tools":  # the reply text is the first call's "text" argument
            message["content"] = None
            message["tool_calls"] = [
                {"id": f"call_bench{k}", "type": "function",
                 "function": {"name": TOOL_NAMES[k], "arguments": json.dumps({"text": text if k == 0 else ""})}}
                for k in (0, 1)]
        return _dumps({
            "id": "chatcmpl-BENCH0123456789abcdefghijkl", "object": "chat.completion", "created": 1764000000,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if fmt == "tools" else "stop"}],
            "usage": {"prompt_tokens": 25, "completion_tokens": out, "total_tokens": 25 + out,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default", "system_fingerprint": "fp_bench01",
        })
    if fmt == "anthropic":
        return _dumps({
            "id": "msg_bench0123456789abcdef", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": out, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0},
        })
    return _dumps({
        "model": model, "created_at": "2026-01-01T00:00:00.000000Z",
        "message": {"role": "assistant", "content": text}, "done_reason": "stop", "done": True,
        "total_duration": 5_000_000, "load_duration": 1_000_000, "prompt_eval_count": 25,
        "prompt_eval_duration": 1_000_000, "eval_count": out, "eval_duration": 3_000_000,
    })


def stream_events(fmt: str, model: str, chunks: int) -> list[bytes]:
    """Every event (SSE) or line (NDJSON) of a stream with ``chunks`` content deltas, in order."""
    if fmt in ("openai", "tools"):
        base = {"id": "chatcmpl-BENCH0123456789abcdefghijkl", "object": "chat.completion.chunk",
                "created": 1764000000, "model": model, "service_tier": "default",
                "system_fingerprint": "fp_bench01"}

        def event(choices: list[Any], usage: Any = None) -> bytes:
            return b"data: " + _dumps({**base, "choices": choices, "usage": usage}) + b"\n\n"

        def choice(d: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

        if fmt == "tools":
            def piece(k: int, args: str, head: bool = False) -> dict[str, Any]:
                call: dict[str, Any] = {"index": k, "function": {"arguments": args}}
                if head:
                    call.update(id=f"call_bench{k}", type="function")
                    call["function"]["name"] = TOOL_NAMES[k]
                return {"tool_calls": [call]}

            out = [event(choice({"role": "assistant", "content": None, **piece(0, ARGS_OPEN, True)})),
                   event(choice(piece(1, ARGS_OPEN, True)))]
            out += [event(choice(piece(i % 2, delta(i)))) for i in range(chunks)]
            out += [event(choice(piece(k, ARGS_CLOSE))) for k in (0, 1)]
            out.append(event(choice({}, "tool_calls")))
        else:
            out = [event(choice({"role": "assistant", "content": delta(0), "refusal": None}))]
            out += [event(choice({"content": delta(i)})) for i in range(1, chunks)]
            out.append(event(choice({}, "stop")))
        out.append(event([], {"prompt_tokens": 25, "completion_tokens": chunks, "total_tokens": 25 + chunks,
                              "prompt_tokens_details": {"cached_tokens": 0},
                              "completion_tokens_details": {"reasoning_tokens": 0}}))
        out.append(b"data: [DONE]\n\n")
        return out
    if fmt == "anthropic":
        def sse(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + _dumps({"type": name, **data}) + b"\n\n"

        out = [
            sse("message_start", {"message": {
                "id": "msg_bench0123456789abcdef", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0}}}),
            sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            sse("ping", {}),
        ]
        out += [sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": delta(i)}})
                for i in range(chunks)]
        out += [
            sse("content_block_stop", {"index": 0}),
            sse("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": chunks}}),
            sse("message_stop", {}),
        ]
        return out
    head = {"model": model, "created_at": "2026-01-01T00:00:00.000000Z"}
    out = [_dumps({**head, "message": {"role": "assistant", "content": delta(i)}, "done": False}) + b"\n"
           for i in range(chunks)]
    out.append(_dumps({**head, "message": {"role": "assistant", "content": ""}, "done_reason": "stop",
                       "done": True, "total_duration": 5_000_000, "prompt_eval_count": 25,
                       "eval_count": chunks}) + b"\n")
    return out


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: int, content_type: bytes, length: int | None) -> bytes:
    size = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    return (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%sx-request-id: req_bench0123456789\r\n\r\n"
            % (status, REASONS.get(status, b"Error"), content_type, size))


class Config:
    """Server-wide settings and counters; `/config` changes the stream shape between phases."""

    def __init__(self, words: int, chunks: int, gap_ms: float) -> None:
        self.words, self.chunks, self.gap_ms, self.hold, self.hold_ms = words, chunks, gap_ms, 0, 10_000.0
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.held: list[tuple[Connection, bytes]] = []
        self.stats = {"requests": 0, "streams": 0, "connections": 0, "errors": 0, "open": 0, "max_open": 0,
                      "held_max": 0}

    def hold_stream(self, conn: Connection, rest: bytes) -> None:
        """Keep a stream open until ``hold`` streams are open at once (or ``hold_ms`` passes)."""
        self.held.append((conn, rest))
        self.stats["held_max"] = max(self.stats["held_max"], len(self.held))
        if len(self.held) >= self.hold:
            held, self.held = self.held, []
            for c, r in held:
                c.finish_stream(r)
        else:
            asyncio.get_running_loop().call_later(self.hold_ms / 1000, self.release, conn)

    def release(self, conn: Connection) -> None:
        for i, (c, rest) in enumerate(self.held):
            if c is conn:
                del self.held[i]
                conn.finish_stream(rest)
                return

    def body(self, fmt: str, model: str) -> bytes:
        key = ("c", fmt, model, self.words)
        if key not in self.cache:
            body = completion_body(fmt, MODEL_SNAPSHOT if fmt in ("openai", "tools") else model, self.words)
            ctype = b"application/json"
            self.cache[key] = _head(200, ctype, len(body)) + body
        return self.cache[key]

    def stream(self, fmt: str, model: str) -> tuple[bytes, bytes]:
        """(head + events up to the first text delta, the rest with the terminating chunk), chunked."""
        key = ("s", fmt, model, self.chunks)
        if key not in self.cache:
            shown = MODEL_SNAPSHOT if fmt in ("openai", "tools") else model
            events = [_chunk(e) for e in stream_events(fmt, shown, self.chunks)]
            first = FIRST_TEXT_EVENT[fmt] + 1
            ctype = b"application/x-ndjson" if fmt == "ollama" else b"text/event-stream; charset=utf-8"
            self.cache[key] = (_head(200, ctype, None) + b"".join(events[:first]),
                               b"".join(events[first:]) + b"0\r\n\r\n")
        return self.cache[key]


class Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests with Content-Length bodies, answered in order."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed stream is still being written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats = self.cfg.stats
        stats["connections"] += 1
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.cfg.stats["open"] -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while self.transport is not None and not self.busy:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.fail(431, "request head too large")
                return
            lines = bytes(self.buf[:end]).split(b"\r\n")
            parts = lines[0].split(b" ")
            if len(parts) != 3:
                self.fail(400, "bad request line")
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"chunked" in headers.get(b"transfer-encoding", b""):
                self.fail(411, "chunked request bodies are not supported")
                return
            try:
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                self.fail(400, "bad content-length")
                return
            if length > MAX_BODY:
                self.fail(413, "body too large")
                return
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4:end + 4 + length])
            del self.buf[:end + 4 + length]
            self.handle(parts[0], parts[1].split(b"?", 1)[0], body)

    def fail(self, status: int, message: str) -> None:
        """Answer with a JSON error and close: the client sent something this server does not take."""
        self.cfg.stats["errors"] += 1
        if self.transport is not None:
            body = _dumps({"error": {"message": message, "type": "invalid_request_error"}})
            self.transport.write(_head(status, b"application/json", len(body)) + body)
            self.transport.close()

    def reply_json(self, obj: Any) -> None:
        assert self.transport is not None
        body = _dumps(obj)
        self.transport.write(_head(200, b"application/json", len(body)) + body)

    def handle(self, method: bytes, path: bytes, body: bytes) -> None:
        cfg = self.cfg
        fmt = ROUTES.get(path)
        if fmt is None:
            if path == b"/health":
                self.reply_json({"ok": True})
            elif path == b"/stats":
                self.reply_json(cfg.stats)
            elif path == b"/stats/reset" and method == b"POST":
                for key in cfg.stats:
                    if key != "open":
                        cfg.stats[key] = 0
                cfg.held = []
                cfg.stats["max_open"] = cfg.stats["open"]
                self.reply_json(cfg.stats)
            elif path == b"/config" and method == b"POST":
                for key, value in json.loads(body).items():
                    setattr(cfg, key, value)
                self.reply_json({"words": cfg.words, "chunks": cfg.chunks, "gap_ms": cfg.gap_ms,
                                 "hold": cfg.hold, "hold_ms": cfg.hold_ms})
            else:
                self.fail(404, f"no route {path.decode(errors='replace')}")
            return
        if method != b"POST":
            self.fail(405, "use POST")
            return
        try:
            request = json.loads(body)
            model = request["model"]
            request["messages"]
        except (ValueError, KeyError, TypeError):
            self.fail(400, "body must be a JSON object with model and messages")
            return
        cfg.stats["requests"] += 1
        if fmt == "openai" and "tools" in request:
            fmt = "tools"
        stream = request.get("stream", fmt == "ollama")
        assert self.transport is not None
        if not stream:
            self.transport.write(cfg.body(fmt, model))
            return
        cfg.stats["streams"] += 1
        first, rest = cfg.stream(fmt, model)
        if cfg.hold <= 0 and cfg.gap_ms <= 0:
            self.transport.write(first + rest)
            return
        self.transport.write(first)
        self.busy = True
        if cfg.hold > 0:
            cfg.hold_stream(self, rest)
        else:
            asyncio.get_running_loop().call_later(cfg.gap_ms / 1000, self.finish_stream, rest)

    def finish_stream(self, rest: bytes) -> None:
        if not self.busy:
            return  # already finished (released by the timer, then by the barrier, or the reverse)
        self.busy = False
        if self.transport is not None:
            self.transport.write(rest)
            if self.buf:
                self.process()


async def serve(port: int, cfg: Config, max_seconds: float, port_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(cfg), HOST, port, backlog=4096)
    actual = server.sockets[0].getsockname()[1]
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(actual))
        os.replace(port_file + ".tmp", port_file)
    print(f"LISTENING {actual}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds
    while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the chosen port here")
    p.add_argument("--words", type=int, default=32, help="words in a non-streamed reply")
    p.add_argument("--chunks", type=int, default=2000, help="content deltas per stream")
    p.add_argument("--gap-ms", type=float, default=5.0, help="pause after a stream's first event")
    p.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long")
    a = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(a.port, Config(a.words, a.chunks, a.gap_ms), a.max_seconds, a.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
