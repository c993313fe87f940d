"""The OpenAI-compatible API: ``POST /v1/chat/completions`` (JSON or SSE), ``POST /v1/embeddings`` and
``GET /v1/models``, in OpenAI's shapes.

A request is already in the engine's shape (the unified request is OpenAI's chat shape), so parsing is checking
and naming: ``max_completion_tokens`` or ``max_tokens``, ``response_format`` json_schema -> ``output_schema``
(json_object -> any object), ``stream_options.include_usage``. Fields the gateway does not read pass to the
provider as body fields, as with ``extra_body`` (never ones that choose where a call goes or with which key).

Replies follow the official SDK's types: ``chat.completion``, ``chat.completion.chunk`` (a role chunk first, tool
call pieces by index, a finish chunk, then with ``include_usage`` a chunk with empty ``choices`` and the usage),
and ``{"error": {message, type, param, code}}``; an error after a stream started is an ``error`` chunk, which the
SDK raises as ``APIError``. Every usage object carries ``cost_usd``.

Embeddings take ``input`` as one string or a list of strings (token-id arrays are refused: the engine sends text),
``dimensions``, ``user``, ``encoding_format`` (``float``, or ``base64``: little-endian float32, which the official
SDK asks for by default) and, beyond OpenAI's fields, ``input_type`` for providers that distinguish queries from
documents. The reply is a ``list`` of ``embedding`` objects in input order, with ``prompt_tokens`` and ``cost_usd``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from ..errors import ErrorKind
from ..types import CompletionResponse, EmbeddingResponse, StreamEvent
from .calls import ChatCall, EmbeddingCall, dumps, invalid, number, pass_through
from .problems import BUDGET, PERMISSION, Problem

KNOWN = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
                   "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "user",
                   "response_format", "tools", "tool_choice", "parallel_tool_calls", "n", "logprobs", "top_logprobs"})
EMBEDDING_KNOWN = frozenset({"model", "input", "dimensions", "user", "encoding_format", "input_type"})
FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}

# kind -> (type, code) of OpenAI's error object
ERROR_TYPES: dict[str, tuple[str, str | None]] = {
    ErrorKind.AUTH: ("authentication_error", "invalid_api_key"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorKind.NOT_FOUND: ("invalid_request_error", "model_not_found"),
    ErrorKind.SERVER: ("server_error", None),
    ErrorKind.TIMEOUT: ("timeout", "upstream_timeout"),
    ErrorKind.CONNECTION: ("server_error", "upstream_connection_error"),
    ErrorKind.INVALID_RESPONSE: ("server_error", "upstream_invalid_response"),
    PERMISSION: ("permission_error", "model_not_allowed"),
    BUDGET: ("insufficient_quota", "budget_exceeded"),
}


def parse(body: dict[str, Any]) -> ChatCall:
    """A chat completions request body as an engine call; raises `Problem` (400) when malformed."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required: a 'provider/model' or a route name", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise invalid("messages must be a non-empty list of message objects", "messages")
    if body.get("n") not in (None, 1):
        raise invalid("n must be 1: the gateway returns one choice", "n")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise invalid("logprobs are not supported by the gateway", "logprobs")
    stream = body.get("stream") is True
    stream_options = body.get("stream_options")
    include_usage = stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    max_tokens = number(body, "max_completion_tokens", int)
    if max_tokens is None:
        max_tokens = number(body, "max_tokens", int)
    options: dict[str, Any] = {"temperature": number(body, "temperature")}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    for name in ("top_p", "presence_penalty", "frequency_penalty"):
        if (value := number(body, name)) is not None:
            options[name] = value
    if (seed := number(body, "seed", int)) is not None:
        options["seed"] = seed
    for name in ("stop", "user", "tools", "tool_choice", "parallel_tool_calls"):
        if body.get(name) is not None:
            options[name] = body[name]
    schema = output_schema(body.get("response_format"))
    if schema is not None:
        options["output_schema"] = schema
    extra = pass_through(body, KNOWN)
    if extra:
        options["extra"] = extra
    return ChatCall(model, messages, options, stream, include_usage, max_tokens)


def output_schema(response_format: Any) -> dict[str, Any] | None:
    """``response_format`` as the engine's ``output_schema``."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise invalid("response_format json_schema needs json_schema.schema (an object)", "response_format")
        return schema
    raise invalid("response_format.type must be text, json_object or json_schema", "response_format")


def usage(response: CompletionResponse) -> dict[str, Any]:
    """OpenAI's usage object, with the cost in USD (``cost_usd``, null when the model has no known price)."""
    prompt, completion = response.input_tokens or 0, response.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": response.cached_input_tokens or 0},
            "completion_tokens_details": {"reasoning_tokens": response.reasoning_tokens or 0},
            "cost_usd": response.cost_usd}


