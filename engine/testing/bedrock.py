"""A small Bedrock runtime server on 127.0.0.1 for tests: Converse JSON and ConverseStream event streams.

Real boto3 talks to it through an endpoint URL override (``GENAI_BEDROCK_ENDPOINT_URL``). Standard
library only; botocore has no event-stream encoder, so `encode_message` is this module's own.

* ``POST /model/{modelId}/converse`` -> Converse JSON (``output``, ``stopReason``, ``usage``, ``metrics``).
* ``POST /model/{modelId}/converse-stream`` -> ``application/vnd.amazon.eventstream`` frames
  (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata), sent in ``chunk_size``-byte HTTP
  chunks so frames split at awkward places.

A forced tool (``toolConfig.toolChoice.tool``) is answered with a toolUse block whose input is
``{"answer": <reply>}``; ``outputConfig.textFormat`` makes the reply that JSON as text. Errors use
Bedrock's shape: status, ``x-amzn-ErrorType`` header and ``{"message": ...}`` body; in-stream failures
are ``:message-type: exception`` frames. Faults (`BedrockFault`) queued with `inject` each apply to one request.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENTSTREAM = "application/vnd.amazon.eventstream"
USAGE = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 137, "cacheReadInputTokens": 100,
         "cacheWriteInputTokens": 20}
_STATUS = {"ValidationException": 400, "AccessDeniedException": 403, "UnrecognizedClientException": 403,
           "ResourceNotFoundException": 404, "ModelTimeoutException": 408, "ThrottlingException": 429,
           "ModelNotReadyException": 429, "InternalServerException": 500, "ServiceUnavailableException": 503}
_MAX_STALL = 10.0


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC32), string headers, payload, message CRC32."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _header(name: str, value: str) -> bytes:
    key, text = name.encode(), value.encode()
    return struct.pack(">B", len(key)) + key + b"\x07" + struct.pack(">H", len(text)) + text  # 7: string


def event_frame(event_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"}
    return encode_message(headers, json.dumps(body).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {":message-type": "exception", ":exception-type": exception_type,
               ":content-type": "application/json"}
    return encode_message(headers, json.dumps({"message": message}).encode())


@dataclass
class BedrockFault:
    """One injected failure for the next request.

    ``error``: an HTTP error of Bedrock exception type ``name``; ``stream_exception``: ``after`` stream
    events, then an exception frame ``name``; ``cut``: ``after`` events, then the connection closes
    mid-body; ``stall``: wait ``seconds`` before answering; ``slow``: stream with ``seconds`` between frames.
    """

    kind: str
    name: str = "ThrottlingException"
    message: str = "injected failure"
    after: int = 2
    seconds: float = 0.5


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class BedrockServer:
    """The server as a context manager; ``endpoint_url``, ``requests``, ``inject``, ``aborted``."""

    reply: str = "Hello from Bedrock!"
    reasoning: str | None = None
    chunk_size: int = 7
    max_seconds: float = 60.0
    requests: list[Recorded] = field(default_factory=list)
    aborted: int = 0
    _faults: deque[BedrockFault] = field(default_factory=deque)

    def inject(self, *faults: BedrockFault) -> None:
        self._faults.extend(faults)

    def __enter__(self) -> BedrockServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._http = _Server(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._deadline = threading.Timer(self.max_seconds, self._http.shutdown)
        self._deadline.daemon = True
        self._deadline.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._deadline.cancel()
        self._http.shutdown()
        self._http.server_close()

    def next_fault(self) -> BedrockFault | None:
        return self._faults.popleft() if self._faults else None

    # -- replies ----------------------------------------------------------
    def answer(self, body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The forced tool's toolUse block (or None) and the reply text for a request."""
        tool = ((body.get("toolConfig") or {}).get("toolChoice") or {}).get("tool")
        if tool:
            return {"toolUseId": "tooluse_test", "name": tool["name"], "input": {"answer": self.reply}}, ""
        if body.get("outputConfig"):
            return None, json.dumps({"answer": self.reply})
        return None, self.reply

    def converse(self, body: Mapping[str, Any]) -> dict[str, Any]:
        tool, text = self.answer(body)
        content: list[dict[str, Any]] = []
        if self.reasoning:
            content.append({"reasoningContent": {"reasoningText": {"text": self.reasoning, "signature": "sig"}}})
        content.append({"toolUse": tool} if tool else {"text": text})
        return {"output": {"message": {"role": "assistant", "content": content}},
                "stopReason": "tool_use" if tool else "end_turn", "usage": USAGE, "metrics": {"latencyMs": 42}}

    def events(self, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        tool, text = self.answer(body)
        yield "messageStart", {"role": "assistant", "p": "abcdefgh"}
        index = 0
        if self.reasoning:
            yield "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": self.reasoning}}}
            yield "contentBlockStop", {"contentBlockIndex": 0}
            index = 1
        if tool:
            start = {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}
            yield "contentBlockStart", {"contentBlockIndex": index, "start": start}
            document = json.dumps(tool["input"])
            for i in range(0, len(document), 6):
                piece = {"toolUse": {"input": document[i:i + 6]}}
                yield "contentBlockDelta", {"contentBlockIndex": index, "delta": piece}
        else:
            for word in _words(text):
                yield "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}, "p": "xyz"}
        yield "contentBlockStop", {"contentBlockIndex": index}
        yield "messageStop", {"stopReason": "tool_use" if tool else "end_turn"}
        yield "metadata", {"usage": USAGE, "metrics": {"latencyMs": 42}}


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is part of the tests, not a server failure


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: BedrockServer
    timeout = 5  # idle keep-alive connections end by themselves

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server_owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw) if raw else {}
        owner.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
        operation = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/model/") or operation not in ("converse", "converse-stream"):
            self._error("UnknownOperationException", "no such route", 404)
            return
        fault = owner.next_fault()
        if fault is not None and fault.kind == "stall":
            time.sleep(min(fault.seconds, _MAX_STALL))
        if fault is not None and fault.kind == "error":
            self._error(fault.name, fault.message, _STATUS.get(fault.name, 400))
        elif operation == "converse":
            self._json(200, owner.converse(body))
        else:
            self._stream(owner, body, fault)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "00000000-test")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, name: str, message: str, status: int) -> None:
        self._json(status, {"message": message},
                   {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"})

    def _stream(self, owner: BedrockServer, body: Mapping[str, Any], fault: BedrockFault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", EVENTSTREAM)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", "00000000-test")
        self.end_headers()
        try:
            for number, (event_type, payload) in enumerate(owner.events(body)):
                if fault is not None and number == fault.after and fault.kind in ("stream_exception", "cut"):
                    if fault.kind == "stream_exception":
                        self._chunks(exception_frame(fault.name, fault.message))
                        break
                    self.close_connection = True  # no terminating chunk: the body is cut off
                    return
                self._chunks(event_frame(event_type, payload))
                if fault is not None and fault.kind == "slow":
                    time.sleep(min(fault.seconds, _MAX_STALL))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            owner.aborted += 1
            self.close_connection = True

    def _chunks(self, data: bytes) -> None:
        size = self.server_owner.chunk_size
        for start in range(0, len(data), size):
            piece = data[start:start + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.flush()
