"""The Anthropic-compatible API: ``POST /v1/messages`` (JSON or SSE), so Anthropic-SDK clients reach any provider.

A Messages request is turned into the engine's shape (OpenAI's chat shape): ``system`` becomes a system message;
``text``, ``image`` and ``document`` blocks become content parts; ``tool_use`` blocks an assistant's
``tool_calls``; ``tool_result`` blocks ``role: tool`` messages (placed before the rest of that user turn, as
Anthropic requires them first); ``thinking`` blocks ride along for Anthropic to get them back; ``tools``,
``tool_choice`` (``disable_parallel_tool_use`` included), ``stop_sequences``, ``metadata.user_id`` and
``output_config.format`` (JSON Schema) are mapped; other fields (``top_k``, ``thinking``) pass to the provider.

Replies follow the official SDK's types: a ``message`` (``input_tokens`` excludes cache reads and writes, which
have their own counts, as Anthropic counts them), or the event stream ``message_start``, ``content_block_*``,
``message_delta`` (stop reason and the whole usage) and ``message_stop``. Text and thinking stream as they come;
tool calls come whole as ``tool_use`` blocks once the reply has ended (their pieces can arrive interleaved, which
Anthropic's sequential blocks cannot show). Errors are ``{"type": "error", "error": {type, message}}``, in a
stream an ``error`` event. Every usage object carries ``cost_usd``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ErrorKind
from ..types import CompletionResponse, StreamEvent
from .calls import ChatCall, dumps, invalid, number, pass_through
from .problems import BUDGET, PERMISSION, Problem

KNOWN = frozenset({"model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences", "stream",
                   "metadata", "tools", "tool_choice", "output_config", "output_format"})
STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal",
        "other": "end_turn"}
NATIVE_STOP = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"})
ERROR_TYPES: dict[str, str] = {
    ErrorKind.AUTH: "authentication_error", ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.INVALID_REQUEST: "invalid_request_error", ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.SERVER: "api_error", ErrorKind.TIMEOUT: "timeout_error", ErrorKind.CONNECTION: "api_error",
    ErrorKind.INVALID_RESPONSE: "api_error", PERMISSION: "permission_error", BUDGET: "rate_limit_error",
}


def parse(body: dict[str, Any]) -> ChatCall:
    """A Messages request body as an engine call; raises `Problem` (400) when malformed."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required: a 'provider/model' or a route name", "model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, dict) for m in raw):
        raise invalid("messages must be a non-empty list of message objects", "messages")
    messages = _system(body.get("system")) + [m for message in raw for m in _message(message)]
    max_tokens = number(body, "max_tokens", int)
    options: dict[str, Any] = {"temperature": number(body, "temperature")}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    if (top_p := number(body, "top_p")) is not None:
        options["top_p"] = top_p
    if body.get("stop_sequences"):
        options["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        options["user"] = metadata["user_id"]
    if body.get("tools"):
        options["tools"] = [_tool(tool) for tool in body["tools"]]
    choice = body.get("tool_choice")
    if choice is not None:
        options.update(_tool_choice(choice))
    schema = _output_schema(body)
    if schema is not None:
        options["output_schema"] = schema
    extra = pass_through(body, KNOWN)
    if extra:
        options["extra"] = extra
    return ChatCall(model, messages, options, body.get("stream") is True, True, max_tokens)


def _text(content: Any, where: str) -> str:
    """The text of a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise invalid(f"{where}: only text blocks are supported here")
            texts.append(block["text"])
        return "\n\n".join(texts)
    raise invalid(f"{where} must be a string or a list of text blocks")


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    return [{"role": "system", "content": _text(system, "system")}]


def _source(block: dict[str, Any], kind: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"a {kind} block needs a source")
    if source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise invalid(f"a base64 {kind} source needs media_type and data")
        url = f"data:{media};base64,{data}"
        if kind == "image":
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "file", "file": {"filename": block.get("title") or "document.pdf", "file_data": url}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        if kind == "image":
            return {"type": "image_url", "image_url": {"url": source["url"]}}
        return {"type": "file", "file": {"url": source["url"]}}
    if kind == "document" and source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    raise invalid(f"{kind} source type {source.get('type')!r} is not supported (base64 or url)")


def _message(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One Anthropic message as engine messages (a user turn with tool results becomes tool messages first)."""
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise invalid(f"message role must be user or assistant, got {role!r}")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid("message content must be a string or a list of blocks")
    if role == "assistant":
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, Any]] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(block.get("text") or "")
            elif kind == "tool_use":
                calls.append({"id": block.get("id"), "type": "function",
                              "function": {"name": block.get("name"),
                                           "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}})
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append({k: v for k, v in block.items() if k != "cache_control"})
            else:
                raise invalid(f"assistant block type {kind!r} is not supported")
        reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
        if calls:
            reply["tool_calls"] = calls
        if thinking:
            reply["thinking"] = thinking
        return [reply]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            result = block.get("content")
            text = "" if result is None else _text(result, "tool_result content")
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                        "content": f"Error: {text}" if block.get("is_error") else text})
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind in ("image", "document"):
            parts.append(_source(block, kind))
        else:
            raise invalid(f"user block type {kind!r} is not supported")
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
        raise invalid("tools: only custom tools ({name, description, input_schema}) are supported", "tools")
    function: dict[str, Any] = {"name": tool["name"],
                                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> dict[str, Any]:
    if not isinstance(choice, dict):
        raise invalid("tool_choice must be an object", "tool_choice")
    kind = choice.get("type")
    options: dict[str, Any]
    if kind == "auto":
        options = {"tool_choice": "auto"}
    elif kind == "any":
        options = {"tool_choice": "required"}
    elif kind == "none":
        options = {"tool_choice": "none"}
    elif kind == "tool" and isinstance(choice.get("name"), str):
        options = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    else:
        raise invalid("tool_choice.type must be auto, any, tool (with a name) or none", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        options["parallel_tool_calls"] = False
    return options


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise invalid("output_config.format must be {type: json_schema, schema: {...}}", "output_config")
    return fmt["schema"]  # type: ignore[no-any-return]


# -- replies ---------------------------------------------------------------------------------------------------


def usage(response: CompletionResponse) -> dict[str, Any]:
    """Anthropic's usage: ``input_tokens`` without the cache reads and writes, which are counted apart."""
    cached, written = response.cached_input_tokens or 0, response.cache_write_tokens or 0
    return {"input_tokens": max((response.input_tokens or 0) - cached - written, 0),
            "output_tokens": response.output_tokens or 0, "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached, "cost_usd": response.cost_usd}


def stop_reason(response: CompletionResponse) -> str:
    native = response.native_finish_reason
    if response.provider == "anthropic" and native in NATIVE_STOP:
        return native
    return STOP.get(response.finish_reason or "stop", "end_turn")


def _thinking(response: CompletionResponse) -> list[dict[str, Any]]:
    blocks = [b for b in response.thinking if b.get("type") in ("thinking", "redacted_thinking")]
    if blocks:
        return blocks
    return [{"type": "thinking", "thinking": response.reasoning, "signature": ""}] if response.reasoning else []


def _tool_uses(response: CompletionResponse) -> list[dict[str, Any]]:
    blocks = []
    for call in response.tool_calls:
        try:
            arguments = call.args()
        except ValueError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": arguments if isinstance(arguments, dict) else {"value": arguments}})
    return blocks


def reply(response: CompletionResponse, call: ChatCall, rid: str) -> bytes:
    """A ``message`` for a successful engine response."""
    content = _thinking(response)
    if response.content or not response.tool_calls:
        content.append({"type": "text", "text": response.content})
    content += _tool_uses(response)
    model = f"{response.provider}/{response.model}" if response.provider and response.model else call.model
    return dumps({"id": f"msg_{rid}", "type": "message", "role": "assistant", "model": model, "content": content,
                  "stop_reason": stop_reason(response), "stop_sequence": None, "usage": usage(response)})


def error_type(problem: Problem) -> str:
    return "overloaded_error" if problem.status == 529 else ERROR_TYPES.get(problem.kind, "api_error")


def error_body(problem: Problem, rid: str | None = None) -> bytes:
    return dumps({"type": "error", "error": {"type": error_type(problem), "message": problem.message},
                  "request_id": rid})


def models(ids: list[str]) -> bytes:
    """``GET /v1/models`` in Anthropic's shape (asked for with an ``anthropic-version`` header)."""
    data = [{"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"} for name in ids]
    return dumps({"data": data, "has_more": False, "first_id": ids[0] if ids else None,
                  "last_id": ids[-1] if ids else None})


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


class Events:
    """The SSE bytes of one streamed reply. Content blocks open as text or thinking arrives; tool calls are written
    whole at the end."""

    def __init__(self, call: ChatCall, rid: str) -> None:
        self.call, self.rid = call, rid
        self.index = -1
        self.open: str | None = None  # the type of the open block
        self._prefix = b""  # the bytes before a delta of the open block

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_{self.rid}", "type": "message", "role": "assistant", "model": self.call.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return _event(b"message_start", dumps({"type": "message_start", "message": message}))

    def _switch(self, kind: str) -> bytes:
        """Close the open block and open one of ``kind``."""
        out = self._close()
        self.index += 1
        self.open = kind
        block = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": "",
                                                                     "signature": ""}
        self._prefix = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":'
                        % self.index) + (b'{"type":"text_delta","text":' if kind == "text" else
                                         b'{"type":"thinking_delta","thinking":')
        return out + _event(b"content_block_start", dumps({"type": "content_block_start", "index": self.index,
                                                           "content_block": block}))

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self.index)

    def encode(self, batch: list[Any]) -> bytes:
        out: list[bytes] = []
        for item in batch:
            if type(item) is str:
                if not item:
                    continue
                if self.open != "text":
                    out.append(self._switch("text"))
                out.append(self._prefix + dumps(item) + b"}}\n\n")
                continue
            event: StreamEvent = item
            if event.type == "reasoning" and event.text:
                if self.open != "thinking":
                    out.append(self._switch("thinking"))
                out.append(self._prefix + dumps(event.text) + b"}}\n\n")
        return b"".join(out)

    def finish(self, response: CompletionResponse) -> bytes:
        out = [self._close()]
        for block in _tool_uses(response):
            self.index += 1
            arguments = dumps(block["input"]).decode()
            out.append(_event(b"content_block_start", dumps({"type": "content_block_start", "index": self.index,
                                                             "content_block": {**block, "input": {}}})))
            out.append(_event(b"content_block_delta", dumps({
                "type": "content_block_delta", "index": self.index,
                "delta": {"type": "input_json_delta", "partial_json": arguments}})))
            out.append(_event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self.index))
        out.append(_event(b"message_delta", dumps({
            "type": "message_delta", "delta": {"stop_reason": stop_reason(response), "stop_sequence": None},
            "usage": usage(response)})))
        out.append(_event(b"message_stop", b'{"type":"message_stop"}'))
        return b"".join(out)

    def error(self, problem: Problem) -> bytes:
        return _event(b"error", dumps({"type": "error", "error": {"type": error_type(problem),
                                                                 "message": problem.message}}))
