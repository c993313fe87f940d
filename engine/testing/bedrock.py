"""A small Bedrock runtime server on 127.0.0.1 for tests: Converse JSON and ConverseStream event streams.

Real boto3 talks to it through an endpoint URL override (``GENAI_BEDROCK_ENDPOINT_URL``). Standard
library only; botocore has no event-stream encoder, so `encode_message` is this module's own.

* ``POST /model/{modelId}/converse`` -> Converse JSON (``output``, ``stopReason``, ``usage``, ``metrics``).
* ``POST /model/{modelId}/converse-stream`` -> ``application/vnd.amazon.eventstream`` frames
  (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata), sent in ``chunk_size``-byte HTTP
  chunks so frames split at awkward places.
* ``POST /model/{modelId}/invoke`` -> the embedding models' InvokeModel JSON: Titan (``inputText``) and
  Cohere (``texts``, its input token count in ``X-Amzn-Bedrock-Input-Token-Count``), with `vector_for` vectors.

A forced tool (``toolConfig.toolChoice.tool``) is answered with a toolUse block whose input is
``{"answer": <reply>}``; ``outputConfig.textFormat`` makes the reply that JSON as text. With
``toolConfig.tools`` and a last user turn holding text, the answer is two parallel calls of the first tool
(``{"city": "Paris"}`` and ``{"city": "Rome"}``, or its schema's first property), ``stopReason: tool_use``;
a last user turn holding toolResult blocks is checked against the calls before it (one result per call,
results first, contents as lists, thinking replayed with its signature) and answered with
``Results: <each result>``. What Bedrock would refuse (roles that do not alternate, tool blocks without a
``toolConfig``, results that do not match) is a 400 ValidationException naming the problem. Errors use
Bedrock's shape: status, ``x-amzn-ErrorType`` header and ``{"message": ...}`` body; in-stream failures
are ``:message-type: exception`` frames. Faults (`BedrockFault`) queued with `inject` each apply to one request.
"""

from __future__ import annotations