def shown_model(response: CompletionResponse, requested: str) -> str:
    """The model a reply names: ``provider/model`` as the provider reported it."""
    if response.provider and response.model:
        return f"{response.provider}/{response.model}"
    return requested


def reply(response: CompletionResponse, call: ChatCall, rid: str, created: int) -> bytes:
    """A ``chat.completion`` for a successful engine response."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content or None, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}} for c in response.tool_calls]
    elif message["content"] is None:
        message["content"] = ""
    if response.reasoning:
        message["reasoning_content"] = response.reasoning
    return dumps({
        "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created,
        "model": shown_model(response, call.model),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": FINISH.get(response.finish_reason or "stop", "stop")}],
        "usage": usage(response)})


def parse_embeddings(body: dict[str, Any]) -> EmbeddingCall:
    """An embeddings request body as an engine call; raises `Problem` (400) when malformed."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required: a 'provider/model' or a route name", "model")
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
        raise invalid("input must be a string or a non-empty list of strings (token-id arrays are not supported: "
                      "send the text)", "input")
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise invalid("encoding_format must be float or base64", "encoding_format")
    options: dict[str, Any] = {}
    if (dimensions := number(body, "dimensions", int)) is not None:
        options["dimensions"] = dimensions
    for name in ("user", "input_type"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise invalid(f"{name} must be a string", name)
            options[name] = value
    extra = pass_through(body, EMBEDDING_KNOWN)
    if extra:
        options["extra"] = extra
    return EmbeddingCall(model, inputs, options, base64=encoding == "base64")


def embeddings_reply(response: EmbeddingResponse, call: EmbeddingCall) -> bytes:
    """A ``list`` of ``embedding`` objects for a successful engine response."""
    data = []
    for index, vector in enumerate(response.vectors):
        assert vector is not None  # a response with a missing vector is a failure
        value: Any = vector
        if call.base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = response.input_tokens or 0
    model = f"{response.provider}/{response.model}" if response.provider and response.model else call.model
    return dumps({"object": "list", "data": data, "model": model,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "cost_usd": response.cost_usd}})


def error_body(problem: Problem) -> bytes:
    kind_type, kind_code = ERROR_TYPES.get(problem.kind, ("server_error", None))
    return dumps({"error": {"message": problem.message, "type": kind_type, "param": problem.param,
                            "code": problem.code or kind_code}})


def models(ids: list[str], created: int) -> bytes:
    """``GET /v1/models``: a ``list`` of ``model`` objects."""
    return dumps({"object": "list", "data": [
        {"id": name, "object": "model", "created": created,
         "owned_by": name.partition("/")[0] if "/" in name else "genai-gateway"} for name in ids]})


class Chunks:
    """The SSE bytes of one streamed reply; the text of every chunk is built once, around each delta."""

    def __init__(self, call: ChatCall, rid: str, created: int) -> None:
        self.call = call
        head = f'data: {{"id":"chatcmpl-{rid}","object":"chat.completion.chunk","created":{created},' \
               f'"model":{dumps(call.model).decode()},"choices":[{{"index":0,"delta":'
        self._head = head.encode()
        self._open = b',"logprobs":null,"finish_reason":null}]}\n\n'
        self._usage_head = head.partition('"choices"')[0].encode()

    def start(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._open

    def encode(self, batch: list[Any]) -> bytes:
        """A batch of the engine's stream items (text deltas as str, other events typed) as chunks."""
        head, tail = self._head, self._open
        out: list[bytes] = []
        for item in batch:
            if type(item) is str:
                out.append(head + b'{"content":' + dumps(item) + b"}" + tail)
                continue
            event: StreamEvent = item
            kind = event.type
            if kind == "tool_call":
                call = {"index": event.index, "id": event.id, "type": "function",
                        "function": {"name": event.name, "arguments": ""}}
                out.append(head + b'{"tool_calls":[' + dumps(call) + b"]}" + tail)
            elif kind == "tool_arguments":
                piece = {"index": event.index, "function": {"arguments": event.text}}
                out.append(head + b'{"tool_calls":[' + dumps(piece) + b"]}" + tail)
            elif kind == "reasoning":
                out.append(head + b'{"reasoning_content":' + dumps(event.text) + b"}" + tail)
        return b"".join(out)

    def finish(self, response: CompletionResponse) -> bytes:
        """The finish chunk, the usage chunk (when asked for) and ``[DONE]``."""
        reason = FINISH.get(response.finish_reason or "stop", "stop")
        out = self._head + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'
        if self.call.include_usage:
            out += self._usage_head + b'"choices":[],"usage":' + dumps(usage(response)) + b"}\n\n"
        return out + b"data: [DONE]\n\n"

    def error(self, problem: Problem) -> bytes:
        """An error after the stream started: the SDK raises it as ``APIError``."""
        return b"data: " + error_body(problem) + b"\n\n"