import base64
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
from itertools import pairwise
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
    redacted: bytes | None = None
    tool_text: str | None = None
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
    def invoke(self, model: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """InvokeModel for the embedding models: Titan's one ``inputText``, Cohere's ``texts`` (at most 96, with
        an ``input_type``); the vectors are `vector_for` the texts. Raises `Invalid` for a body Bedrock refuses."""
        from .embeddings import DEFAULT_DIMENSIONS, tokens_for, vector_for

        base = model.split(".", 1)[1] if model.split(".", 1)[0] in ("us", "eu", "apac", "global") else model
        if base.startswith("amazon.titan-embed-text"):
            text = body.get("inputText")
            if not isinstance(text, str) or set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
                raise Invalid("Malformed input request: expected inputText and optional dimensions, normalize")
            dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
            if dimensions not in (256, 512, 1024, DEFAULT_DIMENSIONS):
                raise Invalid("dimensions must be 256, 512 or 1024")
            return {"embedding": vector_for(text, dimensions), "inputTextTokenCount": tokens_for(text)}, {}
        if base.startswith("cohere.embed-"):
            texts = body.get("texts")
            if not isinstance(texts, list) or not texts or len(texts) > 96 or \
                    not all(isinstance(t, str) for t in texts):
                raise Invalid("Malformed input request: texts must hold 1 to 96 strings")
            if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
                raise Invalid("Malformed input request: input_type is required")
            dimensions = body.get("output_dimension", DEFAULT_DIMENSIONS)
            vectors = [vector_for(t, dimensions) for t in texts]
            embeddings: Any = {"float": vectors} if body.get("embedding_types") else vectors
            tokens = sum(tokens_for(t) for t in texts)
            return ({"id": "local-embed", "texts": texts, "embeddings": embeddings,
                     "response_type": "embeddings_by_type" if body.get("embedding_types") else "embeddings_floats"},
                    {"X-Amzn-Bedrock-Input-Token-Count": str(tokens)})
        raise Invalid(f"The provided model identifier is invalid: {model}")

    def reply_blocks(self, body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The answer's content blocks and stop reason; raises `Invalid` for what Bedrock refuses."""
        messages = body.get("messages") or []
        config = body.get("toolConfig") or {}
        check_conversation(messages, config)
        content: list[dict[str, Any]] = []
        if self.reasoning:
            content.append({"reasoningContent": {"reasoningText": {"text": self.reasoning, "signature": "sig"}}})
        if self.redacted:
            content.append({"reasoningContent": {"redactedContent": base64.b64encode(self.redacted).decode()}})
        last = messages[-1].get("content") or [] if messages else []
        results = [block["toolResult"] for block in last if "toolResult" in block]
        forced = (config.get("toolChoice") or {}).get("tool")
        if forced:
            use = {"toolUseId": "tooluse_test", "name": forced["name"], "input": {"answer": self.reply}}
            return [*content, {"toolUse": use}], "tool_use"
        if results:
            self._check_results(messages, results)
            answers = [json.dumps(c["json"]) if "json" in c else str(c["text"]) for r in results for c in r["content"]]
            return [*content, {"text": "Results: " + "; ".join(answers)}], "end_turn"
        if config.get("tools") and any("text" in block for block in last):
            spec = config["tools"][0]["toolSpec"]
            properties = ((spec.get("inputSchema") or {}).get("json") or {}).get("properties") or {}
            key = next(iter(properties), "city")
            if self.tool_text:
                content.append({"text": self.tool_text})
            for n, city in enumerate(("Paris", "Rome"), 1):
                use = {"toolUseId": f"tooluse_{n:02d}", "name": spec["name"], "input": {key: city}}
                content.append({"toolUse": use})
            return content, "tool_use"
        text = json.dumps({"answer": self.reply}) if body.get("outputConfig") else self.reply
        return [*content, {"text": text}], "end_turn"

    def _check_results(self, messages: list[Mapping[str, Any]], results: list[Mapping[str, Any]]) -> None:
        """Tool results as Converse wants them: one user turn right after the calls, one result per call, first."""
        if len(messages) < 2 or messages[-2].get("role") != "assistant":
            raise Invalid("toolResult blocks must follow the assistant turn holding the toolUse blocks")
        previous, last = messages[-2].get("content") or [], messages[-1].get("content") or []
        uses = [block["toolUse"] for block in previous if "toolUse" in block]
        ids, answered = [use.get("toolUseId") for use in uses], [result.get("toolUseId") for result in results]
        if sorted(map(str, answered)) != sorted(map(str, ids)):
            raise Invalid(f"the toolResult blocks {answered} do not answer the toolUse blocks {ids} of the turn before")
        firsts = ["toolResult" in block for block in last]
        if firsts != sorted(firsts, reverse=True):
            raise Invalid("toolResult blocks must come before other blocks in the user turn")
        for use in uses:
            if not isinstance(use.get("input"), dict):
                raise Invalid(f"toolUse {use.get('toolUseId')}: input must be a JSON object")
        for result in results:
            content = result.get("content")
            if not isinstance(content, list) or not content or \
                    not all(isinstance(c, dict) and len(c) == 1 and ("json" in c or "text" in c) for c in content):
                raise Invalid(f"toolResult {result.get('toolUseId')}: content must be a list of json or text blocks")
            if result.get("status") not in (None, "success", "error"):
                raise Invalid(f"toolResult {result.get('toolUseId')}: status must be success or error")
        if self.reasoning:  # with thinking on, the turn that called tools must replay its thinking, unchanged
            first = previous[0].get("reasoningContent") if previous else None
            kept = (first or {}).get("reasoningText") or {}
            if (kept.get("text"), kept.get("signature")) != (self.reasoning, "sig"):
                raise Invalid("the assistant turn with toolUse must start with its reasoningContent, text and "
                              "signature unchanged")

    def converse(self, body: Mapping[str, Any]) -> dict[str, Any]:
        content, stop = self.reply_blocks(body)
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                "usage": USAGE, "metrics": {"latencyMs": 42}}

    def events(self, body: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stream events: text and reasoning blocks have no start event; tool blocks stream their input in pieces."""
        content, stop = self.reply_blocks(body)
        yield "messageStart", {"role": "assistant", "p": "abcdefgh"}
        for index, block in enumerate(content):
            if "reasoningContent" in block:
                reasoning = block["reasoningContent"]
                if "redactedContent" in reasoning:
                    deltas = [{"redactedContent": reasoning["redactedContent"]}]
                else:
                    thought = reasoning["reasoningText"]
                    deltas = [{"text": thought["text"]}, {"signature": thought["signature"]}]
                for delta in deltas:
                    yield "contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": delta}}
            elif "toolUse" in block:
                use = block["toolUse"]
                start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
                yield "contentBlockStart", {"contentBlockIndex": index, "start": start}
                document = json.dumps(use["input"])
                for i in range(0, len(document), 6):
                    piece = {"toolUse": {"input": document[i:i + 6]}}
                    yield "contentBlockDelta", {"contentBlockIndex": index, "delta": piece}
            else:
                for word in _words(block["text"]):
                    yield "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}, "p": "xyz"}
            yield "contentBlockStop", {"contentBlockIndex": index}
        yield "messageStop", {"stopReason": stop}
        yield "metadata", {"usage": USAGE, "metrics": {"latencyMs": 42}}


class Invalid(Exception):
    """A request Bedrock answers with a 400 ValidationException; the message says what is wrong."""


def check_conversation(messages: list[Mapping[str, Any]], config: Mapping[str, Any]) -> None:
    """Bedrock's own rules on a conversation: it starts with a user turn, roles alternate, and tool blocks
    need a ``toolConfig``."""
    roles = [message.get("role") for message in messages]
    if not roles or roles[0] != "user":
        raise Invalid("A conversation must start with a user message.")
    if any(a == b for a, b in pairwise(roles)) or not set(roles) <= {"user", "assistant"}:
        raise Invalid(f"A conversation must alternate between user and assistant roles, got {roles}.")
    blocks = [block for message in messages for block in message.get("content") or []]
    if not config and any("toolUse" in block or "toolResult" in block for block in blocks):
        raise Invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")


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
        if not self.path.startswith("/model/") or operation not in ("converse", "converse-stream", "invoke"):
            self._error("UnknownOperationException", "no such route", 404)
            return
        fault = owner.next_fault()
        if fault is not None and fault.kind == "stall":
            time.sleep(min(fault.seconds, _MAX_STALL))
        if fault is not None and fault.kind == "error":
            self._error(fault.name, fault.message, _STATUS.get(fault.name, 400))
            return
        if operation == "invoke":
            from urllib.parse import unquote

            try:
                reply, headers = owner.invoke(unquote(self.path.split("/")[2]), body)
            except Invalid as exc:
                self._error("ValidationException", str(exc), 400)
                return
            self._json(200, reply, headers)
            return
        try:
            answer = owner.converse(body) if operation == "converse" else list(owner.events(body))
        except Invalid as exc:
            self._error("ValidationException", str(exc), 400)
            return
        if isinstance(answer, dict):
            self._json(200, answer)
        else:
            self._stream(owner, answer, fault)

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

    def _stream(self, owner: BedrockServer, events: list[tuple[str, dict[str, Any]]],
                fault: BedrockFault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", EVENTSTREAM)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", "00000000-test")
        self.end_headers()
        try:
            for number, (event_type, payload) in enumerate(events):
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
